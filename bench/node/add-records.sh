#!/usr/bin/env bash
# Runs on a BuildKit node as its root, sent by bench/run.sh (`bash -s NODE COUNT`): writes COUNT
# records after the node's latest, each a copy of it with its own build id, start time, image tag
# and chain link, its log and side files beside it: the history of a node that built the same
# source COUNT more times. The host's import then proves them as it proves any record. (On the
# legacy builder an image's layers carry its build's times, which these copies would not match.)
set -euo pipefail
node=$1 count=$2
cd "/vagrant/provenance/$node"
latest=$(jq -r .build_id latest)
image=$(jq -r .image.id "$latest.json")
prev=$(sha256sum <"$latest.json" | cut -d' ' -f1)
# Start times from now on, a millisecond apart: a build id names its start to the millisecond.
now_ms=$(date +%s%3N)
export TZ=UTC
for ((k = 1; k <= count; k++)); do
  ms=$((now_ms + k))
  printf -v second '%(%Y%m%d-%H%M%S)T' $((ms / 1000))
  printf -v at '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $((ms / 1000)) $((ms % 1000))
  printf -v id '%s-%03d-%04x' "$second" $((ms % 1000)) "$k"
  jq --arg id "$id" --arg at "$at" --arg prev "$prev" --arg node "$node" '
    .build_id = $id | .started_at = $at | .finished_at = $at | .prev_manifest_sha256 = $prev
    | .build_log.path = "provenance/\($node)/\($id).log" | .image.tag = "prov-api:\($id)"' \
    "$latest.json" >"$id.json"
  for side in log sbom.cdx.json buildkit.json; do
    [[ ! -e $latest.$side ]] || cp "$latest.$side" "$id.$side"
  done
  curl -sf -X POST --unix-socket /var/run/docker.sock \
    "http://localhost/images/$image/tag?repo=prov-api&tag=$id"
  prev=$(sha256sum <"$id.json" | cut -d' ' -f1)
done
jq -n --arg b "$id" --arg s "$prev" '{build_id: $b, manifest_sha256: $s}' >latest
