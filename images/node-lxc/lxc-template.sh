#!/usr/bin/env bash
# The LXC template of prov's node boxes (the box's `lxc-template`). vagrant-lxc runs it through
# `lxc-create -B loop`, as the host's root, with the node's new filesystem mounted at --rootfs.
# It gives the node a range of host ids of its own and unpacks the node image's files owned by
# that range (the node's root is an unprivileged host id), puts in the ssh host key the host made
# for the node (which the host has pinned already), and writes the container's configuration.
#   lxc-template --name=prov-<checkout>-<node> --path=DIR --rootfs=DIR --tarball FILE
#                --config FILE --subid-base N --subid-slots N --subid-range N
# The --subid-* options come from the box's metadata (scripts/host/bases.sh writes them from
# scripts/lib/common.sh). Environment: PROV_STATE_DIR, the checkout's host state (make sets it).
set -euo pipefail

# vagrant-lxc does not show what a template prints: once the node is known, its error is also
# written into the host's state, where make reads it when `vagrant up` fails.
errors=
die() {
  printf 'prov lxc-template: error: %s\n' "$*" >&2
  [[ -z $errors ]] || printf '%s\n' "$*" >"$errors"
  exit 1
}

# lxc-create passes --opt=value; vagrant-lxc passes --opt value.
declare -A opt=()
while (($#)); do
  case $1 in
    --*=*) opt[${1%%=*}]=${1#*=} ;;
    --*)
      (($# > 1)) || die "option $1 needs a value"
      opt[$1]=$2
      shift
      ;;
    *) die "unexpected argument '$1'" ;;
  esac
  shift
done
for o in --name --path --rootfs --tarball --config --subid-base --subid-slots --subid-range; do
  [[ -n ${opt[$o]:-} ]] || die "missing $o (is this box made by scripts/host/bases.sh?)"
done
name=${opt[--name]} path=${opt[--path]} rootfs=${opt[--rootfs]}
subid_base=${opt[--subid-base]} slots=${opt[--subid-slots]} range=${opt[--subid-range]}
box=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")

# The node, from the container's name (the Vagrantfile names it prov-<checkout id>-<node>).
state=${PROV_STATE_DIR:-}
[[ -n $state && -d $state ]] ||
  die "PROV_STATE_DIR is not set: create nodes through make (make up NODE=<name>)"
[[ $name =~ ^prov-([0-9a-f]{8})-([A-Za-z0-9_-]+)$ ]] ||
  die "container name '$name' is not prov-<checkout id>-<node>: create nodes through make"
node=${BASH_REMATCH[2]}
mkdir -p "$state/nodes/$node"
errors=$state/nodes/$node/lxc-template.error
key=$state/nodes/$node/ssh_host_ed25519_key
[[ -f $key && -f $key.pub ]] ||
  die "node $node has no host key in $state/nodes/$node: create nodes through make, which makes it"

# Its own filesystem, allocated in full now: a node that fills it takes no more of the host's
# disk than it was given, and a host without room for it says so before the node exists.
rootdev=$(sed -n 's/^lxc\.rootfs\.path = loop://p' "$path/config")
[[ -n $rootdev ]] || die "node $node's root filesystem is not a loop image (the Vagrantfile sets backingstore loop)"
fallocate -l "$(stat -c %s "$rootdev")" "$rootdev" ||
  die "the host has no room for node $node's disk ($(du -h --apparent-size "$rootdev" | cut -f1)): free space, or make nodes smaller (Vagrantfile, LXC_DISK)"

# The node's range of host ids: the lowest range of the project's block that no container on the
# host maps (read from their configurations, under a lock, so two nodes made at once differ).
exec 9>"$(dirname "$path")/.prov-idmap.lock"
flock 9
declare -A used=()
for config in "$(dirname "$path")"/*/config; do
  [[ $config != "$path/config" && -r $config ]] || continue
  while read -r first; do used[$first]=1; done < <(awk '$1 == "lxc.idmap" && $3 == "u" && $4 == 0 { print $5 }' "$config")
done
first=
for ((slot = 0; slot < slots; slot++)); do
  candidate=$((subid_base + slot * range))
  [[ -n ${used[$candidate]:-} ]] || {
    first=$candidate
    break
  }
done
[[ -n $first ]] || die "all $slots id ranges of the host's LXC nodes are in use: destroy a node (make destroy NODE=<name>)"
for file in /etc/subuid /etc/subgid; do
  grep -qx "root:$subid_base:$((slots * range))" "$file" ||
    die "$file has no line root:$subid_base:$((slots * range)): make sets it up (make up)"
done

# The image's files, unpacked inside a user namespace with the node's id map, so each file's
# owner is the node's own id for it. Device nodes are left out (LXC makes the node's /dev).
chown "$first:$first" "$rootfs"
lxc-usernsexec -m "b:0:$first:$range" -- tar -C "$rootfs" --numeric-owner --xattrs \
  --xattrs-include=security.capability --anchored --exclude='dev/*' --exclude=.dockerenv \
  -xpzf - <"${opt[--tarball]}" ||
  die "unpacking ${opt[--tarball]} into node $node's filesystem failed"

# What an LXC node adds to the node image (owned by the node's root): its init, the halt and
# shutdown that vagrant-lxc and Vagrant run to stop it, /vagrant (a mount point: the init binds a folder of the node's
# own filesystem there), its name and its host key, the only one its sshd offers.
own=(-o "$first" -g "$first")
install "${own[@]}" -m 0755 "$box/init.sh" "$rootfs/usr/local/sbin/prov-lxc-init"
install "${own[@]}" -m 0755 "$box/halt.sh" "$rootfs/usr/sbin/halt"
install "${own[@]}" -m 0755 "$box/halt.sh" "$rootfs/usr/sbin/shutdown"
install "${own[@]}" -d -m 0755 "$rootfs/vagrant" "$rootfs/var/lib/prov" "$rootfs/var/lib/prov/vagrant"
install "${own[@]}" -m 0600 "$key" "$rootfs/etc/ssh/ssh_host_ed25519_key"
install "${own[@]}" -m 0644 "$key.pub" "$rootfs/etc/ssh/ssh_host_ed25519_key.pub"
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\n' >"$rootfs/etc/ssh/sshd_config.d/prov-host-key.conf"
printf '%s\n' "$node" >"$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$node" \
  >"$rootfs/etc/hosts"
chown "$first:$first" "$rootfs/etc/ssh/sshd_config.d/prov-host-key.conf" "$rootfs/etc/hostname" \
  "$rootfs/etc/hosts"

# The configuration: the host's defaults without their network (the Vagrantfile gives each node
# its address on the checkout's own bridge at every start; until then, no network), the box's
# settings, and the node's id map.
sed -i '/^lxc\.net\./d' "$path/config"
{
  printf '\n# prov node %s (box %s)\nlxc.net.0.type = empty\n' "$node" "$box"
  cat "${opt[--config]}"
  printf 'lxc.idmap = u 0 %s %s\nlxc.idmap = g 0 %s %s\n' "$first" "$range" "$first" "$range"
} >>"$path/config"
