#!/usr/bin/env bash
# make test: lint, unit tests (with a real PostgreSQL), then the end-to-end suite on real nodes.
#   scripts/host/test.sh [all|lint|unit|e2e]
set -euo pipefail
# shellcheck source=scripts/lib/host.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/host.sh"

lint() {
  ensure_tools shellcheck:shellcheck
  log "shellcheck"
  (cd "$PROV_REPO" && git ls-files -z '*.sh' '*.bash' '*.bats' .ci/run | xargs -0 shellcheck -x)
  log "cargo fmt --check, cargo clippy"
  (cd "$PROV_REPO" && cargo fmt --all -- --check && cargo clippy --locked --workspace --all-targets --quiet -- -D warnings)
}

unit() {
  ensure_tools /usr/lib/postgresql/15/bin/initdb:postgresql-15
  log "cargo test (prov, and api against a real PostgreSQL)"
  (cd "$PROV_REPO" && cargo test --locked --workspace)
}

e2e() {
  ensure_tools bats:bats
  ensure_host
  build_prov
  ensure_vendor
  ensure_bases
  log "end-to-end suite on real nodes (tests/e2e)"
  bats --timing "$PROV_REPO/tests/e2e"
}

case "${1:-all}" in
  lint) lint ;;
  unit) unit ;;
  e2e) e2e ;;
  all) lint && unit && e2e ;;
  *) die "usage: scripts/host/test.sh [all|lint|unit|e2e]" ;;
esac
