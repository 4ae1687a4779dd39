#!/usr/bin/env bats
# prov watch on a real node: each drift of verify's own negative tests made by hand is reported
# within 2 s, FAILED and signed; the stack put back, PASSED again; the node's records edited, the
# same; an engine frozen and thawed, or the node's ssh connection dropped, is NOT CHECKED at once,
# and passes again only after a full verify; a drift made in the gap is named.

load ../helpers

setup_file() { stack_ready "$NODE"; }
bats_require_minimum_version 1.5.0

# watch runs for each test, its JSON lines in a file; stopped (by its own pid) afterwards.
setup() {
  LINES="$BATS_TEST_TMPDIR/watch.jsonl"
  "$PROV" --repo "$REPO" watch --node "$NODE" --json --every 10 >"$LINES" 2>"$BATS_TEST_TMPDIR/watch.err" &
  WATCHER=$!
  eventually 30 "grep -q '\"verdict\":\"PASSED' '$LINES'"
}

teardown() {
  kill "$WATCHER" 2>/dev/null || true
  root_on "$NODE" "pkill -CONT -x dockerd; docker network disconnect -f prov-e2e-watch prov-api; \
    docker network rm prov-e2e-watch; \
    docker rm -f prov-e2e-kept prov-e2e-one-off; docker image rm prov-api:latest prov-e2e-watch:frozen; \
    rm -f \$(docker inspect prov-db --format '{{range .Mounts}}{{.Source}}{{end}}')/prov-e2e-watch; \
    if [ -e /root/prov-e2e-record ]; then cp -a /root/prov-e2e-record /vagrant/provenance/$NODE/\$(jq -r .build_id /vagrant/provenance/$NODE/latest).json; rm /root/prov-e2e-record; fi; \
    true" >/dev/null 2>&1 || true
  if [[ -z ${BATS_TEST_COMPLETED:-} ]] || [[ -n ${RESTACK:-} ]]; then
    root_on "$NODE" "docker rm -f prov-api prov-db >/dev/null 2>&1; true" || true
    golden up NODE="$NODE" >/dev/null || true
  fi
}

# The lines watch printed after line $1, as verdict and cause.
after() { tail -n +"$(($1 + 1))" "$LINES" | jq -r '"\(.verdict) | \(.cause)"'; }

# The node's root runs a bash snippet.
node() { root_on "$NODE" "$@"; }

# drift SAYS COMMAND...: runs COMMAND (on the host: `node` for the node's root); watch must print
# a FAILED line naming SAYS within 2 s of its end.
drift() {
  local says=$1 before
  shift
  before=$(wc -l <"$LINES")
  printf '%s\n' "$says" >"$BATS_TEST_TMPDIR/says"
  "$@" >/dev/null
  eventually 2 "tail -n +$((before + 1)) '$LINES' | grep -F -q -f '$BATS_TEST_TMPDIR/says'" || {
    echo "watch did not name '$says' within 2 s; it printed:" >&2
    after "$before" >&2
    return 1
  }
  tail -n +"$((before + 1))" "$LINES" | grep -F -- "$says" | jq -e -s 'all(.verdict | startswith("FAILED"))' >/dev/null
}

# judged CHECK COMMAND...: runs COMMAND; within 2 s watch's verdict (its last line that is not a
# drift's) must be FAILED naming CHECK. A line is printed only when the verdict changes: a
# judgement begun before COMMAND's event may already have seen it.
judged() {
  local check=$1
  shift
  "$@" >/dev/null
  eventually 2 "jq -s -r '[.[] | select(.verdict | startswith(\"FAILED (drift)\") | not)] | last
    | .verdict' '$LINES' | grep -q '^FAILED (.*$check'" || {
    echo "watch's verdict did not name $check within 2 s; it printed:" >&2
    after 0 >&2
    return 1
  }
}

@test "each drift made by hand is reported within 2 s, FAILED; the stack put back, PASSED again" {
  RESTACK=1
  drift "exec session \`true\` in prov-api" node "docker exec prov-api true"
  drift "a file copied into prov-db" node "docker cp /etc/hostname prov-db:/var/lib/postgresql/data/prov-e2e-watch"
  drift "prov-api's configuration updated" node "docker update --memory 512m --memory-swap 1g prov-api"
  drift "prov-api connected to network prov-e2e-watch" node "docker network create prov-e2e-watch && \
    docker network connect prov-e2e-watch prov-api"
  # Swapped and swapped back: another container under the api's name for a moment.
  drift "prov-api renamed to prov-e2e-kept" node "docker rename prov-api prov-e2e-kept && \
    docker create --name prov-api \$(docker inspect prov-e2e-kept --format '{{.Image}}') && \
    docker rm prov-api && docker rename prov-e2e-kept prov-api"
  # The recorded image also tagged :latest: judged again at once, and verify fails it.
  judged image-local node "docker tag \$(docker inspect prov-api --format '{{.Image}}') prov-api:latest"
  drift "created from the stack's image" compose_on "$NODE" run -d --name prov-e2e-one-off api
  before=$(wc -l <"$LINES")
  node "docker network disconnect prov-e2e-watch prov-api; docker network rm prov-e2e-watch; \
    docker rm -f prov-api prov-db prov-e2e-one-off; docker image rm prov-api:latest" >/dev/null
  golden up NODE="$NODE" >/dev/null
  eventually 20 "tail -n +$((before + 1)) '$LINES' | grep -q '\"verdict\":\"PASSED'"
  # Every line is signed: one summary per line printed.
  grep -q "verification summary of node $NODE (FAILED)" "$BATS_TEST_TMPDIR/watch.err"
}

