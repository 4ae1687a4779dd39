#!/usr/bin/env bats
# One build by hand, with the node's network gone, checked from each side in turn: it works
# offline; its record rewritten before the host takes it is refused by name; as built, the host
# imports it and it names its bases by ID; run unattested it fails verify, attested it passes.
# On a BuildKit node it keeps BuildKit's own provenance too (`--buildkit-provenance`), which the
# golden path's builds do not: the same image all the same, and the side file checked on import.
# The tests share that build (a build costs a minute or more) and run in this order; no prov sync
# comes between them, since a sync puts the node's records back to the host's, which would drop
# the build before its import.

load ../helpers

OUT="$BATS_FILE_TMPDIR"

setup_file() {
  stack_ready "$NODE"
  prov sync --node "$NODE"
  # Every packet the node sends is dropped, but for its loopback and its answers on connections
  # made to it (the host's ssh): no registry, no mirror, no name server is reachable.
  root_on "$NODE" "iptables -I OUTPUT 1 -j DROP && \
    iptables -I OUTPUT 1 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT && \
    iptables -I OUTPUT 1 -o lo -j ACCEPT"
  local offline=0 built=0 flags=""
  [[ $(prov nodes --flavour "$NODE") == bookworm ]] || flags=--buildkit-provenance
  # The golden path's build, which this one (of the same tree and bases) is compared with.
  jq -r .build_id "$REPO/provenance/$NODE/latest" >"$OUT/golden"
  root_on "$NODE" "curl -s --max-time 5 -o /dev/null http://deb.debian.org/" || offline=$?
  build_by_hand "$NODE" $flags >"$OUT/build.log" 2>&1 || built=$?
  root_on "$NODE" "iptables -D OUTPUT -o lo -j ACCEPT && \
    iptables -D OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT && \
    iptables -D OUTPUT -j DROP"
  echo "$offline $built" >"$OUT/statuses"
}

# Whatever failed, the node is left on the golden path.
teardown_file() {
  root_on "$NODE" "rm -f /tmp/prov-e2e-record.orig /tmp/prov-e2e-latest.orig /tmp/prov-e2e-log.orig \
    /tmp/prov-e2e-buildkit.orig" ||
    true
  stack_ready "$NODE"
}

# The build's id, as the node's latest names it.
newest_on_node() { root_on "$NODE" "jq -r .build_id /vagrant/provenance/$NODE/latest"; }

# Rewrites the node's newest record with the jq filter given, and re-pins latest to it, as the
# node's root would.
rewrite_newest() {
  root_on "$NODE" "set -e; cd /vagrant/provenance/$NODE; id=\$(jq -r .build_id latest)
    jq '$1' \$id.json >/tmp/prov-e2e-record && cat /tmp/prov-e2e-record >\$id.json
    jq --arg sha \$(sha256sum <\$id.json | cut -d' ' -f1) '.manifest_sha256 = \$sha' latest \
      >/tmp/prov-e2e-latest && cat /tmp/prov-e2e-latest >latest"
}

@test "a build with the node's network gone still works" {
  read -r offline built <"$OUT/statuses"
  tail -n 20 "$OUT/build.log"
  # The node could not reach the outside, and built all the same.
  [ "$offline" -ne 0 ]
  [ "$built" -eq 0 ]
}

