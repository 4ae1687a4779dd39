#!/usr/bin/env bats
# Verification summaries (prov verify --attest, which make verify runs): a failing verify signs
# FAILED and names what failed; a changed summary is refused, by prov and by the ecosystem's
# libraries. (The PASSED summary after make demo-reviewer is checked in 10-golden.)

load ../helpers

setup_file() { stack_ready "$NODE"; }

teardown() {
  # The api comes back for the next file, whatever happened here.
  on_node "$NODE" docker start prov-api >/dev/null 2>&1 || true
}

@test "with the api stopped, make verify signs a FAILED summary naming the check" {
  on_node "$NODE" docker stop prov-api >/dev/null
  before="$(newest_vsa "$NODE")"
  run golden verify NODE="$NODE"
  echo "$output"
  [ "$status" -ne 0 ]
  assert_output_has "verification summary of node $NODE (FAILED)"
  [ "$(newest_vsa "$NODE")" != "$before" ]
  run assert_vsa "$NODE" FAILED
  echo "$output"
  [ "$status" -eq 0 ]
  payload="$(jq -r '.payload | @base64d' "$(newest_vsa "$NODE")")"
  jq -e '.subject[0].annotations.failedChecks | index("service:api")' <<<"$payload" >/dev/null
  [ "$(jq -r '.predicate.verifiedLevels | join(",")' <<<"$payload")" = FAILED ]
  # It can never be read as a pass.
  run assert_vsa "$NODE" PASSED
  [ "$status" -ne 0 ]
  run prov log --node "$NODE"
  assert_output_has "FAILED (failed: service:api"

  on_node "$NODE" docker start prov-api >/dev/null
  golden verify NODE="$NODE"
  assert_vsa "$NODE" PASSED
}

@test "a node that could not be checked gets a FAILED summary saying why" {
  run prov verify --node "$NODE" --attest --policy no-such-policy.json
  echo "$output"
  [ "$status" -eq 2 ]
  assert_output_has "verification summary of node $NODE (FAILED)"
  run assert_vsa "$NODE" FAILED
  echo "$output"
  [ "$status" -eq 0 ]
  payload="$(jq -r '.payload | @base64d' "$(newest_vsa "$NODE")")"
  jq -e '.subject[0].annotations.couldNotCheck | contains("no-such-policy.json")' \
    <<<"$payload" >/dev/null
}

@test "a changed summary is refused by prov log and by the ecosystem's libraries" {
  summary="$(newest_vsa "$NODE")"
  cp "$summary" "$BATS_TEST_TMPDIR/kept"
  jq '.payload |= (@base64d | fromjson | .predicate.verificationResult = "PASSED"
      | .predicate.verifiedLevels = ["SLSA_BUILD_LEVEL_3"] | tojson | @base64)' \
    "$BATS_TEST_TMPDIR/kept" >"$summary"
  run assert_vsa "$NODE" PASSED
  echo "$output"
  [ "$status" -ne 0 ]
  assert_output_has "VerificationError"
  run prov log --node "$NODE"
  cp "$BATS_TEST_TMPDIR/kept" "$summary"
  echo "$output"
  assert_output_has "refused: no signature"
  [[ $output != *"SLSA_BUILD_LEVEL_3"* ]]
}
