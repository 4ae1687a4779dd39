#!/usr/bin/env bats
# What executes inside the stack and around it, on a real node: each way an operator with sudo
# changes what runs, or reaches into it, with docker's own commands (once with iptables), is
# caught by name. Each test puts the node back on the golden path.

load ../helpers

setup_file() { stack_ready "$NODE"; }
bats_require_minimum_version 1.5.0

# The runtime base: an image already on every node, not one of the stack's.
runtime_base() { root_on "$NODE" ". /vagrant/.cache/images/ids.env && echo \$RUNTIME_TAG"; }

# The Engine API on the node, as root (what `docker` itself uses).
engine() { root_on "$NODE" "curl -sS --unix-socket /var/run/docker.sock $*"; }

# Replaces the api container by a clone made through the Engine API from its own configuration,
# with JQ_EDIT applied to the create request (a jq filter over {Config, HostConfig}).
clone_api_with() {
  root_on "$NODE" "set -e
    c=\$(curl -sS --unix-socket /var/run/docker.sock http://docker/containers/prov-api/json)
    body=\$(jq -c '.Config + {HostConfig: .HostConfig, NetworkingConfig: {EndpointsConfig:
      (.NetworkSettings.Networks | map_values({Aliases}))}} | $1' <<<\"\$c\")
    docker rm -f prov-api >/dev/null
    curl -sS -f --unix-socket /var/run/docker.sock -H 'Content-Type: application/json' \
      -d \"\$body\" 'http://docker/containers/create?name=prov-api' >/dev/null
    docker start prov-api >/dev/null"
}

