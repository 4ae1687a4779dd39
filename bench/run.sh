#!/usr/bin/env bash
# prov's cost against the least the same work can cost, as ratios measured in one run.
#   bench/run.sh [full|smoke|verify|history|watch|build]   (make bench; make bench BENCH_MODE=smoke)
# Each pair runs its two commands in turn, A B A B ... (full mode: 3 times each for the builds,
# which take one to two minutes each on two shared cores, 15 for the sub-second commands, whose
# medians need more samples to be stable; smoke: once, the two flavours' builds side by side;
# verify: verify against its floor alone, on the first node of each flavour, as full measures
# it; history: verify with 990 more records alone, as full measures it; watch: prov watch's
# detection latency and idle cost alone; build: the build and reproduction pairs alone, as full
# measures them), and reports the median wall time of each and the
# median of the per-pair ratios A/B. Every node of nodes.json must be up with a verified stack
# (make demo-reviewer NODE=... for each): the first node of each flavour is measured, and the
# third node joins verify --all and reproduces.
# Results: a table on stdout and .cache/bench/results.json, each row with its goal and whether
# it was met.
set -euo pipefail
# shellcheck source=scripts/lib/host.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/host.sh"

MODE=${1:-full}
case $MODE in
  full) BUILD_RUNS=3 FAST_RUNS=15 HISTORY_RECORDS=990 IDLE_S=30 ;;
  smoke) BUILD_RUNS=1 FAST_RUNS=1 HISTORY_RECORDS=100 IDLE_S=5 ;;
  # Only verify against its floor, as full measures it: for a change to verify's checks.
  verify) BUILD_RUNS=0 FAST_RUNS=15 ;;
  # Only verify with a longer history: for a change to what verify reads of the records.
  history) BUILD_RUNS=0 FAST_RUNS=15 HISTORY_RECORDS=990 ;;
  # Only prov watch: for a change to how it follows a node.
  watch) BUILD_RUNS=0 FAST_RUNS=15 IDLE_S=30 ;;
  # Only the builds and the reproduction: for a change to prov build.
  build) BUILD_RUNS=3 FAST_RUNS=15 ;;
  *) die "usage: bench/run.sh [full|smoke|verify|history|watch|build]" ;;
esac
# in_mode MODE...: whether this run's mode is one of those.
in_mode() { [[ " $* " == *" $MODE "* ]]; }
ensure_tools host bench
build_prov
use_host_state
WORK="$PROV_REPO/.cache/bench"
mkdir -p "$WORK"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
P="$PROV --repo $PROV_REPO"

# The nodes: the first of each flavour, and one more trixie node to reproduce on.
mapfile -t NODES < <(prov nodes)
((${#NODES[@]} >= 3)) || die "the benchmarks need three nodes in nodes.json, found ${#NODES[*]}"
BOOKWORM="" TRIXIE="" OTHER_TRIXIE=""
for n in "${NODES[@]}"; do
  case "$(prov nodes --flavour "$n")" in
    bookworm) [[ -n $BOOKWORM ]] || BOOKWORM=$n ;;
    trixie) if [[ -z $TRIXIE ]]; then TRIXIE=$n; elif [[ -z $OTHER_TRIXIE ]]; then OTHER_TRIXIE=$n; fi ;;
  esac
done
[[ -n $BOOKWORM && -n $OTHER_TRIXIE ]] ||
  die "the benchmarks need a bookworm node and two trixie nodes in nodes.json"

now() { date +%s%N; }

# Wall seconds of one run of a command (its output discarded); fails if the command fails.
timed() {
  local start
  start=$(now)
  "$@" >/dev/null 2>&1 || die "benchmark command failed: $*"
  echo "$((($(now) - start) / 1000)) / 1000000" | awk '{printf "%.4f\n", $1 / $3}'
}

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN {printf "%.4f\n", x / y}'; }

# record NAME GOAL "A" "B" A_TIMES B_TIMES RATIOS [extra jq object]: one row of the results
# (times and ratios as newline-separated lists); met when the median ratio is within the goal.
record() {
  local name=$1 goal=$2 a=$3 b=$4 as=$5 bs=$6 rs=$7 extra=${8:-'{}'}
  jq -cn --arg name "$name" --arg a "$a" --arg b "$b" --argjson goal "$goal" \
    --argjson runs "$(wc -l <<<"$rs")" --argjson a_s "$(median <<<"$as")" \
    --argjson b_s "$(median <<<"$bs")" --argjson ratio "$(median <<<"$rs")" --argjson extra "$extra" \
    '{name: $name, a: $a, b: $b, runs: $runs, a_median_s: $a_s, b_median_s: $b_s,
      ratio_median: $ratio, goal: $goal, met: (if $goal == null then null else $ratio <= $goal end)}
     + $extra' >>"$RESULTS"
  log "$name: A $(median <<<"$as")s, B $(median <<<"$bs")s, A/B $(median <<<"$rs")"
}

