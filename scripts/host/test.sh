#!/usr/bin/env bash
# make test: lint, unit tests (with a real PostgreSQL), then the end-to-end suite on real nodes.
#   scripts/host/test.sh [all|lint|unit|e2e]
set -euo pipefail
# shellcheck source=scripts/lib/host.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/host.sh"

lint() {
  log "shellcheck"
  (cd "$PROV_REPO" && git ls-files -z '*.sh' '*.bash' '*.bats' .ci/run | xargs -0 shellcheck -x)
  log "every command the scripts run is declared in scripts/lib/tools.list"
  "$PROV_REPO/scripts/host/tools-lint.sh"
  bats "$PROV_REPO/tests/scripts"
  log "cargo fmt --check, cargo clippy"
  (cd "$PROV_REPO" && cargo fmt --all -- --check && cargo clippy --locked --workspace --all-targets --quiet -- -D warnings)
}

unit() {
  # The build-context tests compare with what a real docker build receives; the vendoring
  # proof is also checked on the project's own vendored crates.
  ensure_engine
  build_prov
  ensure_vendor
  log "cargo test (prov, and api against a real PostgreSQL)"
  (cd "$PROV_REPO" && cargo test --locked --workspace)
  attestation
}

# Our attestation, checked by libraries we did not write (PyPI, in a virtualenv made here):
# a fresh envelope must pass, a tampered one must be refused.
attestation() {
  local venv="$PROV_REPO/.cache/venv-attest" scratch envelope
  if [[ ! -x $venv/bin/python ]]; then
    log "making the virtualenv for the independent attestation check"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "securesystemslib[crypto]" in-toto-attestation
  fi
  build_prov
  scratch="$(mktemp -d)"
  cp -a "$PROV_REPO/tests/fixtures/repo/." "$scratch"
  "$PROV" --repo "$scratch" key init >/dev/null
  envelope="$("$PROV" --repo "$scratch" attest --node main)"
  log "independent check of a prov attestation (securesystemslib, in-toto-attestation)"
  "$venv/bin/python" "$PROV_REPO/tests/attest/independent_check.py" "$envelope" \
    "$scratch/.cache/keys/attest.pub.json"
  jq '.payload |= (@base64d | sub("\"noCache\":true"; "\"noCache\":false") | @base64)' \
    "$envelope" >"$scratch/tampered.json"
  if "$venv/bin/python" "$PROV_REPO/tests/attest/independent_check.py" "$scratch/tampered.json" \
    "$scratch/.cache/keys/attest.pub.json" 2>/dev/null; then
    die "the independent check accepted a tampered envelope"
  fi
  log "independent check refused the tampered envelope, as it must"
  rm -rf "$scratch"
}

e2e() {
  ensure_host
  build_prov
  ensure_vendor
  ensure_bases
  log "end-to-end suite on real nodes (tests/e2e)"
  bats --timing "$PROV_REPO/tests/e2e"
}

# Everything make test needs, declared in scripts/lib/tools.list, installed once up front.
ensure_tools host test
case "${1:-all}" in
  lint) lint ;;
  unit) unit ;;
  e2e) e2e ;;
  all) lint && unit && e2e ;;
  *) die "usage: scripts/host/test.sh [all|lint|unit|e2e]" ;;
esac
