#!/usr/bin/env bats
# Attestations on a real node. The host imports the node's record and signs it, after checking
# it against the node's engine; its key lives in the host's state, where no node can read it.
# Records a node writes are edited here in its export, as its root would. Once a node has an
# attested build, verify requires the latest record's envelope to verify, to name the running
# image and to sign that very record; an edited record, an older record put back, an unsigned
# later build (32-offline-build.bats) and a missing public key never pass. (The key stays for
# the rest of the suite: the golden path attests every later build, and verify checks them.)

load ../helpers

setup_file() { stack_ready "$NODE"; }

# The node's records (its export), and the host's copy with the envelopes the host wrote.
DIR="$(node_dir "$NODE")"
HOST_DIR="$REPO/provenance/$NODE"

envelope() { echo "$HOST_DIR/$(jq -r .build_id "$HOST_DIR/latest").dsse.json"; }

# Writes into the node's export, as its root could, a new build after the latest: a copy of the
# latest record changed by the jq filter $1, well chained and pinned, with the latest's log, SBOM
# (and BuildKit provenance, on a BuildKit node) beside it. Sets forged_id; keeps what it changes.
forge_next_record() {
  local latest_id prev side
  latest_id="$(jq -r .build_id "$DIR/latest")"
  forged_id="$(date -u +%Y%m%d-%H%M%S-000)-f0f0"
  keep "$DIR/latest" "$DIR/$forged_id".{json,log,buildkit.json,sbom.cdx.json}
  cp "$DIR/$latest_id.log" "$DIR/$forged_id.log"
  for side in buildkit.json sbom.cdx.json; do
    if [[ -e $DIR/$latest_id.$side ]]; then
      cp "$DIR/$latest_id.$side" "$DIR/$forged_id.$side"
    fi
  done
  prev="$(sha256sum "$DIR/$latest_id.json" | cut -d' ' -f1)"
  jq --arg id "$forged_id" --arg prev "$prev" --arg log "provenance/$NODE/$forged_id.log" \
    ".build_id = \$id | .prev_manifest_sha256 = \$prev | .build_log.path = \$log | $1" \
    "$DIR/$latest_id.json" >"$DIR/$forged_id.json"
  jq -n --arg b "$forged_id" --arg s "$(sha256sum "$DIR/$forged_id.json" | cut -d' ' -f1)" \
    '{build_id: $b, manifest_sha256: $s}' >"$DIR/latest"
}

# The host refuses the node's records, saying why ($1), and keeps none of them.
import_refused() {
  run prov attest --node "$NODE"
  echo "$output" >&2
  [ "$status" -eq 2 ]
  assert_output_has "refusing to import node $NODE's records"
  assert_output_has "$1"
  [ ! -e "$HOST_DIR/$forged_id.json" ]
  fails_on imported
}

teardown() { restore_kept; }

