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

# Starts a daemon in its own session, its output to LOG, holding no file of its caller's: a
# daemon that kept a pipe of its caller (bats keeps fds 3 and 4) would keep that caller from
# ever seeing the end of its output.
#   detach LOG COMMAND [ARG...]
detach() {
  local log=$1
  shift
  (
    local fd
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      ((fd > 2)) && eval "exec $fd>&-"
    done
    exec setsid nohup "$@" >>"$log" 2>&1 </dev/null
  ) &
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

# The node provider (Vagrant's): lxc, the default, makes each node an unprivileged LXC container
# whose root has no rights on the host; docker makes it a container whose root is the host's
# root; virtualbox and libvirt make real VMs (untested here).
PROVIDER="${PROVIDER:-lxc}"

# The host ids that LXC nodes' users are mapped to: a block reserved for root in /etc/subuid and
# /etc/subgid (the host's setup adds it), 65536 ids per node, each node a range of its own. It
# lies above SUB_UID_MAX (600100000, so useradd never hands it out), above the ids LXD and Incus
# reserve for root (1000000, 1000000000 of them), and below 2^31 (some tools hold ids as signed
# 32-bit numbers). (Read by host.sh and bases.sh.)
# shellcheck disable=SC2034
LXC_SUBID_BASE=1500000000 LXC_SUBID_SLOTS=64 LXC_SUBID_RANGE=65536
