#!/usr/bin/env bats
# Host-only state leaves the checkout: a .vagrant/ an older prov left there is moved into the
# state folder, once, with one line saying so (scripts/lib/host.sh, use_host_state).

load ../e2e/helpers

setup() {
  # shellcheck source=scripts/lib/host.sh
  source "$REPO/scripts/lib/host.sh"
  # A scratch checkout and state folder; `prov state-dir` honours PROV_STATE_DIR, and a stand-in
  # prints it, so that these tests need no build of prov.
  PROV_REPO="$BATS_TEST_TMPDIR/checkout"
  mkdir -p "$PROV_REPO/.vagrant/machines/main/docker"
  echo container-id >"$PROV_REPO/.vagrant/machines/main/docker/id"
  export PROV_STATE_DIR="$BATS_TEST_TMPDIR/state"
  # shellcheck disable=SC2317 # called by use_host_state
  prov() { printf '%s\n' "$PROV_STATE_DIR"; }
}

@test "an old .vagrant/ moves into the state folder, saying so in one line, and only once" {
  run use_host_state
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 1 ]
  assert_output_has "moved Vagrant's machine data from $PROV_REPO/.vagrant"
  [ ! -e "$PROV_REPO/.vagrant" ]
  [ "$(cat "$PROV_STATE_DIR/vagrant/machines/main/docker/id")" = container-id ]
  run use_host_state
  [ "$status" -eq 0 ]
  [ -z "$output" ]
}

@test "with Vagrant's data already in the state folder, an old .vagrant/ is left and named" {
  mkdir -p "$PROV_STATE_DIR/vagrant"
  run use_host_state
  [ "$status" -eq 0 ]
  assert_output_has "is left from an older prov"
  [ -e "$PROV_REPO/.vagrant/machines/main/docker/id" ]
  [ -z "$(ls -A "$PROV_STATE_DIR/vagrant")" ]
}

@test "the state is exported for Vagrant: the Vagrantfile refuses to run without it" {
  use_host_state
  [ "$VAGRANT_DOTFILE_PATH" = "$PROV_STATE_DIR/vagrant" ]
  # Vagrant makes its data folder before it reads the Vagrantfile: a scratch one, not the
  # checkout's .vagrant/.
  cd "$REPO"
  run env -u PROV_STATE_DIR VAGRANT_DOTFILE_PATH="$BATS_TEST_TMPDIR/dot" vagrant status
  [ "$status" -ne 0 ]
  assert_output_has "run Vagrant through make"
}

@test "changes to the host's side of the LXC nodes run one at a time, from concurrent makes" {
  # Each holder writes its start and end around a pause: held one at a time, they never interleave.
  hold() { echo "start $1" >>"$BATS_TEST_TMPDIR/order"; sleep 0.3; echo "end $1" >>"$BATS_TEST_TMPDIR/order"; }
  local pids=()
  with_lxc_host_lock hold a &
  pids+=("$!")
  with_lxc_host_lock hold b &
  pids+=("$!")
  with_lxc_host_lock hold c &
  pids+=("$!")
  wait "${pids[@]}"
  run cat "$BATS_TEST_TMPDIR/order"
  echo "$output"
  [ "${#lines[@]}" -eq 6 ]
  for i in 0 2 4; do
    [ "${lines[i]#start }" = "${lines[i + 1]#end }" ]
  done
}

@test "a node script does not run when its node's export could not be refreshed, even in an if" {
  # An `if` turns off `set -e` in the functions it calls: the stand-in's failing sync must still
  # stop the script before it runs on the node.
  # shellcheck disable=SC2317 # called by node_script
  prov() {
    case $1 in
      sync) echo "prov: error: sending to node main: gone" >&2 && return 1 ;;
      exec) echo "ran on the node" ;;
    esac
  }
  out=$(if node_script main scripts/node/demo.sh; then echo "went on"; else echo "stopped"; fi 2>&1)
  echo "$out"
  [[ $out == *stopped* ]]
  [[ $out != *"ran on the node"* ]]
}

@test "Vagrant runs on the checkout's Vagrantfile from the host's state: what its tools write where they run stays out of the checkout" {
  # A stand-in vagrant does what the LXC provider's lxc-update-config does while it makes a node:
  # a temporary file in its working folder. It also says which Vagrantfile it would read.
  mkdir -p "$BATS_TEST_TMPDIR/bin" "$PROV_STATE_DIR"
  # shellcheck disable=SC2016 # expanded by the stand-in
  printf '#!/bin/sh\ntmp=$(mktemp -p "$PWD" XXXXXXXXXX) && echo "temporary file in $PWD"\necho "Vagrantfile in ${VAGRANT_CWD:-$PWD}"\n' \
    >"$BATS_TEST_TMPDIR/bin/vagrant"
  chmod +x "$BATS_TEST_TMPDIR/bin/vagrant"
  PATH="$BATS_TEST_TMPDIR/bin:$PATH" run run_vagrant up main
  echo "$output"
  [ "$status" -eq 0 ]
  assert_output_has "temporary file in $PROV_STATE_DIR"
  assert_output_has "Vagrantfile in $PROV_REPO"
  [ -z "$(find "$PROV_REPO" -maxdepth 1 -type f)" ]
}
