#!/usr/bin/env bash
# Builds the project's base images on the host's Docker engine, from Debian packages only
# (there is no registry): debian (Debian 12, debootstrap minbase, imported), and FROM its image
# ID: runtime, postgres, builder (with the host's Rust toolchain) and node (the Vagrant nodes of
# the bookworm flavour). When nodes.json declares a trixie node: debian-trixie (Debian 13) and,
# FROM it, node-trixie. With PROVIDER=lxc (the default), each node image is also made into a
# vagrant-lxc box (images/node-lxc), added to Vagrant's boxes.
#
# Usage: scripts/host/bases.sh [--force]      (on the host, as root)
#   --force   rebuild everything (new debootstrap, docker build --no-cache)
#
# Outputs (the interface the rest of the project reads):
#   .cache/images/ids.env     DEBIAN_IMAGE=sha256:... DEBIAN_TAG=prov-debian:<hash12>
#                             RUNTIME_ POSTGRES_ BUILDER_ NODE_ (DEBIAN_TRIXIE_ NODE_TRIXIE_)
#                             likewise
#   .cache/images/bases.tar   docker save of the runtime, postgres and builder tags
#   .cache/images/bases.json  those three as the host's engine describes them (ID, tag, layers,
#                             configuration, creation time, history): what prov checks every
#                             node's copy of them, and every record naming them, against
#                             NODE_LXC_BOX=prov-node-lxc-<hash12> (NODE_TRIXIE_LXC_BOX): the
#                             boxes' names, in ids.env (PROVIDER=lxc)
# Idempotent: an image is rebuilt only when its recipe hash (Dockerfile and the other files of
# its directory under images/, the debian image ID, the toolchain, ...) gives a tag the engine
# does not hold; when nothing changed it only says so.
#
# Environment: PROV_DOCKER (docker client, default /usr/bin/docker: the 20.10 client of the
# docker.io package), PROV_RUST_SYSROOT (toolchain to copy, default `rustc --print sysroot`).
set -euo pipefail

# shellcheck source=SCRIPTDIR/../lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() {
  sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
}

FORCE=0
for arg in "$@"; do
  case $arg in
    --force) FORCE=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument '$arg' (usage: scripts/host/bases.sh [--force])" ;;
  esac
done

START=$SECONDS
IMAGES_SRC=$PROV_REPO/images
OUT=$PROV_REPO/.cache/images
LOG_DIR=$OUT/logs
IDS_ENV=$OUT/ids.env
BASES_TAR=$OUT/bases.tar
BASES_STAMP=$OUT/bases.tar.stamp
BASES_JSON=$OUT/bases.json
VARIANT=minbase
VAGRANT_PUB=/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys/vagrant.pub
DOCKER=${PROV_DOCKER:-/usr/bin/docker}
# Builds use FROM <image id>, which only the legacy builder accepts.
export DOCKER_BUILDKIT=0
# Bump to force a rebuild of everything when this script's recipe changes meaningfully.
RECIPE_VERSION=1
# The images, roots (debootstrapped suites) first, and what each is made from.
NAMES=(debian runtime postgres builder node)
declare -A SUITE_OF=([debian]=bookworm) BASE_OF=([runtime]=debian [postgres]=debian
  [builder]=debian [node]=debian)
if jq -e 'any(.nodes[]; .flavour == "trixie")' "$PROV_REPO/nodes.json" >/dev/null; then
  NAMES=(debian debian-trixie runtime postgres builder node node-trixie)
  SUITE_OF[debian-trixie]=trixie
  BASE_OF[node-trixie]=debian-trixie
fi
ROOTS=()
for name in "${NAMES[@]}"; do [ -z "${SUITE_OF[$name]:-}" ] || ROOTS+=("$name"); done
SAVED=(runtime postgres builder)
# The LXC boxes: one per node image, made from it (a box is a vagrant-lxc template, its LXC
# settings and the image's files; Vagrant keeps it, named by its recipe hash).
LXC_SRC=$IMAGES_SRC/node-lxc
BOXES=()
if [[ $PROVIDER == lxc ]]; then
  for name in "${NAMES[@]}"; do [[ $name != node* ]] || BOXES+=("$name"); done
fi
VAGRANT_BOXES=${VAGRANT_HOME:-$HOME/.vagrant.d}/boxes

