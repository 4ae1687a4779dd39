#!/usr/bin/env bats
# prov verify on a real node: it passes on the golden path, every bypass makes it fail naming the
# right check, and it changes nothing. Each test restores what it broke.

load helpers
bats_require_minimum_version 1.5.0

NODE=main
DIR="$REPO/provenance/$NODE"

# Runs compose on the node as root from /vagrant, with the latest build's image.
compose_on_node() {
  root_on "$NODE" "cd /vagrant && source .cache/images/ids.env && \
    PROV_DB_IMAGE=\$POSTGRES_TAG PROV_API_IMAGE=${API_IMAGE:-$(prov show --node "$NODE" --json | jq -r .image.tag)} \
    docker-compose -p prov -f /vagrant/compose.yaml $*"
}

# verify must exit 1 and name the check as failed.
fails_on() {
  run prov verify --node "$NODE" --json
  echo "$output" | jq -c '.checks[] | select(.ok | not)' >&2 || true
  [ "$status" -eq 1 ]
  jq -e --arg c "$1" '.ok == false and any(.checks[]; .name == $c and (.ok | not))' <<<"$output" >/dev/null
}

passes() {
  run prov verify --node "$NODE"
  echo "$output" >&2
  [ "$status" -eq 0 ]
}

# Everything verify could disturb on the node, plus the provenance folder on the host.
fingerprint() {
  on_node "$NODE" bash -c 'docker ps -aq | xargs -r docker inspect --format \
    "{{.Id}} {{.State.Status}} {{.State.StartedAt}} {{.RestartCount}} {{.State.Pid}}"; \
    docker image ls -aq --no-trunc | sort; docker volume ls -q; docker network ls -q'
  (cd "$DIR" && ls -laR --time-style=full-iso . && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}

@test "verify passes on the golden path, in the table, JSON and JUnit forms" {
  passes
  assert_output_has "node main: OK"
  run prov verify --node "$NODE" --json --junit "$BATS_TEST_TMPDIR/junit.xml"
  [ "$status" -eq 0 ]
  [ "$(jq -r .ok <<<"$output")" = true ]
  [ "$(jq '[.checks[] | select(.ok | not)] | length' <<<"$output")" -eq 0 ]
  grep -q '<testsuite name="prov verify main"' "$BATS_TEST_TMPDIR/junit.xml"
  run ! grep -q '<failure' "$BATS_TEST_TMPDIR/junit.xml"
}

@test "verify changes nothing: the node's state and the records are identical before and after" {
  before="$(fingerprint)"
  prov verify --node "$NODE" >/dev/null
  prov verify --node "$NODE" --json >/dev/null
  [ "$(fingerprint)" = "$before" ]
}

@test "fails when the api container is stopped" {
  compose_on_node stop api
  fails_on service:api
  fails_on http/health
  compose_on_node start api
  root_on "$NODE" "sleep 3"
  passes
}

@test "fails when the database is stopped, naming readiness" {
  root_on "$NODE" "cd /vagrant && scripts/node/db.sh stop"
  fails_on service:db
  fails_on http/ready
  root_on "$NODE" "cd /vagrant && scripts/node/db.sh start"
  root_on "$NODE" "sleep 5"
  passes
}

@test "fails when a container runs the app image outside compose (docker run by hand)" {
  tag="$(prov show --node "$NODE" --json | jq -r .image.tag)"
  on_node "$NODE" docker run -d --name prov-stray -e DATABASE_URL=postgres://x@127.0.0.1/x \
    -e LISTEN_ADDR=0.0.0.0:9999 "$tag"
  fails_on no-bypass
  on_node "$NODE" docker rm -f prov-stray
  passes
}

@test "fails when a source file changes after the build, naming make demo" {
  echo "# edited after the build" >>"$REPO/compose.yaml"
  fails_on source-tree
  assert_output_has "make demo"
  git -C "$REPO" checkout -- compose.yaml
  passes
}

@test "fails when the latest manifest is edited" {
  latest="$DIR/$(jq -r .build_id "$DIR/latest").json"
  cp "$latest" "$BATS_TEST_TMPDIR/m"
  sed -i 's/"no_cache": true/"no_cache": false/' "$latest"
  fails_on manifest
  cp "$BATS_TEST_TMPDIR/m" "$latest"
  passes
}

@test "fails when the manifest's labels differ from the image's, even with the pointer re-pinned" {
  latest="$DIR/$(jq -r .build_id "$DIR/latest").json"
  cp "$latest" "$BATS_TEST_TMPDIR/m"
  cp "$DIR/latest" "$BATS_TEST_TMPDIR/l"
  jq '.image.labels["dev.prov.build.no-cache"] = "false"' "$BATS_TEST_TMPDIR/m" >"$latest"
  jq --arg sha "$(sha256sum "$latest" | cut -d' ' -f1)" '.manifest_sha256 = $sha' \
    "$BATS_TEST_TMPDIR/l" >"$DIR/latest"
  fails_on image-labels
  cp "$BATS_TEST_TMPDIR/m" "$latest"
  cp "$BATS_TEST_TMPDIR/l" "$DIR/latest"
  passes
}

@test "fails when the image's layers were made outside its recorded build window, or on other bases" {
  latest="$DIR/$(jq -r .build_id "$DIR/latest").json"
  cp "$latest" "$BATS_TEST_TMPDIR/m"
  cp "$DIR/latest" "$BATS_TEST_TMPDIR/l"
  # The record claims the build ran an hour later than it did: every layer looks cached.
  later='.[0:19] + "Z" | fromdateiso8601 + 3600 | todateiso8601'
  jq ".started_at |= ($later) | .finished_at |= ($later)" "$BATS_TEST_TMPDIR/m" >"$latest"
  jq --arg sha "$(sha256sum "$latest" | cut -d' ' -f1)" '.manifest_sha256 = $sha' \
    "$BATS_TEST_TMPDIR/l" >"$DIR/latest"
  fails_on layers-fresh
  # The record names bases the image was not built on.
  jq '.base_images[].id = "sha256:\("0" * 64)"' "$BATS_TEST_TMPDIR/m" >"$latest"
  jq --arg sha "$(sha256sum "$latest" | cut -d' ' -f1)" '.manifest_sha256 = $sha' \
    "$BATS_TEST_TMPDIR/l" >"$DIR/latest"
  fails_on layers-fresh
  cp "$BATS_TEST_TMPDIR/m" "$latest"
  cp "$BATS_TEST_TMPDIR/l" "$DIR/latest"
  passes
}

@test "fails when an earlier manifest is deleted" {
  first="$(manifests "$DIR" | head -n 1)"
  mv "$first" "$BATS_TEST_TMPDIR/first"
  fails_on hash-chain
  mv "$BATS_TEST_TMPDIR/first" "$first"
  passes
}

@test "fails when compose ran from a copy of the repository outside /vagrant" {
  compose_on_node down
  root_on "$NODE" "rm -rf /home/vagrant/copy && mkdir -p /home/vagrant/copy && cp /vagrant/compose.yaml /home/vagrant/copy/"
  root_on "$NODE" "cd /home/vagrant/copy && source /vagrant/.cache/images/ids.env && \
    PROV_DB_IMAGE=\$POSTGRES_TAG PROV_API_IMAGE=$(prov show --node "$NODE" --json | jq -r .image.tag) \
    docker-compose -p prov up -d"
  root_on "$NODE" "sleep 5"
  fails_on compose-wiring
  root_on "$NODE" "cd /home/vagrant/copy && PROV_DB_IMAGE=x PROV_API_IMAGE=x docker-compose -p prov down && rm -rf /home/vagrant/copy"
  golden up NODE="$NODE"
  passes
}

@test "fails when the image is rebuilt outside prov under the same tag" {
  tag="$(prov show --node "$NODE" --json | jq -r .image.tag)"
  id="$(prov show --node "$NODE" --json | jq -r .image.id)"
  root_on "$NODE" "printf 'FROM %s\nLABEL rebuilt=by-hand\n' $id | DOCKER_BUILDKIT=0 docker build -t $tag -"
  fails_on image-local
  compose_on_node up -d
  fails_on image-id
  on_node "$NODE" docker tag "$id" "$tag"
  compose_on_node up -d
  root_on "$NODE" "sleep 4"
  passes
}

@test "fails when the api runs an older build's image, or latest points at an older build" {
  old_tag="$(prov show --node "$NODE" --json | jq -r .image.tag)"
  old_id="$(jq -r .build_id "$DIR/latest")"
  golden demo NODE="$NODE"
  passes
  API_IMAGE="$old_tag" compose_on_node up -d
  root_on "$NODE" "sleep 4"
  fails_on image-id
  fails_on http/version
  golden up NODE="$NODE"
  passes

  cp "$DIR/latest" "$BATS_TEST_TMPDIR/l"
  jq -n --arg b "$old_id" --arg s "$(sha256sum "$DIR/$old_id.json" | cut -d' ' -f1)" \
    '{build_id: $b, manifest_sha256: $s}' >"$DIR/latest"
  fails_on latest-is-newest
  cp "$BATS_TEST_TMPDIR/l" "$DIR/latest"
  passes
}

@test "an unreachable node or a node with no build cannot be checked: exit 2, never 0" {
  mv "$DIR" "$BATS_TEST_TMPDIR/prov-main"
  run prov verify --node "$NODE"
  mv "$BATS_TEST_TMPDIR/prov-main" "$DIR"
  [ "$status" -eq 2 ]
  assert_output_has "COULD NOT CHECK"
  assert_output_has "make demo NODE=main"
}

@test "a node whose Docker engine does not answer cannot be checked: exit 2, naming the engine" {
  # Cover the engine's socket for new connections; the engine and the stack keep running.
  root_on "$NODE" "touch /tmp/no-engine && mount --bind /tmp/no-engine /var/run/docker.sock"
  run prov verify --node "$NODE"
  root_on "$NODE" "umount /var/run/docker.sock"
  echo "$output" >&2
  [ "$status" -eq 2 ]
  assert_output_has "COULD NOT CHECK"
  assert_output_has "Docker engine"
  passes
}

@test "a frozen Docker engine (SIGSTOP) cannot be checked: exit 2 within the --timeout bound" {
  root_on "$NODE" "pkill -STOP -x dockerd"
  start=$SECONDS
  run timeout 60 "$PROV" --repo "$REPO" verify --node "$NODE" --timeout 5
  took=$((SECONDS - start))
  root_on "$NODE" "pkill -CONT -x dockerd"
  echo "$output (took ${took}s)" >&2
  [ "$status" -eq 2 ]
  assert_output_has "COULD NOT CHECK"
  assert_output_has "did not answer in time"
  # The bound, with a second of slack for starting the process and printing.
  [ "$took" -le 6 ]
  passes
}

@test "a FIFO or a link to /dev/zero among the records cannot hang verify: exit 2, named" {
  trap_record="$DIR/20000101-000000-000-ffff.json"
  mkfifo "$trap_record"
  run timeout 60 "$PROV" --repo "$REPO" verify --node "$NODE" --timeout 5
  rm -f "$trap_record"
  echo "$output" >&2
  [ "$status" -eq 2 ]
  assert_output_has "is a FIFO, not a regular file"
  ln -s /dev/zero "$trap_record"
  run timeout 60 "$PROV" --repo "$REPO" verify --node "$NODE" --timeout 5
  rm -f "$trap_record"
  echo "$output" >&2
  [ "$status" -eq 2 ]
  assert_output_has "is a symbolic link"
  passes
}

@test "a record with multi-byte text and escape sequences in its free fields: no panic, no raw escape" {
  latest="$DIR/$(jq -r .build_id "$DIR/latest").json"
  cp "$latest" "$BATS_TEST_TMPDIR/m"
  cp "$DIR/latest" "$BATS_TEST_TMPDIR/l"
  jq --arg t $'é€😀\e[2J\e]0;owned\a\r' '.git.commit = $t | .dockerfile.path = $t
    | .compose.path = $t | .cargo_lock.path = $t | .build_log.path = $t | .network = $t
    | .image.tag = $t | .image.labels |= map_values($t) | .tool.versions |= map_values($t)
    | .base_images[].reference = $t | .build_args = {($t): $t}' \
    "$BATS_TEST_TMPDIR/m" >"$latest"
  jq --arg sha "$(sha256sum "$latest" | cut -d' ' -f1)" '.manifest_sha256 = $sha' \
    "$BATS_TEST_TMPDIR/l" >"$DIR/latest"
  run prov verify --node "$NODE"
  verify_status=$status
  verify_output=$output
  run prov show --node "$NODE" --offline
  show_status=$status
  show_output=$output
  cp "$BATS_TEST_TMPDIR/m" "$latest"
  cp "$BATS_TEST_TMPDIR/l" "$DIR/latest"
  echo "$verify_output" >&2
  [ "$verify_status" -eq 1 ]
  [ "$show_status" -eq 0 ]
  [[ $verify_output != *$'\e'* && $show_output != *$'\e'* ]]
  [[ $show_output == *'\u{1b}[2J'* ]]
  passes
}
