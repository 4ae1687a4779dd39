#!/usr/bin/env bats
# prov verify on a real node: it passes on the golden path, every bypass makes it fail naming the
# right check, and it changes nothing. Each test restores what it broke.

load ../helpers

setup_file() { stack_ready "$NODE"; }
bats_require_minimum_version 1.5.0

# The node's records (its export), and the host's imported copy.
DIR="$(node_dir "$NODE")"
HOST_DIR="$REPO/provenance/$NODE"

compose_on_node() { compose_on "$NODE" "$@"; }

# After a test put things back: verify passes once the stack has settled (polled, bounded).
passes_soon() {
  eventually 60 "'$PROV' --repo '$REPO' verify --node '$NODE' >/dev/null"
  passes
}

# Removes the host's rules that drop this node's packets (the dropped-packets test), and only
# this node's: the other flavour's suite may have its own in place.
drop_no_more() {
  iptables -S OUTPUT | grep -E -- "--comment prov-e2e-$NODE( |\$)" | sed 's/^-A /-D /' |
    while read -r -a rule; do iptables "${rule[@]}"; done
}

# Whatever a test did, the records and files it kept come back; after a failure, the node is
# put back on the golden path too (hand-made containers removed, the engine thawed, the recorded
# image under its tag, the stack started again).
teardown() {
  restore_kept
  drop_no_more
  thaw_node "$NODE" 2>/dev/null || true
  if [[ -z ${BATS_TEST_COMPLETED:-} ]]; then
    root_on "$NODE" "pkill -CONT -x dockerd; umount /var/run/docker.sock 2>/dev/null; \
      docker rm -f prov-stray prov-one-off prov-api >/dev/null 2>&1; true" || true
    read -r id tag < <(prov show --node "$NODE" --json | jq -r '"\(.image.id) \(.image.tag)"')
    on_node "$NODE" docker tag "$id" "$tag" || true
    on_node "$NODE" docker image rm prov-e2e-held:1 prov-e2e-by-hand:1 >/dev/null 2>&1 || true
    golden up NODE="$NODE" || true
  fi
}

# Everything verify could disturb on the node, plus the node's and the host's records.
fingerprint() {
  on_node "$NODE" bash -c 'docker ps -aq | xargs -r docker inspect --format \
    "{{.Id}} {{.State.Status}} {{.State.StartedAt}} {{.RestartCount}} {{.State.Pid}}"; \
    docker image ls -aq --no-trunc | sort; docker volume ls -q; docker network ls -q'
  for dir in "$DIR" "$HOST_DIR"; do
    (cd "$dir" && ls -laR --time-style=full-iso . && find . -type f -print0 | sort -z | xargs -0 sha256sum)
  done
}

@test "verify passes on the golden path, in the table, JSON and JUnit forms" {
  passes
  assert_output_has "node $NODE: OK"
  run prov verify --node "$NODE" --json --junit "$BATS_TEST_TMPDIR/junit.xml"
  [ "$status" -eq 0 ]
  [ "$(jq -r .ok <<<"$output")" = true ]
  [ "$(jq '[.checks[] | select(.ok | not)] | length' <<<"$output")" -eq 0 ]
  # The records the host imported are not read again (the node's copies are checked by one
  # digest): only those it did not import (a failed build's, say) are read from the node.
  held=$(manifests "$HOST_DIR" | wc -l)
  newer=$(($(manifests "$DIR" | wc -l) - held))
  jq -r '.checks[] | select(.name == "hash-chain") | .expected' <<<"$output" | tee /dev/stderr |
    grep -q "($held as the host imported them, .*; $newer read from the node)"
  grep -q "<testsuite name=\"prov verify $NODE\"" "$BATS_TEST_TMPDIR/junit.xml"
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
  passes
}

@test "fails when the database is stopped, naming readiness" {
  root_on "$NODE" "cd /vagrant && scripts/node/db.sh stop"
  fails_on service:db
  fails_on http/ready
  root_on "$NODE" "cd /vagrant && scripts/node/db.sh start"
  passes_soon
}

@test "fails when a container runs the app image outside compose (docker run by hand)" {
  tag="$(prov show --node "$NODE" --json | jq -r .image.tag)"
  on_node "$NODE" docker run -d --name prov-stray -e DATABASE_URL=postgres://x@127.0.0.1/x \
    -e LISTEN_ADDR=0.0.0.0:9999 "$tag"
  fails_on no-bypass
  on_node "$NODE" docker rm -f prov-stray
  passes
}