@test "a record rewritten on the node between the build and the import is refused, naming the field; its log made a FIFO, never opened" {
  id=$(newest_on_node)
  root_on "$NODE" "cd /vagrant/provenance/$NODE && cp $id.json /tmp/prov-e2e-record.orig && \
    cp latest /tmp/prov-e2e-latest.orig && cp $id.log /tmp/prov-e2e-log.orig"
  # Each is refused, naming what disagrees (a tree changed is named first by the SBOM's tree).
  for case in 'tree|.git.tree = "0000000000000000000000000000000000000000"' \
    "base_images.RUNTIME_IMAGE|.base_images[1].config_digest = \"sha256:$(printf '%064d' 0)\"" \
    'started_at|.started_at = "2001-01-01T00:00:00Z"' \
    "log has sha256|.build_log.sha256 = \"$(printf '%064d' 0)\""; do
    root_on "$NODE" "cd /vagrant/provenance/$NODE && cp /tmp/prov-e2e-record.orig $id.json && \
      cp /tmp/prov-e2e-latest.orig latest"
    rewrite_newest "${case#*|}"
    run prov import --node "$NODE"
    echo "${case%%|*}: $output" >&2
    [ "$status" -eq 2 ]
    assert_output_has "${case%%|*}"
  done
  # The record as built, its log made a FIFO: refused by name within the import's bound, never
  # opened (a FIFO's reader would wait forever).
  root_on "$NODE" "cd /vagrant/provenance/$NODE && cp /tmp/prov-e2e-record.orig $id.json && \
    cp /tmp/prov-e2e-latest.orig latest && rm $id.log && mkfifo $id.log"
  start=$SECONDS
  run timeout 300 "$PROV" --repo "$REPO" import --node "$NODE"
  took=$((SECONDS - start))
  echo "FIFO: $output in ${took}s" >&2
  [ "$status" -eq 2 ]
  [ "$took" -le 30 ]
  assert_output_has "$id.log is not a plain file on the node"
  # The build as it was made, for the tests after this one.
  root_on "$NODE" "cd /vagrant/provenance/$NODE && rm $id.log && cp /tmp/prov-e2e-log.orig $id.log"
  [[ $(prov nodes --flavour "$NODE") != bookworm ]] || return 0
  # BuildKit's provenance, kept beside the record and bound to it by digest: gone, or changed,
  # the record is refused.
  root_on "$NODE" "cd /vagrant/provenance/$NODE && cp $id.buildkit.json /tmp/prov-e2e-buildkit.orig &&     rm $id.buildkit.json"
  run prov import --node "$NODE"
  echo "BuildKit's provenance gone: $output" >&2
  [ "$status" -eq 2 ]
  assert_output_has "build $id's BuildKit provenance is missing"
  root_on "$NODE" "cd /vagrant/provenance/$NODE &&     jq '.predicate.builder.id = \"forged\"' /tmp/prov-e2e-buildkit.orig >$id.buildkit.json"
  run prov import --node "$NODE"
  echo "BuildKit's provenance changed: $output" >&2
  [ "$status" -eq 2 ]
  assert_output_has "build $id's BuildKit provenance has sha256"
  root_on "$NODE" "cd /vagrant/provenance/$NODE && cp /tmp/prov-e2e-buildkit.orig $id.buildkit.json"
}

@test "the build as made is imported, and its record names the bases by ID" {
  id=$(newest_on_node)
  prov import --node "$NODE"
  record="$REPO/provenance/$NODE/$id.json"
  jq -e '(.base_images | length) == 2
    and all(.base_images[]; .id | test("^sha256:[0-9a-f]{64}$"))' "$record" >/dev/null
  golden="$REPO/provenance/$NODE/$(cat "$OUT/golden").json"
  [ "$(jq -r .git.tree "$record")" = "$(jq -r .git.tree "$golden")" ]
  # The legacy builder dates the image's history by the build, its files not: the layers are the
  # golden path's build's, byte for byte, so the host listed them once.
  if [[ $(prov nodes --flavour "$NODE") == bookworm ]]; then
    [ "$(jq -c .image.layers "$record")" = "$(jq -c .image.layers "$golden")" ]
    [ "$(jq -r .image.id "$record")" != "$(jq -r .image.id "$golden")" ]
    return 0
  fi
  # BuildKit's provenance came in with it (the golden path's build kept none), and the image is
  # the golden path's: the same ID, written through the archive instead of into the store.
  jq -e .buildkit_provenance.sha256 "$record" >/dev/null
  [ -s "$REPO/provenance/$NODE/$id.buildkit.json" ]
  [ "$(jq .buildkit_provenance "$golden")" = null ]
  [ "$(jq -r .image.id "$record")" = "$(jq -r .image.id "$golden")" ]
}

@test "a later build the host did not attest fails verify; attested, it passes" {
  root_on "$NODE" "cd /vagrant && scripts/node/up.sh"
  fails_on attestation
  assert_output_has "no attestation at"
  prov attest --node "$NODE"
  eventually 60 "'$PROV' --repo '$REPO' verify --node $NODE >/dev/null"
}
