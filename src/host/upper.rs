//! What a stack container changed in its files, read from the writable layer its root is
//! mounted with on the node, instead of asked of the engine.
//!
//! The engine's `/containers/{id}/changes` compares the container's whole tree with its image's
//! where the kernel's overlay cannot tell it what changed (in a user namespace, as in a nested
//! node: "Native Overlay Diff false"): 0.2 to 0.6 s a container, most of a verify. A container's
//! changes are exactly its overlay's upper directory, which the node lists in milliseconds. The
//! directory is the one the container's process has mounted as its root (`findmnt --task`),
//! not one the engine's records name: what is listed is what the container runs on. Each
//! entry is a whiteout (deleted), a path one of the lower layers has (changed), or a new one
//! (added); a copy of a lower entry that the container sees unchanged is not listed, as the
//! engine's own diff does not list it. A container the node cannot list (stopped, not on
//! overlay, no sudo) is asked of the engine as before.
//!
//! The same shell hashes what each container executes: every file mapped executable by a
//! process in the container's process namespace (its executable, its libraries), read at its
//! path in the container's root (its main process's), and hashed only when the file there is
//! the very one mapped (the same device and inode; a node's root may not open
//! `/proc/<pid>/map_files` in a user namespace); and the entrypoint's file as the container's
//! root holds it now. verify holds
//! those bytes to the image's as the host listed them (`image_files`): the image's stored
//! layers edited on the node's disk leave its ID and layers alone, not these.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::host::transport::Transport;
use crate::record::engine::{Change, Executed};

/// The most entries listed per container: past it the container has changed anyway, and the
/// rest is summed up in one entry.
const MAX_ENTRIES: usize = 1000;

/// The most the listing may print: `MAX_ENTRIES` paths of up to 4 KiB for each container.
const MAX_OUTPUT_BYTES: u64 = 16 << 20;

