#!/usr/bin/env bats
# The benchmark suite runs (smoke mode: one run per command) and reports every figure.

load ../helpers

# The bench puts every stack back itself; a run that stopped half way may not have.
teardown() { stack_ready main worker1 worker2 2>/dev/null || true; }

setup_file() { stack_ready main worker1 worker2; }

@test "make bench BENCH_MODE=smoke runs every benchmark and writes every row with its figures, goal and verdict" {
  run golden bench BENCH_MODE=smoke
  echo "$output" | tail -n 24
  [ "$status" -eq 0 ]
  results="$REPO/.cache/bench/results.json"
  [ "$(jq -r .mode "$results")" = smoke ]
  for name in verify-vs-floor-bookworm verify-vs-floor-trixie verify-vs-round-trip-bookworm \
    verify-vs-round-trip-trixie verify-all-vs-one \
    ssh-all-nodes-vs-one tree-hash-20k log-digest-1gib build-bookworm build-trixie \
    reproduce-vs-plain-buildx; do
    jq -e --arg n "$name" '.results[] | select(.name == $n)
      | ([.a_median_s, .b_median_s, .ratio_median] | map(type)) == ["number", "number", "number"]
      and has("goal") and has("met")' "$results" >/dev/null || {
      echo "row $name is missing or not numeric" >&2
      return 1
    }
  done
  jq -e '.results[] | select(.name == "verify-all-normalized")
    | (.ratio_median | type) == "number" and .goal == 1.05 and (.met | type) == "boolean"' \
    "$results" >/dev/null
  # verify with a hundred more records (smoke mode), made on worker2 and imported: its wall time,
  # the host's CPU and the bytes moved, each beside the same before.
  jq -e '.results[] | select(.name == "verify-history")
    | ([.a_median_s, .b_median_s, .ratio_median, .cpu_a_s, .cpu_b_s, .bytes_a, .bytes_b]
      | map(type) | all(. == "number")) and .records_a >= .records_b + 100
      and .goal == 1.1 and .goal_abs_s == 0.1 and (.met | type) == "boolean"' "$results" >/dev/null
  jq -e '.results[] | select(.name == "log-digest-peak-memory") | (.a_peak_mib | type) == "number"' \
    "$results" >/dev/null
  for flavour in bookworm trixie; do
    jq -e --arg n "build-$flavour-own-time" '.results[] | select(.name == $n)
      | (.own_share_median | type) == "number" and .goal == 0.01 and (.met | type) == "boolean"
      and (.phases_median_s | [.materials, .context, .build, .while_building, .sbom, .record, .attestation]
      | map(type) | all(. == "number"))' "$results" >/dev/null
  done
  # prov watch on a node of each flavour: a drift's latency, and its CPU while idle, host and node.
  for flavour in bookworm trixie; do
    jq -e --arg n "watch-latency-$flavour" '.results[] | select(.name == $n)
      | ([.a_median_s, .a_max_s] | map(type)) == ["number", "number"] and .runs == 1
      and .goal == 2 and (.met | type) == "boolean"' "$results" >/dev/null
    jq -e --arg n "watch-idle-cpu-$flavour" '.results[] | select(.name == $n)
      | ([.host_cpu_share, .node_cpu_share] | map(type)) == ["number", "number"]
      and .goal == 0.005 and (.met | type) == "boolean"' "$results" >/dev/null
  done
  # The bench left every stack running its node's latest build.
  prov verify --all
}
