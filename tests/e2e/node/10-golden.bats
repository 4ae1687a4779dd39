#!/usr/bin/env bats
# The golden path on the node: demo-reviewer, data survival, down and clean.

load ../helpers

# A test that stopped half way leaves the node on the golden path again.
teardown() {
  [[ -n ${BATS_TEST_COMPLETED:-} ]] || golden demo NODE="$NODE" >/dev/null 2>&1 || true
}

@test "make demo-reviewer passes, with the rebuild visible" {
  run golden demo-reviewer NODE="$NODE"
  echo "$output" | tail -n 40
  [ "$status" -eq 0 ]
  assert_output_has "removing the stack's containers"
  assert_rebuild_visible "$NODE"
  assert_output_has "node $NODE: OK"
  # Its verify left a signed summary: PASSED, of the running image, at an honest SLSA level.
  assert_output_has "verification summary of node $NODE (PASSED)"
  run assert_vsa "$NODE" PASSED
  echo "$output"
  [ "$status" -eq 0 ]
  assert_output_has "SLSA_BUILD_LEVEL_1,PROV_RUNTIME_VERIFIED prov://$NODE/prov/api"
  assert_output_has "sha256:$(prov show --node "$NODE" --json | jq -r '.image.id | ltrimstr("sha256:")')"
  run prov log --node "$NODE"
  assert_output_has "PASSED (SLSA_BUILD_LEVEL_1, PROV_RUNTIME_VERIFIED)"
}

@test "data survives make clean then make demo; make up refuses after clean" {
  note="survivor-$RANDOM"
  run curl -sS -X POST -H 'content-type: application/json' -d "{\"text\":\"$note\"}" \
    "http://127.0.0.1:$(prov nodes --port "$NODE")/notes"
  [ "$status" -eq 0 ]
  assert_output_has "$note"

  golden clean NODE="$NODE"
  run on_node "$NODE" docker ps --all --quiet --filter label=com.docker.compose.project=prov
  [ -z "$output" ]
  run on_node "$NODE" docker image ls --quiet prov-api
  [ -z "$output" ]
  on_node "$NODE" docker volume inspect prov_dbdata >/dev/null

  # Nothing to start from now: make up refuses and names make demo.
  run golden up NODE="$NODE"
  [ "$status" -ne 0 ]
  assert_output_has "run make demo"

  golden demo NODE="$NODE"
  run http_body "$NODE" /notes
  assert_output_has "$note"
  golden verify NODE="$NODE"
}

@test "make down stops the containers and keeps images and volumes; make up restarts them" {
  image="$(prov show --node "$NODE" --json | jq -r .image.id)"
  golden down NODE="$NODE"
  [ "$(container_running "$NODE" prov-api)" = false ]
  [ "$(container_running "$NODE" prov-db)" = false ]
  run on_node "$NODE" docker ps --all --quiet --filter label=com.docker.compose.project=prov
  [ "$(wc -l <<<"$output")" -eq 2 ]
  on_node "$NODE" docker image inspect "$image" >/dev/null
  on_node "$NODE" docker volume inspect prov_dbdata >/dev/null
  # make reports any failed recipe as 2; prov verify itself says 1: checked, and failing.
  run golden verify NODE="$NODE"
  [ "$status" -ne 0 ]
  run prov verify --node "$NODE"
  [ "$status" -eq 1 ]
  assert_output_has "FAIL service:api"

  golden up NODE="$NODE"
  golden verify NODE="$NODE"
}