# pair NAME GOAL "A command" "B command" [runs] [node]: times both in turn and records the row;
# with a node, what each run built there is tidied away after it, untimed.
pair() {
  local name=$1 goal=$2 a=$3 b=$4 runs=${5:-$FAST_RUNS} tidy=${6:-} i ta tb as="" bs="" rs=""
  for ((i = 0; i < runs; i++)); do
    ta=$(timed bash -c "$a")
    [[ -z $tidy ]] || tidy_node "$tidy"
    tb=$(timed bash -c "$b")
    [[ -z $tidy ]] || tidy_node "$tidy"
    as+="$ta"$'\n' bs+="$tb"$'\n' rs+="$(ratio "$ta" "$tb")"$'\n'
  done
  record "$name" "$goal" "$a" "$b" "${as%$'\n'}" "${bs%$'\n'}" "${rs%$'\n'}"
}

# The transport's ssh command for a node (the same configuration, pinned key and shared
# connection).
STATE="$(prov state-dir)"
ssh_to() {
  echo "ssh -F $STATE/ssh/$1.config -o UserKnownHostsFile=$STATE/ssh/known_hosts -o StrictHostKeyChecking=yes -o HostKeyAlias=$1 -o HostKeyAlgorithms=ssh-ed25519 -o HashKnownHosts=no -o ControlMaster=auto -o ControlPath=$STATE/cm/%C -o ControlPersist=120 -o LogLevel=ERROR $1"
}
# Untimed: opens the ssh connection to every node, which later runs reuse, and leaves each node
# as `make verify` does (the host keeps the files the stack executes as proven).
if in_mode verify history watch; then
  checked=("$BOOKWORM" "$TRIXIE")
  [[ $MODE != history ]] || checked=("$OTHER_TRIXIE")
  for node in "${checked[@]}"; do
    $P verify --node "$node" --attest >/dev/null 2>&1 ||
      die "prov verify --node $node fails: bring it up first (make demo-reviewer NODE=$node)"
  done
else
  $P verify --all --attest >/dev/null 2>&1 ||
    die "prov verify --all fails: bring every node up first (make demo-reviewer NODE=...)"
fi