# ---------------------------------------------------------------------------------------------
# Helpers

elapsed() { printf '%ds' "$((SECONDS - $1))"; }

hash12() { sha256sum | cut -c1-12; }

# Hash of the files of a directory (names and contents).
dir_digest() {
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

upper() {
  local name=${1^^}
  printf '%s' "${name//-/_}"
}

# A node image's flavour (node: bookworm, node-trixie: trixie), and the packages it installs:
# scripts/lib/tools.list, scopes node and node-<flavour>.
flavour_of() { [ "$1" = node ] && echo bookworm || echo "${1#node-}"; }
node_packages() { declared_packages node "node-$(flavour_of "$1")" | tr '\n' ' '; }

# The rootfs adjustments, applied after debootstrap (their text is part of the recipe hash).
tweak_rootfs() { # ROOTFS SUITE
  local r=$1
  # Like Debian's slim images: no documentation, manual pages or translations.
  cat >"$r/etc/dpkg/dpkg.cfg.d/01-prov-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$r/etc/apt/apt.conf.d/01-prov" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
EOF
  local suite=$2
  cat >"$r/etc/apt/sources.list" <<EOF
deb http://deb.debian.org/debian $suite main
deb http://deb.debian.org/debian $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
EOF
  # Package scripts must not start services during image builds.
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod 0755 "$r/usr/sbin/policy-rc.d"
  # ... and none of what debootstrap already installed of them.
  find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/groff/* "$r"/usr/share/lintian/*
  : >"$r/etc/machine-id"
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
    "$r"/var/log/bootstrap.log "$r"/tmp/* "$r"/var/tmp/*
}

# ---------------------------------------------------------------------------------------------
# Checks

[ -x "$DOCKER" ] ||
  die "docker client $DOCKER not found: install the engine with 'apt-get install -y docker.io' (or set PROV_DOCKER)"

mkdir -p "$OUT" "$LOG_DIR"
exec 9>"$OUT/.lock"
if ! flock -n 9; then
  log "another bases.sh is running: waiting for it"
  flock 9
fi

# One engine call: every prov-* tag and its image ID.
declare -A TAG_ID=()
if ! tag_list=$("$DOCKER" images --no-trunc --filter 'reference=prov-*' \
  --format '{{.Repository}}:{{.Tag}} {{.ID}}' 2>&1); then
  die "cannot talk to the Docker engine ($tag_list): start it (as root: dockerd >/var/log/dockerd.log 2>&1 &) or install it (apt-get install -y docker.io)"
fi
while read -r t i; do
  [ -n "$t" ] && TAG_ID[$t]=$i
done <<<"$tag_list"

# The toolchain copied into the builder (rustup honours a rust-toolchain file of the repo).
if [ -n "${PROV_RUST_SYSROOT:-}" ]; then
  SYSROOT=$PROV_RUST_SYSROOT
else
  SYSROOT=$(cd "$PROV_REPO" && rustc --print sysroot 2>/dev/null) ||
    die "no Rust toolchain on the host ('rustc --print sysroot' failed): install one with rustup, or set PROV_RUST_SYSROOT"
fi
[[ -x $SYSROOT/bin/cargo && -x $SYSROOT/bin/rustc && -d $SYSROOT/lib ]] ||
  die "Rust sysroot $SYSROOT has no bin/cargo, bin/rustc or lib/: install the toolchain with rustup (rustup toolchain install stable --component cargo)"
[ -r "$VAGRANT_PUB" ] ||
  die "Vagrant's insecure public key $VAGRANT_PUB is missing: install Vagrant with 'apt-get install -y vagrant'"

# ---------------------------------------------------------------------------------------------
# Recipes: hash -> tag, per image. An image's recipe includes its base image's ID, so a rebuilt
# debian image rebuilds everything above it.

declare -A TAG=() ID=() BUILT=()

root_recipe() { # ROOT
  printf 'prov debian v%s\nsuite=%s variant=%s\n' "$RECIPE_VERSION" "${SUITE_OF[$1]}" "$VARIANT"
  declare -f tweak_rootfs
}

# Where an image's recipe lives: both node flavours share images/node.
src_of() { [[ $1 == node* ]] && echo node || echo "$1"; }

recipe() { # NAME -> recipe text on stdout (needs the ID of its base)
  local name=$1
  printf 'prov %s v%s\nbase=%s\n' "$name" "$RECIPE_VERSION" "${ID[${BASE_OF[$name]}]}"
  dir_digest "$IMAGES_SRC/$(src_of "$name")"
  case $name in
    builder)
      printf 'sysroot=%s\n' "$SYSROOT"
      "$SYSROOT/bin/rustc" -vV
      "$SYSROOT/bin/cargo" -V
      cat "$SYSROOT/lib/rustlib/components" 2>/dev/null || true
      ;;
    node*)
      sha256sum <"$VAGRANT_PUB"
      printf 'flavour=%s packages=%s\n' "$(flavour_of "$name")" "$(node_packages "$name")"
      ;;
  esac
}

# A box's recipe: its node image, the box's files and the id block its template maps nodes to.
box_recipe() { # NAME
  printf 'prov lxc box v%s\nimage=%s\nsubids=%s %s %s\n' "$RECIPE_VERSION" "${ID[$1]}" \
    "$LXC_SUBID_BASE" "$LXC_SUBID_SLOTS" "$LXC_SUBID_RANGE"
  dir_digest "$LXC_SRC"
}

box_name() { printf 'prov-%s-lxc-%s' "$1" "$(box_recipe "$1" | hash12)"; }

# Boxes added from a file have version 0.
box_present() { [[ -f $VAGRANT_BOXES/$1/0/lxc/metadata.json ]]; }

# ---------------------------------------------------------------------------------------------
# Builders

build_root() { # ROOT HASH
  local t0=$SECONDS root=$1 hash=$2 suite=${SUITE_OF[$1]}
  local rootfs=$PROV_REPO/.cache/rootfs/$suite-$VARIANT
  local stamp=$rootfs.done
  if [ "$FORCE" = 1 ] || [ ! -d "$rootfs" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]; then
    [ "$(id -u)" = 0 ] || die "debootstrap needs root: run scripts/host/bases.sh as root"
    command -v debootstrap >/dev/null ||
      die "debootstrap is missing: install it with 'apt-get install -y debootstrap'"
    log "$root: debootstrap --variant=$VARIANT $suite into $rootfs (about a minute; log: $LOG_DIR/debootstrap-$suite.log)"
    rm -rf "$rootfs" "$rootfs.partial" "$stamp"
    mkdir -p "$(dirname "$rootfs")"
    if ! debootstrap --variant="$VARIANT" "$suite" "$rootfs.partial" >"$LOG_DIR/debootstrap-$suite.log" 2>&1; then
      tail -n 20 "$LOG_DIR/debootstrap-$suite.log" >&2
      die "debootstrap failed (full log: $LOG_DIR/debootstrap-$suite.log): check that http://deb.debian.org is reachable"
    fi
    tweak_rootfs "$rootfs.partial" "$suite"
    mv "$rootfs.partial" "$rootfs"
    printf '%s\n' "$hash" >"$stamp"
    log "$root: rootfs ready ($(du -sh "$rootfs" | cut -f1)) in $(elapsed "$t0")"
  else
    log "$root: reusing the rootfs in $rootfs"
  fi
  local t1=$SECONDS
  tar -C "$rootfs" --numeric-owner -c . |
    "$DOCKER" import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change "LABEL prov.name=$root prov.recipe=$hash" \
      --change 'CMD ["/bin/bash"]' \
      --message "prov: debootstrap --variant=$VARIANT $suite" \
      - "${TAG[$root]}" >/dev/null ||
    die "docker import of $rootfs failed"
  log "$root: imported as ${TAG[$root]} in $(elapsed "$t1")"
}

# Streams the build context (a tar) of image NAME to stdout.
context_tar() {
  case $1 in
    builder)
      # The toolchain is sent straight from its sysroot: no copy of its ~600 MB.
      tar -c -C "$IMAGES_SRC/builder" . -C "$SYSROOT" bin lib
      ;;
    node*)
      tar -c -C "$IMAGES_SRC/node" . -C "$(dirname "$VAGRANT_PUB")" "$(basename "$VAGRANT_PUB")"
      ;;
    *) tar -c -C "$IMAGES_SRC/$1" . ;;
  esac
}

# The LXC box of node image NAME: the files of a container made from it (never started), as
# rootfs.tar.gz (owned by ids 0-65535: the box's lxc-template maps them to the node's own range),
# the template, the LXC settings, and the files an LXC node adds to the image.
build_box() { # NAME BOX
  local name=$1 box=$2 t0=$SECONDS dir=$OUT/box-$1 cid
  rm -rf "$dir" "$dir.box"
  mkdir -p "$dir"
  log "$name: making the LXC box $box from ${TAG[$name]}"
  cid=$("$DOCKER" create "${TAG[$name]}") || die "docker create ${TAG[$name]} failed (above)"
  if ! "$DOCKER" export "$cid" | gzip -1 >"$dir/rootfs.tar.gz"; then
    "$DOCKER" rm "$cid" >/dev/null
    die "docker export of ${TAG[$name]} to $dir failed (disk full?)"
  fi
  "$DOCKER" rm "$cid" >/dev/null
  install -m 0755 "$LXC_SRC/lxc-template.sh" "$dir/lxc-template"
  install -m 0644 "$LXC_SRC/lxc-config" "$dir/lxc-config"
  install -m 0755 "$LXC_SRC/init.sh" "$LXC_SRC/halt.sh" "$dir/"
  jq -n --arg base "$LXC_SUBID_BASE" --arg slots "$LXC_SUBID_SLOTS" --arg range "$LXC_SUBID_RANGE" \
    '{provider: "lxc", version: "1.0.0",
      "template-opts": {"--subid-base": $base, "--subid-slots": $slots, "--subid-range": $range}}' \
    >"$dir/metadata.json"
  tar -C "$dir" -cf "$dir.box" .
  # Away from the checkout: Vagrant would read its Vagrantfile.
  if ! (cd / && vagrant box add --force --name "$box" "$dir.box") >"$LOG_DIR/$name-box.log" 2>&1; then
    tail -n 20 "$LOG_DIR/$name-box.log" >&2
    die "vagrant box add $box failed (log: $LOG_DIR/$name-box.log)"
  fi
  log "$name: LXC box $box made in $(elapsed "$t0"), rootfs.tar.gz $(($(stat -c %s "$dir/rootfs.tar.gz") / 1000000)) MB"
  rm -rf "$dir" "$dir.box"
}

# Runs in the background: builds NAME, output to its log file.
build_one() {
  local name=$1 hash=$2 t0=$SECONDS
  local -a opts=(--force-rm --build-arg "BASE=${ID[${BASE_OF[$name]}]}"
    --label "prov.name=$name" --label "prov.recipe=$hash" -t "${TAG[$name]}")
  [ "$FORCE" = 1 ] && opts+=(--no-cache)
  [[ $name != node* ]] || opts+=(--build-arg "PACKAGES=$(node_packages "$name")"
    --build-arg "FLAVOUR=$(flavour_of "$name")")
  context_tar "$name" | "$DOCKER" build "${opts[@]}" - >"$LOG_DIR/$name.log" 2>&1
  echo "$((SECONDS - t0))" >"$LOG_DIR/$name.seconds"
}

JOBS=()
# Waits for every job in JOBS; then dies, naming WHAT, if one failed (it said why above).
wait_jobs() {
  local pid failed=0
  for pid in "${JOBS[@]}"; do wait "$pid" || failed=1; done
  JOBS=()
  [ "$failed" = 0 ] || die "$1 failed (above)"
}
stop_jobs() {
  local pid
  for pid in "${JOBS[@]}"; do
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
  done
}
trap 'stop_jobs; exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Resolve: which images exist already, which must be built.

# The suites are debootstrapped side by side: each waits mostly on the mirror and on dpkg.
roots_todo=()
for root in "${ROOTS[@]}"; do
  root_hash=$(root_recipe "$root" | hash12)
  TAG[$root]=prov-$root:$root_hash
  if [ "$FORCE" = 0 ] && [ -n "${TAG_ID[${TAG[$root]}]:-}" ]; then
    ID[$root]=${TAG_ID[${TAG[$root]}]}
  else
    log "$root: building ${TAG[$root]}"
    build_root "$root" "$root_hash" &
    JOBS+=("$!")
    roots_todo+=("$root")
  fi
done
wait_jobs "making a Debian root image"
for root in "${roots_todo[@]}"; do
  ID[$root]=$("$DOCKER" image inspect --format '{{.Id}}' "${TAG[$root]}")
  BUILT[$root]=1
done

declare -A HASH=()
todo=()
for name in "${NAMES[@]}"; do
  [ -z "${SUITE_OF[$name]:-}" ] || continue
  HASH[$name]=$(recipe "$name" | hash12)
  TAG[$name]=prov-$name:${HASH[$name]}
  if [ "$FORCE" = 0 ] && [ -n "${TAG_ID[${TAG[$name]}]:-}" ]; then
    ID[$name]=${TAG_ID[${TAG[$name]}]}
  else
    todo+=("$name")
  fi
done

ids_content() {
  local name
  for name in "${NAMES[@]}"; do
    printf '%s_IMAGE=%s\n' "$(upper "$name")" "${ID[$name]}"
  done
  for name in "${NAMES[@]}"; do
    printf '%s_TAG=%s\n' "$(upper "$name")" "${TAG[$name]}"
  done
  for name in "${BOXES[@]}"; do
    printf '%s_LXC_BOX=%s\n' "$(upper "$name")" "$(box_name "$name")"
  done
}

boxes_present() {
  local name
  for name in "${BOXES[@]}"; do box_present "$(box_name "$name")" || return 1; done
}

# The boxes of this checkout's node images that another recipe made, one name per line.
replaced_boxes() {
  local name old
  for name in "${BOXES[@]}"; do
    for old in "$VAGRANT_BOXES/prov-$name-lxc-"*; do
      [[ ! -d $old || ${old##*/} == "$(box_name "$name")" ]] || echo "${old##*/}"
    done
  done
}

