# shellcheck shell=bash
# Host-side helpers: tools, the Docker engine, prov itself, and reaching nodes.
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib/host.sh"

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export VAGRANT_CHECKPOINT_DISABLE=1
PROV="$PROV_REPO/target/release/prov"
PROVIDER="${PROVIDER:-docker}"

# Refuses a node name with characters that could escape into paths or commands.
check_node_name() {
  [[ $1 =~ ^[A-Za-z0-9_-]*$ ]] ||
    die "NODE='$1' has characters outside [A-Za-z0-9_-]; pick a node from nodes.json" \
      "(make help lists the targets)"
}

# Installs the Debian packages of the given scopes of scripts/lib/tools.list whose command is
# missing (a package declared without a command is installed when dpkg does not have it).
ensure_tools() {
  local command package missing=()
  while read -r command package; do
    [[ $package != - ]] || continue
    if [[ $command == - ]]; then
      dpkg-query --show --showformat='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' ||
        missing+=("$package")
    else
      command -v "$command" >/dev/null 2>&1 || missing+=("$package")
    fi
  done < <(declared_tools "$@")
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++')
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "missing tools: ${missing[*]}; install them (apt-get install ${missing[*]}) and retry"
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Starts a Docker engine when none answers. PROV_DOCKER_DATA_ROOT picks its data root (CI gives
# it a fresh one so no image or container of an earlier run can help).
ensure_engine() {
  docker info >/dev/null 2>&1 && return 0
  [[ $(id -u) == 0 ]] || die "no Docker engine answers; start it (sudo service docker start) and retry"
  local root="${PROV_DOCKER_DATA_ROOT:-/var/lib/docker}"
  log "starting the Docker engine (data root $root, log /var/log/prov-dockerd.log)"
  setsid nohup dockerd --data-root "$root" >>/var/log/prov-dockerd.log 2>&1 </dev/null &
  local deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "the Docker engine did not start within 60 s: see /var/log/prov-dockerd.log"
    sleep 1
  done
}

ensure_host() {
  ensure_tools host
  ensure_engine
}

build_prov() {
  (cd "$PROV_REPO" && cargo build --release --locked --quiet -p prov) ||
    die "building prov failed (cargo build --release -p prov)"
}

# The api build is offline: vendor the workspace's crates whenever Cargo.lock changes, and put the
# archives Cargo.lock pins beside them (.cache/crates), against which prov build proves every
# vendored file (src/vendor.rs).
ensure_vendor() {
  local stamp="$PROV_REPO/vendor/.cargo-lock.sha256" want crates="$PROV_REPO/.cache/crates"
  want="$(sha256sum "$PROV_REPO/Cargo.lock" | cut -d' ' -f1)"
  [[ -f $stamp && $(<"$stamp") == "$want" && -f $crates/.cargo-lock.sha256 &&
    $(<"$crates/.cargo-lock.sha256") == "$want" ]] && return 0
  log "vendoring crates for the offline api build"
  (cd "$PROV_REPO" && cargo vendor --locked --quiet vendor >/dev/null)
  printf '%s\n' "$want" >"$stamp"
  rm -rf "$crates"
  prov vendor-archives >/dev/null
  printf '%s\n' "$want" >"$crates/.cargo-lock.sha256"
}

ensure_bases() { "$PROV_REPO/scripts/host/bases.sh"; }

prov() { "$PROV" --repo "$PROV_REPO" "$@"; }

# Host-only state lives outside the checkout, in `prov state-dir`: keys, pins, ssh configuration,
# each node's export and Vagrant's machine data. The Vagrantfile reads PROV_STATE_DIR; Vagrant
# reads VAGRANT_DOTFILE_PATH. A checkout whose .vagrant/ predates this has it moved, once.
use_host_state() {
  PROV_STATE_DIR="$(prov state-dir)"
  VAGRANT_DOTFILE_PATH="$PROV_STATE_DIR/vagrant"
  export PROV_STATE_DIR VAGRANT_DOTFILE_PATH
  [[ -d $PROV_REPO/.vagrant ]] || return 0
  if [[ -e $VAGRANT_DOTFILE_PATH ]]; then
    warn "$PROV_REPO/.vagrant is left from an older prov; Vagrant's data is in $VAGRANT_DOTFILE_PATH: remove the old folder"
    return 0
  fi
  mkdir -p "$PROV_STATE_DIR"
  mv "$PROV_REPO/.vagrant" "$VAGRANT_DOTFILE_PATH"
  log "moved Vagrant's machine data from $PROV_REPO/.vagrant (which nodes could write) to $VAGRANT_DOTFILE_PATH"
}

vagrant_in_repo() { (cd "$PROV_REPO" && vagrant "$@"); }

# Whether Vagrant reports the node as running.
node_running() {
  vagrant_in_repo status "$1" --machine-readable | grep -q ',state,running$'
}

node_created() {
  ! vagrant_in_repo status "$1" --machine-readable | grep -q ',state,not_created$'
}

# Whether the node's /vagrant is its own export. A node made by an older prov had the host's
# checkout itself mounted there (the docker provider's containers show it).
node_has_export() {
  [[ $PROVIDER == docker ]] || return 0
  local source
  source="$(docker inspect --format \
    '{{range .Mounts}}{{if eq .Destination "/vagrant"}}{{.Source}}{{end}}{{end}}' \
    "prov-node-$1" 2>/dev/null)" || return 0
  [[ $source == "$PROV_STATE_DIR/exports/$1" ]]
}

# Boots the node (a no-op when it runs), refreshes its ssh configuration and pins its host key
# (a node created now gets a new pin; a known node must offer the pinned key), waits for its
# engine and gives it the host's base images (checked by content after loading).
node_up() {
  local node=$1 pin=(--node "$1")
  if node_created "$node" && ! node_has_export "$node"; then
    log "node $node mounts the host's checkout (made by an older prov): re-creating it with its own export (its engine's data is kept)"
    vagrant_in_repo destroy --force "$node"
  fi
  node_created "$node" || pin+=(--new)
  log "booting node $node (provider $PROVIDER)"
  vagrant_in_repo up "$node" --provider="$PROVIDER" ||
    die "vagrant up $node failed; see the output above"
  prov pin "${pin[@]}" || PROV_DIE_CODE=2 die "node $node is not the node the host pinned (above)"
  prov exec --node "$node" -- timeout 60 sh -c 'until docker info >/dev/null 2>&1; do sleep 1; done' ||
    die "the Docker engine inside node $node did not start within 60 s"
  prov bases --node "$node" || die "node $node's engine does not hold the host's base images (above)"
}

# Runs a node script inside the node, as root, from /vagrant, once the node's export is
# refreshed from the checkout.
node_script() {
  local node=$1
  shift
  prov sync --node "$node"
  prov exec --node "$node" -- sudo -n env -C /vagrant "$@"
}
