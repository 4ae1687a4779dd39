#!/usr/bin/env bats
# The execution-context guard, reached through real mounts inside a node: every refusal the
# milestone lists. The node runs (10-golden brought it up).

load ../helpers

teardown() { root_on "$NODE" "rm -rf /home/vagrant/copy /tmp/plain.tar" || true; }

setup_file() { stack_ready "$NODE"; }

SCRIPT=scripts/node/up.sh

# Runs up.sh as root on the node from a directory, through a given path to the script.
run_script_from() {
  run root_on "$NODE" "cd $1 && $2"
}

refused() {
  [ "$status" -ne 0 ]
  assert_output_has "refusing to run"
  assert_output_has "$1"
}

@test "from /vagrant the guard lets the script run" {
  run_script_from /vagrant "$SCRIPT"
  [ "$status" -eq 0 ]
}

@test "refused in /home/vagrant" {
  run_script_from /home/vagrant "/vagrant/$SCRIPT"
  refused "working directory is /home/vagrant"
}

@test "refused in a subdirectory of /vagrant" {
  run_script_from /vagrant/scripts "./node/up.sh"
  refused "working directory is /vagrant/scripts"
}

@test "refused when the script is a copy outside /vagrant, whatever the directory" {
  root_on "$NODE" "rm -rf /home/vagrant/copy && mkdir -p /home/vagrant/copy && cp -a /vagrant/scripts /home/vagrant/copy/"
  run_script_from /vagrant "/home/vagrant/copy/$SCRIPT"
  refused "outside /vagrant"
  run_script_from /home/vagrant/copy "$SCRIPT"
  refused "working directory is /home/vagrant/copy"
  root_on "$NODE" "rm -rf /home/vagrant/copy"
}

@test "refused on a partial mount: part of the tree is hidden" {
  run root_on "$NODE" "unshare --mount --propagation private bash -c \
    'mount -t tmpfs none /vagrant/api && cd /vagrant && $SCRIPT'"
  refused "not whole"
  assert_output_has "api/"
}

@test "refused on a partial mount: only a subdirectory of the repository is at /vagrant" {
  run root_on "$NODE" "unshare --mount --propagation private bash -c \
    'mount --bind /vagrant/scripts /vagrant && cd /vagrant && node/up.sh'"
  refused "/vagrant/target/release/prov is missing"
}

@test "refused on a /vagrant that is a plain directory holding a whole copy" {
  # Inside a private mount namespace: unmount /vagrant, fill the bare directory underneath with
  # the tracked files, .git and prov, and run from there.
  run root_on "$NODE" "cd /vagrant && git ls-files -z | tar --null -T - -cf /tmp/plain.tar .git target/release/prov && \
    unshare --mount --propagation private bash -c \
    'umount -l /vagrant && tar -xf /tmp/plain.tar -C /vagrant && cd /vagrant && $SCRIPT; rc=\$?; \
     find /vagrant -mindepth 1 -delete; exit \$rc'; rc=\$?; rm -f /tmp/plain.tar; exit \$rc"
  refused "is a plain directory, not a mount point"
}

@test "prov build itself refuses outside /vagrant" {
  run root_on "$NODE" "cd /home/vagrant && /vagrant/target/release/prov build"
  refused "working directory is /home/vagrant"
}
