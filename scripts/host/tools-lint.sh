#!/usr/bin/env bash
# Fails when a script runs, or looks for (`command -v X`), a command that scripts/lib/tools.list
# does not declare for where the script runs. So a tool that only the author's machine has
# cannot slip into the scripts or the tests unnoticed.
#   scripts/host/tools-lint.sh [FILE...]     (default: every shell script and bats file in git)
# Scripts are parsed with shfmt (its JSON syntax tree), not with patterns. Commands whose name
# is not a literal word (`"$PROV" ...`), project files (`scripts/node/up.sh`), functions defined
# in the linted files and bash builtins need no declaration. Known limit: commands hidden in a
# string (`bash -c "..."`, or sent to a node) are not seen.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

if (($#)); then
  files=("$@")
else
  mapfile -t files < <(cd "$PROV_REPO" && git ls-files '*.sh' '*.bash' '*.bats' .ci/run |
    sed "s|^|$PROV_REPO/|")
fi

# Where a file runs decides which scopes of the list it may use.
scopes_of() {
  local rel=${1#"$PROV_REPO"/}
  case $rel in
    images/node/provision.sh) echo node node-bookworm node-trixie vm base ;;
    scripts/node/* | scripts/lib/node.sh | images/node/* | images/node-lxc/init.sh | images/node-lxc/halt.sh)
      echo node node-bookworm node-trixie base
      ;;
    images/postgres/*) echo db base ;;
    bench/node/* | tests/fixtures/events/*.sh) echo node node-bookworm node-trixie base ;;
    scripts/lib/common.sh) echo base ;;
    bench/*) echo host bench base rust ;;
    *.bats | tests/e2e/helpers.bash) echo host test base rust bats ;;
    *) echo host test base rust ;;
  esac
}

# The command names one file runs, one per line, from its syntax tree. Wrappers (sudo, env,
# timeout, xargs, ...) run their argument too; `command -v X` looks for X.
commands_of() {
  # bats' `@test "name" {` is not shell syntax: it becomes a function for the parser.
  sed -E 's/^@test .*\{[[:space:]]*$/bats_test_case() {/' "$1" | shfmt -ln bash --to-json |
    jq -r '
      def lit: if .Type == "Lit" or .Type == "SglQuoted" then .Value
        elif .Type == "DblQuoted" then
          ([.Parts[]? | lit] | if all(. != null) then join("") else null end)
        else null end;
      def word: [.Parts[]? | lit] | if length > 0 and all(. != null) then join("") else null end;
      # Options of the wrappers that take a value.
      def valued($w): {"env": ["-C", "-u", "--chdir", "--unset"], "sudo": ["-u", "-g"],
        "timeout": ["-s", "-k"], "xargs": ["-n", "-I", "-P", "-d", "-L", "-s"],
        "unshare": ["--propagation"], "flock": ["-w", "-E"]}[$w] // [];
      def after($w):
        if length == 0 or .[0] == null then []
        elif (.[0] | startswith("-")) then
          .[0] as $o | (if (valued($w) | index([$o])) == null then .[1:] else .[2:] end)
          | after($w)
        elif ($w == "env" and (.[0] | test("^[A-Za-z_][A-Za-z0-9_]*="))) then .[1:] | after($w)
        elif ($w == "timeout" and (.[0] | test("^[0-9.]+[smhd]?$"))) then .[1:] | after($w)
        elif ($w == "flock" and (.[0] | test("^[0-9]+$"))) then .[1:] | after($w)
        else . end;
      def run:
        if length == 0 or .[0] == null then []
        elif .[0] == "command" and .[1] == "-v" then [.[2:][] | select(. != null)]
        elif (.[0] | IN("sudo", "env", "timeout", "xargs", "nohup", "setsid", "exec",
                        "command", "time", "unshare", "flock")) then
          [.[0]] + (.[0] as $w | .[1:] | after($w) | run)
        else [.[0]] end;
      .. | objects | select(.Type? == "CallExpr") | [.Args[]? | word] | run[]'
}

functions_of() {
  sed -E 's/^@test .*\{[[:space:]]*$/bats_test_case() {/' "$1" | shfmt -ln bash --to-json |
    jq -r '.. | objects | select(.Type? == "FuncDecl") | .Name.Value'
}

declare -A known_function=() builtin=()
for f in "${files[@]}"; do
  while read -r name; do known_function[$name]=1; done < <(functions_of "$f" ||
    die "shfmt cannot parse $f")
done
while read -r name; do builtin[$name]=1; done < <(compgen -b)

problems=0
for f in "${files[@]}"; do
  read -ra scopes <<<"$(scopes_of "$f")"
  declare -A allowed=()
  while read -r command _; do allowed[$command]=1; done < <(declared_tools "${scopes[@]}")
  while read -r name; do
    [[ -n $name && -z ${known_function[$name]:-} && -z ${builtin[$name]:-} ]] || continue
    # A relative path is one of the project's own files.
    [[ $name == /* || $name != */* ]] || continue
    [[ -z ${allowed[$name]:-} ]] || continue
    printf '%s: runs %s, which scripts/lib/tools.list does not declare for scopes %s:\n  add a line "SCOPE %s PACKAGE" there (and install nothing by hand)\n' \
      "${f#"$PROV_REPO"/}" "$name" "${scopes[*]}" "$name" >&2
    problems=$((problems + 1))
  done < <(commands_of "$f" | sort -u)
  unset allowed
done
((problems == 0)) || die "$problems undeclared command(s): see above"
log "every command of ${#files[@]} file(s) is declared in scripts/lib/tools.list"
