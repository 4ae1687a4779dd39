#!/usr/bin/env bash
# make test: lint, unit tests (with a real PostgreSQL) and the end-to-end suites on real nodes.
#   scripts/host/test.sh [all|lint|unit|e2e]
set -euo pipefail
# shellcheck source=scripts/lib/host.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/host.sh"

lint() {
  local start
  start=$(mark)
  log "shellcheck"
  (cd "$PROV_REPO" && git ls-files -z '*.sh' '*.bash' '*.bats' .ci/run | xargs -0 shellcheck -x)
  log "every command the scripts run is declared in scripts/lib/tools.list"
  "$PROV_REPO/scripts/host/tools-lint.sh"
  "$PROV_REPO/scripts/host/bats-lint.sh"
  bats "$PROV_REPO/tests/scripts"
  log "cargo fmt --check, cargo clippy"
  (cd "$PROV_REPO" && cargo fmt --all -- --check && cargo clippy --locked --workspace --all-targets --quiet -- -D warnings)
  took lint "$start"
}

# Needs no Docker engine: the tests that do are marked #[ignore] and run by e2e below. The
# vendoring proof is also checked on the project's own vendored crates.
unit() {
  local start
  start=$(mark)
  build_prov
  ensure_vendor
  log "cargo test (prov, and api against a real PostgreSQL)"
  (cd "$PROV_REPO" && cargo test --locked --workspace)
  took "unit (cargo test)" "$start"
}

# The libraries we did not write, which check what prov signs and writes in the end-to-end suite
# (tests/attest/*.py, on real envelopes, summaries and SBOMs).
attest_venv() {
  local venv="$PROV_REPO/.cache/venv-attest" want
  local requirements="$PROV_REPO/tests/attest/requirements.txt"
  want="$(sha256sum "$requirements" | cut -d' ' -f1)"
  [[ -x $venv/bin/python && $(cat "$venv/.requirements.sha256" 2>/dev/null) == "$want" ]] &&
    return 0
  log "making the virtualenv for the independent checks (tests/attest/requirements.txt)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --requirement "$requirements"
  printf '%s\n' "$want" >"$venv/.requirements.sha256"
}

# The host's part of the end-to-end set-up that needs no build of prov: the engine, the
# virtualenv, the base images. On a fresh machine (CI's) that is minutes of downloads, dpkg and
# image builds; under `all` it runs beside prov's release build.
e2e_host() {
  local start
  start=$(mark)
  ensure_host
  attest_venv
  ensure_bases
  took "host set-up (engine, virtualenv, base images)" "$start"
}

