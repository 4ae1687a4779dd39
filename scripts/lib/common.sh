# shellcheck shell=bash
# Shared helpers for every prov script. Source it; do not run it.
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

# The repository root, from this file's own location (scripts/lib/common.sh).
PROV_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
export PROV_REPO

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit "${PROV_DIE_CODE:-1}"
}
