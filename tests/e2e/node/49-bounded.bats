#!/usr/bin/env bats
# Every host operation on a node ends within its bound, whatever the node does: a node frozen
# whole, a node printing without end (a build log that is a FIFO: 46-proofs, on the build it
# makes). The error names what did not answer; the host holds no more of what a node sends than
# each operation's limit.

load ../helpers

setup_file() { stack_ready "$NODE"; }
bats_require_minimum_version 1.5.0

teardown() {
  thaw_node "$NODE" 2>/dev/null || true
  prov sync --node "$NODE" >/dev/null 2>&1 || true
}

# Runs a prov command with a bound of the test's own far above prov's, and its duration.
timed() {
  local start=$SECONDS
  run timeout 300 "$PROV" --repo "$REPO" "$@"
  took=$((SECONDS - start))
  echo "prov $* -> $status in ${took}s: $output" | tail -n 3 >&2
}

@test "against a node frozen whole, each host operation ends within its bound, naming the node" {
  freeze_node "$NODE"
  # The operations side by side (each waits on the node, not on the others): each is timed alone.
  # Waited for by their IDs: a bare `wait` would wait for bats' own watchdog as well (a child of
  # the test under BATS_TEST_TIMEOUT, as make test sets it), and hang until it fires.
  local operations=("sync --node $NODE" "import --node $NODE" "attest --node $NODE"
    "bases --node $NODE" "exec --node $NODE -- true") i ended seconds said pids=()
  for i in "${!operations[@]}"; do
    # shellcheck disable=SC2086 # the operation's words
    (timed ${operations[$i]} 2>/dev/null && echo "$status $took" >"$BATS_TEST_TMPDIR/$i.took" &&
      echo "$output" >"$BATS_TEST_TMPDIR/$i.out") &
    pids+=("$!")
  done
  wait "${pids[@]}"
  for i in "${!operations[@]}"; do
    read -r ended seconds <"$BATS_TEST_TMPDIR/$i.took"
    said=$(cat "$BATS_TEST_TMPDIR/$i.out")
    echo "prov ${operations[$i]} -> $ended in ${seconds}s: $said" | tail -n 3 >&2
    [ "$ended" -ne 0 ]
    [ "$ended" -ne 124 ]
    [[ $said == *"node $NODE"* ]]
    # ssh gives up on a silent node within about ten seconds; each operation's own bound is
    # longer (import 90 s, a sync's listing 30 s).
    [ "$seconds" -le 95 ]
  done
  timed verify --node "$NODE" --timeout 5
  [ "$status" -eq 2 ]
  [ "$took" -le 6 ]
  thaw_node "$NODE"
  eventually 60 "'$PROV' --repo '$REPO' verify --node '$NODE' >/dev/null"
}

@test "a command that prints without end is stopped at its limit; its output reaches the terminal escaped" {
  timed exec --node "$NODE" --max-output 1000000 -- yes
  [ "$status" -eq 2 ]
  assert_output_has "printed more than 1000000 bytes: the command was stopped"
  timed exec --node "$NODE" --timeout 3 -- sleep 60
  [ "$status" -eq 2 ]
  [ "$took" -le 10 ]
  assert_output_has "did not end within its bound"
  run prov exec --node "$NODE" -- printf 'a\033]0;title\007b\n'
  [ "$output" = 'a\u{1b}]0;title\u{7}b' ]
}
