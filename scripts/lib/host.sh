# shellcheck shell=bash
# Host-side helpers: tools, the Docker engine, prov itself, and reaching nodes.
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib/host.sh"

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export VAGRANT_CHECKPOINT_DISABLE=1
PROV="$PROV_REPO/target/release/prov"

case $PROVIDER in
  lxc | virtualbox | libvirt) ;;
  docker)
    # Said once per command, however many scripts it runs.
    if [[ -z ${PROV_DOCKER_WARNED:-} ]]; then
      warn "PROVIDER=docker: a node's root is the host's root (measured: it ran a script as root on the host), so this protects against T1, an operator using the normal tools, only; the default, PROVIDER=lxc, confines nodes (README: Threat model)"
      export PROV_DOCKER_WARNED=1
    fi
    ;;
  *) die "PROVIDER='$PROVIDER' is not a node provider: use lxc (the default), docker, virtualbox or libvirt" ;;
esac

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
  detach /var/log/prov-dockerd.log dockerd --data-root "$root"
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
  # The nodes' keys and connections live there: no other user may look in.
  install -d -m 0700 "$PROV_STATE_DIR"
  chmod 0700 "$PROV_STATE_DIR"
  [[ -d $PROV_REPO/.vagrant ]] || return 0
  if [[ -e $VAGRANT_DOTFILE_PATH ]]; then
    warn "$PROV_REPO/.vagrant is left from an older prov; Vagrant's data is in $VAGRANT_DOTFILE_PATH: remove the old folder"
    return 0
  fi
  mkdir -p "$PROV_STATE_DIR"
  mv "$PROV_REPO/.vagrant" "$VAGRANT_DOTFILE_PATH"
  log "moved Vagrant's machine data from $PROV_REPO/.vagrant (which nodes could write) to $VAGRANT_DOTFILE_PATH"
}

# Vagrant, on the checkout's Vagrantfile (VAGRANT_CWD), run from the host's state: what its tools
# write where they run stays out of the checkout. (The LXC provider's lxc-update-config copies
# the box's settings to a temporary file in its working folder while it makes a node: in the
# checkout, a verify of another node at that moment saw the source tree changed.)
run_vagrant() { (cd "$PROV_STATE_DIR" && VAGRANT_CWD=$PROV_REPO vagrant "$@"); }

# The node's state and provider as Vagrant reports them, "STATE PROVIDER" ("running lxc",
# "not_created lxc"), in one call: each run of Vagrant costs a second or two of CPU, and make
# test runs the golden path some hundred times.
# Fails, saying so, when Vagrant reports no state (its own error is above).
node_status() {
  run_vagrant status "$1" --machine-readable |
    awk -F, '$3 == "state" { state = $4 } $3 == "provider-name" { provider = $4 }
      END { if (state == "") exit 1; print state, provider }' ||
    die "vagrant status $1 reported no state (Vagrant's error, if any, is above): run it by hand to see why"
}
node_running() { [[ $(node_status "$1") == "running "* ]]; }
node_created() { [[ $(node_status "$1") != "not_created "* ]]; }
# The provider a created node was made with.
node_provider() { local status; status=$(node_status "$1") && echo "${status#* }"; }

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

# A node's ssh host key, made by the host in its state before the node first boots, and pinned
# at once: the key the host trusts is never one the node chose, nor one learnt over the network.
# (The Vagrantfile gives it to LXC and docker nodes; a real VM's box makes its own.)
node_host_key() {
  local dir=$PROV_STATE_DIR/nodes/$1
  install -d -m 0700 "$PROV_STATE_DIR/nodes" "$dir"
  rm -f "$dir/ssh_host_ed25519_key" "$dir/ssh_host_ed25519_key.pub"
  ssh-keygen -q -t ed25519 -N '' -C "prov node $1" -f "$dir/ssh_host_ed25519_key"
  prov pin --node "$1" --key "$dir/ssh_host_ed25519_key.pub"
}