@test "an engine frozen, even while a judgement asks it, is NOT CHECKED within 6 s; thawed, judged in full before it passes" {
  before=$(wc -l <"$LINES")
  # Frozen just after an event that calls for a judgement (an image tagged): watch judges while
  # the engine cannot answer. The stream's silence (3 s) and its ping's bound (2 s) decide, not
  # the judgement's own timeout (20 s).
  root_on "$NODE" "docker tag \$(docker images --format '{{.Repository}}:{{.Tag}}' prov-builder | head -n 1) \
    prov-e2e-watch:frozen && sleep 0.1 && pkill -STOP -x dockerd"
  eventually 6 "tail -n +$((before + 1)) '$LINES' | grep -q 'NOT CHECKED'"
  root_on "$NODE" "pkill -CONT -x dockerd"
  eventually 20 "tail -n +$((before + 1)) '$LINES' | grep -q 'judged in full'"
  after "$before" >&2
  # Nothing passed between the freeze and the full verify.
  between=$(after "$before" | sed -n '/^NOT CHECKED/,/judged in full/p' | head -n -1)
  [[ -n $between && $between != *PASSED* ]]
  after "$before" | grep 'judged in full' | grep -q '^PASSED'
}

@test "a file written into the api's writable layer on the node's disk (no engine event) is FAILED by the next full verify" {
  RESTACK=1
  before=$(wc -l <"$LINES")
  node "up=\$(findmnt --task \$(docker inspect --format '{{.State.Pid}}' prov-api) \
    --noheadings --raw --output FS-OPTIONS --mountpoint / | tr , '\\n' | sed -n 's/^upperdir=//p')
    mkdir -p \$up/etc && echo x >\$up/etc/prov-e2e-from-node"
  eventually 15 "tail -n +$((before + 1)) '$LINES' | grep -q 'FAILED.*filesystem:api'"
  after "$before" | grep 'filesystem:api' | grep -q 'judged in full every 10 s'
}

@test "the latest record edited on the node is FAILED within 2 s; put back, PASSED again" {
  drift "the node's records changed" node "latest=/vagrant/provenance/$NODE/\$(jq -r .build_id /vagrant/provenance/$NODE/latest).json && \
    cp -a \$latest /root/prov-e2e-record && sed -i 's/\"no_cache\": true/\"no_cache\": false/' \$latest"
  after 0 | tail -n 1 | grep -q '^FAILED.*manifest'
  before=$(wc -l <"$LINES")
  node "cp -a /root/prov-e2e-record /vagrant/provenance/$NODE/\$(jq -r .build_id /vagrant/provenance/$NODE/latest).json && \
    rm /root/prov-e2e-record"
  eventually 5 "tail -n +$((before + 1)) '$LINES' | grep -q '\"verdict\":\"PASSED'"
}

@test "the node's ssh connection dropped is NOT CHECKED at once; an exec made in the gap is named, and never passed" {
  RESTACK=1
  before=$(wc -l <"$LINES")
  # The connection watch follows the node over: its sshd killed (every session over it ends,
  # this one's too); an exec session in the api made and ended while watch is away.
  node "setsid sh -c 'sleep 0.3; docker exec prov-api true' </dev/null >/dev/null 2>&1 &
    kill -KILL \$(ps -o ppid= -p \$(ps -o ppid= -p \$(pgrep -f '^curl .*docker/events')))" || true
  eventually 6 "tail -n +$((before + 1)) '$LINES' | grep -q 'NOT CHECKED'"
  eventually 20 "tail -n +$((before + 1)) '$LINES' | grep -q 'judged in full'"
  after "$before" >&2
  # Read from the engine's history when the stream is back, before the full verdict; and that
  # verdict, which asks the engine what ran in the api since it started, is FAILED too.
  between=$(after "$before" | sed -n '/^NOT CHECKED/,/judged in full/p')
  [[ $between != *PASSED* ]]
  grep -q "^FAILED (drift) | exec session \`true\` in prov-api" <<<"$between"
  after "$before" | grep 'judged in full' | grep -q '^FAILED'
}
