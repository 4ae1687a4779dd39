#!/usr/bin/env bats
# What changes a file every node reads: the checkout (the build's inputs, the stack's Compose
# file) and the host's public key. These tests run per node like tests/e2e/node, but alone,
# after the flavours' suites that run side by side: a change here made while another node
# builds or verifies would fail that node's test, not this one's.

load ../helpers

setup_file() { stack_ready "$NODE"; }

DIR="$(node_dir "$NODE")"

# Each test starts from the node's export as the host has it (envelopes of the latest build
# included), so that what a test compares before and after differs only by what it did.
setup() { prov sync --node "$NODE"; }

# The checkout put back, the node's export is synced to it again: the host proves the next
# imported record's context only from the checkout it last synced (the cluster's files, next,
# build by hand without a sync).
teardown() {
  restore_kept
  prov sync --node "$NODE"
}

@test "a file the tree does not record (api/build.rs hidden by .git/info/exclude) is refused, named" {
  before="$(snapshot)"
  # A clone made without git's templates has no .git/info/ at all (CI's does not).
  exclude="$(git -C "$REPO" rev-parse --path-format=absolute --git-path info/exclude)"
  mkdir -p "$(dirname "$exclude")"
  keep "$exclude" "$REPO/api/build.rs"
  printf 'api/build.rs\n' >>"$exclude"
  printf 'fn main() {}\n' >"$REPO/api/build.rs"
  build_on_node ""
  restore_kept
  [ "$status" -ne 0 ]
  assert_output_has "not in the recorded tree"
  assert_output_has "api/build.rs"
  diff <(printf "%s\n" "$before") <(snapshot)
}

@test "an edited vendored file whose .cargo-checksum.json entry was rewritten to match is refused" {
  before="$(snapshot)"
  crate="$REPO/vendor/anyhow"
  keep "$crate/src/lib.rs" "$crate/.cargo-checksum.json"
  cp "$crate/.cargo-checksum.json" "$BATS_TEST_TMPDIR/sums"
  printf '\n// edited after vendoring\n' >>"$crate/src/lib.rs"
  sum="$(sha256sum "$crate/src/lib.rs" | cut -d' ' -f1)"
  jq -c --arg s "$sum" '.files["src/lib.rs"] = $s' "$BATS_TEST_TMPDIR/sums" \
    >"$crate/.cargo-checksum.json"
  images="$(on_node "$NODE" docker image ls --quiet --no-trunc prov-api)"
  build_on_node ""
  restore_kept
  [ "$status" -ne 0 ]
  assert_output_has "vendor/anyhow/src/lib.rs differs from anyhow-"
  # The proof runs while the context streams: docker was stopped before the context's end, and
  # made no image; no record, no log.
  assert_output_has "the build context was withdrawn before its end"
  diff <(printf "%s\n" "$before") <(snapshot)
  [ "$(on_node "$NODE" docker image ls --quiet --no-trunc prov-api)" = "$images" ]
  [ -z "$(find "$DIR" -maxdepth 1 -name '*.log' -newer "$DIR/latest" -print -quit)" ]
}

@test "a failing build is recorded as failed and does not move latest" {
  before_latest="$(cat "$DIR/latest")"
  count="$(manifests "$DIR" | wc -l)"
  # The Dockerfile must be part of the context: put the failing one among the api's files.
  keep "$REPO/api/failing.Dockerfile"
  cp "$REPO/tests/fixtures/failing.Dockerfile" "$REPO/api/failing.Dockerfile"
  build_on_node "--dockerfile api/failing.Dockerfile"
  restore_kept
  [ "$status" -eq 1 ]
  assert_output_has "this build fails on purpose"
  assert_output_has "latest\` is unchanged"
  [ "$(cat "$DIR/latest")" = "$before_latest" ]
  [ "$(manifests "$DIR" | wc -l)" -eq $((count + 1)) ]
  newest="$(manifests "$DIR" | tail -n 1)"
  [ "$(jq -r .status "$newest")" = failed ]
  [ "$(jq -r .image "$newest")" = null ]
  # The stack still runs the latest good build, and verify still passes.
  golden verify NODE="$NODE"
}

@test "verify fails when a source file changes after the build, naming make demo" {
  keep "$REPO/compose.yaml"
  echo "# edited after the build" >>"$REPO/compose.yaml"
  fails_on source-tree
  assert_output_has "make demo"
  restore_kept
  passes
}

@test "with the public key gone from the host, verify cannot check: exit 2" {
  keep "$(keys)/attest.pub.json"
  rm "$(keys)/attest.pub.json"
  run prov verify --node "$NODE"
  restore_kept
  echo "$output"
  [ "$status" -eq 2 ]
  assert_output_has "public key is missing"
  prov verify --node "$NODE"
}
