#!/bin/bash
# Command of the prov node image (run by tini, PID 1, which reaps zombies and forwards
# SIGTERM): starts sshd (as a daemon), then execs dockerd in the foreground. dockerd's
# output goes to the container log and is appended to /var/log/dockerd.log. Extra
# arguments are passed to dockerd.
set -euo pipefail

log() { printf 'prov-node-init: %s\n' "$*" >&2; }

# Stale pid files from an earlier run of this container (`docker restart` keeps the
# container's file system; in a new PID namespace an old pid may belong to another process).
rm -f /run/sshd.pid /run/docker.pid /run/docker/containerd/containerd.pid

# Host keys are made at first boot, so that every node has its own.
ssh-keygen -A >/dev/null
install -d -m 0755 /run/sshd
/usr/sbin/sshd -t
/usr/sbin/sshd
log "sshd started"

cgroup_probe=/sys/fs/cgroup
[ -d /sys/fs/cgroup/cpuset ] && cgroup_probe=/sys/fs/cgroup/cpuset
if [ ! -w "$cgroup_probe" ]; then
  log "warning: $cgroup_probe is read-only: nested containers will fail to start;" \
    "run the node with -v /sys/fs/cgroup:/sys/fs/cgroup:rw"
fi

# Engine 26 fails to start a container when it cannot turn IPv6 off on the container's
# interface, which a nested engine here cannot (measured on trixie nodes); the variable makes it
# go on with IPv4 (Engine 20.10 ignores it).
export DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1
log "starting dockerd (log also in /var/log/dockerd.log)"
exec > >(tee -a /var/log/dockerd.log) 2>&1
exec /usr/sbin/dockerd "$@"
