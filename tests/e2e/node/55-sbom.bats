#!/usr/bin/env bats
# Every build's SBOM (CycloneDX 1.5, beside the record, pinned by it, attested by the host),
# checked with CycloneDX's own library and against what the build used: Cargo.lock and the
# runtime base's dpkg.

load ../helpers

setup_file() { stack_ready "$NODE"; }

HOST_DIR="$REPO/provenance/$NODE"

latest_id() { jq -r .build_id "$HOST_DIR/latest"; }

# The runtime base's packages, as its own dpkg reports them on the node: the base under the
# host's tag the record names (make up put the host's base there; a containerd store may give
# it another ID each time it loads it, so the record's ID can be gone).
runtime_packages() {
  local base
  base="$(jq -r '.base_images[] | select(.arg == "RUNTIME_IMAGE") | .reference' \
    "$HOST_DIR/$(latest_id).json")"
  # shellcheck disable=SC2016 # dpkg-query's own fields, not the shell's
  on_node "$NODE" docker run --rm --network none --entrypoint dpkg-query "$base" \
    --show --showformat '${Package}\t${Version}\t${Architecture}\n'
}

@test "the latest build's SBOM is valid CycloneDX, lists the linked crates and the base's packages, and is signed" {
  id="$(latest_id)"
  [ "$(jq -r .sbom.path "$HOST_DIR/$id.json")" = "provenance/$NODE/$id.sbom.cdx.json" ]
  runtime_packages >"$BATS_TEST_TMPDIR/dpkg"
  [ "$(wc -l <"$BATS_TEST_TMPDIR/dpkg")" -gt 50 ]
  run "$VENV/bin/python" "$REPO/tests/attest/independent_sbom_check.py" \
    "$HOST_DIR/$id.sbom.cdx.json" "$REPO/Cargo.lock" "$REPO/api/Cargo.toml" \
    "$BATS_TEST_TMPDIR/dpkg" "$HOST_DIR/$id.sbom.dsse.json" "$(keys)/attest.pub.json"
  echo "$output"
  [ "$status" -eq 0 ]
  # The nine crates of the api's [dependencies].
  assert_output_has "9 direct crates"
  # Only what is linked: no build-time or proc-macro crate, no crate of prov's own.
  for absent in syn proc-macro2 serde_derive clap git2; do
    [ "$(jq --arg n "$absent" '[.components[] | select(.name == $n)] | length' \
      "$HOST_DIR/$id.sbom.cdx.json")" -eq 0 ]
  done
}

@test "prov show --sbom lists the crates and the packages; --json is the bill itself" {
  run prov show --node "$NODE" --sbom
  echo "$output" | head -n 5
  [ "$status" -eq 0 ]
  assert_output_has "sbom (CycloneDX 1.5) of prov-api"
  assert_output_has "pkg:cargo/hyper"
  assert_output_has "pkg:cargo/tokio-postgres"
  assert_output_has "pkg:deb/debian/libc6"
  run prov show --node "$NODE" --sbom --json
  [ "$output" = "$(cat "$HOST_DIR/$(latest_id).sbom.cdx.json")" ]
}

@test "a changed SBOM is refused by prov show and by the independent check" {
  bill="$HOST_DIR/$(latest_id).sbom.cdx.json"
  keep "$bill"
  jq '(.components[] | select(.name == "hyper")) |= (.version = "0.0.1"
    | .purl = "pkg:cargo/hyper@0.0.1")' "$bill" >"$BATS_TEST_TMPDIR/bill"
  cp "$BATS_TEST_TMPDIR/bill" "$bill"
  run prov show --node "$NODE" --sbom
  echo "$output"
  [ "$status" -eq 2 ]
  assert_output_has "SBOM has sha256"
  runtime_packages >"$BATS_TEST_TMPDIR/dpkg"
  run "$VENV/bin/python" "$REPO/tests/attest/independent_sbom_check.py" "$bill" \
    "$REPO/Cargo.lock" "$REPO/api/Cargo.toml" "$BATS_TEST_TMPDIR/dpkg"
  echo "$output"
  [ "$status" -ne 0 ]
  assert_output_has "crate hyper"
}

teardown() { restore_kept; }
