#!/usr/bin/env bash
# Provisions a real VM (virtualbox or libvirt, debian/bookworm64 box) into a prov node: the
# same tools the docker provider's node image carries (images/node/Dockerfile).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  docker.io docker-compose git jq curl ca-certificates iptables util-linux >/dev/null
usermod --append --groups docker vagrant
# Builds inside the node use FROM <image id>: the legacy builder.
echo 'DOCKER_BUILDKIT=0' >>/etc/environment
echo 'export DOCKER_BUILDKIT=0' >/etc/profile.d/prov-docker.sh
systemctl enable --now docker
