#!/usr/bin/env bats
# A node cannot exhaust the host: an LXC node's disk is a filesystem of its own, of a fixed size,
# allocated in full on the host when the node was made. A node's root that fills it (its engine's
# storage and its /vagrant are on it) stops at that size; the host's free space does not move,
# and the other nodes and the host's state keep working.

load ../helpers

setup_file() { stack_ready main worker1; }

FULL=main

teardown() {
  root_on "$FULL" 'rm -f /var/lib/docker/prov-e2e-fill /vagrant/prov-e2e-fill' || true
}

@test "a node that fills its disk stops at its own size; the host's free space does not move; another node still verifies" {
  [[ $(node_provider "$FULL") == lxc ]] ||
    skip "node $FULL is not an LXC node: a docker node writes into the host engine's storage, with no limit of its own"
  other=
  for candidate in $(prov nodes); do
    if [[ $candidate != "$FULL" ]] && prov verify --node "$candidate" >/dev/null 2>&1; then
      other=$candidate
      break
    fi
  done
  [[ -n $other ]] || skip "needs another node that verifies (make demo-reviewer NODE=<another>)"
  # The node's disk is allocated in full: what the node writes takes nothing more from the host.
  image=$(sed -n 's/^lxc\.rootfs\.path = loop://p' "$(lxc-config lxc.lxcpath)/$(lxc_container "$FULL")/config")
  [ "$(du -B1 "$image" | cut -f1)" -ge "$(stat -c %s "$image")" ]
  host_before=$(df -B1 --output=avail "$image" | tail -n 1)

  # Its engine's storage, then its /vagrant: the same filesystem, full. (Expanded on the node.)
  # shellcheck disable=SC2016
  run root_on "$FULL" 'avail=$(df -B1 --output=avail /var/lib/docker | tail -n 1)
    echo "size $(df -B1 --output=size / | tail -n 1), free $avail"
    fallocate -l "$((avail - (16 << 20)))" /var/lib/docker/prov-e2e-fill
    dd if=/dev/zero of=/vagrant/prov-e2e-fill bs=1M status=none
    echo "dd: $?; free $(df -B1 --output=avail / | tail -n 1)"'
  echo "$output"
  assert_output_has "No space left on device"
  # (df pads a short figure to its column's width: "free  4096".)
  [[ $output =~ free\ +([0-9]+)$ ]]
  [ "${BASH_REMATCH[1]}" -lt $((64 << 20)) ]
  host_after=$(df -B1 --output=avail "$image" | tail -n 1)
  echo "the host's free space: $host_before before, $host_after with the node full"
  [ $((host_before - host_after)) -lt $((256 << 20)) ]

  # Another node, and the host's state, keep working.
  prov verify --node "$other"
  prov state-dir >/dev/null
  touch "$(prov state-dir)/prov-e2e" && rm "$(prov state-dir)/prov-e2e"

  # Freed, the node works again.
  root_on "$FULL" 'rm -f /var/lib/docker/prov-e2e-fill /vagrant/prov-e2e-fill'
  eventually 60 "'$PROV' --repo '$REPO' verify --node '$FULL' >/dev/null"
}