@test "with a project key, the host attests and verify checks the latest build's attestation" {
  # The first run of the suite makes the project's key; a later run keeps the one it has.
  [ -e "$(keys)/attest.key" ] || prov key init
  [ "$(stat -c %a "$(keys)/attest.key")" = 600 ]
  [[ $(keys) != "$REPO"/* ]]
  # Without the latest build's envelope verify fails; prov attest makes it again.
  rm -f "$(envelope)"
  fails_on attestation
  prov attest --node "$NODE"
  run prov verify --node "$NODE"
  echo "$output"
  [ "$status" -eq 0 ]
  assert_output_has "verified, subject sha256:"
  assert_output_has "no-rollback"
}

@test "the ecosystem's libraries accept the envelope, and refuse a tampered one" {
  "$VENV/bin/python" "$REPO/tests/attest/independent_check.py" "$(envelope)" \
    "$(keys)/attest.pub.json"
  jq '.payload |= (@base64d | sub("\"noCache\":true"; "\"noCache\":false") | @base64)' \
    "$(envelope)" >"$BATS_TEST_TMPDIR/tampered.json"
  run "$VENV/bin/python" "$REPO/tests/attest/independent_check.py" \
    "$BATS_TEST_TMPDIR/tampered.json" "$(keys)/attest.pub.json"
  [ "$status" -ne 0 ]
}

@test "no node can read the signing key" {
  run root_on "$NODE" "cat '$(keys)/attest.key'"
  [ "$status" -ne 0 ]
  run root_on "$NODE" "find /vagrant /root /home -name attest.key 2>/dev/null"
  [ -z "$output" ]
}

@test "a tampered, unsigned, missing or non-JSON envelope fails verify with the reason" {
  keep "$(envelope)"
  cp "$(envelope)" "$BATS_TEST_TMPDIR/good"
  jq '.payload |= (@base64d | sub("\"noCache\":true"; "\"noCache\":false") | @base64)' \
    "$BATS_TEST_TMPDIR/good" >"$(envelope)"
  fails_on attestation
  assert_output_has "no signature by key"
  jq '.signatures = []' "$BATS_TEST_TMPDIR/good" >"$(envelope)"
  fails_on attestation
  echo 'not json' >"$(envelope)"
  fails_on attestation
  assert_output_has "not DSSE JSON"
  rm "$(envelope)"
  fails_on attestation
  assert_output_has "no attestation at"
  restore_kept
  prov verify --node "$NODE"
}

@test "a record edited on the node (tree, image, bases, build arguments) with latest re-pinned fails" {
  latest="$DIR/$(jq -r .build_id "$DIR/latest").json"
  keep "$latest" "$DIR/latest"
  cp "$latest" "$BATS_TEST_TMPDIR/m"
  cp "$DIR/latest" "$BATS_TEST_TMPDIR/l"
  for edit in '.git.tree = "0000000000000000000000000000000000000000"' \
    '.image.id = "sha256:\("1" * 64)"' '.base_images[0].id = "sha256:\("2" * 64)"' \
    '.build_args = {"API_FEATURES": ""}'; do
    jq "$edit" "$BATS_TEST_TMPDIR/m" >"$latest"
    jq --arg sha "$(sha256sum "$latest" | cut -d' ' -f1)" '.manifest_sha256 = $sha' \
      "$BATS_TEST_TMPDIR/l" >"$DIR/latest"
    fails_on attestation
    assert_output_has "the signed statement and the record disagree on"
  done
  restore_kept
  prov verify --node "$NODE"
}

@test "an older record and its envelope put back (a rollback) fail verify" {
  # The two newest attested builds (32-offline-build made the newer one; alone, a build does).
  mapfile -t records < <(manifests "$HOST_DIR")
  [ "${#records[@]}" -ge 2 ] || golden demo NODE="$NODE"
  mapfile -t records < <(manifests "$HOST_DIR")
  older="$(jq -r .build_id "${records[-2]}")"
  newer="$(jq -r .build_id "$DIR/latest")"
  [ "$newer" = "$(jq -r .build_id "${records[-1]}")" ]
  prov verify --node "$NODE"
  # (A BuildKit build has BuildKit's provenance beside its record.)
  keep "$DIR/latest" "$DIR/$newer".{json,dsse.json,log,buildkit.json}
  rm -f "$DIR/$newer".{json,dsse.json,log,buildkit.json}
  jq -n --arg b "$older" --arg s "$(sha256sum "$DIR/$older.json" | cut -d' ' -f1)" \
    '{build_id: $b, manifest_sha256: $s}' >"$DIR/latest"
  fails_on no-rollback
  assert_output_has "the attested record $newer is gone or changed"
  restore_kept
  prov verify --node "$NODE"
}

@test "a record written into the node's export that the node's engine contradicts is refused: exit 2" {
  latest_id="$(jq -r .build_id "$DIR/latest")"
  edits=('.image.labels["dev.prov.build.no-cache"] = "false"' '.image.id = "sha256:\("1" * 64)"'
    '.image.layers[0] = "sha256:\("2" * 64)"')
  says=("image.labels: not the engine's labels of the image" "image: the node's engine has no image"
    "image.layers: not the engine's layers of the image")
  for i in "${!edits[@]}"; do
    # The node's engine does not hold the new build's image as recorded.
    forge_next_record "${edits[i]}"
    import_refused "${says[i]}"
    restore_kept
  done
  # A record the host imported, then changed on the node, is refused too.
  keep "$DIR/$latest_id.json" "$DIR/latest"
  jq '.network = "host"' "$HOST_DIR/$latest_id.json" >"$DIR/$latest_id.json"
  jq --arg s "$(sha256sum "$DIR/$latest_id.json" | cut -d' ' -f1)" '.manifest_sha256 = $s' \
    "$HOST_DIR/latest" >"$DIR/latest"
  run prov import --node "$NODE"
  [ "$status" -eq 2 ]
  assert_output_has "the node changed record $latest_id after the host imported it"
  restore_kept
  prov verify --node "$NODE"
}

@test "a record whose build log shows a step taken from the cache is refused: exit 2" {
  forge_next_record .
  # The log of a build that took a step from the cache, as each builder says it; the record
  # names the log's digest and size, as a build would.
  if [[ $(prov nodes --flavour "$NODE") == bookworm ]]; then
    step="Step 7/12 : COPY vendor vendor"
    printf '%s\n ---> Using cache\n ---> 0123456789ab\n' "$step" >>"$DIR/$forged_id.log"
  else
    step="#9 [build  5/10] COPY vendor vendor"
    printf '%s\n#9 CACHED\n' "$step" >>"$DIR/$forged_id.log"
  fi
  jq --arg sha "$(sha256sum "$DIR/$forged_id.log" | cut -d' ' -f1)" \
    --argjson bytes "$(stat -c %s "$DIR/$forged_id.log")" \
    '.build_log.sha256 = $sha | .build_log.bytes = $bytes' "$DIR/$forged_id.json" \
    >"$BATS_TEST_TMPDIR/m"
  cp "$BATS_TEST_TMPDIR/m" "$DIR/$forged_id.json"
  jq -n --arg b "$forged_id" --arg s "$(sha256sum "$DIR/$forged_id.json" | cut -d' ' -f1)" \
    '{build_id: $b, manifest_sha256: $s}' >"$DIR/latest"
  import_refused "log shows steps taken from the cache, which a build with --no-cache never does: $step"
  restore_kept
  prov verify --node "$NODE"
}

@test "a record whose SBOM is missing, changed or of another tree is refused: exit 2" {
  forge_next_record .
  rm "$DIR/$forged_id.sbom.cdx.json"
  import_refused "build $forged_id's SBOM is missing"
  restore_kept
  forge_next_record .
  jq '.components[0].version = "9.9.9"' "$DIR/$forged_id.sbom.cdx.json" >"$BATS_TEST_TMPDIR/s"
  cp "$BATS_TEST_TMPDIR/s" "$DIR/$forged_id.sbom.cdx.json"
  import_refused "build $forged_id's SBOM has sha256"
  restore_kept
  # Re-pinned in the record, a bill of another tree still does not pass.
  forge_next_record ".sbom.sha256 = \"$(jq '.metadata.component.version = "0000"' \
    "$DIR/$(jq -r .build_id "$DIR/latest").sbom.cdx.json" | tee "$BATS_TEST_TMPDIR/s" |
    sha256sum | cut -d' ' -f1)\""
  cp "$BATS_TEST_TMPDIR/s" "$DIR/$forged_id.sbom.cdx.json"
  import_refused "build $forged_id's SBOM is of tree 0000"
  restore_kept
  prov verify --node "$NODE"
}

@test "an envelope signed by another key fails verify" {
  keep "$(envelope)"
  other="$BATS_TEST_TMPDIR/other"
  mkdir -p "$other"
  cp -a "$REPO/nodes.json" "$other/"
  mkdir -p "$other/provenance" "$other/state"
  cp -a "$HOST_DIR" "$other/provenance/"
  cp -a "$(prov state-dir)/ssh" "$other/state/"
  PROV_STATE_DIR="$other/state" "$PROV" --repo "$other" key init
  build="$(jq -r .build_id "$HOST_DIR/latest")"
  # Another project's host signs the same record after the same checks: only the key differs.
  PROV_STATE_DIR="$other/state" "$PROV" --repo "$other" attest --node "$NODE" "$build"
  cp "$other/provenance/$NODE/$build.dsse.json" "$(envelope)"
  fails_on attestation
  restore_kept
  prov verify --node "$NODE"
}
