#!/usr/bin/env bats
# Attestations on a real node: once the project has a key, verify requires the latest build's
# envelope to verify and to name the running image. (The key stays for the rest of the suite:
# later builds attest themselves, and verify checks them: 50-multinode shows it on worker1.)

load helpers

NODE=main
DIR="$REPO/provenance/$NODE"

envelope() { echo "$DIR/$(jq -r .build_id "$DIR/latest").dsse.json"; }

fails_on() {
  run prov verify --node "$NODE" --json
  [ "$status" -eq 1 ]
  jq -e --arg c "$1" 'any(.checks[]; .name == $c and (.ok | not))' <<<"$output" >/dev/null
}

teardown() { restore_kept; }

@test "with a project key, the latest build's attestation is checked by verify" {
  # The first run of the suite makes the project's key; a later run keeps the one it has.
  [ -e "$REPO/.cache/keys/attest.key" ] || prov key init
  [ "$(stat -c %a "$REPO/.cache/keys/attest.key")" = 600 ]
  # Without the latest build's envelope verify fails; prov attest makes it again.
  rm -f "$(envelope)"
  fails_on attestation
  prov attest --node "$NODE"
  run prov verify --node "$NODE"
  echo "$output"
  [ "$status" -eq 0 ]
  assert_output_has "attestation"
  assert_output_has "verified, subject sha256:"
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
  cp "$BATS_TEST_TMPDIR/good" "$(envelope)"
  prov verify --node "$NODE"
}

@test "an envelope signed by another key fails verify" {
  keep "$(envelope)"
  cp "$(envelope)" "$BATS_TEST_TMPDIR/good"
  other="$BATS_TEST_TMPDIR/other"
  mkdir -p "$other"
  cp -a "$REPO/nodes.json" "$other/"
  mkdir -p "$other/provenance"
  cp -a "$DIR" "$other/provenance/"
  "$PROV" --repo "$other" key init
  "$PROV" --repo "$other" attest --node "$NODE"
  cp "$other/provenance/$NODE/$(basename "$(envelope)")" "$(envelope)"
  fails_on attestation
  cp "$BATS_TEST_TMPDIR/good" "$(envelope)"
  prov verify --node "$NODE"
}
