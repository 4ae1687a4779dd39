#!/usr/bin/env bats
# Reproducible images: independent no-cache builds of the same tree on the two trixie nodes give
# the same image ID (BuildKit, timestamps set to the source's date, labels naming inputs only).
# (After the drill's faults, which leave worker1 rebuilt from the suite's tree, like worker2.)

load ../helpers

@test "worker1 and worker2 built the same tree independently: the same image ID, and diff says so" {
  [ "$(prov nodes --flavour worker1)" = trixie ] && [ "$(prov nodes --flavour worker2)" = trixie ]
  a="$(prov show --node worker1 --json)"
  b="$(prov show --node worker2 --json)"
  # Two builds, each from scratch on its own node, at other times.
  [ "$(jq -r .build_id <<<"$a")" != "$(jq -r .build_id <<<"$b")" ]
  [ "$(jq -r .no_cache <<<"$a")" = true ] && [ "$(jq -r .no_cache <<<"$b")" = true ]
  [ "$(jq -r .git.tree <<<"$a")" = "$(jq -r .git.tree <<<"$b")" ]
  [ "$(jq -r .image.id <<<"$a")" = "$(jq -r .image.id <<<"$b")" ]
  run prov diff worker1 worker2
  echo "$output"
  [ "$status" -eq 0 ]
  assert_output_has "id      identical: the same ID"
  run prov diff worker1 worker2 --json
  [ "$(jq -r .image.same_id <<<"$output")" = true ]
}
