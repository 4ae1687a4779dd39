#!/usr/bin/env bats
# Records the host proves, on a real node: a base the node holds otherwise, an export edited
# without changing its size or time, a rollback of latest: each refused, corrected or failed by
# name. (A record rewritten between the build and the import: 32-offline-build.bats.) Each test
# puts back what it changed. A build costs a minute or more: each test that needs a new record
# builds once and checks every refusal on it.

load ../helpers

setup_file() { stack_ready "$NODE"; }
bats_require_minimum_version 1.5.0

# The host's tags of its bases (.cache/images/ids.env).
tag_of() {
  # shellcheck source=/dev/null # made by make bases
  (source "$REPO/.cache/images/ids.env" && eval "echo \$$1_TAG")
}

# Moves a base's tag on the node to an image built from it with one more file.
move_tag() {
  local tag
  tag=$(tag_of "$1")
  root_on "$NODE" "printf 'FROM %s\nUSER root\nRUN echo moved >/prov-e2e-moved\n' '$tag' |
    DOCKER_BUILDKIT=0 docker build -q --network none -t prov-e2e-moved:1 - >/dev/null 2>&1 ||
    printf 'FROM %s\nUSER root\nRUN echo moved >/prov-e2e-moved\n' '$tag' |
    docker buildx build -q --network none --load -t prov-e2e-moved:1 - >/dev/null
    docker tag prov-e2e-moved:1 '$tag'"
}

teardown() {
  # The host's bases, back under their tags; the node's records as the host holds them.
  prov bases --node "$NODE" >/dev/null 2>&1 || true
  root_on "$NODE" "docker image rm -f --no-prune prov-e2e-moved:1 >/dev/null 2>&1; true" || true
  prov sync --node "$NODE" >/dev/null 2>&1 || true
  if [[ -n ${REUP:-} ]]; then
    golden up NODE="$NODE" >/dev/null 2>&1 || true
  fi
  if [[ -z ${BATS_TEST_COMPLETED:-} ]]; then
    golden demo NODE="$NODE" >/dev/null 2>&1 || true
  fi
}

@test "base tags moved on the node are named, and the host's bases put back, checked by content" {
  for base in RUNTIME BUILDER POSTGRES; do move_tag "$base"; done
  run prov bases --node "$NODE"
  [ "$status" -eq 0 ]
  for base in RUNTIME BUILDER POSTGRES; do assert_output_has "$(tag_of "$base") names"; done
  assert_output_has "loaded them; it holds exactly them now"
  # The moved tags were removed before the load: a tag that Engine 26 moved back would keep the
  # labels of the image built on it, whose pruning removal then loops over a parent cycle until
  # the node runs out of memory. The removal ends.
  run root_on "$NODE" "timeout 120 docker image rm prov-e2e-moved:1"
  [ "$status" -eq 0 ]
  # Now it holds exactly them: nothing to say.
  run prov bases --node "$NODE"
  [ "$status" -eq 0 ]
  [ -z "$output" ]
}

@test "a build on base tags moved behind the host's back is refused at import, naming each; verify fails a stack on the moved database" {
  # One build on both: the api's runtime base, and the database's image the record names.
  move_tag RUNTIME
  move_tag POSTGRES
  build_by_hand "$NODE" >/dev/null 2>&1
  run prov import --node "$NODE"
  echo "$output" >&2
  [ "$status" -eq 2 ]
  assert_output_has "base_images.RUNTIME_IMAGE"
  assert_output_has "compose.services.db"
  # The database started on the moved tag: it is not the host's.
  REUP=1
  root_on "$NODE" "cd /vagrant && source .cache/images/ids.env && \
    PROV_DB_IMAGE=\$POSTGRES_TAG PROV_API_IMAGE=$(prov show --node "$NODE" --json | jq -r .image.tag) \
    $(compose_command "$NODE") -p prov -f /vagrant/compose.yaml up -d --no-build db >/dev/null 2>&1"
  run prov verify --node "$NODE" --json
  [ "$status" -eq 1 ]
  jq -e '.checks[] | select(.name == "db-image") | (.ok | not) and (.observed | contains("layers"))' \
    <<<"$output"
}

@test "a same-length edit with its time put back, in the Makefile, a node script and prov, is corrected by prov sync" {
  for file in Makefile scripts/node/up.sh target/release/prov; do
    root_on "$NODE" "cd /vagrant && touch -r $file /tmp/prov-e2e-time && \
      printf 'X' | dd of=$file bs=1 seek=5 conv=notrunc status=none && \
      touch -r /tmp/prov-e2e-time $file"
    [ "$(root_on "$NODE" "sha256sum </vagrant/$file")" != "$(sha256sum <"$REPO/$file")" ]
  done
  run prov sync --node "$NODE"
  [ "$status" -eq 0 ]
  assert_output_has "entries sent"
  for file in Makefile scripts/node/up.sh target/release/prov; do
    [ "$(root_on "$NODE" "sha256sum </vagrant/$file")" = "$(sha256sum <"$REPO/$file")" ]
  done
}

@test "with the key the golden path made, latest pointed back at an older imported build fails" {
  # No key was made by hand: the golden path made it on first use.
  [ -e "$(keys)/attest.key" ]
  mapfile -t records < <(manifests "$REPO/provenance/$NODE")
  [ "${#records[@]}" -ge 2 ] || golden demo NODE="$NODE" >/dev/null
  mapfile -t records < <(manifests "$REPO/provenance/$NODE")
  older=$(jq -r .build_id "${records[-2]}")
  sha=$(sha256sum <"${records[-2]}" | cut -d' ' -f1)
  root_on "$NODE" "printf '{\"build_id\":\"%s\",\"manifest_sha256\":\"%s\"}' $older $sha \
    >/vagrant/provenance/$NODE/latest"
  run prov verify --node "$NODE" --json
  [ "$status" -eq 1 ]
  jq -e '[.checks[] | select(.ok | not) | .name] | contains(["latest-is-newest", "no-rollback"])' \
    <<<"$output"
  prov sync --node "$NODE" >/dev/null
  run prov verify --node "$NODE"
  echo "$output"
  [ "$status" -eq 0 ]
}