# The node's build commands, run as the golden path runs them (expanded on the node, not here).
# shellcheck disable=SC2016
IDS='source .cache/images/ids.env && export PROV_DB_IMAGE=$POSTGRES_TAG'
on_node_root() { echo "$P exec --node $1 -- sudo -n bash -c 'cd /vagrant && $IDS && $2'"; }
TIMINGS=/tmp/prov-bench-timings.json
prov_build() {
  on_node_root "$1" "PROV_TIMINGS=$TIMINGS target/release/prov build --node $1 --base BUILDER_IMAGE=\$BUILDER_TAG --base RUNTIME_IMAGE=\$RUNTIME_TAG"
}
# The same Dockerfile and context with the node's builder and nothing of prov's: the legacy
# builder with the bases by ID, or BuildKit with the bases as named contexts, into the store.
plain_build() {
  case "$(prov nodes --flavour "$1")" in
    bookworm) on_node_root "$1" "DOCKER_BUILDKIT=0 docker build --no-cache --network=none --force-rm -f api/Dockerfile --build-arg BUILDER_IMAGE=\$BUILDER_IMAGE --build-arg RUNTIME_IMAGE=\$RUNTIME_IMAGE -t prov-bench-plain:run ." ;;
    trixie) on_node_root "$1" "docker buildx build --no-cache --network=none -f api/Dockerfile --build-context prov-base-builder-image=docker-image://\$BUILDER_TAG --build-context prov-base-runtime-image=docker-image://\$RUNTIME_TAG --build-arg BUILDER_IMAGE=prov-base-builder-image --build-arg RUNTIME_IMAGE=prov-base-runtime-image -t prov-bench-plain:run ." ;;
  esac
}
# Untimed, between builds: what a build leaves (intermediate stages, cache records) goes, as
# make demo does, so that a node's disk (of a fixed size) holds every run.
tidy_node() {
  prov exec --node "$1" -- sudo -n sh -c \
    'docker image prune --force >/dev/null; docker builder prune --force >/dev/null'
}
# After the builds: the stack runs the node's latest build again (attested and verified, as the
# golden path does), and the plain build's image goes.
restore_node() {
  node_script "$1" scripts/node/up.sh >/dev/null
  prov attest --node "$1" >/dev/null
  prov verify --node "$1" --attest >/dev/null 2>&1 || die "prov verify --node $1 fails after the builds"
  prov exec --node "$1" -- docker image rm --force prov-bench-plain:run >/dev/null 2>&1 || true
}

# build_pair NODE: prov build against the plain build, and prov's own time outside the build by
# phase (materials, the context's plan, prov's CPU while docker builds, SBOM, record on the node;
# the host's import and attestation).
build_pair() {
  local node=$1 flavour goal i ta tb tt phases as="" bs="" rs="" own=""
  flavour="$(prov nodes --flavour "$node")"
  for ((i = 0; i < BUILD_RUNS; i++)); do
    ta=$(timed bash -c "$(prov_build "$node")")
    tt=$(timed prov attest --node "$node")
    phases="$(prov exec --node "$node" -- cat "$TIMINGS")"
    own+="$(jq -c --argjson attestation "$tt" '. + {attestation: $attestation}' <<<"$phases")"$'\n'
    tidy_node "$node"
    tb=$(timed bash -c "$(plain_build "$node")")
    tidy_node "$node"
    as+="$ta"$'\n' bs+="$tb"$'\n' rs+="$(ratio "$ta" "$tb")"$'\n'
  done
  goal=1.02
  [[ $flavour == bookworm ]] || goal=1.03
  record "build-$flavour" "$goal" "$(prov_build "$node")" "$(plain_build "$node")" \
    "${as%$'\n'}" "${bs%$'\n'}" "${rs%$'\n'}"
  # prov's own phases, each a median, and their sum's share of the build (goal: under 1%).
  jq -cs --arg name "build-$flavour-own-time" --arg node "$node" '
    def median: sort | if length % 2 == 1 then .[length / 2 | floor]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    . as $runs
    | ($runs | map(([to_entries[] | select(.key != "build") | .value] | add) / .build) | median)
      as $share
    | {name: $name, node: $node, runs: ($runs | length),
       phases_median_s: (reduce ($runs[0] | keys[]) as $k ({}; .[$k] = ([$runs[][$k]] | median))),
       own_share_median: ($share * 10000 | round / 10000), goal: 0.01, met: ($share < 0.01)}
  ' <<<"${own%$'\n'}" >>"$RESULTS"
  restore_node "$node"
}