e2e() {
  local start
  start=$(mark)
  if [[ -n ${HOST_SETUP_PID:-} ]]; then
    log "the host's set-up, started with the run (log: ${HOST_SETUP_LOG#"$PROV_REPO"/})"
    if ! wait "$HOST_SETUP_PID"; then
      HOST_SETUP_PID=
      tail -n 40 "$HOST_SETUP_LOG" >&2
      die "the host's set-up failed (its last lines above; all of it in $HOST_SETUP_LOG)"
    fi
    HOST_SETUP_PID=
    cat "$HOST_SETUP_LOG" >&2
  else
    e2e_host
  fi
  build_prov
  use_host_state
  ensure_lxc_host
  ensure_vendor
  # Under `all`, the checks beside the suites run it.
  [[ -n ${CHECKS_PID:-} ]] || unit_engine
  took "e2e set-up (the rest)" "$start"
  local node flavour pid spare="" failed=0
  local -a suites=() firsts=()
  local -A seen=()
  # A test that hangs fails, named, instead of holding the run until CI's own limit.
  export BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-2400}
  local logs="$PROV_REPO/.cache/test"
  mkdir -p "$logs"
  # The per-node files run on the first node of each flavour nodes.json declares, the flavours
  # side by side (each suite touches its own node only, and much of a suite's time is spent
  # waiting on its node, not computing), and beside them the third node's (tests/e2e/spare: it
  # comes up, the drill's faults run there, it is stopped outside Vagrant, destroyed and made
  # again); then, one node at a time, the per-node tests that change what every node reads
  # (tests/e2e/node-alone); then the cluster's files on them all. A failing pass does not stop the
  # next one: every failure shows.
  for node in $(prov nodes); do
    flavour=$(prov nodes --flavour "$node")
    if [[ -n ${seen[$flavour]:-} ]]; then
      spare=${spare:-$node}
    else
      seen[$flavour]=1
      firsts+=("$node")
    fi
  done
  # Refused before any suite starts, none is left running behind the error.
  [[ -n $spare ]] ||
    die "nodes.json declares one node per flavour: the end-to-end suite needs a second of one flavour"
  start=$(mark)
  for node in "${firsts[@]}"; do
    log "end-to-end suite on $node ($(prov nodes --flavour "$node")): tests/e2e/node"
    node_suite "$node" tests/e2e/node "$logs/$node.tap" &
    suites+=("$!")
  done
  log "end-to-end suite on $spare, the node no per-node suite takes: tests/e2e/spare"
  node_suite "$spare" tests/e2e/spare "$logs/$spare.tap" &
  suites+=("$!")
  for pid in "${suites[@]}"; do wait "$pid" || failed=1; done
  took "tests/e2e/node (${firsts[*]}), tests/e2e/spare ($spare)" "$start"
  for node in "${firsts[@]}"; do
    log "end-to-end tests on $node that change what every node reads: tests/e2e/node-alone"
    start=$(mark)
    node_suite "$node" tests/e2e/node-alone "$logs/$node-alone.tap" || failed=1
    took "tests/e2e/node-alone ($node)" "$start"
  done
  log "end-to-end suite on the cluster: tests/e2e/cluster"
  start=$(mark)
  bats --timing "$PROV_REPO/tests/e2e/cluster" 2>&1 | tee "$logs/cluster.tap" || failed=1
  took "tests/e2e/cluster" "$start"
  # Returned here, not as the status: e2e runs as a plain command, under `set -e`.
  E2E_FAILED=$failed
}

# The unit test that needs the host's Docker engine: the build context against docker build.
unit_engine() {
  local start
  start=$(mark)
  log "cargo test of what needs the host's Docker engine (the build context against docker build)"
  # --workspace: the features the unit tests compiled with, so nothing is compiled again.
  (cd "$PROV_REPO" && cargo test --locked --workspace --test build_context -- --ignored)
  took "unit tests that need the engine" "$start"
}

# Under `all`: lint and the unit tests, beside the end-to-end suites (a run is mostly the nodes'
# builds and waits on the nodes, and these are compiles that need no node); their own target
# folders (debug) are not the one the golden path builds prov in (release), so no cargo waits on
# another. Then the engine's unit test, once the host's set-up has started the engine.
checks() {
  lint
  unit
  local tries
  for ((tries = 0; tries < 600; tries++)); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  unit_engine
}

# node_suite NODE DIR LOG: the per-node files of DIR on NODE. Lines other than a test's result
# carry the node's name. (sed -u passes each line on as it comes; Debian's awk, mawk, reads its
# input in blocks, and a suite's results showed only at its end.)
node_suite() {
  E2E_NODE=$1 BATS_TEST_NAME_PREFIX="[$1] " bats --timing "$PROV_REPO/$2" 2>&1 |
    sed -u -E "/^(not )?ok /!s/^/[$1] /" | tee "$3"
}

# Where the time goes: each phase's wall seconds and how busy the machine's CPUs were meanwhile
# (the nodes share the host's kernel, so their work counts), printed once the run ends
# (`start=$(mark)` before a phase, `took NAME "$start"` after it; kept in
# .cache/test/durations.txt). A phase far from 100% waits more than it computes: room for work
# beside it.
DURATIONS="$PROV_REPO/.cache/test/durations.txt"
# mark: now, as "SECONDS BUSY TOTAL", the CPU times (in ticks, all CPUs) from /proc/stat.
mark() {
  awk -v now="$SECONDS" '$1 == "cpu" {
    busy = $2 + $3 + $4 + $7 + $8 + $9; print now, busy, busy + $5 + $6; exit }' /proc/stat
}
took() {
  local seconds busy total
  read -r seconds busy total <<<"$2"
  mark | awk -v name="$1" -v s0="$seconds" -v b0="$busy" -v t0="$total" '{
    cpu = ($3 > t0) ? sprintf("%3d%% CPU", 100 * ($2 - b0) / ($3 - t0)) : ""
    printf "%-56s %5d s  %s\n", name, $1 - s0, cpu }' >>"$DURATIONS"
}
durations() {
  log "where the time went (wall seconds by phase, the CPUs busy meanwhile; under all, lint and the unit tests ran beside the suites)"
  cat "$DURATIONS" >&2
}

