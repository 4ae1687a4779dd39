#!/usr/bin/env bash
# prov's cost against what a user would otherwise run, as ratios measured in one run.
#   bench/run.sh [full|smoke]      (make bench; make bench BENCH_MODE=smoke)
# Each pair runs its two commands in turn, A B A B ... (full mode: 5 times each for the builds,
# 15 for the sub-second commands, whose medians need more samples to be stable; smoke: once), and
# reports the median wall time of each and the median of the per-pair ratios A/B. Nodes must be
# up with a verified stack (make demo-reviewer, and NODE=worker1 make demo-reviewer).
# Results: a table on stdout and .cache/bench/results.json.
set -euo pipefail
# shellcheck source=scripts/lib/host.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/host.sh"

MODE=${1:-full}
case $MODE in
  full) BUILD_RUNS=5 FAST_RUNS=15 ;;
  smoke) BUILD_RUNS=1 FAST_RUNS=1 ;;
  *) die "usage: bench/run.sh [full|smoke]" ;;
esac
ensure_tools host bench
build_prov
use_host_state
WORK="$PROV_REPO/.cache/bench"
mkdir -p "$WORK"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
NODE=main

now() { date +%s%N; }

# Wall seconds of one run of a command (its output discarded); fails if the command fails.
timed() {
  local start
  start=$(now)
  "$@" >/dev/null 2>&1 || die "benchmark command failed: $*"
  echo "$((($(now) - start) / 1000)) / 1000000" | awk '{printf "%.4f\n", $1 / $3}'
}

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# pair NAME GOAL "A command" "B command": records medians and the median ratio.
pair() {
  local name=$1 goal=$2 a=$3 b=$4 i ta tb
  local runs=$FAST_RUNS
  [[ $name != build ]] || runs=$BUILD_RUNS
  local -a as=() bs=() rs=()
  for ((i = 0; i < runs; i++)); do
    ta=$(timed bash -c "$a")
    tb=$(timed bash -c "$b")
    as+=("$ta")
    bs+=("$tb")
    rs+=("$(awk -v x="$ta" -v y="$tb" 'BEGIN {printf "%.4f\n", x / y}')")
  done
  jq -cn --arg name "$name" --arg a "$a" --arg b "$b" --argjson goal "$goal" --argjson runs "$runs" \
    --argjson a_s "$(printf '%s\n' "${as[@]}" | median)" \
    --argjson b_s "$(printf '%s\n' "${bs[@]}" | median)" \
    --argjson ratio "$(printf '%s\n' "${rs[@]}" | median)" \
    '{name: $name, a: $a, b: $b, runs: $runs, a_median_s: $a_s, b_median_s: $b_s,
      ratio_median: $ratio, goal_ratio: $goal, met: (if $goal == null then null else $ratio <= $goal end)}' >>"$RESULTS"
  log "$name: A $(jq -r .a_median_s <<<"$(tail -n 1 "$RESULTS")")s, B $(jq -r .b_median_s <<<"$(tail -n 1 "$RESULTS")")s"
}

# The transport's ssh command for a node (the same configuration, pinned key and shared
# connection).
STATE="$(prov state-dir)"
ssh_to() {
  echo "ssh -F $STATE/ssh/$1.config -o UserKnownHostsFile=$STATE/ssh/known_hosts -o StrictHostKeyChecking=yes -o HostKeyAlias=$1 -o HashKnownHosts=no -o ControlMaster=auto -o ControlPath=/tmp/prov-ssh-%C -o ControlPersist=120 -o LogLevel=ERROR $1"
}
prov exec --node "$NODE" -- true
SSH="$(ssh_to "$NODE")"
P="$PROV --repo $PROV_REPO"

log "1/5 prov build against plain docker build --no-cache --network=none (same context, on $NODE)"
# Expanded on the node, not here.
# shellcheck disable=SC2016
ids='source .cache/images/ids.env && export PROV_DB_IMAGE=$POSTGRES_TAG'
pair "build" 1.03 \
  "$P exec --node $NODE -- sudo -n bash -c 'cd /vagrant && $ids && target/release/prov build --node $NODE --base BUILDER_IMAGE=\$BUILDER_TAG --base RUNTIME_IMAGE=\$RUNTIME_TAG'" \
  "$P exec --node $NODE -- sudo -n bash -c 'cd /vagrant && $ids && DOCKER_BUILDKIT=0 docker build --no-cache --network=none --force-rm -f api/Dockerfile --build-arg BUILDER_IMAGE=\$BUILDER_IMAGE --build-arg RUNTIME_IMAGE=\$RUNTIME_IMAGE -t prov-bench-plain:run .'"
