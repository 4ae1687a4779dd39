#!/usr/bin/env bats
# The third node's life outside the golden path, beside the per-node suites (it touches this
# node only): stopped without Vagrant, then destroyed and made again.

load ../helpers

# The cluster's files find this node verified, whatever happened here.
teardown_file() { stack_ready "$NODE"; }

@test "a node stopped outside Vagrant cannot be checked, and make up brings it back verified" {
  stack_ready "$NODE"
  kill_node "$NODE"
  run prov verify --node "$NODE"
  [ "$status" -eq 2 ]
  # What the stopped node left on the host does not stop it: an LXC node's port forwarder, even
  # one Vagrant has no record of (redir forks a process for each connection, which keeps the
  # listening socket while it tries to reach the node).
  if [[ $(node_provider "$NODE") == lxc ]]; then
    rm -f "$STATE_DIR/vagrant/machines/$NODE/lxc/pids/"redir_*.pid
  fi
  run golden up NODE="$NODE"
  echo "$output"
  [ "$status" -eq 0 ]
  prov verify --node "$NODE"
}

@test "a node re-created after destroy gets its new host key pinned, and is trusted again" {
  # The key the host pins for the node (its ssh known_hosts, in the host's state).
  pinned() { awk -v node="$NODE" '$1 == node { print $3 }' "$STATE_DIR/ssh/known_hosts"; }
  before=$(pinned)
  [ -n "$before" ]
  run golden destroy NODE="$NODE"
  echo "$output" | tail -n 10
  [ "$status" -eq 0 ]
  (cd "$REPO" && vagrant status "$NODE" --machine-readable) | grep -q ',state,not_created$'
  [ -z "$(pinned)" ]
  # Read through a pipe, make's output ends when make does: nothing the boot started (the LXC
  # provider's port forwarder) holds the pipe open after it.
  run timeout 1200 bash -c "set -o pipefail; make -C '$REPO' --no-print-directory demo-reviewer NODE=$NODE 2>&1 | cat"
  echo "$output" | tail -n 20
  [ "$status" -eq 0 ]
  [ -n "$(pinned)" ]
  [ "$(pinned)" != "$before" ]
  prov verify --node "$NODE"
}