if in_mode full smoke verify; then
  log "1/8 prov verify against its floors: one ssh round trip running one Engine API curl for the stack's containers; and one carrying everything verify sends the node"
  for node in "$BOOKWORM" "$TRIXIE"; do
    flavour=$(prov nodes --flavour "$node")
    pair "verify-vs-floor-$flavour" 1.3 \
      "$P verify --node $node" \
      "$(ssh_to "$node") curl -sf --unix-socket /var/run/docker.sock http://localhost/containers/prov-api/json http://localhost/containers/prov-db/json"
    # The second floor is what verify's checks need of the node, without prov: every command it
    # sent there (its Engine API requests as curl calls, the api's log, the records it fetched),
    # as prov wrote them down, run in one ssh round trip. What is left is prov's own cost.
    trace="$WORK/verify-sent-$node.sh"
    rm -f "$trace"
    PROV_TRANSPORT_TRACE=$trace $P verify --node "$node" >/dev/null ||
      die "prov verify --node $node fails: bring it up first (make demo-reviewer NODE=$node)"
    pair "verify-vs-round-trip-$flavour" 1.15 "$P verify --node $node" "$(ssh_to "$node") bash -s <$trace"
  done
  # And under a second, absolute.
  jq -c 'if .name | startswith("verify-vs-floor-") then . + {goal_abs_s: 1, met: (.met and .a_median_s < 1)} else . end' \
    "$RESULTS" >"$RESULTS.new"
  mv "$RESULTS.new" "$RESULTS"
fi

if in_mode full smoke; then
  log "2/8 prov verify --all (${#NODES[@]} nodes) against the slowest node alone, over the same ratio for bare ssh"
  # Against the node whose verify took longest above: checked in parallel, every node at best
  # costs what the slowest one does alone, so any other baseline would measure the flavours'
  # difference, not the cost of more nodes.
  slowest_flavour=$(jq -rs 'map(select(.name | startswith("verify-vs-floor-"))) | max_by(.a_median_s)
    | .name | ltrimstr("verify-vs-floor-")' "$RESULTS")
  SLOWEST=$BOOKWORM
  [[ $slowest_flavour == bookworm ]] || SLOWEST=$TRIXIE
  pair "verify-all-vs-one" null "$P verify --all" "$P verify --node $SLOWEST"
  all_ssh=""
  for n in "${NODES[@]}"; do all_ssh+="$(ssh_to "$n") true & "; done
  pair "ssh-all-nodes-vs-one" null "${all_ssh}wait" "$(ssh_to "$SLOWEST") true"
  # The nodes share this machine's cores, which real VMs would not: the ssh ratio is the floor
  # that sharing imposes, and dividing by it leaves prov's own cost of more nodes.
  normalized="$(jq -cs '(map(select(.name == "verify-all-vs-one"))[0]) as $v
    | (map(select(.name == "ssh-all-nodes-vs-one"))[0]) as $s
    | {name: "verify-all-normalized", a: $v.name, b: $s.name, runs: $v.runs,
       ratio_median: ($v.ratio_median / $s.ratio_median * 10000 | round / 10000), goal: 1.05,
       met: ($v.ratio_median / $s.ratio_median <= 1.05)}' "$RESULTS")"
  echo "$normalized" >>"$RESULTS"

  log "3/8 working-tree hash of a 20,000-file repository against git add -A && git write-tree"
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

  log "4/8 build-log digest of a 1 GiB log against sha256sum"
  big="$WORK/log-1g"
  [[ -f $big ]] || head -c 1073741824 /dev/urandom >"$big"
  # Goal: throughput at least 0.9 of sha256sum, i.e. time ratio at most 1/0.9.
  pair "log-digest-1gib" 1.111 "$P digest $big" "sha256sum $big"
  peak_kib=$(/usr/bin/time -f %M "$PROV" digest "$big" 2>&1 >/dev/null | tail -n 1)
  jq -cn --argjson kib "$peak_kib" '{name: "log-digest-peak-memory", a_peak_mib: ($kib / 1024 * 100 | round / 100),
    goal: 32, met: ($kib / 1024 <= 32)}' >>"$RESULTS"
fi