# The stack runs the node's latest build again (attested by the host, as the golden path does),
# and the plain build's image goes.
node_script "$NODE" scripts/node/up.sh >/dev/null
prov attest --node "$NODE" --if-enabled >/dev/null
prov exec --node "$NODE" -- docker image rm prov-bench-plain:run >/dev/null

log "2/5 prov verify against one bare ssh + docker inspect round trip"
pair "verify-vs-ssh-inspect" 1.5 \
  "$P verify --node $NODE" \
  "$SSH docker inspect prov-api prov-db"
naive=$(timed bash -c "for c in api db image labels wiring; do vagrant ssh $NODE -c 'docker inspect prov-api' </dev/null; done")
jq -cn --argjson s "$naive" '{name: "naive-verify-vagrant-ssh-per-check", a: "vagrant ssh -c per check (5 checks)", runs: 1, a_median_s: $s}' >>"$RESULTS"

log "3/5 prov verify --all (two nodes) against one node"
# Untimed: opens the ssh connection to every node, which later runs reuse.
$P verify --all >/dev/null || die "prov verify --all fails: bring every node up first (make demo-reviewer NODE=...)"
pair "verify-all-vs-one" 1.25 "$P verify --all" "$P verify --node $NODE"
# Contrast: the floor of that ratio here, where the nodes share the host's two cores.
pair "ssh-both-nodes-vs-one" null "$SSH true & $(ssh_to worker1) true; wait" "$SSH true"

log "4/5 working-tree hash of a 20,000-file repository against git add -A && git write-tree"
repo="$WORK/repo20k"
if [[ ! -d $repo/.git ]]; then
  mkdir -p "$repo"
  (cd "$repo" && git init -q && for d in $(seq 0 199); do
    mkdir -p "d$d" && for f in $(seq 0 99); do echo "file $d/$f" >"d$d/f$f.txt"; done
  done && git add -A && git -c user.name=bench -c user.email=bench@localhost commit -qm files)
  for f in $(seq 0 49); do echo changed >>"$repo/d$f/f0.txt"; done
fi
pair "tree-hash-20k" 1.0 \
  "$P tree $repo" \
  "cd $repo && cp .git/index $WORK/scratch-index && GIT_INDEX_FILE=$WORK/scratch-index git add -A && GIT_INDEX_FILE=$WORK/scratch-index git write-tree"

log "5/5 build-log digest of a 1 GiB log against sha256sum"
big="$WORK/log-1g"
[[ -f $big ]] || head -c 1073741824 /dev/urandom >"$big"
# Goal: throughput at least 0.9 of sha256sum, i.e. time ratio at most 1/0.9.
pair "log-digest-1gib" 1.111 "$P digest $big" "sha256sum $big"
peak_kib=$(/usr/bin/time -f %M "$PROV" digest "$big" 2>&1 >/dev/null | tail -n 1)
jq -cn --argjson kib "$peak_kib" '{name: "log-digest-peak-memory", a_peak_mib: ($kib / 1024 * 100 | round / 100),
  goal_mib: 32, met: ($kib / 1024 <= 32)}' >>"$RESULTS"

jq -s --arg mode "$MODE" --arg when "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  '{mode: $mode, measured_at: $when, results: .}' "$RESULTS" >"$WORK/results.json"
printf '\n%-36s %10s %10s %8s %6s %s\n' benchmark "A med s" "B med s" "A/B" goal met
jq -r '.results[] | [.name, (.a_median_s // .a_peak_mib // "" | tostring),
  (.b_median_s // "" | tostring), (.ratio_median // "" | tostring),
  (.goal_ratio // .goal_mib // "" | tostring), (.met | if . == null then "" else tostring end)] | @tsv' \
  "$WORK/results.json" | awk -F'\t' '{printf "%-36s %10s %10s %8s %6s %s\n", $1, $2, $3, $4, $5, $6}'
printf '\n(%s mode, %d run(s) per build, %d per other command; JSON: %s)\n' "$MODE" "$BUILD_RUNS" \
  "$FAST_RUNS" "${WORK#"$PROV_REPO"/}/results.json"
