#!/usr/bin/env bats
# Reproducible images: independent no-cache builds of the same tree on the two trixie nodes give
# the same image ID (BuildKit, timestamps set to the source's date, labels naming inputs only).
# (worker1 as its per-node suite left it, worker2 as tests/e2e/spare did: each built from the tree.)

load ../helpers

setup_file() { stack_ready worker1 worker2; }

@test "worker1 and worker2 built the same tree independently: the same image ID, and diff says so" {
  [ "$(prov nodes --flavour worker1)" = trixie ]
  [ "$(prov nodes --flavour worker2)" = trixie ]
  a="$(prov show --node worker1 --json)"
  b="$(prov show --node worker2 --json)"
  # Two builds, each from scratch on its own node, at other times.
  [ "$(jq -r .build_id <<<"$a")" != "$(jq -r .build_id <<<"$b")" ]
  [ "$(jq -r .no_cache <<<"$a")" = true ]
  [ "$(jq -r .no_cache <<<"$b")" = true ]
  [ "$(jq -r .git.tree <<<"$a")" = "$(jq -r .git.tree <<<"$b")" ]
  [ "$(jq -r .image.id <<<"$a")" = "$(jq -r .image.id <<<"$b")" ]
  run prov diff worker1 worker2
  echo "$output"
  [ "$status" -eq 0 ]
  assert_output_has "id      identical: the same ID"
  run prov diff worker1 worker2 --json
  [ "$(jq -r .image.same_id <<<"$output")" = true ]
}

# What a reproduce run could disturb on a node: its containers, images, volumes and networks,
# and its records (the node's and the host's copy).
fingerprint() {
  on_node "$1" bash -c 'docker ps -aq | xargs -r docker inspect --format \
    "{{.Id}} {{.State.Status}} {{.State.StartedAt}} {{.RestartCount}} {{.State.Pid}}"; \
    docker image ls -aq --no-trunc | sort; docker volume ls -q; docker network ls -q'
  for dir in "$(node_dir "$1")" "$REPO/provenance/$1"; do
    (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
  done
}

teardown() { restore_kept; }

@test "prov reproduce rebuilds worker1's build on worker2: identical, signed, worker2 untouched" {
  # Like every operation on a node, reproduce first refreshes its export (the checkout, and the
  # host's copy of its records: an envelope written since the last sync arrives then).
  prov sync --node worker2
  before="$(fingerprint worker2)"
  run prov reproduce --node worker2 --of worker1
  echo "$output" | tail -n 12
  [ "$status" -eq 0 ]
  assert_output_has "rebuilt on worker2"
  assert_output_has "identical"
  [ "$(fingerprint worker2)" = "$before" ]
  build="$(jq -r .build_id "$REPO/provenance/worker1/latest")"
  envelope="$REPO/provenance/worker1/$build.reproduce-worker2.dsse.json"
  jq -e '.payload | @base64d | fromjson | .predicateType == "https://prov.dev/reproduce/v1"
    and .predicate.identical and .predicate.same_source' "$envelope"
  run prov show --node worker1 --offline
  assert_output_has "rebuilt on worker2"
  assert_output_has "identical, signed"
  run prov verify --node worker1
  [ "$status" -eq 0 ]
  assert_output_has "note rebuilt on worker2"
  # A verdict changed after it was signed is not shown as one.
  keep "$envelope"
  jq '.payload |= (@base64d | sub("\"identical\":true"; "\"identical\":false") | @base64)' \
    "$envelope" >"$BATS_TEST_TMPDIR/tampered"
  cp "$BATS_TEST_TMPDIR/tampered" "$envelope"
  run prov show --node worker1 --offline
  assert_output_has "a verdict of a rebuild on worker2 does not hold: no signature"
}

@test "after the source changed, prov reproduce says different, naming the first layer and the binary" {
  keep "$REPO/api/src/main.rs"
  echo "// changed after worker1's build" >>"$REPO/api/src/main.rs"
  run prov reproduce --node worker2 --of worker1
  restore_kept
  echo "$output" | tail -n 12
  [ "$status" -eq 1 ]
  assert_output_has "other source"
  assert_output_has "DIFFERENT"
  assert_output_has "first differing file: /usr/local/bin/api"
}

@test "a rebuild whose node reports another image than its engine holds is refused: the verdict is the engine's" {
  # An operator on worker2 puts a docker of their own first on root's PATH: it answers an inspect
  # of the rebuild's tag with another image's ID (the runtime base's, which the node's store
  # holds too), so that `prov rebuild` reports that one. The host asks worker2's engine itself.
  fake="$(root_on worker2 "source /vagrant/.cache/images/ids.env && \
    docker image inspect --format '{{.Id}}' \$RUNTIME_TAG")"
  root_on worker2 "cat >/usr/local/sbin/docker <<'WRAP'
#!/bin/sh
if [ \"\$1 \$2\" = 'image inspect' ]; then
  case \$3 in prov-reproduce:*)
    /usr/bin/docker image inspect \"\$3\" | sed -E 's/\"Id\": \"sha256:[0-9a-f]{64}\"/\"Id\": \"$fake\"/'
    exit ;;
  esac
fi
exec /usr/bin/docker \"\$@\"
WRAP
chmod 0755 /usr/local/sbin/docker"
  run prov reproduce --node worker2 --of worker1
  root_on worker2 "rm -f /usr/local/sbin/docker"
  echo "$output" | tail -n 5
  [ "$status" -ne 0 ]
  assert_output_has "but its engine holds"
  assert_output_has "the report is refused"
}