bases_stamp_content() { # what bases.tar must hold, and its size
  local name
  for name in "${SAVED[@]}"; do
    printf '%s %s\n' "${TAG[$name]}" "${ID[$name]}"
  done
  printf 'size=%s\n' "$(stat -c %s "$BASES_TAR" 2>/dev/null || echo none)"
}

# The saved bases as the host's engine describes them (rewritten each time: an inspect and a
# history each). The history, newest first, tells an image built on a base its own layers from
# the base's on a store that names no entry below an image's top (verify's layers-fresh).
write_bases_json() {
  local name history
  for name in "${SAVED[@]}"; do
    history=$("$DOCKER" history --no-trunc --format '{{json .}}' "${TAG[$name]}" |
      jq -s 'map({created: .CreatedAt, created_by: .CreatedBy})')
    "$DOCKER" image inspect "${TAG[$name]}" |
      jq --arg name "$name" --arg tag "${TAG[$name]}" --argjson history "$history" \
        '.[0] | {$name, $tag, id: .Id, created: .Created, layers: .RootFS.Layers, config: .Config,
          $history}'
  done | jq -s . >"$BASES_JSON.tmp"
  mv -f "$BASES_JSON.tmp" "$BASES_JSON"
}

if [ "${#todo[@]}" = 0 ] && [ "${#BUILT[@]}" = 0 ] &&
  [ "$(cat "$IDS_ENV" 2>/dev/null)" = "$(ids_content)" ] &&
  [ "$(cat "$BASES_STAMP" 2>/dev/null)" = "$(bases_stamp_content)" ] && boxes_present &&
  [ -z "$(replaced_boxes)" ]; then
  write_bases_json
  log "base images up to date (${IDS_ENV#"$PROV_REPO"/}, ${BASES_TAR#"$PROV_REPO"/}): nothing to do ($(elapsed "$START"))"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Build what is missing: the images above debian are independent, so they build in parallel.