if in_mode full smoke build; then
  log "5/8 prov build against a plain build on the same node and builder ($BOOKWORM: legacy, $TRIXIE: BuildKit)"
  if [[ $MODE == smoke ]]; then
    # A smoke run shows that every row is made, not what it measures: the two nodes build at
    # once (each its pair in turn), and the bench's test in make test waits for one pair, not two.
    status=0
    build_pair "$BOOKWORM" &
    bookworm_pair=$!
    build_pair "$TRIXIE" &
    wait "$!" || status=1
    wait "$bookworm_pair" || status=1
    ((status == 0)) || die "a build pair failed (above)"
  else
    build_pair "$BOOKWORM"
    build_pair "$TRIXIE"
  fi

  log "6/8 prov reproduce of $TRIXIE's build on $OTHER_TRIXIE against a plain no-cache BuildKit build there"
  pair "reproduce-vs-plain-buildx" 1.05 \
    "$P reproduce --node $OTHER_TRIXIE --of $TRIXIE" "$(plain_build "$OTHER_TRIXIE")" "$BUILD_RUNS" \
    "$OTHER_TRIXIE"
  prov exec --node "$OTHER_TRIXIE" -- docker image rm --force prov-bench-plain:run >/dev/null 2>&1 || true
fi

# verify_costs NODE RUNS: one line per run, "wall cpu" in seconds (cpu: prov's own user and
# system time, on the host); then the bytes verify moved, once: what it sent the node and what
# the node answered, replayed from the trace of its commands in one ssh round trip.
verify_costs() {
  local node=$1 runs=$2 i start trace="$WORK/verify-sent-history.sh"
  for ((i = 0; i < runs; i++)); do
    start=$(now)
    /usr/bin/time -f '%U %S' -o "$WORK/verify-time" "$PROV" --repo "$PROV_REPO" verify --node "$node" \
      >/dev/null ||
      die "prov verify --node $node fails: bring it up first (make demo-reviewer NODE=$node)"
    awk -v ns=$(($(now) - start)) '{printf "%.4f %.2f\n", ns / 1e9, $1 + $2}' "$WORK/verify-time"
  done
  rm -f "$trace"
  PROV_TRANSPORT_TRACE=$trace $P verify --node "$node" >/dev/null
  echo "bytes $(($(wc -c <"$trace") + $($(ssh_to "$node") bash -s <"$trace" | wc -c)))"
}

# A column of verify_costs' runs (1 wall, 2 cpu), and its bytes.
costs_of() { grep -v '^bytes' <<<"$1" | cut -d' ' -f"$2"; }
bytes_of() { grep '^bytes' <<<"$1" | cut -d' ' -f2; }

# The records in a node's export (the side files' names do not end in a build id).
records_on() {
  $P exec --node "$1" -- find "/vagrant/provenance/$1" -maxdepth 1 \
    -name '*-[0-9a-f][0-9a-f][0-9a-f][0-9a-f].json' | wc -l
}