# Appends a byte to FILE (a path in CONTAINER's root) where the image's stored layers keep it on
# the node's disk (the lowest of the container's overlay lowers holding it, as the container
# mounted them), then removes the container; teardown takes the byte off again.
edit_stored_layer() {
  root_on "$NODE" "set -e
    lowers=\$(findmnt --task \$(docker inspect --format '{{.State.Pid}}' $2) --noheadings --raw \
      --output FS-OPTIONS --mountpoint / | tr , '\\n' | sed -n 's/^lowerdir=//p')
    for dir in \${lowers//:/ }; do
      if [ -f \$dir$1 ]; then printf x >>\$dir$1; echo \$dir$1 >>/tmp/prov-e2e-edited; break; fi
    done
    grep -q . /tmp/prov-e2e-edited
    docker rm -f $2 >/dev/null"
}

# Puts back the byte the in-place edit changed, and the file's modification time.
put_back_in_place() {
  root_on "$NODE" "if [ -f /tmp/prov-e2e-inplace ]; then
      f=\$(cat /tmp/prov-e2e-inplace) && time=\$(stat -c %y \$f)
      dd if=/tmp/prov-e2e-byte of=\$f bs=1 seek=\$((\$(stat -c %s \$f) - 1)) conv=notrunc status=none
      touch -d \"\$time\" \$f && rm /tmp/prov-e2e-inplace /tmp/prov-e2e-byte
    fi"
}

teardown() {
  put_back_in_place || true
  root_on "$NODE" "if [ -f /tmp/prov-e2e-edited ]; then
      while read -r f; do truncate -s -1 \$f; done </tmp/prov-e2e-edited; rm /tmp/prov-e2e-edited
    fi" || true
  root_on "$NODE" "docker rm -f prov-e2e-sidecar prov-e2e-dbpeek prov-e2e-clone >/dev/null 2>&1
    docker network disconnect -f prov-e2e-second prov-api >/dev/null 2>&1
    docker network rm prov-e2e-second >/dev/null 2>&1
    iptables -t nat -D PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 18999 2>/dev/null
    [ -f /tmp/prov-e2e-replay/pid ] && kill \$(cat /tmp/prov-e2e-replay/pid) 2>/dev/null
    rm -rf /tmp/prov-e2e-replay; true" || true
  if [[ -n ${RESTACK:-} || -z ${BATS_TEST_COMPLETED:-} ]]; then
    # Fresh stack containers from the latest build, as the golden path makes them (the engine
    # remembers the exec sessions of the old ones; the database's volume is kept).
    root_on "$NODE" "docker rm -f prov-api prov-db >/dev/null 2>&1; true" || true
    golden up NODE="$NODE" >/dev/null || true
  fi
}

@test "the api's root filesystem is read-only: its binary cannot be swapped, not even by root" {
  passes
  run root_on "$NODE" "docker exec -u 0 prov-api sh -c 'cp /usr/local/bin/api /tmp/x; \
    echo >>/tmp/x; cp /tmp/x /usr/local/bin/api'"
  [ "$status" -ne 0 ]
  root_on "$NODE" "head -c 16 /dev/zero >/tmp/prov-e2e-file"
  run root_on "$NODE" "docker cp /tmp/prov-e2e-file prov-api:/usr/local/bin/api"
  [ "$status" -ne 0 ]
  assert_output_has "read-only"
  root_on "$NODE" "rm -f /tmp/prov-e2e-file"
  root_on "$NODE" "docker restart prov-api >/dev/null"
  eventually 60 "'$PROV' --repo '$REPO' verify --node '$NODE' --json | \
    jq -e '.checks[] | select(.name == \"service:api\") | .ok' >/dev/null"
  # The attempt itself is an exec session the engine remembers, until the restart: after it,
  # the container's files are still its image's.
  run prov verify --node "$NODE" --json
  jq -e '.checks[] | select(.name == "filesystem:api") | .ok' <<<"$output"
}

@test "a clone of the api made writable, its binary swapped and restarted: config, files and the exec are named" {
  RESTACK=1
  clone_api_with '.HostConfig.ReadonlyRootfs = false'
  # The running binary cannot be written in place ("text file busy"): a copy is moved over it.
  # A file of the image goes, one is added, and a folder is emptied and made again as it was
  # (its files hidden, not deleted one by one).
  root_on "$NODE" "docker exec -u 0 prov-api sh -c 'cp /usr/local/bin/api /usr/local/bin/api.new && \
    echo >>/usr/local/bin/api.new && mv /usr/local/bin/api.new /usr/local/bin/api && \
    rm /etc/debian_version && echo x >/prov-e2e-added && \
    rm -r /usr/share/doc/prov-api && mkdir /usr/share/doc/prov-api' && \
    docker restart prov-api >/dev/null"
  eventually 60 "'$PROV' --repo '$REPO' verify --node '$NODE' --json | \
    jq -e '.checks[] | select(.name == \"service:api\") | .ok' >/dev/null"
  fails_on filesystem:api "/usr/local/bin/api (changed)"
  fails_on filesystem:api "/etc/debian_version (deleted)"
  fails_on filesystem:api "/prov-e2e-added (added)"
  fails_on filesystem:api "/usr/share/doc/prov-api (changed)"
  fails_on config:api "HostConfig.ReadonlyRootfs: expected true, found false"
}

@test "a file the node's root writes straight into the api's writable layer, not through docker, is named" {
  RESTACK=1
  root_on "$NODE" "up=\$(findmnt --task \$(docker inspect --format '{{.State.Pid}}' prov-api) \
    --noheadings --raw --output FS-OPTIONS --mountpoint / | tr , '\\n' | sed -n 's/^upperdir=//p')
    mkdir -p \$up/etc && echo x >\$up/etc/prov-e2e-from-node"
  fails_on filesystem:api "/etc/prov-e2e-from-node (added)"
}

@test "the api's binary edited in its image's stored layer on the node's disk, the api re-created: runs:api names it" {
  RESTACK=1
  edit_stored_layer /usr/local/bin/api prov-api
  golden up NODE="$NODE" >/dev/null
  fails_on runs:api "/usr/local/bin/api: sha256"
}

@test "the database's entrypoint edited in its base's stored layer, the database re-created: runs:db names it" {
  RESTACK=1
  edit_stored_layer /usr/local/bin/prov-postgres-entrypoint prov-db
  golden up NODE="$NODE" >/dev/null
  fails_on runs:db "/usr/local/bin/prov-postgres-entrypoint: sha256"
}

@test "a library the database maps, edited in place in its base's stored layer (size and time kept), the database left running: runs:db names it though the host had proven the file" {
  lib=/usr/lib/x86_64-linux-gnu/libicudata.so.72.1
  prov verify --node "$NODE" --attest >/dev/null
  if [[ $(node_provider "$NODE") == lxc ]]; then
    # The host keeps what it proved: the next verify hashes none of the database's files again.
    run prov verify --node "$NODE" --json
    jq -e '.checks[] | select(.name == "runs:db") | .ok and (.observed
      | capture("^(?<all>[0-9]+) files.*[(](?<kept>[0-9]+) unchanged since the host proved") | .all == .kept)' <<<"$output"
  fi
  # Its last byte, in place (the library stays mapped), then its modification time set back: the
  # same size, inode and times but the change time, which only the clock sets.
  root_on "$NODE" "set -e
    lowers=\$(findmnt --task \$(docker inspect --format '{{.State.Pid}}' prov-db) --noheadings --raw \
      --output FS-OPTIONS --mountpoint / | tr , '\\n' | sed -n 's/^lowerdir=//p')
    for dir in \${lowers//:/ }; do if [ -f \$dir$lib ]; then f=\$dir$lib; break; fi; done
    time=\$(stat -c %y \$f)
    tail -c 1 \$f >/tmp/prov-e2e-byte && echo \$f >/tmp/prov-e2e-inplace
    printf A | dd of=\$f bs=1 seek=\$((\$(stat -c %s \$f) - 1)) conv=notrunc status=none
    touch -d \"\$time\" \$f"
  fails_on runs:db "$lib: sha256"
  # Its byte put back (a new change time again): hashed again, it holds the image's bytes.
  put_back_in_place
  passes
}

@test "a process started with docker exec -d is named, and so is one that already ended" {
  RESTACK=1
  root_on "$NODE" "docker exec -d prov-api sleep 300"
  fails_on processes:api "sleep 300"
  root_on "$NODE" "docker exec prov-db true"
  # shellcheck disable=SC2016 # the backquotes are verify's, not a command substitution
  fails_on processes:db 'exec session `true`'
}

@test "docker update of the api's limits and restart policy is named field by field" {
  RESTACK=1
  root_on "$NODE" "docker update --memory 256m --memory-swap 256m --pids-limit 64 \
    --restart always prov-api >/dev/null"
  fails_on config:api "HostConfig.Memory: expected unset, found 268435456"
  fails_on config:api "HostConfig.PidsLimit: expected unset, found 64"
  fails_on config:api "HostConfig.RestartPolicy: expected \"no\", found \"always\""
}

@test "a clone of the api through the Engine API, plus one option outside the record, is named" {
  RESTACK=1
  for edit in '.HostConfig.PidMode = "host"' \
    '.HostConfig.SecurityOpt = ["seccomp=unconfined"]' \
    '.HostConfig.Devices = [{"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero", "CgroupPermissions": "rwm"}]'; do
    clone_api_with "$edit"
    eventually 60 "'$PROV' --repo '$REPO' verify --node '$NODE' --json | \
      jq -e '.checks[] | select(.name == \"service:api\") | .ok' >/dev/null"
    case $edit in
      *PidMode*) fails_on config:api 'HostConfig.PidMode: expected unset, found "host"' ;;
      *SecurityOpt*) fails_on config:api 'HostConfig.SecurityOpt: expected unset' ;;
      *Devices*) fails_on config:api 'HostConfig.Devices: expected unset' ;;
    esac
  done
}

