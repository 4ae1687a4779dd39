#!/usr/bin/env bash
# Fails on a bats assertion that cannot fail: bats stops a test at the first command that fails,
# but a command on the left of `&&` does not stop it (errexit ignores it), so `[ a ] && [ b ]`
# fails its test only when it is the test's last line. Assertions are written one per line.
# And on a bare `wait`: under BATS_TEST_TIMEOUT (make test sets it) bats' watchdog is a child of
# the test, and a `wait` with no ID waits for it too, until it fires. Wait for the jobs' IDs.
#   scripts/host/bats-lint.sh [FILE...]     (default: every bats file in git)
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

if (($#)); then
  files=("$@")
else
  mapfile -t files < <(cd "$PROV_REPO" && git ls-files '*.bats' | sed "s|^|$PROV_REPO/|")
fi
# A test (`[ ]`, `[[ ]]`) joined to the next one with `&&`.
if found=$(grep -nHE '\]\]?[[:space:]]*&&[[:space:]]*\[\[?[[:space:]]' "${files[@]}"); then
  die "assertions joined with && in bats files (all but the last are never checked: write one per line):
$found"
fi
if found=$(grep -nHE '(^|[;&|(]|then|do)[[:space:]]*wait[[:space:]]*($|[;&|)#])' "${files[@]}"); then
  die "a bare wait in bats files (it waits for bats' timeout watchdog too, and hangs until it fires: wait for the background jobs' IDs, \$!):
$found"
fi
log "no bats assertion joined with &&, no bare wait: ${#files[@]} file(s)"