# history_row NODE COUNT: verify's cost on NODE as it is, then with COUNT more records on it,
# made by its root (bench/node/add-records.sh) and brought in by the host's real import.
history_row() {
  local node=$1 count=$2 before after records_b records_a
  $P verify --node "$node" --attest >/dev/null 2>&1 || die "prov verify --node $node fails"
  records_b=$(records_on "$node")
  before=$(verify_costs "$node" "$FAST_RUNS")
  $P sync --node "$node" >/dev/null
  $P exec --node "$node" -- sudo -n bash -s "$node" "$count" <"$PROV_REPO/bench/node/add-records.sh" >/dev/null
  # Refused when the node's latest is not a build of this very commit.
  $P import --node "$node" >/dev/null ||
    die "the host refused the records made on $node: make demo NODE=$node from this commit first"
  $P exec --node "$node" -- sudo -n bash -s "$node" <"$PROV_REPO/bench/node/untag-older.sh"
  # The stack runs the new latest's tag (Compose makes the api again, after the newest build),
  # attested, as the golden path leaves it.
  node_script "$node" scripts/node/up.sh >/dev/null
  $P attest --node "$node" >/dev/null
  $P verify --node "$node" --attest >/dev/null 2>&1
  records_a=$(records_on "$node")
  after=$(verify_costs "$node" "$FAST_RUNS")
  local rs="" i wa wb
  mapfile -t wa < <(costs_of "$after" 1)
  mapfile -t wb < <(costs_of "$before" 1)
  for i in "${!wa[@]}"; do rs+="$(ratio "${wa[i]}" "${wb[i]}")"$'\n'; done
  record verify-history 1.1 "$P verify --node $node ($records_a records)" \
    "$P verify --node $node ($records_b records)" "$(costs_of "$after" 1)" \
    "$(costs_of "$before" 1)" "${rs%$'\n'}" "$(jq -cn --argjson ra "$records_a" --argjson rb "$records_b" \
      --argjson ca "$(costs_of "$after" 2 | median)" --argjson cb "$(costs_of "$before" 2 | median)" \
      --argjson ba "$(bytes_of "$after")" --argjson bb "$(bytes_of "$before")" \
      --arg node "$node" '{node: $node, records_a: $ra, records_b: $rb, cpu_a_s: $ca,
        cpu_b_s: $cb, bytes_a: $ba, bytes_b: $bb, goal_abs_s: 0.1}')"
  # Met when the history changes neither the wall time nor the host's CPU (within 10%, the
  # timer's noise) nor the bytes (within 1%, the api's log), and verify stays under 100 ms.
  jq -c 'if .name == "verify-history" then . + {met: (.met and .cpu_a_s <= .cpu_b_s * 1.1 + 0.01
    and .bytes_a <= .bytes_b * 1.01 and .a_median_s < .goal_abs_s)} else . end' \
    "$RESULTS" >"$RESULTS.new"
  mv "$RESULTS.new" "$RESULTS"
}

if in_mode full smoke history; then
  log "7/8 prov verify on $OTHER_TRIXIE with $HISTORY_RECORDS more records, made by its root and brought in by the import, against its history before: wall, host CPU and bytes"
  history_row "$OTHER_TRIXIE" "$HISTORY_RECORDS"
fi

# Seconds since the epoch of an RFC 3339 time with a fraction (jq's own parser takes none).
SECONDS_OF='def secs: (sub("\\.[0-9]+Z$"; "Z") | fromdate) + (capture("(?<f>\\.[0-9]+)Z$").f | tonumber);'

# CPU ticks (user and system) of the given processes, summed.
ticks_of() { awk '{t += $14 + $15} END {print t + 0}' "$@"; }