# Each failed test again, at the very end, with the first lines it printed (where it failed),
# every failed check and error of the verdicts it printed (those sit mid-output and would be cut)
# and its last lines (what it saw): a long run's log is often kept only by its head and tail, and
# the cause of a failure must be in what is kept.
failures() {
  log "the failed tests, each with its first lines, its failed checks and its last lines (whole runs in .cache/test/)"
  awk 'function show(i) {
         print name
         for (i = 0; i < n && i < 4; i++) print "    " head[i]
         if (f) print "    (the failed checks and errors it printed)"
         for (i = 0; i < f; i++) print "    " failed[i]
         if (n > 29) print "    ..."
         for (i = (n > 29 ? n - 25 : 4); i < n; i++) print "    " tail[i % 25]
       }
       /^(not )?ok / {if (name) show(); name = ""; n = 0; f = 0}
       /^not ok / {name = $0; next}
       name && f < 40 && /  (FAIL |error: |     expected: )/ {failed[f++] = $0}
       name {if (n < 4) head[n] = $0; tail[n++ % 25] = $0}
       END {if (name) show()}' "$@"
}

# Everything make test needs, declared in scripts/lib/tools.list, installed once up front.
ensure_tools host test
mkdir -p "$(dirname "$DURATIONS")"
: >"$DURATIONS"
case "${1:-all}" in
  lint) lint ;;
  unit) unit ;;
  e2e)
    e2e
    durations
    ((E2E_FAILED == 0)) || failures "$PROV_REPO/.cache/test"/*.tap
    exit "$E2E_FAILED"
    ;;
  # The host's set-up (minutes of downloads, dpkg and image builds on a fresh machine) and prov's
  # release build first, side by side; then the end-to-end suites, with lint and the unit tests
  # beside them. Each is called as a plain command: inside `a && b`, bash ignores `set -e` in a's
  # body, and a failing step would pass unseen.
  all)
    HOST_SETUP_LOG="$PROV_REPO/.cache/test/host-setup.log"
    CHECKS_LOG="$PROV_REPO/.cache/test/checks.log"
    e2e_host >"$HOST_SETUP_LOG" 2>&1 &
    HOST_SETUP_PID=$!
    # A run that stops early leaves the set-up and the checks to finish, never cut mid-install.
    trap 'for pid in ${HOST_SETUP_PID:-} ${CHECKS_PID:-}; do wait "$pid" || true; done' EXIT
    start=$(mark)
    log "prov's release build and the vendored crates, which the end-to-end suites need"
    build_prov
    ensure_vendor
    took "prov's release build, the vendored crates" "$start"
    log "lint and the unit tests, beside the end-to-end suites (log: ${CHECKS_LOG#"$PROV_REPO"/}, shown at the end)"
    checks >"$CHECKS_LOG" 2>&1 &
    CHECKS_PID=$!
    checks_status=0
    e2e
    log "lint and the unit tests, which ran beside the end-to-end suites: their whole output"
    wait "$CHECKS_PID" || checks_status=1
    CHECKS_PID=
    cat "$CHECKS_LOG" >&2
    durations
    ((E2E_FAILED == 0)) || failures "$PROV_REPO/.cache/test"/*.tap
    ((checks_status == 0)) ||
      echo "error: lint or a unit test failed: its output is above the times, and in $CHECKS_LOG" >&2
    exit $((E2E_FAILED | checks_status))
    ;;
  *) die "usage: scripts/host/test.sh [all|lint|unit|e2e]" ;;
esac
