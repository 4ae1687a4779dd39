#!/usr/bin/env bash
# The golden path, as the Makefile's targets call it: scripts/host/golden.sh TARGET.
# NODE picks the node (default: the first in nodes.json); work on a node runs inside it.
set -euo pipefail
# shellcheck source=scripts/lib/host.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/host.sh"

target=${1:-}
NODE=${NODE:-}
check_node_name "$NODE"
ensure_host
build_prov
use_host_state
ensure_lxc_host
# Signed by default: the project's key is made on first use (and kept after).
prov key init >/dev/null
if [[ -n $NODE ]]; then
  prov nodes --check "$NODE"
  node=$NODE
else
  mapfile -t declared < <(prov nodes)
  node=${declared[0]}
fi

up() {
  ensure_bases
  node_up "$node"
  node_script "$node" scripts/node/up.sh
}

demo() {
  ensure_vendor
  ensure_bases
  node_up "$node"
  if ! node_script "$node" scripts/node/demo.sh; then
    # A failed build is recorded too: the host imports its record like any other.
    prov import --node "$node" || true
    die "make demo failed on node $node (above)"
  fi
  # The host imports the node's new record once it has checked it against the node's engine,
  # then signs it.
  prov attest --node "$node" >/dev/null
}

# Each verify leaves a signed summary, PASSED or FAILED, in the host's state.
verify() { prov verify --node "$node" --attest; }

# In the foreground until interrupted: the node given, or every declared node (one not running is
# reported not checked until it is).
watch() {
  if [[ -n $NODE ]]; then prov watch --node "$node"; else prov watch --all; fi
}

# Stopping or cleaning a node that is not running has nothing to do.
on_running_node() {
  if node_running "$node"; then
    node_script "$node" "$@"
  else
    log "node $node is not running: nothing to do"
  fi
}

destroy() {
  local nodes made
  if [[ -n $NODE ]]; then nodes=("$node"); else mapfile -t nodes < <(prov nodes); fi
  for node in "${nodes[@]}"; do
    made=$PROVIDER
    if node_created "$node"; then
      made=$(node_provider "$node")
      # A node whose clean-up fails is destroyed all the same. (Run as a job, so that the
      # clean-up stops at its first failing step: `set -e` does not apply left of `||`.)
      on_running_node scripts/node/clean.sh &
      wait "$!" || warn "cleaning node $node failed (above): destroying it all the same"
      # A docker node's export is a host folder whose files are the node's root's: the node
      # removes them itself. (An LXC node's /vagrant goes with its own filesystem.)
      if [[ $made == docker ]] && node_running "$node"; then
        prov exec --node "$node" -- sudo -n find /vagrant -mindepth 1 -delete || true
      fi
      log "destroying node $node"
      run_vagrant destroy --force "$node"
    fi
    rm -rf "$PROV_STATE_DIR/exports/$node" "$PROV_STATE_DIR/nodes/$node" ||
      warn "could not remove $PROV_STATE_DIR/exports/$node or $PROV_STATE_DIR/nodes/$node: remove them by hand"
    # Only a docker node has its engine's data in a volume of the host's engine.
    if [[ $made == docker ]] && docker volume inspect "prov-node-$node-docker" >/dev/null 2>&1; then
      docker volume rm "prov-node-$node-docker" >/dev/null
    fi
    prov pin --node "$node" --forget
  done
  with_lxc_host_lock lxc_network_gc
}

case "$target" in
  up) up ;;
  demo) demo ;;
  verify) verify ;;
  watch) watch ;;
  down) on_running_node scripts/node/down.sh ;;
  clean) on_running_node scripts/node/clean.sh ;;
  # Every step runs, in this order; a failing step stops the rest.
  demo-reviewer)
    ensure_bases
    node_up "$node"
    node_script "$node" scripts/node/clean.sh
    demo
    verify
    ;;
  destroy) destroy ;;
  *) die "usage: scripts/host/golden.sh up|demo|verify|watch|down|clean|demo-reviewer|destroy" ;;
esac