# watch_rows NODE FLAVOUR: prov watch following NODE. Its latency: a drift (an exec session in
# the api that ends at once) made FAST_RUNS times, each from its event's time on the engine to
# the line watch printed for it (an LXC node shares the host's kernel and clock). Its idle cost:
# the CPU of watch on the host and of its followers on the node over IDLE_S quiet seconds, as a
# share of one core (the node's engine and the full verify's work on the node not counted).
watch_rows() {
  local node=$1 flavour=$2 lines pid i w n followers h0 h1 n0 n1
  lines="$WORK/watch-$node.jsonl"
  # A full verify every IDLE_S seconds, as its --every bounds: one falls in the idle window.
  $P watch --node "$node" --json --every "$IDLE_S" >"$lines" 2>/dev/null &
  pid=$!
  for ((i = 0; i < 600; i++)); do grep -q '"verdict":"PASSED' "$lines" && break; sleep 0.1; done
  grep -q '"verdict":"PASSED' "$lines" ||
    { kill "$pid"; die "prov watch --node $node did not pass within 60 s: make demo-reviewer NODE=$node"; }
  for ((i = 0; i < FAST_RUNS; i++)); do
    n=$(grep -c '"event_at":"' "$lines" || true)
    $P exec --node "$node" -- docker exec prov-api true >/dev/null
    for ((w = 0; w < 100; w++)); do
      (($(grep -c '"event_at":"' "$lines" || true) > n)) && break
      sleep 0.1
    done
    # The node judged again after the drift, before the next.
    sleep 2
  done
  followers="pgrep -f '^curl .*docker/events' ; pgrep -x inotifywait"
  followers=$($P exec --node "$node" -- sh -c "$followers" | sed 's|.*|/proc/&/stat|' | tr '\n' ' ')
  h0=$(ticks_of "/proc/$pid/stat") n0=$($P exec --node "$node" -- sh -c "cat $followers" | ticks_of)
  sleep "$IDLE_S"
  h1=$(ticks_of "/proc/$pid/stat") n1=$($P exec --node "$node" -- sh -c "cat $followers" | ticks_of)
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  # The drifts were real: verify fails an api exec'd since it started. A new api container from
  # the same build puts the stack back as the golden path leaves it.
  $P exec --node "$node" -- sudo -n docker rm -f prov-api >/dev/null
  node_script "$node" scripts/node/up.sh >/dev/null
  $P verify --node "$node" >/dev/null || die "prov verify --node $node fails after the watch rows"
  jq -sc --arg name "watch-latency-$flavour" --arg node "$node" --argjson runs "$FAST_RUNS" "$SECONDS_OF"'
    [.[] | select(.event_at) | (.at | secs) - (.event_at | secs) | . * 1e6 | round / 1e6] | sort as $l
    | {name: $name, node: $node, a: "docker exec prov-api true, to the line prov watch printed",
       runs: ($l | length), a_median_s: (if $l == [] then null else $l[(($l | length) - 1) / 2 | floor] end),
       a_max_s: $l[-1], goal: 2, met: ($l != [] and ($l | length) == $runs and $l[-1] <= 2)}' \
    "$lines" >>"$RESULTS"
  jq -cn --arg name "watch-idle-cpu-$flavour" --arg node "$node" --argjson s "$IDLE_S" \
    --argjson hz "$(getconf CLK_TCK)" --argjson h "$((h1 - h0))" --argjson n "$((n1 - n0))" \
    '{name: $name, node: $node, idle_s: $s, host_cpu_share: ($h / $hz / $s * 1e5 | round / 1e5),
      node_cpu_share: ($n / $hz / $s * 1e5 | round / 1e5), goal: 0.005,
      met: ($h / $hz / $s <= 0.005 and $n / $hz / $s <= 0.005)}' >>"$RESULTS"
  log "watch on $node: latency $(jq -r "select(.name == \"watch-latency-$flavour\") | \"median \(.a_median_s) s, worst \(.a_max_s) s\"" "$RESULTS"), idle CPU host $((h1 - h0)) ticks, node $((n1 - n0)) ticks in $IDLE_S s"
}

if in_mode full smoke watch; then
  log "8/8 prov watch: a drift's event to its line, on $BOOKWORM and $TRIXIE; and watch's CPU while idle"
  watch_rows "$BOOKWORM" bookworm
  watch_rows "$TRIXIE" trixie
fi

jq -s --arg mode "$MODE" --arg when "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  '{mode: $mode, measured_at: $when, results: .}' "$RESULTS" >"$WORK/results.json"
printf '\n%-28s %9s %9s %8s %6s %s\n' benchmark "A med s" "B med s" "A/B" goal met
jq -r '.results[] | [.name, (.a_median_s // .a_peak_mib // "" | tostring),
  (.b_median_s // "" | tostring),
  (.ratio_median // .own_share_median // .host_cpu_share // "" | tostring),
  (.goal // "" | tostring), (.met | if . == null then "" else tostring end)] | @tsv' \
  "$WORK/results.json" | awk -F'\t' '{printf "%-28s %9s %9s %8s %6s %s\n", $1, $2, $3, $4, $5, $6}'
printf '\n(%s mode, %d run(s) per build, %d per other command; JSON: %s)\n' "$MODE" "$BUILD_RUNS" \
  "$FAST_RUNS" "${WORK#"$PROV_REPO"/}/results.json"
