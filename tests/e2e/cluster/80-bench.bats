#!/usr/bin/env bats
# The benchmark suite runs (smoke mode: one run per command) and reports every figure.

load ../helpers

@test "make bench BENCH_MODE=smoke runs every benchmark and writes the results" {
  run golden bench BENCH_MODE=smoke
  echo "$output" | tail -n 20
  [ "$status" -eq 0 ]
  results="$REPO/.cache/bench/results.json"
  [ "$(jq -r .mode "$results")" = smoke ]
  for name in build verify-vs-ssh-inspect naive-verify-vagrant-ssh-per-check verify-all-vs-one \
    ssh-both-nodes-vs-one tree-hash-20k log-digest-1gib log-digest-peak-memory; do
    jq -e --arg n "$name" 'any(.results[]; .name == $n)' "$results" >/dev/null
  done
  # The bench left the stack running the node's latest build.
  prov verify --all
}
