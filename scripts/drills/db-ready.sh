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
# shellcheck source=scripts/lib/rawtcp.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/rawtcp.sh"

NODE=${NODE:-}
check_node_name "$NODE"
ensure_host
build_prov
use_host_state
if [[ -z $NODE ]]; then
  mapfile -t declared < <(prov nodes)
  NODE=${declared[0]}
fi
prov nodes --check "$NODE"
PORT="$(prov nodes --port "$NODE")"
# The stack's names (project, containers, labels), defined once, in prov.
eval "$(prov stack)"
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

# --- the api's identity: a restart changes at least one of these --------------------------
api_identity() {
  # Nothing when the api container is not there.
  prov exec --node "$NODE" -- docker inspect --format \
    '{"container":"{{.Id}}","started_at":"{{.State.StartedAt}}","restarts":{{.RestartCount}},"pid":{{.State.Pid}}}' \
    "$PROV_API_CONTAINER" 2>/dev/null || true
}

steady_state() {
  local identity
  identity="$(api_identity)"
  jq -cn --argjson api "${identity:-null}" --arg health "$(http_code /health)" \
    --arg ready "$(http_code /ready)" '{api: $api, health: $health, ready: $ready}'
}

db() { node_script "$NODE" scripts/node/db.sh "$1" >/dev/null; }

# The stack's services whose containers run, as inspect reads them: docker ps reads a copy the
# engine saves after it marks a container stopped (a disk write later, after the stop has already
# returned), so right after a stop it may still list the container (on CI: "running: api db").
running_services() {
  # shellcheck disable=SC2016 # expanded on the node, from the arguments
  prov exec --node "$NODE" -- bash -c 'docker ps --all --quiet --filter "label=$1=$2" |
    xargs -r docker inspect --format "{{if .State.Running}}{{index .Config.Labels \"$3\"}}{{end}}"' \
    - "$PROV_LABEL_PROJECT" "$PROV_PROJECT" "$PROV_LABEL_SERVICE" | sed '/^$/d' | sort | tr '\n' ' '
}

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
# shellcheck disable=SC2086 # the tools are words
pick_tool $TOOLS
log "raw TCP tool: $TOOL"

begin "baseline: make verify passes; record the api's identity, /health and /ready"
run_verify
before="$(steady_state)"
end "$([[ $rc == 0 && $(jq -r .ready <<<"$before") == 200 ]] && echo 1 || echo 0)" \
  "verify exit 0, /health 200, /ready 200" "verify exit $rc, state $before"

begin "stop only the database, through scripts/node/db.sh"
db_stopped=1
db stop
running="$(running_services)"
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
