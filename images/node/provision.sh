#!/usr/bin/env bash
# Provisions a real VM (virtualbox or libvirt, debian/bookworm64 box) into a prov node: the
# same tools the docker provider's node image carries (images/node/Dockerfile).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The node's packages are declared once, in the project's tool list.
mapfile -t packages < <(awk '$1 == "node" && $3 != "-" { print $3 }' /vagrant/scripts/lib/tools.list)
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
usermod --append --groups docker vagrant
# Builds inside the node use FROM <image id>: the legacy builder.
echo 'DOCKER_BUILDKIT=0' >>/etc/environment
echo 'export DOCKER_BUILDKIT=0' >/etc/profile.d/prov-docker.sh
systemctl enable --now docker
