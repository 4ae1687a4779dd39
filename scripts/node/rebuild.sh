#!/usr/bin/env bash
# The node's side of `prov reproduce` (run by the host): rebuilds another node's recorded build
# with the arguments given (prov rebuild's), under a tag of its own, and records nothing. The
# builder's output goes to stderr; what was made, as JSON, to stdout.
set -euo pipefail
# shellcheck source=scripts/lib/node.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/node.sh"

load_bases
"$PROV_BIN" rebuild --node "$(node_name)" "$@"