/// Run as root on the node with the entry limit and the container names; every record it prints
/// ends with a NUL. For each running container it first prints what it executes: `name TAB X TAB
/// sha256 TAB path` for each file mapped executable (once per file; sha256 `-` when the file at
/// that path is not the one mapped), `name TAB E TAB sha256 TAB path` for the entrypoint's file
/// (`-` when its root holds none), then `name TAB ran TAB`. Then its changes, `name TAB kind TAB
/// path`: kind `A`, `C` or `D` for an entry, `more` past the limit, then `listed`; or only
/// `unlisted` when the container's root is not an overlay with absolute layer paths (the host
/// then asks the engine). An entry that is a copy of the lower layers' one, alike in every way
/// the container can see, is no change (the engine copies its own mount points up when it
/// mounts a container's root, for `docker cp`, say): a file with the same type, owner, mode,
/// size, time and bytes; a link to the same target; a folder that hides nothing the lower
/// layers hold (the container's root shows every entry).
const SCRIPT: &str = r#"max=$1; shift
same() {
  local upper=$1 lower=$2 path=$3 dir name
  [ "$(stat -c '%F %u %g %a' "$upper")" = "$(stat -c '%F %u %g %a' "$lower")" ] || return 1
  if [ -L "$upper" ]; then
    [ "$(readlink "$upper")" = "$(readlink "$lower")" ]
  elif [ -f "$upper" ]; then
    [ "$(stat -c '%s %Y' "$upper")" = "$(stat -c '%s %Y' "$lower")" ] &&
      [ "$(sha256sum <"$upper")" = "$(sha256sum <"$lower")" ]
  elif [ -d "$upper" ]; then
    for dir in "${lowers[@]}"; do
      [ -d "$dir/$path" ] || continue
      while IFS= read -r -d '' name; do
        [ -e "$root/$path/$name" ] || [ -L "$root/$path/$name" ] || return 1
      done < <(find "$dir/$path" -mindepth 1 -maxdepth 1 -printf '%P\0')
    done
  else
    return 1
  fi
}
executed() {
  local name=$1 pid=$2 entry=$3 env=$4 search=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  local root=/proc/$2/root proc dev inode path file dir dirs i major minor sum size a b weight=0
  local -A found=() sums=()
  local maps=() paths=() files=() keys=() one=() two=()
  for proc in /proc/[0-9]*; do
    if [ "$proc/ns/pid" -ef "/proc/$pid/ns/pid" ]; then maps+=("$proc/maps"); fi
  done
  # Each file once (by device and inode), read at its path in the main process's root.
  while IFS=$'\t' read -r dev inode path; do
    major=$((16#${dev%:*})) minor=$((16#${dev#*:}))
    keys+=("$(((minor & 255) | ((major & 4095) << 8) | ((minor & ~255) << 12) | ((major & ~4095) << 32))) $inode")
    paths+=("$path") files+=("$root$path")
  done < <(cat "${maps[@]}" 2>/dev/null | awk '$2 ~ /x/ && $6 ~ /^\// && !seen[$4 " " $5]++ {
    dev = $4; inode = $5; sub(/^[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +/, ""); print dev "\t" inode "\t" $0 }')
  entry=${entry#\"} entry=${entry%\"}
  if [[ $env =~ \"PATH=([^\"]*)\" ]]; then search=${BASH_REMATCH[1]}; fi
  file=""
  case $entry in
    /*) file=$entry ;;
    */*) ;;
    ?*)
      IFS=: read -ra dirs <<<"$search"
      for dir in "${dirs[@]}"; do
        if [ -f "$root$dir/$entry" ]; then file=$dir/$entry; break; fi
      done ;;
  esac
  if [ -n "$file" ]; then files+=("$root$file"); fi
  if [ "${#files[@]}" -gt 0 ]; then
    # Hashed in two halves side by side, the largest files first, each to the lighter half.
    while IFS=' ' read -r -d '' size dev inode path; do
      found[$path]="$dev $inode"
      if [ "$weight" -le 0 ]; then one+=("$path") weight=$((weight + size))
      else two+=("$path") weight=$((weight - size)); fi
    done < <(find "${files[@]}" -maxdepth 0 -printf '%s %D %i %p\0' 2>/dev/null | sort -z -rn)
    exec {a}< <(openssl dgst -sha256 -r "${one[@]}" 2>/dev/null </dev/null)
    exec {b}< <([ "${#two[@]}" -eq 0 ] || openssl dgst -sha256 -r "${two[@]}" 2>/dev/null </dev/null)
    while read -r sum path; do sums[${path#\*}]=$sum; done <&"$a"
    while read -r sum path; do sums[${path#\*}]=$sum; done <&"$b"
    exec {a}<&- {b}<&-
  fi
  for i in "${!paths[@]}"; do
    sum=-
    if [ "${found[${files[$i]}]:-}" = "${keys[$i]}" ]; then sum=${sums[${files[$i]}]:--}; fi
    printf '%s\tX\t%s\t%s\0' "$name" "$sum" "${paths[$i]}"
  done
  sum=-
  if [ -n "$file" ]; then sum=${sums[$root$file]:--}; fi
  printf '%s\tE\t%s\t%s\0' "$name" "$sum" "${file:-$entry}"
  printf '%s\tran\t\0' "$name"
}
# What one container executes, then its changes.
container() {
  local name=$1 pid=${pids[$1]:-0} mount="" up="" lowers=() root=/proc/${pids[$1]:-0}/root
  local options option dir usable=1 n=0 entry path kind lower
  if [ "$pid" -gt 0 ] 2>/dev/null; then
    executed "$name" "$pid" "${entries[$name]}" "${envs[$name]}"
    mount=$(findmnt --task "$pid" --noheadings --raw --output FSTYPE,FS-OPTIONS --mountpoint / 2>/dev/null) || mount=""
  fi
  if [ "${mount%% *}" = overlay ]; then
    IFS=, read -ra options <<<"${mount#* }"
    for option in "${options[@]}"; do
      case $option in
        upperdir=*) up=${option#upperdir=} ;;
        lowerdir=*) IFS=: read -ra lowers <<<"${option#lowerdir=}" ;;
      esac
    done
  fi
  for dir in "$up" "${lowers[@]}"; do [[ $dir == /* ]] || usable=0; done
  if [ "$usable" = 0 ] || [ ! -d "$up" ]; then printf '%s\tunlisted\t\0' "$name"; return; fi
  while IFS= read -r -d '' entry; do
    n=$((n + 1))
    if [ "$n" -gt "$max" ]; then printf '%s\tmore\t\0' "$name"; break; fi
    path=${entry#* } kind=A lower=""
    if [ "${entry%% *}" = c ] && [ "$(stat -c %t:%T "$up/$path")" = 0:0 ]; then
      kind=D
    else
      for dir in "${lowers[@]}"; do
        if [ -e "$dir/$path" ] || [ -L "$dir/$path" ]; then kind=C lower=$dir; break; fi
      done
    fi
    if [ "$kind" = C ] && same "$up/$path" "$lower/$path" "$path"; then continue; fi
    printf '%s\t%s\t/%s\0' "$name" "$kind" "$path"
  done < <(find "$up" -mindepth 1 -printf '%y %P\0' | head -z -n "$((max + 1))")
  printf '%s\tlisted\t\0' "$name"
}
# One inspect for all: each container's name, main process, entrypoint and environment (JSON, so
# that no value spans lines).
declare -A pids=() entries=() envs=()
while IFS=$'\t' read -r name pid entry env; do
  name=${name#/}
  if [ -z "${pids[$name]:-}" ]; then pids[$name]=$pid entries[$name]=$entry envs[$name]=$env; fi
done < <(docker inspect --format '{{.Name}}{{"\t"}}{{.State.Pid}}{{"\t"}}{{json .Path}}{{"\t"}}{{json .Config.Env}}' "$@" 2>/dev/null)
# The containers side by side, each printing into its own pipe, read in order.
fds=()
for name in "$@"; do
  exec {fd}< <(container "$name")
  fds+=("$fd")
done
for fd in "${fds[@]}"; do cat <&"$fd"; done"#;

/// What the node listed of one container.
#[derive(Debug, Default, PartialEq)]
pub struct Listed {
    /// Its changed files (`None`: ask the engine).
    pub changes: Option<Vec<Change>>,
    /// What it executes (`None`: the node could not tell).
    pub executed: Option<Vec<Executed>>,
}

/// What the node listed of each named container.
pub fn list(transport: &Transport, names: &[&str]) -> Result<BTreeMap<String, Listed>> {
    let argv: Vec<String> = ["sudo", "-n", "bash", "-c", SCRIPT, "bash"]
        .into_iter()
        .map(String::from)
        .chain([MAX_ENTRIES.to_string()])
        .chain(names.iter().map(|n| n.to_string()))
        .collect();
    let out = transport.output_bounded(&argv, MAX_OUTPUT_BYTES)?;
    if !out.status.success() {
        // No sudo, say: the engine is asked for every container's changes, and what they run
        // is not known.
        return Ok(names
            .iter()
            .map(|n| (n.to_string(), Listed::default()))
            .collect());
    }
    parse(&out.stdout, names)
}

/// Reads the script's records; every name asked must end `listed` or `unlisted`, and what it
/// executes comes before its changes.
fn parse(output: &[u8], names: &[&str]) -> Result<BTreeMap<String, Listed>> {
    let mut listing: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    let mut executed: BTreeMap<String, Vec<Executed>> = BTreeMap::new();
    let mut ran: BTreeMap<String, Vec<Executed>> = BTreeMap::new();
    let mut ended: BTreeMap<String, Listed> = BTreeMap::new();
    for record in output.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let record = String::from_utf8_lossy(record);
        let mut fields = record.splitn(3, '\t');
        let (Some(name), Some(kind), Some(path)) = (fields.next(), fields.next(), fields.next())
        else {
            bail!("the node's listing of a container's files has a malformed record {record:?}");
        };
        if !names.contains(&name) || ended.contains_key(name) {
            bail!("the node's listing of a container's files names {name:?}, which was not asked or had ended");
        }
        let changes_began = listing.contains_key(name);
        let kind = match kind {
            "X" | "E" if !ran.contains_key(name) && !changes_began => {
                let (sha256, path) = path
                    .split_once('\t')
                    .filter(|(sha, path)| {
                        // An entrypoint not found is named as the container's
                        // configuration gives it.
                        (path.starts_with('/') || (kind == "E" && !path.is_empty()))
                            && (crate::record::digest::is_sha256_hex(sha) || *sha == "-")
                    })
                    .with_context(|| {
                        format!("the node's listing of what a container runs has a malformed record {record:?}")
                    })?;
                executed.entry(name.into()).or_default().push(Executed {
                    path: path.into(),
                    sha256: (sha256 != "-").then(|| sha256.into()),
                    entrypoint: kind == "E",
                });
                continue;
            }
            "ran" if !ran.contains_key(name) && !changes_began => {
                ran.insert(name.into(), executed.remove(name).unwrap_or_default());
                continue;
            }
            "C" => 0,
            "A" => 1,
            "D" => 2,
            "more" => {
                listing.entry(name.into()).or_default().push(Change {
                    path: format!("(more than {MAX_ENTRIES} entries)"),
                    kind: 0,
                });
                continue;
            }
            "listed" | "unlisted" if !executed.contains_key(name) => {
                let changes = listing.remove(name).unwrap_or_default();
                if kind == "unlisted" && !changes.is_empty() {
                    bail!("the node's listing of a container's files has a record of kind \"unlisted\" after its entries");
                }
                ended.insert(
                    name.into(),
                    Listed {
                        changes: (kind == "listed").then_some(changes),
                        executed: ran.remove(name),
                    },
                );
                continue;
            }
            _ => bail!("the node's listing of a container's files has a record of kind {kind:?}"),
        };
        listing.entry(name.into()).or_default().push(Change {
            path: path.into(),
            kind,
        });
    }
    if let Some(missing) = names.iter().find(|n| !ended.contains_key(**n)) {
        bail!("the node's listing of a container's files ended before container {missing}'s");
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 2] = ["prov-api", "prov-db"];

    fn described(listed: &Option<Vec<Change>>) -> Vec<String> {
        listed.iter().flatten().map(Change::describe).collect()
    }

    #[test]
    fn each_entry_is_named_with_its_kind_and_an_unlisted_container_goes_to_the_engine() {
        let out = b"prov-api\tC\t/usr/local/bin/api\0prov-api\tA\t/tmp/x\0prov-api\tD\t/etc/motd\0\
prov-api\tlisted\t\0prov-db\tunlisted\t\0";
        let got = parse(out, &NAMES).unwrap();
        assert_eq!(
            described(&got["prov-api"].changes),
            [
                "/usr/local/bin/api (changed)",
                "/tmp/x (added)",
                "/etc/motd (deleted)"
            ]
        );
        assert_eq!(got["prov-db"].changes, None);
    }

    #[test]
    fn an_empty_layer_is_no_change_and_past_the_limit_it_says_so() {
        let out = b"prov-api\tlisted\t\0prov-db\tA\t/a\0prov-db\tmore\t\0prov-db\tlisted\t\0";
        let got = parse(out, &NAMES).unwrap();
        assert_eq!(got["prov-api"].changes, Some(Vec::new()));
        assert_eq!(
            described(&got["prov-db"].changes),
            ["/a (added)", "(more than 1000 entries) (changed)"]
        );
    }

    #[test]
    fn what_a_container_executes_is_listed_before_its_changes() {
        let sha = "ab".repeat(32);
        let out = format!(
            "prov-api\tX\t{sha}\t/usr/local/bin/api\0prov-api\tX\t-\t/lib/x.so (deleted)\0\
             prov-api\tE\t-\tdocker-entrypoint.sh\0prov-api\tran\t\0prov-api\tlisted\t\0\
             prov-db\tlisted\t\0"
        );
        let got = parse(out.as_bytes(), &NAMES).unwrap();
        let executed = got["prov-api"].executed.as_ref().unwrap();
        assert_eq!(executed.len(), 3);
        assert_eq!(executed[0].sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(executed[1].path_in_root(), "/lib/x.so");
        assert_eq!(executed[1].sha256, None);
        assert!(executed[2].entrypoint && !executed[0].entrypoint);
        assert_eq!(got["prov-api"].changes, Some(Vec::new()));
        // A container without `ran` (not running): what it executes is not known.
        assert_eq!(got["prov-db"].executed, None);
    }

    #[test]
    fn a_path_with_a_tab_or_a_newline_stays_one_path() {
        let out = b"prov-api\tA\t/a\tb\nc\0prov-api\tlisted\t\0prov-db\tlisted\t\0";
        let got = parse(out, &NAMES).unwrap();
        assert_eq!(described(&got["prov-api"].changes), ["/a\tb\nc (added)"]);
    }

    #[test]
    fn a_listing_cut_short_or_naming_another_container_is_an_error() {
        for (out, says) in [
            (
                &b"prov-api\tlisted\t\0"[..],
                "ended before container prov-db's",
            ),
            (b"prov-api\tC\t/x\0", "ended before container prov-api's"),
            (b"other\tlisted\t\0", "names \"other\""),
            (b"prov-api\tlisted\t\0prov-api\tC\t/x\0", "had ended"),
            (b"prov-api\tQ\t/x\0", "of kind \"Q\""),
            // What a container executes comes first, each with a digest or `-`, then `ran`.
            (b"prov-api\tX\t/x\0", "malformed record"),
            (b"prov-api\tX\tnot-a-digest\t/x\0", "malformed record"),
            (b"prov-api\tC\t/x\0prov-api\tX\t-\t/y\0", "of kind \"X\""),
            (b"prov-api\tran\t\0prov-api\tran\t\0", "of kind \"ran\""),
            (
                b"prov-api\tX\t-\t/y\0prov-api\tlisted\t\0",
                "of kind \"listed\"",
            ),
            (b"prov-api\0", "malformed record"),
            // A container cannot be both listed in part and unlisted.
            (
                b"prov-api\tC\t/x\0prov-api\tunlisted\t\0",
                "of kind \"unlisted\"",
            ),
        ] {
            let err = parse(out, &NAMES).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_output_of_the_node_is_a_listing_or_an_error(
            out in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024),
        ) {
            let _ = parse(&out, &NAMES);
        }
    }
}
