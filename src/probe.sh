#!/usr/bin/env bash
# prov verify's view of a node, gathered in one round trip and printed as one JSON document.
# Read-only: it runs only docker ps/inspect/history. Arguments: image ids to inspect.
# Each docker CLI call costs about 30-50 ms on a node, so calls are few, and the history
# calls run in parallel.
set -euo pipefail

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

mapfile -t ids < <(docker ps --all --quiet --no-trunc)
if ((${#ids[@]})); then docker inspect "${ids[@]}" >"$tmp/containers"; else echo '[]' >"$tmp/containers"; fi
# Missing images are left out; the others still print.
docker image inspect "$@" >"$tmp/images" 2>/dev/null || true
[[ -s $tmp/images ]] || echo '[]' >"$tmp/images"
for i in $(seq 1 $#); do
  image=${!i}
  { docker history --no-trunc --human=false --format '{{json .}}' "$image" 2>/dev/null |
    jq --arg image "$image" -s '{image: $image, entries: .}' >"$tmp/history.$i"; } &
done
wait
jq -n \
  --slurpfile containers "$tmp/containers" \
  --slurpfile images "$tmp/images" \
  --slurpfile history <(cat "$tmp"/history.* 2>/dev/null) \
  '{containers: $containers[0], images: $images[0], history: [$history[] | select(.entries | length > 0)]}'
