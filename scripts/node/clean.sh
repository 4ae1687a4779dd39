#!/usr/bin/env bash
# Clean room: removes the stack's containers, every locally built api image and the build
# cache. Volumes (the database's data) and the base images are kept.
set -euo pipefail
# shellcheck source=scripts/lib/node.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/node.sh"

read_bases
export PROV_API_IMAGE=unused-by-down
log "removing the stack's containers on $(node_name) (volumes kept)"
compose down --remove-orphans
# Every api image: tagged builds, and anything built from one (labels are inherited). Newest
# first, so an image goes before the image it was built from.
mapfile -t images < <({
  docker image ls --quiet --filter "reference=$PROV_API_IMAGE_NAME"
  docker image ls --all --quiet --filter "label=$PROV_BUILD_LABEL"
} | sort -u | xargs -r docker image inspect --format '{{.Created}} {{.Id}}' | sort -r |
  cut -d' ' -f2)
if ((${#images[@]})); then
  # A container started by hand from an api image is part of the stale state too.
  for image in "${images[@]}"; do
    mapfile -t strays < <(docker ps --all --quiet --filter "ancestor=$image")
    if ((${#strays[@]})); then
      log "removing ${#strays[@]} container(s) outside compose running $image"
      docker rm --force "${strays[@]}" >/dev/null
    fi
  done
  log "removing ${#images[@]} api image(s): ${images[*]}"
  for image in "${images[@]}"; do
    # Removing an image also removes its untagged parents: those are gone already.
    docker image inspect "$image" >/dev/null 2>&1 || continue
    docker image rm --force "$image" >/dev/null
  done
else
  log "no api image to remove"
fi
log "pruning build cache and dangling build stages"
docker builder prune --force >/dev/null
docker image prune --force >/dev/null
