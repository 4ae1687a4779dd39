#!/usr/bin/env bats
# prov build on a real node: the manifest agrees with the engine, the log digest is honest, and
# every bad input fails clearly without losing anything.

load ../helpers

setup_file() { stack_ready "$NODE"; }

DIR="$(node_dir "$NODE")"

setup() { prov sync --node "$NODE"; }

teardown() { restore_kept; }

@test "the manifest has every documented key, and the engine agrees with it" {
  m="$(prov show --node "$NODE" --json)"
  for key in schema build_id node started_at finished_at status git.commit git.tree git.dirty \
    dockerfile.path dockerfile.sha256 compose.config_sha256 build_log.path build_log.sha256 \
    build_log.bytes image.id image.tag image.labels no_cache network base_images \
    prev_manifest_sha256 tool.versions policy.sha256 context.sha256 context.files \
    context.derived compose.services.api compose.services.db.image_id; do
    jq -e --arg k "$key" 'getpath($k | split(".")) | . != null or ($k == "prev_manifest_sha256")' \
      <<<"$m" >/dev/null || { echo "missing $key"; return 1; }
  done
  [ "$(jq -r .no_cache <<<"$m")" = true ]
  [ "$(jq -r .network <<<"$m")" = none ]
  [ "$(jq -r .status <<<"$m")" = success ]
  [ "$(jq -r '.base_images | length' <<<"$m")" -eq 2 ]
  [[ "$(jq -r .image.tag <<<"$m")" != *latest* ]]

  id="$(jq -r .image.id <<<"$m")"
  inspect="$(on_node "$NODE" docker image inspect "$id")"
  [ "$(jq -r '.[0].Id' <<<"$inspect")" = "$id" ]
  diff <(jq -S '.[0].Config.Labels' <<<"$inspect") <(jq -S .image.labels <<<"$m")
  # The labels name the inputs only: no node, no build id, the source's date for a time.
  jq -e '.[0].Config.Labels | keys | map(select(test("build.id|build.node"))) == []' <<<"$inspect"
  [ "$(jq -r '.[0].Config.Labels["org.opencontainers.image.revision"]' <<<"$inspect")" = "$(git -C "$REPO" rev-parse HEAD)" ]
  diff <(jq -c '.[0].RootFS.Layers' <<<"$inspect") <(jq -c .image.layers <<<"$m")

  # The image's identity in each sense, as the node's store has it.
  if [[ $(prov nodes --flavour "$NODE") == bookworm ]]; then
    [ "$(jq -r .image.store <<<"$m")" = classic ]
    [ "$(jq -r .image.id_kind <<<"$m")" = config ]
    [ "$(jq -r .image.config_digest <<<"$m")" = "$id" ]
    [ "$(jq -r .image.manifest_digest <<<"$m")" = null ]
  else
    # The image alone, its ID its manifest's digest; BuildKit's provenance is not kept unless
    # asked for (32-offline-build asks).
    [ "$(jq -r .image.store <<<"$m")" = containerd ]
    [ "$(jq -r .image.id_kind <<<"$m")" = manifest ]
    [ "$(jq -r .image.manifest_digest <<<"$m")" = "$id" ]
    [ "$(jq .buildkit_provenance <<<"$m")" = null ]
    [ "$(root_on "$NODE" "ctr --address /run/docker/containerd/containerd.sock -n moby \
      content get $id" | jq -r .config.digest)" = "$(jq -r .image.config_digest <<<"$m")" ]
    # Every timestamp is the source's date: a clean tree's commit's time, unless the bases are
    # newer (made after the commit, as on a fresh machine): then theirs.
    date="$(jq -r .source_date.epoch <<<"$m")"
    [ "$(jq -r '.[0].Created | sub("\\.[0-9]+"; "") | fromdateiso8601' <<<"$inspect")" = "$date" ]
    if [ "$(jq -r .git.dirty <<<"$m")" = false ]; then
      case "$(jq -r .source_date.from <<<"$m")" in
        commit) [ "$date" = "$(git -C "$REPO" log -1 --format=%ct)" ] ;;
        bases) [ "$date" -gt "$(git -C "$REPO" log -1 --format=%ct)" ] ;;
        *) return 1 ;;
      esac
    fi
  fi
}

