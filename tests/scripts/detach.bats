#!/usr/bin/env bats
# A daemon the scripts start (scripts/lib/common.sh, detach) holds none of its caller's files:
# one that kept a pipe of its caller (bats keeps fds 3 and 4) would keep the caller's output
# from ever ending, as the engine started by `make demo` once kept a bats run from ending.

load ../e2e/helpers

setup() {
  # shellcheck source=scripts/lib/common.sh
  source "$REPO/scripts/lib/common.sh"
  DAEMON=""
}

teardown() {
  [[ -z $DAEMON ]] || kill "$DAEMON" 2>/dev/null || true
}

# The files a process holds past stdin, stdout and stderr, once it runs `sleep`.
held_files() {
  local pid=$1 deadline=$((SECONDS + 10))
  until [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == sleep* ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
  find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 -printf '%f\n' | awk '$1 > 2'
}

@test "a detached daemon holds no file of its caller's, and logs where it is told" {
  exec 7>"$BATS_TEST_TMPDIR/held"
  detach "$BATS_TEST_TMPDIR/daemon.log" sleep 60
  DAEMON=$!
  run held_files "$DAEMON"
  [ "$status" -eq 0 ]
  [ -z "$output" ]
  [ "$(readlink "/proc/$DAEMON/fd/1")" = "$BATS_TEST_TMPDIR/daemon.log" ]
}

@test "a daemon started with nohup alone keeps its caller's files: what detach prevents" {
  exec 7>"$BATS_TEST_TMPDIR/held"
  nohup sleep 60 >/dev/null 2>&1 </dev/null &
  DAEMON=$!
  run held_files "$DAEMON"
  [ "$status" -eq 0 ]
  [[ $output == *7* ]]
}
