#!/usr/bin/env bats
# The tools lint (scripts/host/tools-lint.sh) against small bats files written here: it must
# name an undeclared tool however it is reached, and accept what the list declares.

LINT="$BATS_TEST_DIRNAME/../../scripts/host/tools-lint.sh"

# Writes the test file's body (stdin) to a bats file and lints it. Its tests are written
# `TEST "name" {`: bats itself would rewrite a line starting with its keyword, even in a heredoc.
lint_bats() {
  local file="$BATS_TEST_TMPDIR/case.bats"
  sed 's/^TEST /@test /' >"$file"
  run "$LINT" "$file"
  echo "$output"
}

@test "a bats file that runs a tool missing from the list fails, naming the tool and the file" {
  lint_bats <<'CASE'
TEST "scan" {
  nmap -sT 127.0.0.1
}
CASE
  [ "$status" -ne 0 ]
  [[ $output == *"case.bats: runs nmap, which scripts/lib/tools.list does not declare"* ]]
}

@test "looking a missing tool up with command -v fails too" {
  lint_bats <<'CASE'
TEST "probe" {
  command -v frobnicate
}
CASE
  [ "$status" -ne 0 ]
  [[ $output == *"runs frobnicate"* ]]
}

@test "a tool behind sudo, timeout or xargs, or in a command substitution, is seen" {
  lint_bats <<'CASE'
TEST "wrapped" {
  sudo -n timeout 5 ncat -l 1234
  x=$(echo a | xargs -r -n 1 socat -)
}
CASE
  [ "$status" -ne 0 ]
  [[ $output == *"runs ncat"* ]]
  [[ $output == *"runs socat"* ]]
}

@test "declared tools, bats' own functions, builtins and local functions pass" {
  lint_bats <<'CASE'
helper() { jq -n 1; }
TEST "fine" {
  run helper
  command -v nc
  timeout 5 env -C /tmp FOO=1 curl --version
  printf '%s\n' ok
}
CASE
  [ "$status" -eq 0 ]
}