@test "fails when the latest manifest is edited" {
  latest="$DIR/$(jq -r .build_id "$DIR/latest").json"
  keep "$latest"
  sed -i 's/"no_cache": true/"no_cache": false/' "$latest"
  fails_on manifest
  restore_kept
  # The record intact, its pointer pinning another digest: the pointer is named.
  keep "$DIR/latest"
  jq '.manifest_sha256 = ("0" * 64)' "$BATS_TEST_TMPDIR/kept/0.file" >"$DIR/latest"
  fails_on manifest
  jq -r '.checks[] | select(.name == "manifest") | .observed' <<<"$output" |
    grep -q "/vagrant/provenance/$NODE/latest .*the pointer was edited"
  restore_kept
  passes
}

@test "a record with no image, or whose tree is not the image's, never passes, even re-pinned" {
  latest="$DIR/$(jq -r .build_id "$DIR/latest").json"
  keep "$latest" "$DIR/latest"
  cp "$latest" "$BATS_TEST_TMPDIR/m"
  cp "$DIR/latest" "$BATS_TEST_TMPDIR/l"
  repin() {
    jq --arg sha "$(sha256sum "$latest" | cut -d' ' -f1)" '.manifest_sha256 = $sha' \
      "$BATS_TEST_TMPDIR/l" >"$DIR/latest"
  }
  jq '.image = null' "$BATS_TEST_TMPDIR/m" >"$latest"
  repin
  fails_on manifest
  assert_output_has "a successful build with no image"
  jq '.git.tree = "0000000000000000000000000000000000000000"' "$BATS_TEST_TMPDIR/m" >"$latest"
  repin
  fails_on one-tree
  restore_kept
  passes
}

@test "a hostile global git configuration on the host raises no false alarm" {
  home="$BATS_TEST_TMPDIR/home"
  mkdir -p "$home"
  printf 'api/\n*.rs\n' >"$home/excludes"
  printf '[core]\n\texcludesFile = %s\n\tautocrlf = true\n' "$home/excludes" >"$home/.gitconfig"
  HOME="$home" XDG_CONFIG_HOME="$home/.config" run prov verify --node "$NODE"
  echo "$output" >&2
  [ "$status" -eq 0 ]
}

@test "fails when the manifest's labels differ from the image's, even with the pointer re-pinned" {
  latest="$DIR/$(jq -r .build_id "$DIR/latest").json"
  keep "$latest" "$DIR/latest"
  cp "$latest" "$BATS_TEST_TMPDIR/m"
  cp "$DIR/latest" "$BATS_TEST_TMPDIR/l"
  jq '.image.labels["dev.prov.build.no-cache"] = "false"' "$BATS_TEST_TMPDIR/m" >"$latest"
  jq --arg sha "$(sha256sum "$latest" | cut -d' ' -f1)" '.manifest_sha256 = $sha' \
    "$BATS_TEST_TMPDIR/l" >"$DIR/latest"
  fails_on image-labels
  restore_kept
  passes
}

@test "fails when the image's layers are not dated as the record says, or on other bases" {
  latest="$DIR/$(jq -r .build_id "$DIR/latest").json"
  keep "$latest" "$DIR/latest"
  cp "$latest" "$BATS_TEST_TMPDIR/m"
  cp "$DIR/latest" "$BATS_TEST_TMPDIR/l"
  if [[ $(prov nodes --flavour "$NODE") == bookworm ]]; then
    # The record claims the build ran an hour later than it did: every layer looks cached.
    later='.[0:19] + "Z" | fromdateiso8601 + 3600 | todateiso8601'
    jq ".started_at |= ($later) | .finished_at |= ($later)" "$BATS_TEST_TMPDIR/m" >"$latest"
  else
    # BuildKit dates every layer at the source's date: the record claims another.
    jq '.source_date.epoch += 3600' "$BATS_TEST_TMPDIR/m" >"$latest"
  fi
  jq --arg sha "$(sha256sum "$latest" | cut -d' ' -f1)" '.manifest_sha256 = $sha' \
    "$BATS_TEST_TMPDIR/l" >"$DIR/latest"
  fails_on layers-fresh
  # The record names bases the image was not built on (by ID and by configuration digest).
  jq '.base_images[] |= (.id = "sha256:\("0" * 64)" | .config_digest = "sha256:\("0" * 64)")' \
    "$BATS_TEST_TMPDIR/m" >"$latest"
  jq --arg sha "$(sha256sum "$latest" | cut -d' ' -f1)" '.manifest_sha256 = $sha' \
    "$BATS_TEST_TMPDIR/l" >"$DIR/latest"
  fails_on layers-fresh
  restore_kept
  passes
}

