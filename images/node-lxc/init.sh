#!/bin/bash
# The init of a prov LXC node, run by tini (PID 1; images/node-lxc/lxc-config). No host folder is
# mounted into an LXC node: its /vagrant is a folder of its own, size-limited filesystem, which
# the host fills over ssh (prov sync). Bound at /vagrant, it is a mount point as on every
# provider (prov's guard requires one). Then the node image's own init: sshd, then dockerd.
set -euo pipefail

mountpoint -q /vagrant || mount --bind /var/lib/prov/vagrant /vagrant
exec /usr/local/sbin/prov-node-init "$@"
