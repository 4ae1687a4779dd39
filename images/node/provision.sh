#!/usr/bin/env bash
# Provisions a real VM (virtualbox or libvirt, from a debian/<flavour>64 box) into a prov node of
# the given flavour: the same tools and engine settings the docker provider's node image carries
# (images/node/Dockerfile).
#   images/node/provision.sh bookworm|trixie
set -euo pipefail

FLAVOUR=${1:-bookworm}
case $FLAVOUR in
  bookworm | trixie) ;;
  *) echo "error: unknown node flavour '$FLAVOUR' (bookworm or trixie: see nodes.json)" >&2 && exit 1 ;;
esac
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The node's packages are declared once, in the project's tool list.
mapfile -t packages < <(awk -v f="node-$FLAVOUR" '($1 == "node" || $1 == f) && $3 != "-" { print $3 }' \
  /vagrant/scripts/lib/tools.list | sort -u)
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
usermod --append --groups docker vagrant
install -m 0644 "/vagrant/images/node/daemon-$FLAVOUR.json" /etc/docker/daemon.json
if [[ $FLAVOUR == bookworm ]]; then
  # Builds on bookworm nodes use FROM <image id>: the legacy builder.
  echo 'DOCKER_BUILDKIT=0' >>/etc/environment
  echo 'export DOCKER_BUILDKIT=0' >/etc/profile.d/prov-docker.sh
fi
systemctl enable docker
systemctl restart docker