if [ "${#todo[@]}" -gt 0 ]; then
  [ -r "$IMAGES_SRC/builder/Dockerfile" ] || die "$IMAGES_SRC is incomplete (no builder/Dockerfile)"
  t0=$SECONDS
  log "building in parallel: ${todo[*]} (logs: ${LOG_DIR#"$PROV_REPO"/}/<name>.log)"
  declare -A JOB_NAME=()
  for name in "${todo[@]}"; do
    log "$name: building ${TAG[$name]}"
    build_one "$name" "${HASH[$name]}" &
    JOBS+=("$!")
    JOB_NAME[$!]=$name
  done
  failed=()
  pending=("${JOBS[@]}")
  while [ "${#pending[@]}" -gt 0 ]; do
    pid=
    status=0
    wait -n -p pid "${pending[@]}" || status=$?
    [ -n "$pid" ] || die "lost track of the build jobs (wait returned $status)"
    for i in "${!pending[@]}"; do
      [ "${pending[$i]}" != "$pid" ] || unset 'pending[i]'
    done
    if [ "$status" = 0 ]; then
      name=${JOB_NAME[$pid]}
      ID[$name]=$("$DOCKER" image inspect --format '{{.Id}}' "${TAG[$name]}")
      size=$("$DOCKER" image inspect --format '{{.Size}}' "${TAG[$name]}")
      BUILT[$name]=1
      log "$name: built ${TAG[$name]} in $(cat "$LOG_DIR/$name.seconds")s, $((size / 1000000)) MB, ${ID[$name]}"
    else
      name=${JOB_NAME[$pid]}
      failed+=("$name")
      warn "$name: docker build failed; last lines of $LOG_DIR/$name.log:"
      tail -n 25 "$LOG_DIR/$name.log" >&2 || true
    fi
  done
  JOBS=()
  [ "${#failed[@]}" = 0 ] ||
    die "build failed for: ${failed[*]} (logs in $LOG_DIR; apt-get in a build needs http://deb.debian.org)"
  log "images built in $(elapsed "$t0")"
