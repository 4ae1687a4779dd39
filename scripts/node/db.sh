#!/usr/bin/env bash
# Stops or starts (and waits until healthy) only the database container; the drill uses it.
set -euo pipefail
# shellcheck source=scripts/lib/node.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/node.sh"

case "${1:-}" in
  stop | start) action=$1 ;;
  *) die "usage: scripts/node/db.sh stop|start" ;;
esac
load_bases
PROV_API_IMAGE="$(latest_api_image)"
export PROV_API_IMAGE
log "database on $(node_name): $action"
compose "$action" db
if [[ $action == start ]]; then
  wait_healthy db
fi