@test "fails when an earlier manifest is deleted" {
  first="$(manifests "$DIR" | head -n 1)"
  keep "$first"
  rm "$first"
  fails_on hash-chain
  restore_kept
  passes
}

@test "a record slipped in among those the host imported, or one after them chained elsewhere, fails hash-chain" {
  first="$(manifests "$DIR" | head -n 1)"
  earlier="$DIR/20000101-000000-000-abcd.json"
  later="$DIR/20991231-000000-000-abcd.json"
  keep "$earlier" "$later"
  jq '.build_id = "20000101-000000-000-abcd"' "$first" >"$earlier"
  fails_on hash-chain
  rm "$earlier"
  jq '.build_id = "20991231-000000-000-abcd" | .prev_manifest_sha256 = ("0" * 64)' "$first" >"$later"
  fails_on hash-chain
  restore_kept
  passes
}

@test "fails when compose ran from a copy of the repository outside /vagrant" {
  compose_on_node down
  root_on "$NODE" "rm -rf /home/vagrant/copy && mkdir -p /home/vagrant/copy && cp /vagrant/compose.yaml /home/vagrant/copy/"
  root_on "$NODE" "cd /home/vagrant/copy && source /vagrant/.cache/images/ids.env && \
    PROV_DB_IMAGE=\$POSTGRES_TAG PROV_API_IMAGE=$(prov show --node "$NODE" --json | jq -r .image.tag) \
    $(compose_command "$NODE") -p prov up -d"
  fails_on compose-wiring
  root_on "$NODE" "cd /home/vagrant/copy && PROV_DB_IMAGE=x PROV_API_IMAGE=x $(compose_command "$NODE") -p prov down && rm -rf /home/vagrant/copy"
  golden up NODE="$NODE"
  passes_soon
}

# Holds the recorded image by a second name while a test moves its tag away: on the containerd
# store an image that loses its last name is gone (BuildKit's --load leaves no dangling name).
hold_recorded_image() { on_node "$NODE" docker tag "$1" prov-e2e-held:1; }

# Puts the recorded image back under its tag, lets go of it, and restarts the stack on it.
restore_recorded_image() {
  on_node "$NODE" docker tag "$1" "$(prov show --node "$NODE" --json | jq -r .image.tag)"
  on_node "$NODE" docker image rm prov-e2e-held:1
  compose_on_node up -d
  passes_soon
}

@test "fails when the image is rebuilt outside prov under the same tag" {
  tag="$(prov show --node "$NODE" --json | jq -r .image.tag)"
  id="$(prov show --node "$NODE" --json | jq -r .image.id)"
  hold_recorded_image "$id"
  root_on "$NODE" "printf 'FROM %s\nLABEL rebuilt=by-hand\n' $id | DOCKER_BUILDKIT=0 docker build -t $tag -"
  fails_on image-local
  compose_on_node up -d
  fails_on image-id
  restore_recorded_image "$id"
}

# Builds by hand, with the node's own builder and its cache, an image on top of the recorded one
# and tags it as the recorded build, as an operator patching in a hurry would. It builds twice:
# the second build takes its step from the cache the first one left.
patch_by_hand_with_cache() {
  local id=$1 tag=$2 build from context=""
  if [[ $(prov nodes --flavour "$NODE") == bookworm ]]; then
    build="DOCKER_BUILDKIT=0 docker build" from=$id
  else
    # BuildKit takes no image ID in FROM: a named context names the local image.
    build="docker buildx build --load --progress=plain" from=recorded
    context="--build-context recorded=docker-image://$tag"
  fi
  run root_on "$NODE" "mkdir -p /tmp/by-hand && cd /tmp/by-hand && \
    printf 'FROM %s\nRUN echo patched >/tmp/patched\n' $from >Dockerfile && \
    $build $context -t prov-e2e-by-hand:1 . && $build $context -t $tag . 2>&1"
}

@test "an image built by hand with the cache, under the recorded tag, is refused" {
  id="$(prov show --node "$NODE" --json | jq -r .image.id)"
  hold_recorded_image "$id"
  patch_by_hand_with_cache "$id" "$(prov show --node "$NODE" --json | jq -r .image.tag)"
  echo "$output" | tail -n 20 >&2
  [ "$status" -eq 0 ]
  # The second build did use the cache, as each builder says it.
  [[ $output == *"Using cache"* || $output == *" CACHED"* ]]
  fails_on image-local
  compose_on_node up -d
  fails_on image-id
  restore_recorded_image "$id"
  on_node "$NODE" docker image rm prov-e2e-by-hand:1
}

