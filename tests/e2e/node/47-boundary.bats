#!/usr/bin/env bats
# The trust boundary, from a node's root: the node has only its own export of the checkout at
# /vagrant. Whatever it writes there, remounted read-write, never reaches the host's checkout or
# state, is never run by the host, and is put back by the next operation; a sync never runs
# under a build.

load ../helpers

setup_file() { stack_ready "$NODE"; }

MARK=/tmp/prov-e2e-host-ran-a-node-file
# Another declared node, whose records this node must never hold.
OTHER="$(prov nodes | grep -vx "$NODE" | head -n 1)"

# What the host holds: the checkout's tracked files, the records, prov itself, and the host-only
# state (the nodes' exports, the scratch folders for records being read, and what each sync
# notes of itself, the stamp and the digests of the host's own files, excepted). The other
# nodes' records and state are left out: make test runs their suites at the same time, which
# change them (and add to the policies their verification summaries name, vsa/policies); that
# this node never holds them is the first test's.
host_snapshot() {
  local others=() n
  for n in $(prov nodes | grep -vx "$NODE"); do others+=(-o -name "$n" -o -name "$n.json"); done
  (cd "$REPO" && git ls-files -z | xargs -0 sha256sum && sha256sum target/release/prov)
  (cd "$REPO" && find provenance \( -false "${others[@]}" \) -prune -o -type f -print0 |
    sort -z | xargs -0 sha256sum)
  (cd "$STATE_DIR" && find . \( -path ./exports -o -path ./from-nodes -o -path ./synced \
    -o -path ./vsa/policies -o -name export-digests.json "${others[@]}" \) -prune -o -type f -print0 |
    sort -z | xargs -0 sha256sum)
}

# Fails, showing what changed, when the host holds other than the snapshot $1.
host_unchanged() { diff <(printf '%s\n' "$1") <(host_snapshot); }

teardown() {
  rm -f "$MARK"
  prov sync --node "$NODE"
}

@test "the export holds the checkout, not the host's state or other nodes' records" {
  prov sync --node "$NODE"
  for path in .vagrant .cache/keys .cache/venv-attest provenance/$OTHER target/release/deps; do
    run root_on "$NODE" "test -e /vagrant/$path"
    [ "$status" -ne 0 ] || { echo "/vagrant/$path is in the export"; return 1; }
  done
  root_on "$NODE" "test -x /vagrant/target/release/prov && test -d /vagrant/.git && \
    test -f /vagrant/provenance/$NODE/latest"
  [ "$(root_on "$NODE" "sha256sum < /vagrant/Makefile")" = "$(sha256sum <"$REPO/Makefile")" ]
}

@test "root on a node writes everywhere under /vagrant: the host's files do not change, and the host runs none of it" {
  before="$(host_snapshot)"
  evil="#!/bin/sh
touch $MARK"
  root_on "$NODE" "mount -o remount,bind,rw /vagrant && cd /vagrant && \
    echo '// written by the node' >>api/src/main.rs && \
    printf 'demo:\n\ttouch $MARK\n' >Makefile && \
    printf '%s\n' '$evil' | tee scripts/node/up.sh scripts/lib/host.sh target/release/prov >/dev/null && \
    mkdir -p provenance/$OTHER .vagrant/machines/main .cache/keys && \
    echo '{}' >provenance/$OTHER/latest && echo forged >.vagrant/machines/main/id && \
    printf 'Host main\n  ProxyCommand touch $MARK\n' >.cache/ssh-main.config && \
    echo forged >.cache/keys/attest.pub.json"
  # Nothing on the host changed.
  host_unchanged "$before"
  [ ! -e "$MARK" ]
  # The host's next operation puts the export back and runs only the host's files.
  golden up NODE="$NODE"
  [ ! -e "$MARK" ]
  host_unchanged "$before"
  [ "$(root_on "$NODE" "sha256sum < /vagrant/scripts/node/up.sh")" = \
    "$(sha256sum <"$REPO/scripts/node/up.sh")" ]
  run root_on "$NODE" "test -e /vagrant/provenance/$OTHER"
  [ "$status" -ne 0 ]
  prov verify --node "$NODE"
}

@test "the host's own state is out of a node's reach: its paths do not exist in the node" {
  for path in "$STATE_DIR/keys/attest.key" "$STATE_DIR/ssh/known_hosts" "$REPO/.git/config"; do
    run root_on "$NODE" "test -e '$path'"
    [ "$status" -ne 0 ] || { echo "$path is reachable in the node"; return 1; }
  done
  run root_on "$NODE" "grep ' /vagrant ' /proc/self/mountinfo | wc -l"
  [ "$output" -eq 1 ]
  if [[ $(node_provider "$NODE") == lxc ]]; then
    # No host folder is mounted into an LXC node: /vagrant is on the node's own filesystem, and
    # the container's configuration mounts nothing of the host but the kernel's pstore (which
    # vagrant-lxc adds; the host's root owns it, so the node's root cannot write there).
    [ "$(root_on "$NODE" 'stat -c %d / /vagrant | uniq | wc -l')" -eq 1 ]
    config="$(lxc-config lxc.lxcpath)/$(lxc_container "$NODE")/config"
    run awk '$1 == "lxc.mount.entry" || $1 ~ /^lxc\.mount\.entry=/' "$config"
    echo "$output"
    [[ -z $output || $(sed -E 's/^lxc\.mount\.entry *= *//' <<<"$output" | awk '{ print $1 }' | sort -u) == /sys/fs/pstore ]]
    run root_on "$NODE" "touch /sys/fs/pstore/prov-e2e"
    [ "$status" -ne 0 ]
  else
    # Of the host's files, /vagrant is the node's own export only.
    [ "$(docker inspect --format '{{range .Mounts}}{{if eq .Destination "/vagrant"}}{{.Source}}{{end}}{{end}}' \
      "prov-node-$NODE")" = "$STATE_DIR/exports/$NODE" ]
  fi
}

@test "prov sync and prov import take only a declared node: no path is made from another name" {
  for command in sync import; do
    run prov "$command" --node ../x
    [ "$status" -eq 2 ]
    assert_output_has "invalid node name"
    run prov "$command" --node nosuch
    [ "$status" -eq 2 ]
    assert_output_has "unknown node \"nosuch\""
  done
  [ ! -e "$STATE_DIR/ssh/../x.config" ]
  [ ! -e "$STATE_DIR/ssh/nosuch.config" ]
}

@test "a sync while a build holds the node's build lock is refused, and removes none of its records" {
  dir=/vagrant/provenance/$NODE
  root_on "$NODE" "echo building >$dir/prov-e2e-in-progress.log"
  root_on "$NODE" "setsid flock -o $dir/.lock sleep 30 </dev/null >/dev/null 2>&1 &"
  eventually 5 "! '$PROV' --repo '$REPO' exec --node '$NODE' -- sudo -n flock -n $dir/.lock true"
  run prov sync --node "$NODE"
  [ "$status" -eq 2 ]
  assert_output_has "a build is running on node $NODE"
  root_on "$NODE" "test -e $dir/prov-e2e-in-progress.log"
  root_on "$NODE" "pkill -f '^flock -o $dir/.lock'"
  prov sync --node "$NODE"
  run root_on "$NODE" "test -e $dir/prov-e2e-in-progress.log"
  [ "$status" -ne 0 ]
}
