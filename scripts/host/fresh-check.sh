#!/usr/bin/env bash
# make fresh-check: the README's two commands (make demo-reviewer, then make test) on a fresh
# machine of this project's kind, before anyone calls work done. The machine is a throwaway
# container on this host's engine:
#   - a debootstrapped Debian 12 minbase with git, make and ca-certificates (to clone and to run
#     the README) and this machine kind's extra CA certificates and their environment variables
#     (package registries are reached through them);
#   - the host's Rust toolchain, mounted read-only (the one prerequisite);
#   - a `git clone` of the current commit, and nothing else: no package, image or cache of the
#     host's;
#   - the docker provider nodes' flags and the host's loop devices, so Docker, Vagrant and LXC
#     run inside it (its engine's data on a folder of the host), and /proc and /sys unmasked and
#     writable as a machine's are: the LXC nodes' user namespaces mount their own proc and sysfs
#     only where the machine's are fully visible (the kernel's rule). Its network is its own; no
#     test writes a kernel setting outside it (the suite writes only its bridge's disable_ipv6).
# Usage: scripts/host/fresh-check.sh [--keep]   (--keep leaves the machine's folder for a look)
# Prints each command's exit status and duration, and writes them to .cache/fresh-check/.
set -euo pipefail
# shellcheck source=scripts/lib/host.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/host.sh"

KEEP=0
case "${1:-}" in
  --keep) KEEP=1 ;;
  "") ;;
  *) die "usage: scripts/host/fresh-check.sh [--keep]" ;;
esac
[[ $(id -u) == 0 ]] || die "fresh-check needs root (debootstrap, and a Docker engine to run the machine)"
ensure_host

OUT="$PROV_REPO/.cache/fresh-check"
SUITE=bookworm
ROOTFS_PACKAGES=git,make,ca-certificates
ROOTFS="$PROV_REPO/.cache/rootfs/fresh-$SUITE"
IMAGE="prov-fresh:$(printf '%s %s v1' "$SUITE" "$ROOTFS_PACKAGES" | sha256sum | cut -c1-12)"
COMMIT="$(git -C "$PROV_REPO" rev-parse HEAD)"
SYSROOT="$(cd "$PROV_REPO" && rustc --print sysroot)" ||
  die "no Rust toolchain on the host ('rustc --print sysroot' failed): install one with rustup"
mkdir -p "$OUT"

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "making the fresh machine's image $IMAGE: debootstrap --variant=minbase $SUITE (+ $ROOTFS_PACKAGES)"
  rm -rf "$ROOTFS"
  debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" "$SUITE" "$ROOTFS" \
    >"$OUT/debootstrap.log" 2>&1 || die "debootstrap failed: see $OUT/debootstrap.log"
  tar -C "$ROOTFS" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$IMAGE" >/dev/null
  rm -rf "$ROOTFS"
fi

if [[ -n $(git -C "$PROV_REPO" status --porcelain --untracked-files=no) ]]; then
  warn "the checkout has uncommitted changes: fresh-check tests commit ${COMMIT:0:12} without them"
fi
MACHINE="$(mktemp -d /var/tmp/prov-fresh.XXXXXX)"
cleanup() {
  docker rm --force prov-fresh-check >/dev/null 2>&1 || true
  if ((KEEP)); then log "kept the machine's folder $MACHINE"; else rm -rf "$MACHINE"; fi
}
trap cleanup EXIT
# Without git's templates, as CI clones: no .git/info/, no sample hooks.
mkdir -p "$MACHINE/no-templates"
git clone --quiet --no-local --template="$MACHINE/no-templates" "$PROV_REPO" "$MACHINE/prov"
git -C "$MACHINE/prov" checkout --quiet --detach "$COMMIT"
mkdir -p "$MACHINE/docker"

# The machine kind's CA environment (SSL_CERT_FILE, PIP_CERT, ...), as a fresh machine has it.
ca_env=()
while IFS='=' read -r name _; do
  ca_env+=(--env "$name")
done < <(env | grep -E '^[A-Z_]*(CA_|CERT|CAINFO)[A-Z_]*=' || true)

# What the fresh machine runs: trust the kind's certificates, then the README's two commands.
read -r -d '' MACHINE_SCRIPT <<'SCRIPT' || true
set -uo pipefail
cp /host-ca/*.crt /usr/local/share/ca-certificates/ 2>/dev/null || true
update-ca-certificates >/dev/null
# A machine's /sys is writable; docker mounts a container's read-only, and the kernel lets the
# LXC nodes' user namespaces mount a sysfs only where the machine's own is not.
mount -o remount,rw /sys
cd /root/prov
results=()
for command in "make demo-reviewer" "make test"; do
  printf '\n==> fresh machine: %s\n' "$command"
  start=$SECONDS
  $command
  status=$?
  results+=("$command: exit $status in $((SECONDS - start)) s")
  ((status == 0)) || break
done
printf '%s\n' "${results[@]}" >/root/prov/.fresh-check-result
SCRIPT

# The machine's LXC nodes (the default provider) each have a disk on a loop device: it gets the
# host's loop devices, as a real machine has its own.
loops=(--device /dev/loop-control)
for loop in /dev/loop[0-9]*; do loops+=(--device "$loop"); done
log "fresh machine: commit ${COMMIT:0:12}, image $IMAGE, toolchain $SYSROOT (log: ${OUT#"$PROV_REPO"/}/run.log)"
start=$SECONDS
docker run --name prov-fresh-check --hostname fresh-check \
  --cap-add=ALL --cap-drop=SYS_RESOURCE \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --security-opt systempaths=unconfined \
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  "${loops[@]}" \
  -v "$MACHINE/docker:/var/lib/docker" \
  -v "$MACHINE/prov:/root/prov" \
  -v "$SYSROOT:/opt/rust:ro" \
  -v /usr/local/share/ca-certificates:/host-ca:ro \
  --env HOME=/root \
  --env "PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  "${ca_env[@]}" \
  "$IMAGE" bash -c "$MACHINE_SCRIPT" 2>&1 | tee "$OUT/run.log"
total=$((SECONDS - start))

[[ -s $MACHINE/prov/.fresh-check-result ]] || die "the fresh machine stopped before any result: see $OUT/run.log"
{
  printf 'commit %s, %s\n' "$COMMIT" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  cat "$MACHINE/prov/.fresh-check-result"
  printf 'total: %d s\n' "$total"
} | tee "$OUT/result.txt"
results="$(cat "$MACHINE/prov/.fresh-check-result")"
[[ $results == *"make demo-reviewer: exit 0"*"make test: exit 0"* ]] ||
  die "fresh-check failed: see $OUT/run.log"
log "fresh-check passed: both README commands work on a fresh machine"