# Boots the node unless it runs, refreshes its ssh configuration and checks that it offers the
# pinned host key (a node created now gets a key of the host's making, pinned before it boots),
# waits for its engine and gives it the host's base images (checked by content after loading).
node_up() {
  local node=$1 pin=(--node "$1") status state made
  status=$(node_status "$node")
  read -r state made <<<"$status"
  if [[ $state != not_created ]]; then
    [[ $made == "$PROVIDER" ]] ||
      die "node $node was made with the $made provider, not $PROVIDER: run with PROVIDER=$made, or re-create it (PROVIDER=$made make destroy NODE=$node, then make up NODE=$node)"
    if ! node_has_export "$node"; then
      log "node $node mounts the host's checkout (made by an older prov): re-creating it with its own export (its engine's data is kept)"
      run_vagrant destroy --force "$node"
      state=not_created
    elif [[ $state != running ]]; then
      # A node that stopped without Vagrant (its engine killed for memory, say) leaves its port
      # forwarder listening, which makes `vagrant up` refuse the port; Vagrant's halt stops it
      # by the id Vagrant recorded.
      log "node $node is stopped: clearing what it left before booting it"
      run_vagrant halt "$node"
      free_forwarded_port "$node"
    fi
  fi
  if [[ $state == not_created ]]; then
    case $PROVIDER in
      lxc | docker) node_host_key "$node" ;;
      # A VM's box makes its own key: it is pinned on first contact.
      *) pin+=(--new) ;;
    esac
  fi
  # A running node is not booted again: `vagrant up` would find nothing to do, at its cost.
  if [[ $state != running ]]; then
    log "booting node $node (provider $PROVIDER)"
    # What the LXC box's template said when it could not make the node (Vagrant does not show it).
    local template_error="$PROV_STATE_DIR/nodes/$node/lxc-template.error"
    rm -f "$template_error"
    if ! run_vagrant up "$node" --provider="$PROVIDER"; then
      [[ ! -s $template_error ]] || die "node $node could not be made: $(cat "$template_error")"
      die "vagrant up $node failed; see the output above"
    fi
  fi
  prov pin "${pin[@]}" || PROV_DIE_CODE=2 die "node $node is not the node the host pinned (above)"
  prov exec --node "$node" -- timeout 60 sh -c 'until docker info >/dev/null 2>&1; do sleep 1; done' ||
    die "the Docker engine inside node $node did not start within 60 s"
  prov bases --node "$node" || die "node $node's engine does not hold the host's base images (above)"
}

# ---------------------------------------------------------------------------------------------
# LXC nodes (PROVIDER=lxc): what they need of the host, set up by the host's scripts.

# After Vagrant's halt of a stopped LXC node, its api port is free. Vagrant stops only the
# forwarder it recorded; redir also forks a process for each connection, so a redir it has no
# record of can still listen there. One listening on the node's port is the node's forwarder,
# stopped by its id.
free_forwarded_port() {
  [[ $PROVIDER == lxc ]] || return 0
  local port pid tries
  port=$(prov nodes --port "$1")
  for pid in $(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redir ]] || continue
    log "stopping the forwarder node $1 left on port $port (redir, pid $pid)"
    kill "$pid" 2>/dev/null || true
  done
  for ((tries = 0; tries < 50; tries++)); do
    [[ -z $(ss -Hltn "sport = :$port") ]] && return 0
    sleep 0.1
  done
  log "port $port is still in use (ss -ltnp 'sport = :$port' names the process): Vagrant will refuse it"
}

# Idempotent: root's block of subordinate ids (scripts/lib/common.sh) and the checkout's bridge.
ensure_lxc_host() {
  [[ $PROVIDER == lxc ]] || return 0
  [[ $(id -u) == 0 ]] ||
    die "LXC nodes are made by root (their id maps come from root's subordinate ids): run make as root"
  with_lxc_host_lock ensure_subids /etc/subuid
  with_lxc_host_lock ensure_subids /etc/subgid
  with_lxc_host_lock ensure_lxc_network
}

# Runs a command that changes the host's side of the checkout's LXC nodes, one make at a time:
# two `make up`s of two nodes started together both found no bridge, and the second failed
# making it ("RTNETLINK answers: File exists").
with_lxc_host_lock() {
  local fd
  install -d -m 0700 "$PROV_STATE_DIR/lxc"
  exec {fd}>"$PROV_STATE_DIR/lxc/.lock"
  flock "$fd"
  "$@"
  exec {fd}>&-
}

ensure_subids() {
  local file=$1 count=$((LXC_SUBID_SLOTS * LXC_SUBID_RANGE)) clash
  local want="root:$LXC_SUBID_BASE:$count" last=$((LXC_SUBID_BASE + count - 1))
  [[ -f $file ]] || install -m 0644 /dev/null "$file"
  grep -qx "$want" "$file" && return 0
  # Ids shared with another entry would give its owner's containers the nodes' files.
  clash=$(awk -F: -v lo="$LXC_SUBID_BASE" -v hi="$last" 'NF == 3 && $2 <= hi && $2 + $3 - 1 >= lo' "$file")
  [[ -z $clash ]] ||
    die "$file: '$clash' shares ids with the block LXC nodes need ($want): give that entry other ids, then retry"
  # (A last line without its newline keeps it.)
  if [[ -s $file && -n $(tail -c 1 "$file") ]]; then echo >>"$file"; fi
  printf '%s\n' "$want" >>"$file"
  log "reserved host ids $LXC_SUBID_BASE-$last for the LXC nodes' users ($file: $want)"
}

