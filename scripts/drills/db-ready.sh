#!/usr/bin/env bash
# Failure drill (milestone 03, phase 2), run from the host: with the database down, the api must
# stay live (/health 200), report not ready (/ready non-200), and fail verification; when the
# database returns, readiness must recover with no restart of the api.
#   NODE=<name> scripts/drills/db-ready.sh        (or: make drill NODE=<name>)
# Environment:
#   DRILL_TCP_TOOLS          order of raw-TCP tools to try (default "nc devtcp curl")
#   DRILL_RECOVERY_TIMEOUT   seconds to wait for /ready after the database returns (default 30)
# Each step prints what it did, what it expected, what it saw and how long it took; the first
# broken promise stops the drill (exit 1). Whatever happens, the database is started again. A
# record of the run is written to provenance/<node>/drills/.
set -euo pipefail
# shellcheck source=scripts/lib/host.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/host.sh"

NODE=${NODE:-}
check_node_name "$NODE"
ensure_host
build_prov
if [[ -z $NODE ]]; then
  mapfile -t declared < <(prov nodes)
  NODE=${declared[0]}
fi
prov nodes --check "$NODE"
PORT="$(prov nodes --port "$NODE")"
TOOLS=${DRILL_TCP_TOOLS:-nc devtcp curl}
RECOVERY_TIMEOUT=${DRILL_RECOVERY_TIMEOUT:-30}
STARTED_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
RECORD_DIR="$PROV_REPO/provenance/$NODE/drills"
STEPS="$(mktemp)"
db_stopped=0
outcome=aborted
before='{}'
after='{}'
TOOL=

step_no=0
step_start=0
begin() {
  step_no=$((step_no + 1))
  step_name=$1
  step_start=$(date +%s%N)
  printf '\n[%d] %s\n' "$step_no" "$step_name"
}

# Ends the current step: pass/fail, with what was expected and what was seen.
end() {
  local ok=$1 expected=$2 seen=$3 took ms
  ms=$((($(date +%s%N) - step_start) / 1000000))
  took="$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  printf '    expected: %s\n    saw:      %s\n    took:     %ss -> %s\n' \
    "$expected" "$seen" "$took" "$([[ $ok == 1 ]] && echo ok || echo FAILED)"
  jq -cn --argjson n "$step_no" --arg name "$step_name" --arg expected "$expected" \
    --arg seen "$seen" --argjson took "$took" --argjson ok "$([[ $ok == 1 ]] && echo true || echo false)" \
    '{step: $n, name: $name, expected: $expected, seen: $seen, seconds: $took, ok: $ok}' >>"$STEPS"
  if [[ $ok != 1 ]]; then
    outcome="failed at step $step_no: $step_name"
    exit 1
  fi
}

# --- raw TCP: the proof must carry bytes back from the api process -------------------------
# A published port accepts connections through Docker's proxy even when nothing listens behind
# it, so every probe sends an HTTP request and reads the status line the api answers with.

# Usable means it runs here and reaches the port (a name on the PATH is not enough).
tool_usable() {
  case $1 in
    nc) nc -z -w 3 127.0.0.1 "$PORT" >/dev/null 2>&1 ;;
    devtcp) (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null ;;
    curl) curl --version >/dev/null 2>&1 ;;
    *) die "unknown tool '$1' in DRILL_TCP_TOOLS (use nc, devtcp, curl)" ;;
  esac
}

pick_tool() {
  local tool
  for tool in $TOOLS; do
    if tool_usable "$tool"; then
      TOOL=$tool
      return 0
    fi
  done
  die "none of the TCP tools ($TOOLS) is usable on this host"
}

# Prints the HTTP status line the api sends for PATH, over one raw connection.
status_line() {
  local path=$1 request
  # printf -v keeps the final CRLF that ends the headers ($(...) would strip it).
  printf -v request 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path"
  case $TOOL in
    # No -N: a half-closed connection makes Docker's port proxies drop the answer.
    nc) printf '%s' "$request" | nc -w 3 127.0.0.1 "$PORT" 2>/dev/null | head -n 1 | tr -d '\r' ;;
    devtcp)
      local line=''
      {
        exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf '%s' "$request" >&3 &&
          IFS= read -r -t 3 line <&3
        exec 3>&-
      } 2>/dev/null || true
      printf '%s\n' "${line%$'\r'}"
      ;;
    curl)
      # curl writes "000" when nothing answered: that is no status line.
      local written
      written="$(curl -s -o /dev/null --max-time 3 -w 'HTTP/%{http_version} %{http_code}' \
        "http://127.0.0.1:$PORT$path" 2>/dev/null || true)"
      [[ $written == *" 000" ]] || printf '%s\n' "$written"
      ;;
  esac
}

http_code() {
  local line
  line="$(status_line "$1")"
  [[ $line =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]] && printf '%s\n' "${BASH_REMATCH[1]}" || printf 'none\n'
}

# --- the api's identity: a restart changes at least one of these --------------------------
api_identity() {
  prov exec --node "$NODE" -- bash -c 'docker ps --quiet --filter label=com.docker.compose.project=prov \
    --filter label=com.docker.compose.service=api | head -n 1 | xargs -r docker inspect --format \
    "{\"container\":\"{{.Id}}\",\"started_at\":\"{{.State.StartedAt}}\",\"restarts\":{{.RestartCount}},\"pid\":{{.State.Pid}}}"'
}

