#!/usr/bin/env bats
# prov diff across nodes: same source, same inputs; then one node rebuilds changed source.
# (After the bench, which needs both nodes verified: this leaves worker1 built from other source.)

load ../helpers

@test "after demo on both nodes from the same source, every must-match field agrees" {
  run prov diff main worker1
  echo "$output"
  [ "$status" -eq 0 ]
  assert_output_has "verdict: every must-match field agrees"
  run prov diff main worker1 --json
  [ "$(jq -r .ok <<<"$output")" = true ]
  [ "$(jq '[.must_match[] | select(.same | not)] | length' <<<"$output")" -eq 0 ]
  [ "$(jq -r '.image.files.compared' <<<"$output")" -gt 100 ]
}

teardown() { restore_kept; }

@test "after a source change rebuilt on one node only, diff names the tree and the changed file" {
  keep "$REPO/api/src/main.rs"
  echo "// changed on worker1 only" >>"$REPO/api/src/main.rs"
  golden demo NODE=worker1
  restore_kept
  run prov diff main worker1 --json
  echo "$output" | jq -c '.must_match[] | select(.same | not)'
  [ "$status" -eq 1 ]
  jq -e '.must_match[] | select(.field == "source tree") | .same == false' <<<"$output"
  jq -e '.image.files.differing | index("usr/local/bin/api") != null' <<<"$output"
  run prov diff main worker1
  assert_output_has "DIFFERS source tree"
  assert_output_has "/usr/local/bin/api"
  # Between the two trixie nodes too: reproducible builds of different trees differ, by the
  # binary (a comment changed, but the source tree is compiled in).
  run prov diff worker2 worker1 --json
  [ "$status" -eq 1 ]
  [ "$(jq -r .image.same_id <<<"$output")" = false ]
  jq -e '.image.files.differing == ["usr/local/bin/api"]' <<<"$output"
}
