#!/usr/bin/env bats
# prov watch on a real node: each drift of verify's own negative tests made by hand is reported
# within 2 s, FAILED and signed; the stack put back, PASSED again; an engine frozen and thawed is
# NOT CHECKED at once, and passes again only after a full verify.

load ../helpers

setup_file() { stack_ready "$NODE"; }
bats_require_minimum_version 1.5.0

# watch runs for each test, its JSON lines in a file; stopped (by its own pid) afterwards.
setup() {
  LINES="$BATS_TEST_TMPDIR/watch.jsonl"
  "$PROV" --repo "$REPO" watch --node "$NODE" --json >"$LINES" 2>"$BATS_TEST_TMPDIR/watch.err" &
  WATCHER=$!
  eventually 30 "grep -q '\"verdict\":\"PASSED' '$LINES'"
}

teardown() {
  kill "$WATCHER" 2>/dev/null || true
  root_on "$NODE" "pkill -CONT -x dockerd; docker network rm prov-e2e-watch; \
    docker rm -f prov-e2e-kept; rm -f \$(docker inspect prov-db --format \
      '{{range .Mounts}}{{.Source}}{{end}}')/prov-e2e-watch; true" >/dev/null 2>&1 || true
  if [[ -z ${BATS_TEST_COMPLETED:-} ]] || [[ -n ${RESTACK:-} ]]; then
    root_on "$NODE" "docker rm -f prov-api prov-db >/dev/null 2>&1; true" || true
    golden up NODE="$NODE" >/dev/null || true
  fi
}

# The lines watch printed after line $1, as verdict and cause.
after() { tail -n +"$(($1 + 1))" "$LINES" | jq -r '"\(.verdict) | \(.cause)"'; }

# drift SAYS CMD: runs CMD on the node as root; watch must print a FAILED line naming SAYS
# within 2 s of CMD's end.
drift() {
  local says=$1 before
  before=$(wc -l <"$LINES")
  printf '%s\n' "$says" >"$BATS_TEST_TMPDIR/says"
  root_on "$NODE" "$2" >/dev/null
  eventually 2 "tail -n +$((before + 1)) '$LINES' | grep -F -q -f '$BATS_TEST_TMPDIR/says'" || {
    echo "watch did not name '$says' within 2 s; it printed:" >&2
    after "$before" >&2
    return 1
  }
  tail -n +"$((before + 1))" "$LINES" | grep -F -- "$says" | jq -e -s 'all(.verdict | startswith("FAILED"))' >/dev/null
}

@test "each drift made by hand is reported within 2 s, FAILED; the stack put back, PASSED again" {
  RESTACK=1
  drift "exec session \`true\` in prov-api" "docker exec prov-api true"
  drift "a file copied into prov-db" "docker cp /etc/hostname prov-db:/var/lib/postgresql/data/prov-e2e-watch"
  drift "prov-api's configuration updated" "docker update --memory 512m --memory-swap 1g prov-api"
  drift "prov-api connected to network prov-e2e-watch" "docker network create prov-e2e-watch && \
    docker network connect prov-e2e-watch prov-api"
  drift "prov-api renamed to prov-e2e-kept" "docker rename prov-api prov-e2e-kept && \
    docker rename prov-e2e-kept prov-api"
  before=$(wc -l <"$LINES")
  root_on "$NODE" "docker network disconnect prov-e2e-watch prov-api; docker network rm prov-e2e-watch; \
    docker rm -f prov-api prov-db" >/dev/null
  golden up NODE="$NODE" >/dev/null
  eventually 20 "tail -n +$((before + 1)) '$LINES' | grep -q '\"verdict\":\"PASSED'"
  # Every line is signed: one summary per line printed.
  grep -q "verification summary of node $NODE (FAILED)" "$BATS_TEST_TMPDIR/watch.err"
}

@test "an engine frozen is NOT CHECKED within 6 s; thawed, judged in full before it passes" {
  before=$(wc -l <"$LINES")
  root_on "$NODE" "pkill -STOP -x dockerd"
  eventually 6 "tail -n +$((before + 1)) '$LINES' | grep -q 'NOT CHECKED'"
  root_on "$NODE" "pkill -CONT -x dockerd"
  eventually 20 "tail -n +$((before + 1)) '$LINES' | grep -q 'judged in full'"
  after "$before" >&2
  # Nothing passed between the freeze and the full verify.
  between=$(after "$before" | sed -n '/^NOT CHECKED/,/judged in full/p' | head -n -1)
  [[ -n $between && $between != *PASSED* ]]
  after "$before" | grep 'judged in full' | grep -q '^PASSED'
}
