#!/usr/bin/env bash
# prov verify's view of a node, gathered in one round trip and printed as one JSON document.
# Read-only: it runs only docker ps/inspect/history. Arguments: image ids to inspect.
set -euo pipefail

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

docker info --format '{{json .ServerVersion}}' >"$tmp/engine"
mapfile -t ids < <(docker ps --all --quiet --no-trunc)
if ((${#ids[@]})); then docker inspect "${ids[@]}" >"$tmp/containers"; else echo '[]' >"$tmp/containers"; fi
: >"$tmp/images"
: >"$tmp/history"
for image in "$@"; do
  if docker image inspect "$image" >>"$tmp/images" 2>/dev/null; then
    docker history --no-trunc --human=false --format '{{json .}}' "$image" |
      jq --arg image "$image" -s '{image: $image, entries: .}' >>"$tmp/history"
  fi
done
jq -n \
  --slurpfile engine "$tmp/engine" \
  --slurpfile containers "$tmp/containers" \
  --slurpfile images "$tmp/images" \
  --slurpfile history "$tmp/history" \
  '{engine: $engine[0], containers: $containers[0], images: ($images | add // []), history: $history}'
