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
//! layers edited on the node's disk leave its ID and layers alone, not these. A file whose
//! identity (size, device, inode, times) the host proved before is not hashed again
//! ([`ProvenFiles`]: 40 MB for the database, most of the node's time otherwise).
//!
//! It lists the processes in each container's process namespace as `ps` would (the engine's
//! `/top` runs `ps` over the container's cgroup, at 10 ms of the engine's time a container),
//! and, last, the tail of the api's log, which by then shows verify's HTTP requests. The
//! containers are named to the shell by the engine (one `curl`, read with `jq`): the host holds
//! what was listed to the container ID and main process its own request got.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use base64::Engine;

use crate::host::proven_files::{is_identity, ProvenFiles};
use crate::host::transport::Transport;
use crate::record::engine::{Change, Executed, Top};

/// The most entries listed per container: past it the container has changed anyway, and the
/// rest is summed up in one entry.
const MAX_ENTRIES: usize = 1000;

/// The most the listing may print: `MAX_ENTRIES` paths of up to 4 KiB for each container.
const MAX_OUTPUT_BYTES: u64 = 16 << 20;

/// Run as root on the node with the entry limit, the identities of the files the host proved
/// (one per line, see [`ProvenFiles`]), the containers as the host names them (one line each,
/// [`NamedContainer::line`](crate::host::proven_files::NamedContainer::line); empty: the engine
/// is asked), whose log to read last and how much of it, and the container names; every record
/// it prints ends with a NUL. For each running container it first prints its processes, `name TAB P TAB pid
/// TAB parent's pid TAB command line`, then what it executes: `name TAB X TAB sum TAB identity
/// TAB path` for each file mapped executable (once per file), `name TAB E TAB sum TAB identity
/// TAB path` for the entrypoint's file, then `name TAB ran TAB container ID TAB main process`
/// (the engine's, which the host holds them to). The sum is the
/// file's sha256, or `=` for a file with an identity the host proved (not hashed again), or `-`
/// when the file at that path is not the one mapped (the entrypoint's: when its root holds none;
/// no identity then). Then its changes, `name TAB kind TAB
/// path`: kind `A`, `C` or `D` for an entry, `more` past the limit, then `listed`; or only
/// `unlisted` when the container's root is not an overlay with absolute layer paths (the host
/// then asks the engine). An entry that is a copy of the lower layers' one, alike in every way
/// the container can see, is no change (the engine copies its own mount points up when it
/// mounts a container's root, for `docker cp`, say): a file with the same type, owner, mode,
/// size, time and bytes; a link to the same target; a folder that hides nothing the lower
/// layers hold (the container's root shows every entry).
const SCRIPT: &str = r#"max=$1 known=$2 named=$3 log=$4 tail=$5; shift 5
# The identities of the files the host proved: those are not hashed again.
declare -A proven=()
while IFS= read -r id; do if [ -n "$id" ]; then proven[$id]=1; fi; done <<<"$known"
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
# One process as `ps -o pid,ppid,args` shows it: its command line, or `[name]` when it has none
# (`[name] <defunct>` when it ended and is not reaped yet).
process() {
  local name=$1 proc=$2 stat rest state ppid args=() command=""
  read -r stat <"$proc/stat" 2>/dev/null || return 0
  rest=${stat##*) } && state=${rest%% *} && rest=${rest#* } && ppid=${rest%% *}
  mapfile -d '' -t args <"$proc/cmdline" 2>/dev/null || true
  if [ "${#args[@]}" -gt 0 ]; then command=${args[*]}; fi
  if [ -z "$command" ]; then
    read -r command <"$proc/comm" 2>/dev/null || true
    command="[$command]"
    if [ "$state" = Z ]; then command="$command <defunct>"; fi
  fi
  printf '%s\tP\t%s\t%s\t%s\0' "$name" "${proc#/proc/}" "$ppid" "$command"
}
executed() {
  local name=$1 pid=$2 entry=$3 env=$4 search=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  local root=/proc/$2/root proc dev inode path file dir dirs i major minor sum size mtime ctime
  local a b weight=0 id
  local -A found=() sums=() ids=()
  local maps=() paths=() files=() keys=() unproven=() one=() two=()
  # The processes in the container's process namespace (its entrypoint's, and any an exec
  # session started there), each listed.
  for proc in /proc/[0-9]*; do
    if [ "$proc/ns/pid" -ef "/proc/$pid/ns/pid" ]; then
      maps+=("$proc/maps")
      process "$name" "$proc"
    fi
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
    while IFS=' ' read -r -d '' size dev inode mtime ctime path; do
      found[$path]="$dev $inode" ids[$path]="$size $dev $inode $mtime $ctime"
      if [ -n "${proven[${ids[$path]}]:-}" ]; then sums[$path]='='; else unproven+=("$size $path"); fi
    done < <(find "${files[@]}" -maxdepth 0 -printf '%s %D %i %T@ %C@ %p\0' 2>/dev/null)
  fi
  if [ "${#unproven[@]}" -gt 0 ]; then
    # Those the host did not prove are hashed in two halves side by side, the largest files
    # first, each to the lighter half.
    while IFS=' ' read -r -d '' size path; do
      if [ "$weight" -le 0 ]; then one+=("$path") weight=$((weight + size))
      else two+=("$path") weight=$((weight - size)); fi
    done < <(printf '%s\0' "${unproven[@]}" | sort -z -rn)
    exec {a}< <(openssl dgst -sha256 -r "${one[@]}" 2>/dev/null </dev/null)
    exec {b}< <([ "${#two[@]}" -eq 0 ] || openssl dgst -sha256 -r "${two[@]}" 2>/dev/null </dev/null)
    while read -r sum path; do sums[${path#\*}]=$sum; done <&"$a"
    while read -r sum path; do sums[${path#\*}]=$sum; done <&"$b"
    exec {a}<&- {b}<&-
  fi
  for i in "${!paths[@]}"; do
    sum=- id=
    if [ "${found[${files[$i]}]:-}" = "${keys[$i]}" ]; then
      sum=${sums[${files[$i]}]:--} id=${ids[${files[$i]}]}
    fi
    printf '%s\tX\t%s\t%s\t%s\0' "$name" "$sum" "$id" "${paths[$i]}"
  done
  sum=- id=
  if [ -n "$file" ]; then sum=${sums[$root$file]:--} id=${ids[$root$file]:-}; fi
  printf '%s\tE\t%s\t%s\t%s\0' "$name" "$sum" "$id" "${file:-$entry}"
  printf '%s\tran\t%s\t%s\0' "$name" "${cids[$name]}" "$pid"
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
# Each container's ID, name, main process, entrypoint and environment (JSON, so that no value
# spans lines): as the host names them, or else as the engine does, asked in one request.
if [ -z "$named" ]; then
  urls=()
  for name in "$@"; do urls+=("http://docker/containers/$name/json"); done
  named=$(curl --silent --max-time 10 --unix-socket /var/run/docker.sock "${urls[@]}" 2>/dev/null |
    jq -r 'select(.Id != null) | [.Id, .Name, (.State.Pid | tostring), (.Path | tojson),
      (.Config.Env | tojson)] | join("\t")' 2>/dev/null) || true
fi
declare -A pids=() entries=() envs=() cids=()
while IFS=$'\t' read -r cid name pid entry env; do
  name=${name#/}
  if [ -n "$name" ] && [ -z "${pids[$name]:-}" ]; then
    pids[$name]=$pid entries[$name]=$entry envs[$name]=$env cids[$name]=$cid
  fi
done <<<"$named"
# The containers side by side, each printing into its own pipe, read in order.
fds=()
for name in "$@"; do
  exec {fd}< <(container "$name")
  fds+=("$fd")
done
for fd in "${fds[@]}"; do cat <&"$fd"; done
# Last, so that it shows the host's requests, made meanwhile: the tail of one container's log,
# where the engine's json-file driver keeps it, in base64 (a log may hold any byte).
cid=${cids[$log]:-}
if [[ $cid =~ ^[0-9a-f]{64}$ ]]; then
  printf '%s\tlog\t%s\t' "$log" "$cid"
  tail -c "$tail" -- "/var/lib/docker/containers/$cid/$cid-json.log" 2>/dev/null | base64 -w 0
  printf '\0'
fi"#;

/// What the node listed of one container.
#[derive(Debug, Default, PartialEq)]
pub struct Listed {
    /// Its changed files (`None`: ask the engine).
    pub changes: Option<Vec<Change>>,
    /// What it executes (`None`: the node could not tell).
    pub executed: Option<Vec<Executed>>,
    /// Its processes, as `ps` lists them (`None`: ask the engine).
    pub processes: Option<Top>,
    /// The container's ID and main process, as the node's engine named them to the node: what
    /// was listed is the container the host was told of only when they are the same.
    pub ran: Option<(String, i64)>,
}

/// What the node listed: each named container's files, and the tail of one container's log.
#[derive(Debug, Default, PartialEq)]
pub struct Listing {
    pub containers: BTreeMap<String, Listed>,
    pub log: Option<LogTail>,
}

/// The tail of a container's json-file log, read after every container was listed.
#[derive(Debug, PartialEq)]
pub struct LogTail {
    /// The ID of the container whose log it is, as the node's engine named it.
    pub id: String,
    pub tail: Vec<u8>,
}

/// What the node listed of each named container, and the last `tail_bytes` of the log of the
/// one named `log` (the api's: read last, it shows the requests the host made meanwhile).
pub fn list(
    transport: &Transport,
    names: &[&str],
    proven: &ProvenFiles,
    log: &str,
    tail_bytes: u64,
) -> Result<Listing> {
    let known: String = proven.identities().map(|id| format!("{id}\n")).collect();
    let named: String = proven.named().iter().map(|c| c.line() + "\n").collect();
    let argv: Vec<String> = ["sudo", "-n", "bash", "-c", SCRIPT, "bash"]
        .into_iter()
        .map(String::from)
        .chain([
            MAX_ENTRIES.to_string(),
            known,
            named,
            log.to_string(),
            tail_bytes.to_string(),
        ])
        .chain(names.iter().map(|n| n.to_string()))
        .collect();
    let out = transport.output_bounded(&argv, MAX_OUTPUT_BYTES + 2 * tail_bytes)?;
    if !out.status.success() {
        // No sudo, say: the engine is asked for every container's changes, and what they run
        // is not known.
        return Ok(Listing {
            containers: names
                .iter()
                .map(|n| (n.to_string(), Listed::default()))
                .collect(),
            log: None,
        });
    }
    parse(&out.stdout, names, proven, log)
}

/// Reads the script's records; every name asked must end `listed` or `unlisted`, and what it
/// executes comes before its changes; the log's tail comes last, once. A file the node did not
/// hash because the host proved its identity has the sha256 the host proved.
fn parse(output: &[u8], names: &[&str], proven: &ProvenFiles, log: &str) -> Result<Listing> {
    let mut listing: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    let mut executed: BTreeMap<String, Vec<Executed>> = BTreeMap::new();
    // What each running container runs, once its `ran` record came; its changes come next.
    let mut ran: BTreeMap<String, Listed> = BTreeMap::new();
    let mut processes: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    let mut ended: BTreeMap<String, Listed> = BTreeMap::new();
    let mut tail = None;
    for record in output.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let record = String::from_utf8_lossy(record);
        let mut fields = record.splitn(3, '\t');
        let (Some(name), Some(kind), Some(path)) = (fields.next(), fields.next(), fields.next())
        else {
            bail!("the node's listing of a container's files has a malformed record {record:?}");
        };
        if tail.is_some() {
            bail!("the node's listing of a container's files goes on after the log's tail");
        }
        if kind == "log" && name == log && names.iter().all(|n| ended.contains_key(*n)) {
            tail = Some(log_tail(path).with_context(|| {
                format!("the node's tail of container {log}'s log is malformed")
            })?);
            continue;
        }
        if !names.contains(&name) || ended.contains_key(name) {
            bail!("the node's listing of a container's files names {name:?}, which was not asked or had ended");
        }
        let changes_began = listing.contains_key(name);
        let kind = match kind {
            "P" if !ran.contains_key(name) && !changes_began && !executed.contains_key(name) => {
                let row: Vec<String> = path.splitn(3, '\t').map(String::from).collect();
                let number = |f: &String| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit());
                if row.len() != 3 || !number(&row[0]) || !number(&row[1]) {
                    bail!("the node's listing of a container's processes has a malformed record {record:?}");
                }
                processes.entry(name.into()).or_default().push(row);
                continue;
            }
            "X" | "E" if !ran.contains_key(name) && !changes_began => {
                let malformed = || {
                    format!("the node's listing of what a container runs has a malformed record {record:?}")
                };
                let mut fields = path.splitn(3, '\t');
                let (Some(sum), Some(identity), Some(path)) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    bail!(malformed());
                };
                // An entrypoint not found is named as the container's configuration gives it.
                let named = path.starts_with('/') || (kind == "E" && !path.is_empty());
                let sha256 = match sum {
                    "-" => None,
                    "=" => Some(proven.sha256_of(identity).map(String::from).with_context(
                        || {
                            format!(
                            "the node's listing of what a container runs names a file as proven \
                             whose identity the host never proved: {record:?}"
                        )
                        },
                    )?),
                    sha if crate::record::digest::is_sha256_hex(sha) => Some(sha.to_string()),
                    _ => bail!(malformed()),
                };
                if !named || (sha256.is_some() && !is_identity(identity)) {
                    bail!(malformed());
                }
                executed.entry(name.into()).or_default().push(Executed {
                    path: path.into(),
                    identity: sha256.is_some().then(|| identity.into()),
                    sha256,
                    entrypoint: kind == "E",
                    proven_before: sum == "=",
                });
                continue;
            }
            "ran" if !ran.contains_key(name) && !changes_began => {
                let container = path
                    .split_once('\t')
                    .and_then(|(id, pid)| Some((id.to_string(), pid.parse::<i64>().ok()?)))
                    .with_context(|| {
                        format!("the node's listing of a container's files has a malformed record {record:?}")
                    })?;
                let top = Top {
                    titles: ["PID", "PPID", "COMMAND"].map(String::from).into(),
                    processes: Some(processes.remove(name).unwrap_or_default()),
                };
                ran.insert(
                    name.into(),
                    Listed {
                        changes: None,
                        executed: Some(executed.remove(name).unwrap_or_default()),
                        processes: Some(top),
                        ran: Some(container),
                    },
                );
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
            "listed" | "unlisted"
                if !executed.contains_key(name) && !processes.contains_key(name) =>
            {
                let changes = listing.remove(name).unwrap_or_default();
                if kind == "unlisted" && !changes.is_empty() {
                    bail!("the node's listing of a container's files has a record of kind \"unlisted\" after its entries");
                }
                ended.insert(
                    name.into(),
                    Listed {
                        changes: (kind == "listed").then_some(changes),
                        ..ran.remove(name).unwrap_or_default()
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
    Ok(Listing {
        containers: ended,
        log: tail,
    })
}

/// `ID TAB base64 of the tail`.
fn log_tail(record: &str) -> Result<LogTail> {
    let (id, encoded) = record.split_once('\t').context("no tab after the ID")?;
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{id:?} is not a container ID");
    }
    Ok(LogTail {
        id: id.into(),
        tail: base64::engine::general_purpose::STANDARD.decode(encoded)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 2] = ["prov-api", "prov-db"];

    const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const ID: &str = "31262256 47 138637 1750621668.0000000000 1796681300.8919917780";

    fn parsed(out: &[u8]) -> Result<BTreeMap<String, Listed>> {
        parse(out, &NAMES, &ProvenFiles::default(), "prov-api").map(|l| l.containers)
    }

    fn proven(sha: &str) -> ProvenFiles {
        serde_json::from_value(serde_json::json!({"node": "main", "files": {ID: sha}})).unwrap()
    }

    fn described(listed: &Option<Vec<Change>>) -> Vec<String> {
        listed.iter().flatten().map(Change::describe).collect()
    }

    #[test]
    fn each_entry_is_named_with_its_kind_and_an_unlisted_container_goes_to_the_engine() {
        let out = b"prov-api\tC\t/usr/local/bin/api\0prov-api\tA\t/tmp/x\0prov-api\tD\t/etc/motd\0\
prov-api\tlisted\t\0prov-db\tunlisted\t\0";
        let got = parsed(out).unwrap();
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
        let got = parsed(out).unwrap();
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
            "prov-api\tP\t2221\t2200\t/usr/local/bin/api --port 8080\0\
             prov-api\tX\t{sha}\t{ID}\t/usr/local/bin/api\0prov-api\tX\t-\t\t/lib/x.so (deleted)\0\
             prov-api\tE\t-\t\tdocker-entrypoint.sh\0prov-api\tran\t{CID}\t2221\0\
             prov-api\tlisted\t\0prov-db\tlisted\t\0"
        );
        let got = parsed(out.as_bytes()).unwrap();
        let executed = got["prov-api"].executed.as_ref().unwrap();
        assert_eq!(executed.len(), 3);
        assert_eq!(executed[0].sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(executed[0].identity.as_deref(), Some(ID));
        assert!(!executed[0].proven_before);
        assert_eq!(executed[1].path_in_root(), "/lib/x.so");
        assert_eq!(executed[1].sha256, None);
        assert!(executed[2].entrypoint && !executed[0].entrypoint);
        assert_eq!(got["prov-api"].changes, Some(Vec::new()));
        assert_eq!(got["prov-api"].ran, Some((CID.to_string(), 2221)));
        let top = got["prov-api"].processes.as_ref().unwrap();
        assert_eq!(top.titles, ["PID", "PPID", "COMMAND"]);
        assert_eq!(
            top.processes,
            Some(vec![vec![
                "2221".to_string(),
                "2200".into(),
                "/usr/local/bin/api --port 8080".into()
            ]])
        );
        // A container without `ran` (not running): what it executes and runs is not known.
        assert_eq!(got["prov-db"].executed, None);
        assert_eq!(got["prov-db"].processes, None);
    }

    #[test]
    fn a_file_not_hashed_has_the_sha256_the_host_proved_for_its_identity() {
        let sha = "cd".repeat(32);
        let out = format!(
            "prov-db\tX\t=\t{ID}\t/usr/lib/libicudata.so\0prov-db\tran\t{CID}\t7\0\
             prov-db\tlisted\t\0prov-api\tlisted\t\0"
        );
        let got = parse(out.as_bytes(), &NAMES, &proven(&sha), "prov-api").unwrap();
        let executed = &got.containers["prov-db"].executed.as_ref().unwrap()[0];
        assert_eq!(executed.sha256.as_deref(), Some(sha.as_str()));
        assert!(executed.proven_before);
        // An identity the host never proved is no digest, whatever the node says.
        let other = out.replace(ID, &ID.replace("47", "48"));
        let err = parse(other.as_bytes(), &NAMES, &proven(&sha), "prov-api").unwrap_err();
        assert!(err.to_string().contains("never proved"), "{err}");
        let err = parsed(out.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("never proved"), "{err}");
    }

    #[test]
    fn the_logs_tail_comes_last_once_every_container_is_listed() {
        let ended = "prov-api\tlisted\t\0prov-db\tlisted\t\0";
        let log = format!("prov-api\tlog\t{CID}\taGVsbG8K\0");
        let got = parse(
            format!("{ended}{log}").as_bytes(),
            &NAMES,
            &ProvenFiles::default(),
            "prov-api",
        )
        .unwrap();
        assert_eq!(
            got.log,
            Some(LogTail {
                id: CID.into(),
                tail: b"hello\n".to_vec()
            })
        );
        for (out, says) in [
            (format!("prov-api\tlisted\t\0{log}"), "had ended"),
            (
                format!("{ended}{log}prov-api\tlisted\t\0"),
                "after the log's tail",
            ),
            (
                format!("{ended}prov-api\tlog\tnot-an-id\taGVsbG8K\0"),
                "malformed",
            ),
            (format!("{ended}prov-api\tlog\t{CID}\t!!\0"), "malformed"),
            (
                format!("{ended}prov-db\tlog\t{CID}\taGVsbG8K\0"),
                "had ended",
            ),
        ] {
            let err = parse(out.as_bytes(), &NAMES, &ProvenFiles::default(), "prov-api")
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{out:?}: {err}");
        }
    }

    #[test]
    fn a_path_with_a_tab_or_a_newline_stays_one_path() {
        let out = b"prov-api\tA\t/a\tb\nc\0prov-api\tlisted\t\0prov-db\tlisted\t\0";
        let got = parsed(out).unwrap();
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
            // What a container runs comes first, each file with a digest or `-`, then `ran`.
            (b"prov-api\tX\t/x\0", "malformed record"),
            (b"prov-api\tX\tnot-a-digest\t\t/x\0", "malformed record"),
            (b"prov-api\tC\t/x\0prov-api\tX\t-\t\t/y\0", "of kind \"X\""),
            (
                b"prov-api\tran\tx\t1\0prov-api\tran\tx\t1\0",
                "of kind \"ran\"",
            ),
            (b"prov-api\tran\t\0", "malformed record"),
            (
                b"prov-api\tX\t-\t\t/y\0prov-api\tlisted\t\0",
                "of kind \"listed\"",
            ),
            (
                b"prov-api\tP\t1\t0\tinit\0prov-api\tlisted\t\0",
                "of kind \"listed\"",
            ),
            (b"prov-api\tP\tx\t0\tinit\0", "malformed record"),
            (b"prov-api\tP\t1\t0\0", "malformed record"),
            (b"prov-api\0", "malformed record"),
            // A container cannot be both listed in part and unlisted.
            (
                b"prov-api\tC\t/x\0prov-api\tunlisted\t\0",
                "of kind \"unlisted\"",
            ),
        ] {
            let err = parsed(out).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_output_of_the_node_is_a_listing_or_an_error(
            out in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024),
        ) {
            let _ = parsed(&out);
        }
    }
}
