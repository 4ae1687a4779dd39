#!/usr/bin/env bats
# make destroy: clean room first, then no node, no node volume, nothing left running.

load ../helpers

# The nodes are gone whatever happened; only worker2's bind mount, if the destroy did not run,
# is undone (the next make up starts from there).
teardown() {
  root_from_host worker2 "umount /var/run/docker.sock; rm -f /tmp/no-engine" 2>/dev/null || true
}

@test "make destroy leaves no node running and no node state behind, even where clean-up fails" {
  # worker2's engine does not answer: its clean-up fails, and it is destroyed all the same.
  root_on worker2 "touch /tmp/no-engine && mount --bind /tmp/no-engine /var/run/docker.sock"
  # The LXC nodes' network, as it was before the destroy removed it.
  if [[ -f $STATE_DIR/lxc/network ]]; then cp "$STATE_DIR/lxc/network" "$BATS_FILE_TMPDIR/network"; fi
  run golden destroy
  echo "$output" | tail -n 20
  [ "$status" -eq 0 ]
  for node in main worker1; do
    assert_output_has "removing the stack's containers on $node"
  done
  assert_output_has "cleaning node worker2 failed (above): destroying it all the same"
  if [[ ${PROVIDER:-lxc} == lxc ]]; then
    # No container, disk or bridge of this checkout is left (nor its firewall rule).
    prefix=$(sed -n 's/^bridge=//p' "$BATS_FILE_TMPDIR/network")
    run lxc-ls -1
    [[ $output != *"$prefix-"* ]]
    [ ! -e "$(lxc-config lxc.lxcpath)/$prefix-main" ]
    run ip link show "$prefix"
    [ "$status" -ne 0 ]
    run iptables -S INPUT
    [[ $output != *"$prefix"* ]]
  else
    run docker ps --all --quiet --filter name=prov-node-
    [ -z "$output" ]
    run docker volume ls --quiet --filter name=prov-node-
    [ -z "$output" ]
  fi
  for node in $(prov nodes); do
    (cd "$REPO" && vagrant status "$node" --machine-readable) | grep -q ',state,not_created$'
    [ ! -e "$STATE_DIR/exports/$node" ]
    [ ! -e "$STATE_DIR/nodes/$node" ]
  done
  # Vagrant's machine data lives in the host's state, never in the checkout.
  [ ! -e "$REPO/.vagrant" ]
  # The ssh masters exit on their own once their nodes are gone.
  # ([s]: the pattern must not match the shell that runs this check.)
  eventually 10 "! pgrep -f '[s]sh: $STATE_DIR/cm/' >/dev/null"
}

@test "make verify after destroy cannot check: exit 2, never 0" {
  run golden verify
  [ "$status" -ne 0 ]
  run prov verify --node main
  [ "$status" -eq 2 ]
}