@test "an image made elsewhere and loaded under the recorded tag is refused" {
  id="$(prov show --node "$NODE" --json | jq -r .image.id)"
  # Made on the host from the runtime base, then carried to the node as an archive.
  # shellcheck source=/dev/null
  runtime="$(source "$REPO/.cache/images/ids.env" && echo "$RUNTIME_TAG")"
  hold_recorded_image "$id"
  printf 'FROM %s\nLABEL made=elsewhere\n' "$runtime" |
    DOCKER_BUILDKIT=0 docker build -q -t "prov-e2e-elsewhere-$NODE:1" - >/dev/null
  # Tagged on the host by node: the other flavour's suite may be making its own beside it.
  docker save "prov-e2e-elsewhere-$NODE:1" | prov exec --node "$NODE" -- sudo -n docker load
  docker image rm "prov-e2e-elsewhere-$NODE:1" >/dev/null
  on_node "$NODE" docker tag "prov-e2e-elsewhere-$NODE:1" "$(prov show --node "$NODE" --json | jq -r .image.tag)"
  on_node "$NODE" docker image rm "prov-e2e-elsewhere-$NODE:1"
  fails_on image-local
  compose_on_node up -d
  fails_on image-id
  restore_recorded_image "$id"
}

@test "the recorded image also tagged :latest is refused" {
  id="$(prov show --node "$NODE" --json | jq -r .image.id)"
  on_node "$NODE" docker tag "$id" prov-api:latest
  fails_on image-local
  assert_output_has "prov-api:latest"
  on_node "$NODE" docker image rm prov-api:latest
  passes
}

