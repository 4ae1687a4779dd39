#!/usr/bin/env bats
# prov diff across nodes: same source, same inputs; then one node rebuilds changed source.
# (After the bench, which needs both nodes verified: this leaves worker1 built from other source.)

load ../helpers

setup_file() { stack_ready main worker1 worker2; }

@test "after demo on both nodes from the same source, every must-match field agrees" {
  run prov diff main worker1
  echo "$output"
  [ "$status" -eq 0 ]
  assert_output_has "verdict: every must-match field agrees"
  run prov diff main worker1 --json
  [ "$(jq -r .ok <<<"$output")" = true ]
  [ "$(jq '[.must_match[] | select(.same | not)] | length' <<<"$output")" -eq 0 ]
  [ "$(jq -r '.image.files.compared' <<<"$output")" -gt 100 ]
  jq -e '.sbom.changed == [] and .sbom.added == [] and .sbom.removed == []' <<<"$output"
  [ "$(jq -r .sbom.a_count <<<"$output")" -gt 150 ]
}

teardown() { restore_kept; }

@test "after a source and lockfile change rebuilt on one node only, diff names the tree, the changed files and the crate" {
  keep "$REPO/api/src/main.rs" "$REPO/Cargo.lock"
  echo "// changed on worker1 only" >>"$REPO/api/src/main.rs"
  # A crate only the api links, one version back (vendored again by make demo).
  (cd "$REPO" && cargo update --quiet -p httpdate --precise 1.0.2)
  golden demo NODE=worker1
  restore_kept
  run prov diff main worker1 --json
  echo "$output" | jq -c '.must_match[] | select(.same | not)'
  [ "$status" -eq 1 ]
  jq -e '.must_match[] | select(.field == "source tree") | .same == false' <<<"$output"
  jq -e '.image.files.differing | index("usr/local/bin/api") != null' <<<"$output"
  jq -e '.sbom.changed == [{"package": "pkg:cargo/httpdate", "a": ["1.0.3"], "b": ["1.0.2"]}]' \
    <<<"$output"
  jq -e '.sbom.added == [] and .sbom.removed == []' <<<"$output"
  run prov diff main worker1
  assert_output_has "DIFFERS source tree"
  assert_output_has "/usr/local/bin/api"
  assert_output_has "sbom      1 changed, 0 added, 0 removed"
  assert_output_has "changed pkg:cargo/httpdate"
  assert_output_has "1.0.3 -> 1.0.2"
  # Between the two trixie nodes too: reproducible builds of different trees differ, by the
  # binary (the source tree is compiled in) and the list of linked crates.
  run prov diff worker2 worker1 --json
  [ "$status" -eq 1 ]
  [ "$(jq -r .image.same_id <<<"$output")" = false ]
  jq -e '.image.files.differing == ["usr/local/bin/api", "usr/share/doc/prov-api/crates.txt"]' \
    <<<"$output"
}
