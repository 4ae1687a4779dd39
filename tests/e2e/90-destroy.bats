#!/usr/bin/env bats
# make destroy: clean room first, then no node, no node volume, nothing left running.

load helpers

@test "make destroy leaves no node running and no node state behind" {
  run golden destroy
  echo "$output" | tail -n 20
  [ "$status" -eq 0 ]
  assert_output_has "removing the stack's containers on main"
  assert_output_has "removing the stack's containers on worker1"
  run docker ps --all --quiet --filter name=prov-node-
  [ -z "$output" ]
  run docker volume ls --quiet --filter name=prov-node-
  [ -z "$output" ]
  for node in main worker1; do
    (cd "$REPO" && vagrant status "$node" --machine-readable) | grep -q ',state,not_created$'
    [ ! -e "$STATE_DIR/exports/$node" ]
  done
  # Vagrant's machine data lives in the host's state, never in the checkout.
  [ ! -e "$REPO/.vagrant" ]
  # The ssh masters exit on their own once their nodes are gone.
  # ([s]: the pattern must not match the shell that runs this check.)
  eventually 10 "! pgrep -f '[s]sh .*prov-ssh-' >/dev/null"
}

@test "make verify after destroy cannot check: exit 2, never 0" {
  run golden verify
  [ "$status" -ne 0 ]
  run prov verify --node main
  [ "$status" -eq 2 ]
}

@test "a node re-created after destroy gets its new host key pinned, and is trusted again" {
  golden demo-reviewer NODE=main
  prov verify --node main
  golden destroy
}
