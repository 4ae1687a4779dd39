# shellcheck shell=bash
# Node-side helpers. Sourcing this file enforces the execution context: the calling script
# stops unless it runs inside a node, from /vagrant, with the whole repository mounted there.
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib/node.sh"

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# prov is built on the host by make and copied into the node's export with the checkout.
PROV_BIN=/vagrant/target/release/prov
IMAGE_IDS=/vagrant/.cache/images/ids.env

# The one rule lives in prov (`prov guard`); this only hands it the script being run.
require_node_context() {
  local script
  script="$(readlink -f "${BASH_SOURCE[-1]}")"
  if [[ ! -x $PROV_BIN ]]; then
    die "refusing to run ${script}: ${PROV_BIN} is missing. Operational scripts run only inside" \
      "a node with the whole repository mounted at /vagrant; run them from the host with make" \
      "(e.g. make demo NODE=<name>), which builds prov first."
  fi
  "$PROV_BIN" guard --script "$script" || exit 1
}
require_node_context
# The stack's names (project, services, containers, labels), defined once, in prov.
eval "$("$PROV_BIN" stack)"
COMPOSE_FILE=/vagrant/$PROV_COMPOSE_FILE

node_name() { hostname; }

# Docker Compose v2 (plugin) when present, else v1; always the project's file and name.
compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -p "$PROV_PROJECT" -f "$COMPOSE_FILE" "$@"
  else
    docker-compose -p "$PROV_PROJECT" -f "$COMPOSE_FILE" "$@"
  fi
}

# Reads the base image references made by `make bases`; enough for Compose to read its file
# (down and clean need no base in the engine: a node that never built has none).
read_bases() {
  [[ -r $IMAGE_IDS ]] || die "no base images recorded ($IMAGE_IDS): run make bases on the host"
  # shellcheck source=/dev/null
  source "$IMAGE_IDS"
  export PROV_DB_IMAGE=$POSTGRES_TAG
}

# Reads the base image references and checks that this node's engine holds them (the host loads
# them into each node when it boots it).
load_bases() {
  read_bases
  local tag
  for tag in "$BUILDER_TAG" "$RUNTIME_TAG" "$POSTGRES_TAG"; do
    docker image inspect "$tag" >/dev/null 2>&1 ||
      die "base image $tag is not in $(node_name)'s engine: run make demo NODE=$(node_name) on the host, which loads it"
  done
}

# The api image of the node's latest recorded build; refuses when there is none.
latest_api_image() {
  local tag
  tag="$("$PROV_BIN" show --node "$(node_name)" --json | jq -r '.image.tag')" ||
    die "no usable build recorded for $(node_name): run make demo NODE=$(node_name)"
  docker image inspect "$tag" >/dev/null 2>&1 ||
    die "image $tag of the latest build is not on $(node_name) (cleaned?): run make demo NODE=$(node_name)"
  printf '%s\n' "$tag"
}

# Waits, with a bound, until a service's container reports healthy.
wait_healthy() {
  local service=$1 id status deadline=$((SECONDS + 90))
  id="$(compose ps -q "$service")"
  [[ -n $id ]] || die "compose started no $service container"
  while ((SECONDS < deadline)); do
    status="$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")"
    if [[ $status == healthy ]]; then
      log "$service is healthy"
      return 0
    fi
    sleep 1
  done
  compose logs --tail 50 "$service" >&2
  die "$service did not become healthy within 90 s (last status: ${status:-none})"
}

# Starts the stack on the node's latest recorded build and waits until both services are healthy
# (the api does not wait for the database, and verify expects both).
start_stack() {
  PROV_API_IMAGE="$(latest_api_image)"
  export PROV_API_IMAGE
  log "starting the stack on $(node_name) with $PROV_API_IMAGE"
  compose up -d --no-build
  wait_healthy db
  wait_healthy api
}
