# shellcheck shell=bash
# Shared helpers for the end-to-end suite: real nodes, reached the way the tools reach them.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
PROV="$REPO/target/release/prov"
export VAGRANT_CHECKPOINT_DISABLE=1

prov() { "$PROV" --repo "$REPO" "$@"; }

# The host-only state, as make sets it for Vagrant (scripts/lib/host.sh, use_host_state). The
# host scripts' own tests (tests/scripts) load these helpers before prov is built.
if [[ -x $PROV ]]; then
  STATE_DIR="$(prov state-dir)"
  export PROV_STATE_DIR="$STATE_DIR" VAGRANT_DOTFILE_PATH="$STATE_DIR/vagrant"
fi

# The node a per-node test file (tests/e2e/node) runs on: scripts/host/test.sh runs those files
# once on the first node of each flavour that nodes.json declares.
# shellcheck disable=SC2034
NODE=${E2E_NODE:-main}

# The provider a node was made with (lxc, docker, ...), read from Vagrant's machine data in the
# host's state rather than by running Vagrant; nothing when the node is not created.
node_provider() {
  local id
  for id in "$STATE_DIR/vagrant/machines/$1"/*/id; do
    if [[ -s $id ]]; then basename "$(dirname "$id")"; fi
  done
}

# An LXC node's container (Vagrant's id of the machine).
lxc_container() { cat "$STATE_DIR/vagrant/machines/$1/lxc/id"; }

# A node's records as the node holds them (what its /vagrant/provenance/<node> is): a docker
# node's export is a host folder; an LXC node's is in its own filesystem, reached through its
# init's root. A test that writes there acts as the node's root would (on an LXC node, a file it
# makes belongs to the host's root: the node sees it as nobody's).
node_dir() {
  if [[ $(node_provider "$1") == lxc ]]; then
    echo "/proc/$(lxc-info -n "$(lxc_container "$1")" -pH)/root/vagrant/provenance/$1"
  else
    echo "$STATE_DIR/exports/$1/provenance/$1"
  fi
}

# Stops a node from the host, without Vagrant, as its init's end would (its engine killed for
# memory, say).
kill_node() {
  case $(node_provider "$1") in
    lxc) lxc-stop -k -n "$(lxc_container "$1")" ;;
    *) docker kill "prov-node-$1" >/dev/null ;;
  esac
}

# Runs a bash snippet as root on a node from the host's side, not through the node's ssh (to put
# back what a test broke there).
root_from_host() {
  local node=$1
  shift
  case $(node_provider "$node") in
    lxc) lxc-attach -n "$(lxc_container "$node")" -- bash -c "$*" ;;
    docker) docker exec "prov-node-$node" bash -c "$*" ;;
    *) echo "root_from_host: node $node is not an LXC or docker node that exists" >&2 && return 1 ;;
  esac
}

# Freezes every process of a node, from the host (the node's kernel still takes connections),
# and thaws it again.
freeze_node() {
  case $(node_provider "$1") in
    lxc) lxc-freeze -n "$(lxc_container "$1")" ;;
    *) docker pause "prov-node-$1" >/dev/null ;;
  esac
}
thaw_node() {
  case $(node_provider "$1") in
    lxc) lxc-unfreeze -n "$(lxc_container "$1")" ;;
    *) docker unpause "prov-node-$1" >/dev/null ;;
  esac
}

# Each e2e file starts from nodes that run their latest build of the checkout as it is (verify
# passes), whatever ran before it: a node that does not is brought there through the golden
# path. (Per-node files call it for $NODE in setup_file.)
stack_ready() {
  local node
  for node in "$@"; do
    prov verify --node "$node" >/dev/null 2>&1 || golden demo NODE="$node" >/dev/null
  done
}

# Runs prov build on a node as its operator would by hand (as root, from /vagrant, on the bases
# the golden path gives it, after the shell set-up $BUILD_PRELUDE if set; ARGS go to prov build),
# then drops the build's intermediate stages as make demo does: a node's disk has a fixed size.
# prov build's status is the function's.
build_by_hand() {
  local node=$1
  shift
  root_on "$node" "cd /vagrant && source .cache/images/ids.env && \
    export PROV_DB_IMAGE=\$POSTGRES_TAG && ${BUILD_PRELUDE:-true} && \
    target/release/prov build --node $node \
    --base BUILDER_IMAGE=\$BUILDER_TAG --base RUNTIME_IMAGE=\$RUNTIME_TAG $*; status=\$?; \
    docker image prune --force >/dev/null; docker builder prune --force >/dev/null; exit \$status"
}

# build_by_hand on $NODE, with the shell set-up $2 before it, once the node's export has the
# checkout as it is now (sets $output and $status).
build_on_node() {
  prov sync --node "$NODE"
  # shellcheck disable=SC2086 # $1: prov build's arguments, as words
  BUILD_PRELUDE=${2:-true} run build_by_hand "$NODE" $1
}

# The digests of $NODE's records and of its `latest`, in its export ($DIR).
snapshot() { (cd "$DIR" && sha256sum latest ./*.json); }

# verify on $NODE must exit 1 and name the check $1 as failed, its observation saying $2 if given.
# shellcheck disable=SC2154
fails_on() {
  local check=$1 says=${2:-}
  run prov verify --node "$NODE" --json
  echo "$output" | jq -c '.checks[] | select(.ok | not)' >&2 || echo "$output" >&2
  [ "$status" -eq 1 ]
  jq -e --arg c "$check" --arg s "$says" \
    'any(.checks[]; .name == $c and (.ok | not) and (.observed | contains($s)))' \
    <<<"$output" >/dev/null
}

# shellcheck disable=SC2154
passes() {
  run prov verify --node "$NODE"
  echo "$output" >&2
  [ "$status" -eq 0 ]
}

# Runs a command on a node (as the vagrant user), through the node transport.
on_node() {
  local node=$1
  shift
  prov exec --node "$node" -- "$@"
}

# "true" when a node's container $2 runs, "false" when not, as inspect reads it: docker ps may
# still list a container whose stop has just returned (scripts/drills/db-ready.sh,
# running_services).
container_running() { on_node "$1" docker inspect --format '{{.State.Running}}' "$2"; }

# Runs a bash snippet on a node as root.
root_on() {
  local node=$1
  shift
  prov exec --node "$node" -- sudo -n bash -c "$*"
}

# HTTP status of an api path through the node's forwarded port on the host.
http_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    "http://127.0.0.1:$(prov nodes --port "$1")$2"
}

http_body() {
  curl -sS --max-time 5 "http://127.0.0.1:$(prov nodes --port "$1")$2"
}

# Runs the failure drill on a node from the host (sets $output and $status, shows the tail).
# shellcheck disable=SC2154
drill() {
  NODE=$1 run "$REPO/scripts/drills/db-ready.sh"
  echo "$output" | tail -n 60
}

# The newest drill record of a node, in the host's copy.
latest_record() { find "$REPO/provenance/$1/drills" -name '*-db-ready.json' | sort | tail -n 1; }

golden() {
  make -C "$REPO" --no-print-directory "$@"
}

# The project's keys, in the host's state; the libraries that check what prov signs.
keys() { echo "$(prov state-dir)/keys"; }
VENV="$REPO/.cache/venv-attest"

# The newest verification summary (prov verify --attest) of a node.
newest_vsa() { find "$(prov state-dir)/vsa/$1" -name '*.dsse.json' | sort | tail -n 1; }

# Checks a node's newest summary with the ecosystem's libraries: it says $2 (PASSED or FAILED).
assert_vsa() {
  "$VENV/bin/python" "$REPO/tests/attest/independent_vsa_check.py" "$(newest_vsa "$1")" \
    "$(keys)/attest.pub.json" "$2"
}

# Asserts the last `run` output contains a fixed string (bats sets $output).
# shellcheck disable=SC2154
assert_output_has() {
  if [[ $output != *"$1"* ]]; then
    printf 'expected output to contain: %s\n--- output ---\n%s\n' "$1" "$output" >&2
    return 1
  fi
}

# Runs Compose on a node as root from /vagrant with the stack's images (the latest build's api,
# unless API_IMAGE names another; the base postgres unless DB_IMAGE does): Compose v1 on bookworm, the v2 plugin on trixie.
compose_on() {
  local node=$1
  shift
  root_on "$node" "cd /vagrant && source .cache/images/ids.env && \
    PROV_DB_IMAGE=${DB_IMAGE:-\$POSTGRES_TAG} \
    PROV_API_IMAGE=${API_IMAGE:-$(prov show --node "$node" --json | jq -r .image.tag)} \
    $(compose_command "$node") -p prov -f /vagrant/compose.yaml $*"
}

# The Compose command of a node's flavour.
compose_command() {
  if [[ $(prov nodes --flavour "$1") == bookworm ]]; then
    echo docker-compose
  else
    echo docker compose
  fi
}

# The last `run` output shows the api being rebuilt, as the node's builder prints it: the legacy
# builder's steps, then the labels' one step (bookworm); BuildKit's stages, then its export
# straight into the store (trixie; it pads a step's number to the width of the stage's count:
# `[build  1/10]`).
assert_rebuild_visible() {
  if [[ $(prov nodes --flavour "$1") == bookworm ]]; then
    assert_output_has "Step 1/"
    assert_output_has "Step 2/2 : LABEL"
  else
    [[ $output =~ \[build\ +1/[0-9]+\] ]] || {
      printf 'expected the first step of the build stage, [build 1/N]\n--- output ---\n%s\n' \
        "$output" >&2
      return 1
    }
    assert_output_has "exporting to image"
  fi
}

# The manifests in a node's provenance folder, oldest first: `<build id>.json`, without the
# attestation envelopes (`<build id>.dsse.json`) or anything in subfolders.
manifests() {
  find "$1" -maxdepth 1 -name '*.json' ! -name '*.*.json' | sort
}

# Files a test changes are kept first and put back by `restore_kept` (which each test file's
# teardown calls), whatever the test's outcome: a developer's uncommitted edits survive the
# suite, and a failed test leaves no edited record behind. A path that did not exist is removed.
keep() {
  local file n
  mkdir -p "$BATS_TEST_TMPDIR/kept"
  for file in "$@"; do
    n=$(find "$BATS_TEST_TMPDIR/kept" -maxdepth 1 -name '*.path' | wc -l)
    printf '%s\n' "$file" >"$BATS_TEST_TMPDIR/kept/$n.path"
    if [[ -e $file || -L $file ]]; then cp -a "$file" "$BATS_TEST_TMPDIR/kept/$n.file"; fi
  done
}

# Puts back every kept file, the first kept version of each winning.
restore_kept() {
  local n file
  [[ -d $BATS_TEST_TMPDIR/kept ]] || return 0
  for ((n = $(find "$BATS_TEST_TMPDIR/kept" -maxdepth 1 -name '*.path' | wc -l) - 1; n >= 0; n--)); do
    file=$(<"$BATS_TEST_TMPDIR/kept/$n.path")
    rm -f "$file"
    if [[ -e $BATS_TEST_TMPDIR/kept/$n.file ]]; then cp -a "$BATS_TEST_TMPDIR/kept/$n.file" "$file"; fi
  done
  rm -rf "$BATS_TEST_TMPDIR/kept"
}

# Polls CMD (a string for bash) every half second until it succeeds, for at most SECONDS.
# Timed in microseconds: bash's whole $SECONDS would give anywhere between SECONDS - 1 and SECONDS.
eventually() {
  local seconds=$1 deadline
  shift
  deadline=$(($(now_us) + seconds * 1000000))
  until bash -c "$*"; do
    (($(now_us) < deadline)) || return 1
    sleep 0.5
  done
}

# The clock's time in microseconds (EPOCHREALTIME's separator is the locale's).
now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }
