#!/usr/bin/env bats
# The cluster (tests/e2e/node brought up one node of each flavour, tests/e2e/spare the third):
# verify --all checks every node in one call and tells them apart, the nodes share their bases.

load ../helpers

teardown() { root_on worker1 "docker start prov-api >/dev/null" 2>/dev/null || true; }

setup_file() { stack_ready main worker1 worker2; }

@test "verify --all passes on every node, checked in one call" {
  run prov verify --all --json
  [ "$status" -eq 0 ]
  [ "$(jq -r .ok <<<"$output")" = true ]
  [ "$(jq -r '[.nodes[].node] | join(",")' <<<"$output")" = "main,worker1,worker2" ]
}

# Here, not in tests/e2e/node: the unit watches every node, and signs a summary of each verdict
# into the host's state, which a per-node suite running beside it must find unchanged by others.
@test "prov watch's systemd unit is valid, and its command watches every node from the checkout" {
  unit="$REPO/contrib/systemd/prov-watch.service"
  systemd-analyze verify "$unit"
  exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
  [[ -n $exec_start ]]
  unit_lines="$BATS_TEST_TMPDIR/unit.jsonl"
  PROV_REPO=$REPO bash -c "$exec_start" >"$unit_lines" 2>/dev/null &
  unit_pid=$!
  passed='[.[] | select(.verdict | startswith("PASSED")) | .node] | unique | join(",")'
  eventually 30 "[ \"\$(jq -r -s '$passed' '$unit_lines')\" = main,worker1,worker2 ]" || {
    kill "$unit_pid"
    cat "$unit_lines" >&2
    return 1
  }
  kill "$unit_pid"
}

@test "verify --all --jobs 1 checks one node at a time: a frozen one is not checked, within its own timeout, and the others are" {
  freeze_node main
  start=$SECONDS
  run prov verify --all --jobs 1 --timeout 5 --json
  took=$((SECONDS - start))
  thaw_node main
  echo "$output" | tail -n 20
  [ "$status" -eq 2 ]
  [ "$(jq -r '[.nodes[] | select(.ok) | .node] | join(",")' <<<"$output")" = "worker1,worker2" ]
  jq -e '.nodes[] | select(.node == "main") | (.ok | not) and (.error | length > 0)' \
    <<<"$output" >/dev/null
  # main's 5 s first, then each other node's own check.
  [ "$took" -ge 5 ]
  [ "$took" -le 20 ]
  eventually 60 "'$PROV' --repo '$REPO' verify --node main >/dev/null"
}

@test "breaking one node fails verify --all for that node alone" {
  root_on worker1 "docker stop prov-api"
  run prov verify --all --json
  root_on worker1 "docker start prov-api"
  [ "$status" -eq 1 ]
  [ "$(jq -r '[.nodes[] | select(.ok) | .node] | join(",")' <<<"$output")" = "main,worker2" ]
  [ "$(jq -r '.nodes[] | select(.node == "worker1") | .ok' <<<"$output")" = false ]
  jq -e '.nodes[] | select(.node == "worker1") | any(.checks[]; .name == "service:api" and (.ok | not))' \
    <<<"$output" >/dev/null
  # verify waits for the restarted api's healthcheck to settle.
  prov verify --all
}

@test "every node builds on the same base images, whatever its image store calls them" {
  # The flavours differ (nodes.json): the classic store names an image by its configuration,
  # the containerd store by its manifest; the configuration digest is the same.
  [ "$(prov nodes --flavour main)" != "$(prov nodes --flavour worker1)" ]
  bases() { prov show --node "$1" --json | jq -c '[.base_images[] | {arg, reference, config_digest}]'; }
  diff <(bases main) <(bases worker1)
  diff <(bases main) <(bases worker2)
  [ "$(bases main | jq '[.[] | select(.config_digest == null)] | length')" -eq 0 ]
}

# Closes the host's shared ssh connections, so the next command opens a new one (and checks the
# node's host key again).
close_connections() { pkill -f "ssh: $STATE_DIR/cm/" || true; }

@test "a node whose ssh host key was changed by hand is refused: exit 2, naming both fingerprints" {
  # The node's sshd offers a key of the node's own making first, instead of the one the host
  # made and pinned. (The node's shell expands these, not this one.)
  # shellcheck disable=SC2016
  root_on worker1 'ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/prov-e2e-key &&
    echo "HostKey /etc/ssh/prov-e2e-key" >/etc/ssh/sshd_config.d/00-prov-e2e.conf &&
    kill -HUP "$(cat /run/sshd.pid)"'
  close_connections
  run prov verify --node worker1
  # The host cannot reach the node through prov any more: put the key back from the outside.
  # shellcheck disable=SC2016
  root_from_host worker1 'rm -f /etc/ssh/sshd_config.d/00-prov-e2e.conf /etc/ssh/prov-e2e-key* &&
    kill -HUP "$(cat /run/sshd.pid)"'
  close_connections
  echo "$output"
  [ "$status" -eq 2 ]
  assert_output_has "node worker1 offers another ssh host key than the one pinned"
  [[ $output =~ pinned\ SHA256:[A-Za-z0-9+/]+,\ offered\ SHA256: ]]
  eventually 30 "'$PROV' --repo '$REPO' verify --node worker1 >/dev/null"
}
