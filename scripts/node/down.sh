#!/usr/bin/env bash
# Stops the stack's containers. Images, volumes and the containers themselves are kept.
set -euo pipefail
# shellcheck source=scripts/lib/node.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/node.sh"

read_bases
export PROV_API_IMAGE=unused-by-stop
log "stopping the stack on $(node_name)"
compose stop
