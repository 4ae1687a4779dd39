#!/usr/bin/env bats
# The node no per-node suite takes (the third, a second of one flavour) comes up through the
# reviewer's pass, beside the per-node suites: make test runs tests/e2e/spare on it with E2E_NODE
# set, and the cluster's files find it verified.

load ../helpers

@test "make demo-reviewer on the third node passes" {
  run golden demo-reviewer NODE="$NODE"
  echo "$output" | tail -n 30
  [ "$status" -eq 0 ]
  assert_rebuild_visible "$NODE"
  assert_output_has "node $NODE: OK"
  # The project has a key (made on first use): the build attested itself, and verify checked it.
  dir="$REPO/provenance/$NODE"
  [ -f "$dir/$(jq -r .build_id "$dir/latest").dsse.json" ]
  assert_output_has "verified, subject sha256:"
}
