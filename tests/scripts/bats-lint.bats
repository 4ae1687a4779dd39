#!/usr/bin/env bats
# The bats assertions lint (scripts/host/bats-lint.sh) against small bats files written here.

LINT="$BATS_TEST_DIRNAME/../../scripts/host/bats-lint.sh"

# Writes the test file's body (stdin) to a bats file and lints it (`TEST` stands for bats'
# keyword, which bats would rewrite even in a heredoc; `AND` for `&&` and `WAIT` for `wait`, so
# that this file itself passes the lint).
lint_bats() {
  sed 's/^TEST /@test /; s/ AND / \&\& /g; s/WAIT/wait/g' >"$BATS_TEST_TMPDIR/case.bats"
  run "$LINT" "$BATS_TEST_TMPDIR/case.bats"
  echo "$output"
}

@test "two assertions joined with && are refused, naming the file and the line" {
  lint_bats <<'CASE'
TEST "joined" {
  [ -n "$a" ] AND [ -n "$b" ]
  [[ $a == x ]] AND [[ $b == y ]]
  true
}
CASE
  [ "$status" -ne 0 ]
  [[ $output == *"case.bats:2:"* ]]
  [[ $output == *"case.bats:3:"* ]]
}

@test "one assertion per line, and && between commands that are not tests, pass" {
  lint_bats <<'CASE'
TEST "apart" {
  [ -n "$a" ]
  [ -n "$b" ]
  mkdir -p x && cd x
  [[ $a == *"]] && [["* ]]
}
CASE
  [ "$status" -eq 0 ]
}

@test "a bare wait is refused, naming the file and the line; a wait for IDs passes" {
  lint_bats <<'CASE'
TEST "waits" {
  sleep 1 &
  WAIT
  sleep 1 & WAIT
  (WAIT)
}
CASE
  [ "$status" -ne 0 ]
  [[ $output == *"case.bats:3:"* ]]
  [[ $output == *"case.bats:4:"* ]]
  [[ $output == *"case.bats:5:"* ]]
  lint_bats <<'CASE'
TEST "waits for its own" {
  sleep 1 &
  pids+=("$!")
  WAIT "${pids[@]}"
  WAIT "$!" # the last job
}
CASE
  [ "$status" -eq 0 ]
}
