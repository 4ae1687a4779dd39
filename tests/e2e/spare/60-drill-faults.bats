#!/usr/bin/env bats
# The failure drill with each raw-TCP fallback, and against apis that lie or do not recover: the
# drill must fail at the right step, and still bring the database back. The fallbacks are the
# host's.

load ../helpers

# The lying apis were built under the test policy: the node runs a build of the policy in force
# again, whatever the tests did. (Once, at the end: each lying api's test builds its own, so a
# rebuild between them would be thrown away.)
teardown_file() { stack_ready "$NODE"; }

setup_file() { stack_ready "$NODE"; }

# Runs the drill on a host where nc does not run: in a private mount namespace its binary is
# covered by /dev/null, so it cannot be executed.
drill_without_nc() {
  local on=$1
  shift
  run unshare --mount --propagation private bash -c \
    "mount --bind /dev/null \"\$(readlink -f \"\$(command -v nc)\")\" && ! nc -h 2>/dev/null && \
     cd '$REPO' && env NODE=$on $* scripts/drills/db-ready.sh"
  echo "$output" | tail -n 60
}

# The test policy allows the api's test-only features; the drill's verify steps judge under it.
TEST_POLICY=tests/fixtures/test-policy.json

# Builds a test-only variant of the api through prov build, under the test policy, and starts it
# the golden way. Under the policy in force it does not pass verify; under the test policy it does.
build_variant() {
  build_by_hand "$1" --policy "$TEST_POLICY" --build-arg "API_FEATURES=$2" >/dev/null
  root_on "$1" "cd /vagrant && scripts/node/up.sh"
  # The host attests what it built, as the golden path does.
  prov attest --node "$1" >/dev/null
  run prov verify --node "$1" --json
  [ "$status" -eq 1 ]
  jq -e '[.checks[] | select(.ok | not) | .name] == ["build-policy"]' <<<"$output" >/dev/null
  PROV_POLICY=$TEST_POLICY prov verify --node "$1"
}

@test "without nc on the PATH the drill uses bash's /dev/tcp" {
  drill_without_nc "$NODE"
  [ "$status" -eq 0 ]
  assert_output_has "raw TCP tool: devtcp"
  assert_output_has "passed"
}

@test "with neither nc nor /dev/tcp the drill uses curl" {
  # nc is masked for real; DRILL_TCP_TOOLS leaves /dev/tcp out, as on a bash built without it.
  drill_without_nc "$NODE" DRILL_TCP_TOOLS=\"nc curl\"
  [ "$status" -eq 0 ]
  assert_output_has "raw TCP tool: curl"
  assert_output_has "passed"
}

@test "against an api whose /ready always says 200, the drill fails at step 4 and restores the db" {
  build_variant "$NODE" dishonest-ready
  PROV_POLICY=$TEST_POLICY drill "$NODE"
  [ "$status" -ne 0 ]
  assert_output_has "failed at step 4: /health is 200 and /ready is not 200"
  [ "$(jq -r .deviated "$(latest_record "$NODE")")" = true ]
  [ "$(container_running "$NODE" prov-db)" = true ]
}

@test "against an api that never reconnects, the drill fails at the recovery step" {
  build_variant "$NODE" no-reconnect
  PROV_POLICY=$TEST_POLICY DRILL_RECOVERY_TIMEOUT=8 drill "$NODE"
  [ "$status" -ne 0 ]
  assert_output_has "failed at step 7: /ready returns to 200"
  [ "$(container_running "$NODE" prov-db)" = true ]
  golden demo NODE="$NODE"
  golden verify NODE="$NODE"
}