@test "the build log's sha256 and size equal the manifest's" {
  m="$(prov show --node "$NODE" --json)"
  log="$REPO/$(jq -r .build_log.path <<<"$m")"
  [ "$(sha256sum "$log" | cut -d' ' -f1)" = "$(jq -r .build_log.sha256 <<<"$m")" ]
  [ "$(stat -c %s "$log")" -eq "$(jq -r .build_log.bytes <<<"$m")" ]
  grep -q -- "--no-cache --network=none" "$log"
}

@test "the chain links each manifest to the previous one" {
  m="$(prov show --node "$NODE" --json)"
  mapfile -t files < <(manifests "$DIR")
  [ "$(basename "${files[-1]}" .json)" = "$(jq -r .build_id <<<"$m")" ]
  prev="$(jq -r .prev_manifest_sha256 <<<"$m")"
  if ((${#files[@]} == 1)); then
    [ "$prev" = null ]
  else
    [ "$prev" = "$(sha256sum "${files[-2]}" | cut -d' ' -f1)" ]
  fi
}

@test "a missing Dockerfile fails clearly and changes nothing" {
  before="$(snapshot)"
  build_on_node "--dockerfile api/NoSuchDockerfile"
  [ "$status" -ne 0 ]
  assert_output_has "there is no /vagrant/api/NoSuchDockerfile"
  [ "$(snapshot)" = "$before" ]
}

@test "a build argument the build policy does not allow is refused before anything is built" {
  before="$(snapshot)"
  build_on_node "--build-arg API_FEATURES=dishonest-ready"
  [ "$status" -ne 0 ]
  assert_output_has "the build policy build-policy.json refuses this build"
  assert_output_has "API_FEATURES=\"dishonest-ready\" is not allowed"
  [ "$(snapshot)" = "$before" ]
}

@test "a context or Dockerfile outside /vagrant is refused, naming it" {
  before="$(snapshot)"
  build_on_node "--context /tmp"
  [ "$status" -ne 0 ]
  assert_output_has "--context /tmp resolves to /tmp, outside /vagrant"
  build_on_node "--dockerfile ../etc/hostname"
  [ "$status" -ne 0 ]
  assert_output_has "--dockerfile ../etc/hostname resolves to /etc/hostname, outside /vagrant"
  [ "$(snapshot)" = "$before" ]
}

@test "a Docker engine that does not answer fails clearly and changes nothing" {
  before="$(snapshot)"
  build_on_node "" "export DOCKER_HOST=unix:///tmp/no-engine.sock"
  [ "$status" -ne 0 ]
  assert_output_has "Docker engine on this node does not answer"
  [ "$(snapshot)" = "$before" ]
}

@test "an unwritable provenance folder fails clearly and changes nothing" {
  before="$(snapshot)"
  run root_on "$NODE" "unshare --mount --propagation private bash -c '\
    mount --bind /vagrant/provenance /vagrant/provenance && \
    mount -o remount,bind,ro /vagrant/provenance && cd /vagrant && \
    target/release/prov build --node $NODE'"
  [ "$status" -ne 0 ]
  assert_output_has "must be writable"
  [ "$(snapshot)" = "$before" ]
}

@test "a corrupt previous manifest fails clearly and changes nothing else" {
  before="$(snapshot)"
  # Written on the node, after build_on_node refreshed its export (which would remove it).
  bogus="provenance/$NODE/29991231-235959-999-ffff.json"
  build_on_node "" "echo '{ \"schema\": \"prov.build-manifest/v1\", \"truncated' >$bogus"
  rm -f "$DIR/$(basename "$bogus")"
  [ "$status" -ne 0 ]
  assert_output_has "not a valid manifest"
  [ "$(snapshot)" = "$before" ]
}

@test "a second build on the same node waits for nobody: it fails on the lock" {
  before="$(snapshot)"
  # A holder keeps the lock for a few seconds; the build starts once it is held (polled).
  build_on_node "" "(flock provenance/$NODE/.lock sleep 6 &) && \
    until ! flock -n provenance/$NODE/.lock true; do sleep 0.1; done"
  [ "$status" -ne 0 ]
  assert_output_has "another build holds the lock"
  [ "$(snapshot)" = "$before" ]
}
