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

# The declared tools (scripts/lib/tools.list): "COMMAND PACKAGE" for every line of the given
# scopes.
TOOLS_LIST="$PROV_REPO/scripts/lib/tools.list"
declared_tools() {
  local scopes=" $* "
  awk -v scopes="$scopes" '!/^#/ && NF == 3 && index(scopes, " " $1 " ") { print $2, $3 }' \
    "$TOOLS_LIST"
}

# The packages of the given scopes, one per line, each once.
declared_packages() { declared_tools "$@" | awk '$2 != "-" && !seen[$2]++ { print $2 }'; }