steady_state() {
  local identity
  identity="$(api_identity)"
  jq -cn --argjson api "${identity:-null}" --arg health "$(http_code /health)" \
    --arg ready "$(http_code /ready)" '{api: $api, health: $health, ready: $ready}'
}

db() { node_script "$NODE" scripts/node/db.sh "$1" >/dev/null; }

# Runs make verify; sets rc and verify_out. Prints the report, indented, on failure or with "show".
run_verify() {
  verify_out="$(make --no-print-directory -C "$PROV_REPO" verify NODE="$NODE" 2>&1)" && rc=0 || rc=$?
  if [[ ${1:-} == show ]] || ((rc != 0)); then
    while IFS= read -r line; do printf '      | %s\n' "$line"; done <<<"$verify_out"
  fi
}

finish() {
  if ((db_stopped)); then
    printf '\n(drill interrupted or failed: starting the database again)\n'
    db start || warn "could not start the database: run make up NODE=$NODE"
  fi
  mkdir -p "$RECORD_DIR"
  local record
  record="$RECORD_DIR/$(date -u +%Y%m%d-%H%M%S)-db-ready.json"
  jq -n --arg node "$NODE" --arg started "$STARTED_AT" --arg finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg tool "$TOOL" --arg outcome "$outcome" --argjson before "$before" --argjson after "$after" \
    --slurpfile steps "$STEPS" \
    '{drill: "db-ready", node: $node, started_at: $started, finished_at: $finished, tcp_tool: $tool,
      outcome: $outcome, deviated: ($outcome != "passed"), before: $before, after: $after,
      steps: $steps}' >"$record"
  rm -f "$STEPS"
  printf '\ndrill %s on %s: %s (record: %s)\n' db-ready "$NODE" "$outcome" "${record#"$PROV_REPO"/}"
}
trap finish EXIT

log "failure drill on node $NODE (api on 127.0.0.1:$PORT)"
pick_tool
log "raw TCP tool: $TOOL"

begin "baseline: make verify passes; record the api's identity, /health and /ready"
run_verify
before="$(steady_state)"
end "$([[ $rc == 0 && $(jq -r .ready <<<"$before") == 200 ]] && echo 1 || echo 0)" \
  "verify exit 0, /health 200, /ready 200" "verify exit $rc, state $before"

begin "stop only the database, through scripts/node/db.sh"
db_stopped=1
db stop
running="$(prov exec --node "$NODE" -- docker ps --format '{{.Label "com.docker.compose.service"}}' \
  --filter label=com.docker.compose.project=prov | sort | tr '\n' ' ')"
end "$([[ $running == "api " ]] && echo 1 || echo 0)" "only api running" "running: ${running:-none}"

begin "raw TCP from the host ($TOOL): the api process answers on its port"
line="$(status_line /health)"
end "$([[ $line == HTTP/* ]] && echo 1 || echo 0)" "an HTTP status line from the api" "${line:-no bytes}"

begin "/health is 200 and /ready is not 200"
health="$(http_code /health)"
ready="$(http_code /ready)"
end "$([[ $health == 200 && $ready != 200 && $ready != none ]] && echo 1 || echo 0)" \
  "/health 200, /ready non-200" "/health $health, /ready $ready"

begin "make verify fails, naming readiness or the database"
run_verify show
named="$(grep -oE 'FAIL +(http/ready|service:db)' <<<"$verify_out" | tr -s ' ' | paste -sd, -)" || true
end "$([[ $rc != 0 && -n $named ]] && echo 1 || echo 0)" \
  "verify exit non-zero with http/ready or service:db failed" "verify exit $rc, failed: ${named:-nothing named}"

begin "start the database again, through scripts/node/db.sh (it waits for its healthcheck)"
db_started=$(date +%s%N)
db start
db_stopped=0
end 1 "database started and healthy" "started"

begin "/ready returns to 200 without help (bound ${RECOVERY_TIMEOUT}s)"
deadline=$(($(date +%s) + RECOVERY_TIMEOUT))
until [[ $(http_code /ready) == 200 ]] || (($(date +%s) >= deadline)); do sleep 0.2; done
ready="$(http_code /ready)"
recovery_ms=$((($(date +%s%N) - db_started) / 1000000))
end "$([[ $ready == 200 ]] && echo 1 || echo 0)" "/ready 200 within ${RECOVERY_TIMEOUT}s" \
  "/ready $ready, $((recovery_ms / 1000)).$(printf '%03d' $((recovery_ms % 1000)))s after the database was started"

begin "the api was not restarted"
after="$(steady_state)"
end "$([[ $(jq -c .api <<<"$after") == "$(jq -c .api <<<"$before")" ]] && echo 1 || echo 0)" \
  "same container, start time, restart count and pid: $(jq -c .api <<<"$before")" \
  "$(jq -c .api <<<"$after")"

begin "make verify passes again"
run_verify
end "$([[ $rc == 0 ]] && echo 1 || echo 0)" "verify exit 0" "verify exit $rc"

outcome=passed
