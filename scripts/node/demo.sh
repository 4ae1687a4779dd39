#!/usr/bin/env bash
# Rebuilds the api image from source (no cache, no network) through prov build, which records
# the manifest, then (re)starts the stack on that image.
set -euo pipefail
# shellcheck source=scripts/lib/node.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/node.sh"

load_bases
log "building the api on $(node_name) (output below, kept in provenance/$(node_name)/)"
"$PROV_BIN" build --node "$(node_name)" \
  --base "BUILDER_IMAGE=$BUILDER_TAG" --base "RUNTIME_IMAGE=$RUNTIME_TAG"
start_stack
# The build used no cache and keeps none: its intermediate stages and cache records go, so that a
# node's disk (of a fixed size) holds what its stack runs on and not every earlier build.
docker image prune --force >/dev/null
docker builder prune --force >/dev/null
