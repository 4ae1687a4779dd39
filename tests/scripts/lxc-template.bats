#!/usr/bin/env bats
# The LXC box's template (images/node-lxc/lxc-template.sh): vagrant-lxc does not show what it
# prints, so once it knows the node, a reason it cannot make it is also kept in the host's state,
# where make up reads it (scripts/lib/host.sh, node_up).

load ../e2e/helpers

@test "a node the template cannot make leaves its reason where make reads it" {
  state="$BATS_TEST_TMPDIR/state"
  mkdir -p "$state"
  run env PROV_STATE_DIR="$state" "$REPO/images/node-lxc/lxc-template.sh" \
    --name=prov-0123abcd-n1 --path="$BATS_TEST_TMPDIR/c" --rootfs="$BATS_TEST_TMPDIR/r" \
    --tarball none --config none --subid-base 1 --subid-slots 1 --subid-range 1
  [ "$status" -eq 1 ]
  assert_output_has "node n1 has no host key"
  [ "$(cat "$state/nodes/n1/lxc-template.error")" = "${output#prov lxc-template: error: }" ]
}

@test "before it knows the node, the template only prints its reason" {
  state="$BATS_TEST_TMPDIR/state"
  mkdir -p "$state"
  run env PROV_STATE_DIR="$state" "$REPO/images/node-lxc/lxc-template.sh" \
    --name=not-a-prov-node --path="$BATS_TEST_TMPDIR/c" --rootfs="$BATS_TEST_TMPDIR/r" \
    --tarball none --config none --subid-base 1 --subid-slots 1 --subid-range 1
  [ "$status" -eq 1 ]
  assert_output_has "container name 'not-a-prov-node' is not prov-<checkout id>-<node>"
  [ -z "$(find "$state" -mindepth 1)" ]
}