# Whether no route of the host covers or lies in the /24 $1.
subnet_free() {
  [[ -z $(ip -4 route show root "$1") ]] &&
    ! ip -4 route show match "$1" | awk '$1 != "default" { found = 1 } END { exit !found }'
}

# The checkout's LXC nodes live on a bridge of its own, named like its containers
# (prov-<checkout id>), in a /24 of 10.213.0.0/16 that no route of the host uses: static
# addresses, no DHCP, no NAT, no route out (builds are offline; the host streams the base images
# in over ssh). The choice is kept in <state>/lxc/network, which the Vagrantfile reads. The host
# opens connections to its nodes, never the reverse: one firewall rule refuses every new
# connection from the bridge to the host (a service of the host listening on all its addresses
# is out of the nodes' reach), and the bridge has no IPv6 address. Nothing else of the host's
# firewall, and none of its Docker engine's bridges, changes.
ensure_lxc_network() {
  local file=$PROV_STATE_DIR/lxc/network bridge subnet n0 i
  if [[ -f $file ]]; then
    bridge=$(sed -n 's/^bridge=//p' "$file")
    subnet=$(sed -n 's/^subnet=//p' "$file")
  else
    bridge=prov-$(printf '%s' "$PROV_STATE_DIR" | sha256sum | cut -c1-8)
    n0=$((16#${bridge:5:2}))
    subnet=
    for ((i = 0; i < 256; i++)); do
      if subnet_free "10.213.$(((n0 + i) % 256)).0/24"; then
        subnet=10.213.$(((n0 + i) % 256))
        break
      fi
    done
    [[ -n $subnet ]] || die "every /24 of 10.213.0.0/16 is routed on this host: no room for the LXC nodes' bridge"
    install -d -m 0700 "$PROV_STATE_DIR/lxc"
    printf 'bridge=%s\nsubnet=%s\n' "$bridge" "$subnet" >"$file"
  fi
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    subnet_free "$subnet.0/24" ||
      die "$subnet.0/24, the LXC nodes' network of this checkout, is now routed elsewhere on the host: remove $file (with every node destroyed) to pick another"
    ip link add "$bridge" type bridge
    ip addr add "$subnet.1/24" dev "$bridge"
    ip link set "$bridge" up
    log "made the bridge $bridge ($subnet.1/24) for this checkout's LXC nodes"
  fi
  if [[ -e /proc/sys/net/ipv6/conf/$bridge/disable_ipv6 ]]; then
    echo 1 >"/proc/sys/net/ipv6/conf/$bridge/disable_ipv6"
  fi
  iptables -C "${LXC_INPUT_RULE[@]/BRIDGE/$bridge}" 2>/dev/null ||
    iptables -I "${LXC_INPUT_RULE[@]/BRIDGE/$bridge}"
}

LXC_INPUT_RULE=(INPUT -i BRIDGE -m conntrack --ctstate NEW -m comment
  --comment "prov: LXC nodes open no connection to the host" -j REJECT)

# Once no LXC node of the checkout is left, its bridge goes (the next node makes it again).
lxc_network_gc() {
  local file=$PROV_STATE_DIR/lxc/network bridge
  [[ -f $file ]] || return 0
  bridge=$(sed -n 's/^bridge=//p' "$file")
  ! lxc-ls -1 | grep -q "^$bridge-" || return 0
  if ip link show "$bridge" >/dev/null 2>&1; then
    ip link delete "$bridge"
    log "removed the bridge $bridge (no LXC node of this checkout is left)"
  fi
  while iptables -D "${LXC_INPUT_RULE[@]/BRIDGE/$bridge}" 2>/dev/null; do :; done
  rm -f "$file"
}


# Runs a node script inside the node, as root, from /vagrant, once the node's export is
# refreshed from the checkout.
node_script() {
  local node=$1
  shift
  # (Returned explicitly: a caller's `if` turns off `set -e` in here.)
  prov sync --node "$node" || return
  prov exec --node "$node" -- sudo -n env -C /vagrant "$@"
}
