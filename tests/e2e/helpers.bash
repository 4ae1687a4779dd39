# shellcheck shell=bash
# Shared helpers for the end-to-end suite: real nodes, reached the way the tools reach them.

REPO="$(cd "$BATS_TEST_DIRNAME/../.." && pwd -P)"
PROV="$REPO/target/release/prov"
export VAGRANT_CHECKPOINT_DISABLE=1

prov() { "$PROV" --repo "$REPO" "$@"; }

# Runs a command on a node (as the vagrant user), through the node transport.
on_node() {
  local node=$1
  shift
  prov exec --node "$node" -- "$@"
}

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

golden() {
  make -C "$REPO" --no-print-directory "$@"
}

# Asserts the last `run` output contains a fixed string (bats sets $output).
# shellcheck disable=SC2154
assert_output_has() {
  if [[ $output != *"$1"* ]]; then
    printf 'expected output to contain: %s\n--- output ---\n%s\n' "$1" "$output" >&2
    return 1
  fi
}

# The manifests in a node's provenance folder, oldest first: `<build id>.json`, without the
# attestation envelopes (`<build id>.dsse.json`) or anything in subfolders.
manifests() {
  find "$1" -maxdepth 1 -name '*.json' ! -name '*.*.json' | sort
}
