#!/usr/bin/env bash
# Starts the stack from the node's last recorded build; never builds.
set -euo pipefail
# shellcheck source=scripts/lib/node.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/node.sh"

load_bases
PROV_API_IMAGE="$(latest_api_image)"
export PROV_API_IMAGE
log "starting the stack on $(node_name) with $PROV_API_IMAGE"
compose up -d --no-build
wait_healthy api
