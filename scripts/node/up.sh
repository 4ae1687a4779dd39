#!/usr/bin/env bash
# Starts the stack from the node's last recorded build; never builds.
set -euo pipefail
# shellcheck source=scripts/lib/node.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/node.sh"

load_bases
start_stack
