#!/usr/bin/env bats
# The failure drill on the node: the database goes down and comes back, the api is not restarted.
# (spare/60-drill-faults.bats: each raw-TCP fallback, and apis that lie or do not recover.)

load ../helpers

# The drill starts the database again itself (its trap); a test that stopped before leaves the
# stack up all the same.
teardown() { golden up NODE="$NODE" >/dev/null 2>&1 || true; }

setup_file() { stack_ready "$NODE"; }

@test "the drill passes, using nc, and keeps a record" {
  command -v nc
  drill "$NODE"
  [ "$status" -eq 0 ]
  assert_output_has "raw TCP tool: nc"
  assert_output_has "drill db-ready on $NODE: passed"
  record="$(latest_record "$NODE")"
  [ "$(jq -r .deviated "$record")" = false ]
  [ "$(jq -r '.steps | length' "$record")" -eq 9 ]
  [ "$(jq -c .before.api "$record")" = "$(jq -c .after.api "$record")" ]
}