# The build imported before the latest, when it is of the same source and its image is still on
# the node (32-offline-build leaves one): its build id.
older_build() {
  local records
  mapfile -t records < <(manifests "$HOST_DIR")
  ((${#records[@]} >= 2)) &&
    [ "$(jq -r .git.tree "${records[-1]}")" = "$(jq -r .git.tree "${records[-2]}")" ] &&
    on_node "$NODE" docker image inspect "$(jq -r .image.tag "${records[-2]}")" >/dev/null 2>&1 &&
    jq -r .build_id "${records[-2]}"
}

@test "a container on an older build's tag fails, by its image or by its configuration; latest at an older build fails" {
  # An older build of the same source, or else the latest made older by a new build.
  if ! old_id="$(older_build)"; then
    old_id="$(jq -r .build_id "$DIR/latest")"
    golden demo NODE="$NODE"
  fi
  old_tag="$(jq -r .image.tag "$HOST_DIR/$old_id.json")"
  old_image="$(jq -r .image.id "$HOST_DIR/$old_id.json")"
  passes
  API_IMAGE="$old_tag" compose_on_node up -d
  if [[ $(prov nodes --flavour "$NODE") == bookworm ]]; then
    # The legacy builder stamps each build's times into its image: another image.
    fails_on image-id
  else
    # BuildKit's builds are reproducible: the same source gave the same image, under both tags;
    # the image passes, but the container names the older tag, which the recorded Compose
    # configuration does not: it was not made by the golden path.
    [ "$(prov show --node "$NODE" --json | jq -r .image.id)" = "$old_image" ]
    fails_on config:api
    assert_output_has "Config.Image"
    jq -e '.checks[] | select(.name == "image-id") | .ok' <<<"$output"
  fi
  golden up NODE="$NODE"
  passes_soon

  keep "$DIR/latest"
  jq -n --arg b "$old_id" --arg s "$(sha256sum "$DIR/$old_id.json" | cut -d' ' -f1)" \
    '{build_id: $b, manifest_sha256: $s}' >"$DIR/latest"
  fails_on latest-is-newest
  restore_kept
  passes
}

@test "an unreachable node or a node with no build cannot be checked: exit 2, never 0" {
  mv "$DIR" "$BATS_TEST_TMPDIR/records"
  run prov verify --node "$NODE"
  mv "$BATS_TEST_TMPDIR/records" "$DIR"
  [ "$status" -eq 2 ]
  assert_output_has "COULD NOT CHECK"
  assert_output_has "make demo NODE=$NODE"
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
  keep "$trap_record"
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
  keep "$latest" "$DIR/latest"
  cp "$latest" "$BATS_TEST_TMPDIR/m"
  cp "$DIR/latest" "$BATS_TEST_TMPDIR/l"
  jq --arg t $'é€😀\e[2J\e]0;owned\a\r' '.git.commit = $t | .dockerfile.path = $t
    | .compose.path = $t | .cargo_lock.path = $t | .build_log.path = $t | .network = $t
    | .image.tag = $t | .image.labels |= map_values($t) | .tool.versions |= map_values($t)
    | .base_images[].reference = $t | .build_args = {($t): $t}' \
    "$BATS_TEST_TMPDIR/m" >"$latest"
  jq --arg sha "$(sha256sum "$latest" | cut -d' ' -f1)" '.manifest_sha256 = $sha' \
    "$BATS_TEST_TMPDIR/l" >"$DIR/latest"
  # show reads the host's copy: the same text there (a node writes these fields).
  host_latest="$HOST_DIR/$(basename "$latest")"
  keep "$host_latest" "$HOST_DIR/latest"
  cp "$latest" "$host_latest"
  cp "$DIR/latest" "$HOST_DIR/latest"
  run prov verify --node "$NODE"
  verify_status=$status
  verify_output=$output
  run prov show --node "$NODE" --offline
  show_status=$status
  show_output=$output
  restore_kept
  echo "$verify_output" >&2
  [ "$verify_status" -eq 1 ]
  [ "$show_status" -eq 0 ]
  [[ $verify_output != *$'\e'* && $show_output != *$'\e'* ]]
  [[ $show_output == *'\u{1b}[2J'* ]]
  passes
}

@test "a container started by hand with the compose labels copied, as root with / mounted, fails config:api" {
  # The node's shell expands these, not this one.
  # shellcheck disable=SC2016
  root_on "$NODE" 'labels=$(docker inspect prov-api --format "{{range \$k, \$v := .Config.Labels}}--label {{\$k}}={{\$v}} {{end}}") &&
    image=$(docker inspect prov-api --format "{{.Image}}") &&
    docker rm -f prov-api >/dev/null &&
    docker run -d --name prov-api $labels --network prov_default --network-alias api -p 8080:8080 \
      -e DATABASE_URL=postgres://app:app@db:5432/app -e LISTEN_ADDR=0.0.0.0:8080 \
      --user root -v /:/host "$image" >/dev/null'
  fails_on config:api
  assert_output_has 'Config.User: expected \"app\", found \"root\"'
  assert_output_has "bind / /host"
  on_node "$NODE" docker rm -f prov-api
  golden up NODE="$NODE"
  passes_soon
}

@test "a one-off container (compose run) is a bypass" {
  compose_on_node run -d --name prov-one-off api
  fails_on no-bypass
  assert_output_has "prov-one-off"
  on_node "$NODE" docker rm -f prov-one-off
  passes
}

@test "a database recreated from another image fails config:db, naming the image" {
  db_image="$(on_node "$NODE" docker inspect prov-db --format '{{.Image}}')"
  root_on "$NODE" "printf 'FROM %s\nLABEL swapped=yes\n' $db_image | DOCKER_BUILDKIT=0 docker build -q -t prov-postgres:swapped - >/dev/null"
  DB_IMAGE=prov-postgres:swapped compose_on_node up -d db
  fails_on config:db
  assert_output_has "Image: expected \\\"$db_image\\\""
  golden up NODE="$NODE"
  on_node "$NODE" docker image rm prov-postgres:swapped
  passes_soon
}

@test "an api restart (same container, same image) is not a bypass: verify waits for it to settle" {
  on_node "$NODE" docker restart prov-api
  passes
}

@test "an unreachable node (frozen whole) cannot be checked: exit 2 within the --timeout bound" {
  freeze_node "$NODE"
  start=$SECONDS
  run timeout 60 "$PROV" --repo "$REPO" verify --node "$NODE" --timeout 5
  took=$((SECONDS - start))
  thaw_node "$NODE"
  echo "$output (took ${took}s)" >&2
  [ "$status" -eq 2 ]
  assert_output_has "did not answer"
  [ "$took" -le 6 ]
  passes_soon
}

@test "a node whose packets are dropped cannot be checked: exit 2 within the --timeout bound" {
  # Where the node's ssh is reached (the docker provider forwards a port on 127.0.0.1).
  config="$(prov state-dir)/ssh/$NODE.config"
  ip="$(awk '$1 == "HostName" { print $2 }' "$config")"
  port="$(awk '$1 == "Port" { print $2 }' "$config")"
  [ -n "$ip" ]
  [ -n "$port" ]
  iptables -I OUTPUT -d "$ip" -p tcp --dport "$port" -m comment --comment "prov-e2e-$NODE" -j DROP
  start=$SECONDS
  run timeout 60 "$PROV" --repo "$REPO" verify --node "$NODE" --timeout 5
  took=$((SECONDS - start))
  drop_no_more
  echo "$output (took ${took}s)" >&2
  [ "$status" -eq 2 ]
  assert_output_has "did not answer in time"
  [ "$took" -le 6 ]
  passes_soon
}