@test "a container from the runtime base in the api's process namespace, with SYS_PTRACE, is named" {
  passes
  root_on "$NODE" "docker run -d --name prov-e2e-sidecar --pid container:prov-api \
    --cap-add SYS_PTRACE $(runtime_base) sleep 300 >/dev/null"
  fails_on reach "prov-e2e-sidecar: shares the process namespace of prov-api"
}

@test "a container mounting the database's volume is named" {
  passes
  root_on "$NODE" "docker run -d --name prov-e2e-dbpeek -v prov_dbdata:/data \
    $(runtime_base) sleep 300 >/dev/null"
  fails_on reach "prov-e2e-dbpeek: mounts prov_dbdata at /data"
}

@test "the api connected to a second network is named" {
  root_on "$NODE" "docker network create prov-e2e-second >/dev/null && \
    docker network connect prov-e2e-second prov-api"
  fails_on config:api "NetworkSettings.Networks: expected {\"prov_default\"}"
}

@test "the api's port diverted on the node to a listener that replays its answers: the HTTP checks pass, answered-by-api does not" {
  # The answers, as the api gives them; then a listener (perl, from the node's base system)
  # that replays them, and one iptables rule that sends the port to it.
  root_on "$NODE" "mkdir -p /tmp/prov-e2e-replay && cd /tmp/prov-e2e-replay && \
    for p in health ready version; do curl -s -i http://127.0.0.1:8080/\$p >\$p; done"
  root_on "$NODE" "cat >/tmp/prov-e2e-replay/serve.pl <<'EOF'
use IO::Socket::INET;
my \$s = IO::Socket::INET->new(LocalPort => 18999, Listen => 10, ReuseAddr => 1) or die;
while (my \$c = \$s->accept) {
  my (\$path) = <\$c> =~ m{^GET /(\\w+)};
  while (my \$h = <\$c>) { last if \$h =~ /^\\r?\\n\$/ }
  # One answer per connection, and it says so (verify's client keeps a connection for the next).
  if (open(my \$f, '<', \"/tmp/prov-e2e-replay/\$path\")) {
    local \$/; my \$a = <\$f>; \$a =~ s/\\r\\n/\\r\\nConnection: close\\r\\n/; print {\$c} \$a
  }
  close \$c;
}
EOF
    setsid perl /tmp/prov-e2e-replay/serve.pl </dev/null >/dev/null 2>&1 & echo \$! >/tmp/prov-e2e-replay/pid
    iptables -t nat -I PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 18999"
  eventually 10 "curl -fs http://127.0.0.1:$(prov nodes --port "$NODE")/version >/dev/null"
  run prov verify --node "$NODE" --json
  echo "$output" | jq -c '.checks[] | select(.name | test("http|one-tree|answered"))' >&2
  [ "$status" -eq 1 ]
  for check in http/health http/ready http/version one-tree; do
    jq -e --arg c "$check" '.checks[] | select(.name == $c) | .ok' <<<"$output"
  done
  fails_on answered-by-api "/version answered 200, which the api's log does not show"
}
