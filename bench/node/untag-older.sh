#!/usr/bin/env bash
# Runs on a node as its root, sent by bench/run.sh (`bash -s NODE`) once the host imported the
# records add-records.sh made: takes every tag but the newest build's off the node's latest image,
# as pruning older builds would. (Each copy tagged that one image for the import; left, the tags
# would make every inspect of the image grow with the history, which distinct builds do not.)
set -euo pipefail
node=$1
cd "/vagrant/provenance/$node"
latest=$(jq -r .build_id latest)
image=$(jq -r .image.id "$latest.json")
older=$(docker image inspect --format '{{range .RepoTags}}{{println .}}{{end}}' "$image" |
  grep -v -x -F -e "prov-api:$latest" -e '' || true)
[[ -z $older ]] || xargs docker image rm <<<"$older" >/dev/null
