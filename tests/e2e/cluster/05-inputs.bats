#!/usr/bin/env bats
# The golden path's inputs: a bad NODE is refused before anything runs.

load ../helpers

teardown() { rm -f /tmp/prov-injected; }

@test "a NODE with characters outside [A-Za-z0-9_-] is refused before anything runs" {
  run golden up 'NODE=main;touch /tmp/prov-injected'
  [ "$status" -ne 0 ]
  assert_output_has "outside [A-Za-z0-9_-]"
  [ ! -e /tmp/prov-injected ]
  run golden up 'NODE=../x'
  [ "$status" -ne 0 ]
  assert_output_has "outside [A-Za-z0-9_-]"
}

@test "an unknown NODE is refused with the list of nodes" {
  run golden up NODE=nosuchnode
  [ "$status" -ne 0 ]
  assert_output_has "unknown node \"nosuchnode\""
  assert_output_has "main, worker1, worker2"
}