fi

# Drop what the images just built replace: older prov-<name> tags, and the previous image of
# a reused tag (--force). Best effort: an image still used by a container or by another
# image stays. Upper images first, so that older debian images lose their children first.
for ((i = ${#NAMES[@]} - 1; i >= 0; i--)); do
  name=${NAMES[$i]}
  [ -n "${BUILT[$name]:-}" ] || continue
  for t in "${!TAG_ID[@]}"; do
    old=
    if [[ $t == "prov-$name:"* && $t != "${TAG[$name]}" ]]; then
      old=$t
    elif [[ $t == "${TAG[$name]}" && ${TAG_ID[$t]} != "${ID[$name]}" ]]; then
      old=${TAG_ID[$t]}
    fi
    if [ -n "$old" ] && "$DOCKER" rmi "$old" >/dev/null 2>&1; then
      log "$name: removed the replaced image $old"
    fi
  done
done

# ---------------------------------------------------------------------------------------------
# bases.tar: what nodes `docker load`. Saved by tag, so both tags and IDs survive the load.

save_bases() {
  local t0=$SECONDS name saved_tags=()
  for name in "${SAVED[@]}"; do saved_tags+=("${TAG[$name]}"); done
  log "saving ${saved_tags[*]} to ${BASES_TAR#"$PROV_REPO"/}"
  rm -f "$BASES_STAMP"
  "$DOCKER" save -o "$BASES_TAR.tmp" "${saved_tags[@]}" ||
    die "docker save to $BASES_TAR.tmp failed (disk full?)"
  # docker save writes mode 0600; nodes read it as the vagrant user through /vagrant.
  chmod 0644 "$BASES_TAR.tmp"
  mv -f "$BASES_TAR.tmp" "$BASES_TAR"
  bases_stamp_content >"$BASES_STAMP.tmp"
  mv -f "$BASES_STAMP.tmp" "$BASES_STAMP"
  log "bases.tar written ($(($(stat -c %s "$BASES_TAR") / 1000000)) MB) in $(elapsed "$t0")"
}

# bases.tar and the LXC boxes are made side by side (the engine writes one, gzip compresses the
# others); then the boxes they replace go (a node keeps nothing of its box once made). A box is
# removed as a folder: `vagrant box remove` reads the Vagrantfile of every machine made from it,
# and this one runs only under make.
if [ "$(cat "$BASES_STAMP" 2>/dev/null)" != "$(bases_stamp_content)" ]; then
  save_bases &
  JOBS+=("$!")
fi
for name in "${BOXES[@]}"; do
  box=$(box_name "$name")
  if ! box_present "$box"; then
    build_box "$name" "$box" &
    JOBS+=("$!")
  fi
done
wait_jobs "saving bases.tar or making an LXC box"
while read -r old; do
  rm -rf "${VAGRANT_BOXES:?}/$old"
  log "removed the replaced box $old"
done < <(replaced_boxes)

write_bases_json
ids_content >"$IDS_ENV.tmp"
mv -f "$IDS_ENV.tmp" "$IDS_ENV"
log "wrote ${IDS_ENV#"$PROV_REPO"/}:"
sed 's/^/    /' "$IDS_ENV" >&2
log "base images ready in $(elapsed "$START")"
