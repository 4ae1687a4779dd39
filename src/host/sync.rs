//! Each node's export of the checkout: what the node sees at `/vagrant`.
//!
//! The host never mounts its checkout into a node: a node's root can remount any mount
//! read-write. Each node has its own copy instead, refreshed one way, host to node, before each
//! operation, by content: the node lists every entry of its copy with the sha256 of every file
//! (with its own `find` and `sha256sum`, run by the host), the host compares that listing with
//! what the export must hold, and sends only what differs, as a tar stream the host writes and
//! the node's `tar` unpacks, after removing what must not be there. So a file edited on the node
//! is put back whatever its size and time, the host only reads its checkout, and no program the
//! node controls talks to a program of the host's beyond ssh (the host parses the listing itself,
//! bounded). Host-only state stays out.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::host::state::HostState;
use crate::host::transport::Transport;
use crate::record::digest::sha256_file;
use crate::record::nodes::{NodeName, NODE_MOUNT};
use crate::record::store::write_atomic;

/// One entry of an export, as both sides describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File { mode: u32, sha256: String },
    Dir { mode: u32 },
    Link { target: String },
}

/// What the export must hold, by path relative to the export's root, with each file's source on
/// the host.
struct Wanted {
    entries: BTreeMap<String, Entry>,
    sources: BTreeMap<String, PathBuf>,
}

/// The most a node's listing of its export may take (about 60 bytes an entry, 20,000 entries).
const MAX_LISTING_BYTES: u64 = 64 << 20;
/// How long a node has to list and hash its export (about a second here).
const LISTING_TIME: Duration = Duration::from_secs(30);
/// How long a node has to take what the host sends: a minute, and a second for every 10 MB.
const TRANSFER_TIME: Duration = Duration::from_secs(60);
const TRANSFER_RATE: u64 = 10 << 20;

/// Whether a path of the checkout (relative, `/`-separated) belongs in `node`'s export: the
/// checkout with its git data (the node hashes its tree) but no hooks, the prov binary, the base
/// image ids and the crate archives the build proves vendored files against, and the node's own
/// records as the host holds them. Left out: Vagrant's data, other nodes' records, build
/// products and host caches.
fn exported(path: &str, node: &str) -> bool {
    let mut parts = path.split('/');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let under = |prefix: &[&str]| {
        rest.len() < prefix.len() && prefix.starts_with(&rest) || rest.starts_with(prefix)
    };
    match first {
        ".vagrant" => false,
        ".git" => rest.first() != Some(&"hooks"),
        "provenance" => rest.is_empty() || rest == ["README.md"] || rest.first() == Some(&node),
        "target" => under(&["release", "prov"]) && rest.len() <= 2,
        ".cache" => under(&["images", "ids.env"]) && rest.len() <= 2 || under(&["crates"]),
        _ => true,
    }
}

/// The export's bulk: what the stamp leaves out (git's data, vendored crates and archives,
/// prov, the records), which the tree and the lock file stand for.
fn bulk(path: &str) -> bool {
    let first = path.split('/').next().unwrap_or_default();
    matches!(
        first,
        ".git" | "vendor" | ".cache" | "target" | "provenance"
    )
}

/// The node's build lock, which the node keeps and the host never sends.
fn node_only(path: &str, node: &str) -> bool {
    path == format!("provenance/{node}/.lock")
}

/// What the host sent to a node's export, and when: the import proves a record's source, files
/// and times against it (`proof.rs`). Kept in the host's state (`HostState::synced_path`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStamp {
    /// When the host began the sync: a build from this export started later.
    pub at: DateTime<Utc>,
    /// The checkout's tree as the host hashed it, with its HEAD commit and that commit's time.
    pub tree: String,
    pub dirty: bool,
    pub commit: Option<String>,
    pub commit_time: Option<i64>,
    /// The sha256 of each file of the checkout the export holds, but for the bulk ones (git's
    /// data, the vendored crates and their archives, prov itself, the records).
    pub files: BTreeMap<String, String>,
}

impl SyncStamp {
    pub fn read(state: &HostState, node: &NodeName) -> Result<SyncStamp> {
        let path = state.synced_path(node);
        let bytes = crate::record::bounded::read(&path)?.ok_or_else(|| {
            anyhow!(
                "the host has no record of what it sent to node {node} ({}): `make demo \
                 NODE={node}` syncs, builds and imports",
                path.display()
            )
        })?;
        serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))
    }
}

/// Refreshes the node's export from the checkout; returns how many entries were sent and removed.
pub fn sync(repo: &Path, state: &HostState, transport: &Transport) -> Result<Synced> {
    let node = transport.node();
    refuse_while_building(transport)?;
    let at = Utc::now();
    // The tree is hashed while the node lists its export.
    let (wanted, tree, held) = std::thread::scope(|scope| {
        let tree = scope.spawn(|| crate::record::tree_hash::tree_state(repo));
        let wanted = wanted(repo, state, node);
        (wanted, tree.join(), node_listing(transport))
    });
    let (wanted, held) = (wanted?, held?);
    let tree = tree
        .map_err(|_| anyhow!("hashing the checkout panicked"))?
        .context("hashing the checkout's tree")?;
    let mut remove: Vec<&str> = held
        .iter()
        .filter(|(path, entry)| match wanted.entries.get(*path) {
            None => !node_only(path, node),
            // Another kind of entry is removed, then sent; so is a folder's other mode.
            Some(want) => std::mem::discriminant(want) != std::mem::discriminant(*entry),
        })
        .map(|(path, _)| path.as_str())
        .collect();
    // Inside a removed folder, nothing else needs removing.
    remove.sort();
    remove.dedup_by(|inner, outer| inner.starts_with(&format!("{outer}/")));
    let send: Vec<&str> = wanted
        .entries
        .iter()
        .filter(|(path, want)| {
            let removed = remove
                .iter()
                .any(|r| path.as_str() == *r || path.starts_with(&format!("{r}/")));
            removed || held.get(*path) != Some(*want)
        })
        .map(|(path, _)| path.as_str())
        .collect();
    if !remove.is_empty() {
        remove_on_node(transport, &remove)?;
    }
    if !send.is_empty() {
        send_to_node(transport, &wanted, &send)?;
    }
    let stamp = SyncStamp {
        at,
        tree: tree.tree,
        dirty: tree.dirty,
        commit: tree.head_commit,
        commit_time: tree.head_time,
        files: wanted
            .entries
            .iter()
            .filter(|(path, _)| !bulk(path))
            .filter_map(|(path, entry)| match entry {
                Entry::File { sha256, .. } => Some((path.clone(), sha256.clone())),
                _ => None,
            })
            .collect(),
    };
    let path = state.synced_path(node);
    fs::create_dir_all(path.parent().expect("has a parent"))?;
    write_atomic(&path, &serde_json::to_vec_pretty(&stamp)?)?;
    Ok(Synced {
        sent: send.len(),
        removed: remove.len(),
    })
}

/// What one sync changed on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    pub sent: usize,
    pub removed: usize,
}

/// The export as it must be: the checkout's exported entries, and the node's records from the
/// host's copy. File digests come from a cache in the host's state, keyed by each file's
/// identity and times (the host's own files: no node can touch them or the cache).
fn wanted(repo: &Path, state: &HostState, node: &NodeName) -> Result<Wanted> {
    let cache_path = state.dir().join("export-digests.json");
    let mut cache: BTreeMap<String, CachedDigest> = crate::record::bounded::read(&cache_path)
        .ok()
        .flatten()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut wanted = Wanted {
        entries: BTreeMap::new(),
        sources: BTreeMap::new(),
    };
    walk(
        repo,
        "",
        "",
        &|path| exported(path, node),
        &mut cache,
        &mut wanted,
    )?;
    add_worktree_git(repo, node, &mut cache, &mut wanted)?;
    cache.retain(|path, _| wanted.sources.contains_key(path));
    fs::create_dir_all(state.dir())?;
    write_atomic(&cache_path, &serde_json::to_vec(&cache)?)?;
    Ok(wanted)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CachedDigest {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    sha256: String,
}

/// Adds the entries of `root/rel` that `keep` accepts to `wanted`, under `prefix` (`root/x` is
/// the export's `prefix/x`), folders before what they hold.
fn walk(
    root: &Path,
    rel: &str,
    prefix: &str,
    keep: &dyn Fn(&str) -> bool,
    cache: &mut BTreeMap<String, CachedDigest>,
    wanted: &mut Wanted,
) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    names.sort();
    for name in names {
        let rel = join(rel, &name);
        let path = join(prefix, &rel);
        if !keep(&path) {
            continue;
        }
        let full = root.join(&rel);
        let meta = fs::symlink_metadata(&full).with_context(|| format!("{}", full.display()))?;
        if meta.is_dir() {
            wanted.entries.insert(
                path.clone(),
                Entry::Dir {
                    mode: meta.permissions().mode() & 0o7777,
                },
            );
            walk(root, &rel, prefix, keep, cache, wanted)?;
        } else {
            add(&full, &path, &meta, cache, wanted)?;
        }
    }
    Ok(())
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// Adds the file or link at `full` as the export's `path` (a socket or a FIFO is no part of any
/// export); a file's digest comes from the cache while its identity and times are unchanged.
fn add(
    full: &Path,
    path: &str,
    meta: &fs::Metadata,
    cache: &mut BTreeMap<String, CachedDigest>,
    wanted: &mut Wanted,
) -> Result<()> {
    let entry = if meta.file_type().is_symlink() {
        Entry::Link {
            target: fs::read_link(full)?.to_string_lossy().into_owned(),
        }
    } else if meta.is_file() {
        let key = CachedDigest {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            sha256: String::new(),
        };
        let cached = cache.get(path).filter(|c| {
            CachedDigest {
                sha256: String::new(),
                ..(*c).clone()
            } == key
        });
        let sha256 = match cached {
            Some(c) => c.sha256.clone(),
            None => {
                let sha256 =
                    sha256_file(full).with_context(|| format!("hashing {}", full.display()))?;
                cache.insert(
                    path.to_string(),
                    CachedDigest {
                        sha256: sha256.clone(),
                        ..key
                    },
                );
                sha256
            }
        };
        wanted.sources.insert(path.to_string(), full.to_path_buf());
        Entry::File {
            mode: meta.permissions().mode() & 0o7777,
            sha256,
        }
    } else {
        return Ok(());
    };
    wanted.entries.insert(path.to_string(), entry);
    Ok(())
}

/// A linked worktree's `.git` is a file naming a folder outside the checkout (the main
/// checkout's `.git/worktrees/<name>`), which no node has: its export gets an ordinary `.git`
/// instead, the shared repository (objects, refs, configuration; no other worktree, hooks or
/// logs) with the worktree's own HEAD and index.
fn add_worktree_git(
    repo: &Path,
    node: &NodeName,
    cache: &mut BTreeMap<String, CachedDigest>,
    wanted: &mut Wanted,
) -> Result<()> {
    if !repo.join(".git").is_file() {
        return Ok(());
    }
    let git = git2::Repository::open(repo)
        .with_context(|| format!("opening the git checkout {}", repo.display()))?;
    if !git.is_worktree() {
        return Ok(());
    }
    wanted.entries.remove(".git");
    wanted.sources.remove(".git");
    let own = ["HEAD", "index"];
    let shared = |path: &str| {
        let rest = path.strip_prefix(".git/").unwrap_or_default();
        let first = rest.split('/').next().unwrap_or_default();
        exported(path, node)
            && !own.contains(&rest)
            && !["worktrees", "logs", "ORIG_HEAD"].contains(&first)
    };
    let meta = fs::metadata(git.commondir())?;
    wanted.entries.insert(
        ".git".into(),
        Entry::Dir {
            mode: meta.permissions().mode() & 0o7777,
        },
    );
    walk(git.commondir(), "", ".git", &shared, cache, wanted)?;
    for name in own {
        let full = git.path().join(name);
        let meta = fs::symlink_metadata(&full).with_context(|| format!("{}", full.display()))?;
        add(&full, &format!(".git/{name}"), &meta, cache, wanted)?;
    }
    Ok(())
}

/// What the node's export holds, as its own tools describe it: every entry's kind, mode and link
/// target, and every file's sha256, listed side by side.
fn node_listing(transport: &Transport) -> Result<BTreeMap<String, Entry>> {
    let transport = transport.bounded(LISTING_TIME);
    let entries = "exec find . -mindepth 1 -printf '%y %m %P\\0%l\\0'";
    // Hashed in two halves side by side (the vendored crates, and the rest: about the same
    // size), one `sha256sum` each: parallel writers to one pipe would interleave their records.
    let halves = [
        "[ -d vendor ] || exit 0; find vendor -type f -print0 | xargs -0 -r sha256sum -z",
        "find . -mindepth 1 -path ./vendor -prune -o -type f -printf '%P\\0' | xargs -0 -r sha256sum -z",
    ];
    let ask = |script: &str| -> Result<Vec<u8>> {
        let argv: Vec<String> = ["sudo", "-n", "sh", "-c"]
            .into_iter()
            .map(String::from)
            .chain([
                format!("cd \"$1\" || exit 0; {script}"),
                "sh".into(),
                NODE_MOUNT.into(),
            ])
            .collect();
        let out = transport.output_bounded(&argv, MAX_LISTING_BYTES)?;
        if !out.status.success() {
            bail!(
                "node {} could not list its export {NODE_MOUNT}: {}",
                transport.node(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out.stdout)
    };
    let (entries, digests) = std::thread::scope(|scope| {
        let halves: Vec<_> = halves.iter().map(|h| scope.spawn(|| ask(h))).collect();
        let entries = ask(entries);
        let digests: Result<Vec<u8>> = halves.into_iter().try_fold(Vec::new(), |mut all, h| {
            all.extend(
                h.join()
                    .map_err(|_| anyhow!("listing the node's export panicked"))??,
            );
            Ok(all)
        });
        (entries, digests)
    });
    let digests = digests?;
    parse_listing(&entries?, &digests)
        .with_context(|| format!("reading node {}'s listing of its export", transport.node()))
}

/// Reads `find -printf '%y %m %P\0%l\0'` and `sha256sum -z` output into entries. A name that
/// is not a plain relative path (a node's own tools never print one) is refused.
fn parse_listing(entries: &[u8], digests: &[u8]) -> Result<BTreeMap<String, Entry>> {
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).context("a name that is not UTF-8");
    let mut sha: BTreeMap<String, String> = BTreeMap::new();
    for record in digests.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let record = text(record)?;
        let (digest, path) = record
            .split_once("  ")
            .ok_or_else(|| anyhow!("a digest line without a name: {record:?}"))?;
        if !crate::record::digest::is_sha256_hex(digest) {
            bail!("not a sha256: {digest:?}");
        }
        sha.insert(checked_name(path)?.to_string(), digest.to_string());
    }
    let mut out = BTreeMap::new();
    let mut fields = entries.split(|b| *b == 0);
    while let Some(meta) = fields.next().filter(|m| !m.is_empty()) {
        let link = fields
            .next()
            .ok_or_else(|| anyhow!("an entry without its link field"))?;
        let meta = text(meta)?;
        let mut parts = meta.splitn(3, ' ');
        let (Some(kind), Some(mode), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("an entry that is not `KIND MODE PATH`: {meta:?}");
        };
        let mode = u32::from_str_radix(mode, 8).with_context(|| format!("the mode {mode:?}"))?;
        let path = checked_name(path)?.to_string();
        let entry = match kind {
            "f" => Entry::File {
                mode,
                // A file it could not hash (gone meanwhile) differs from every wanted file.
                sha256: sha.get(&path).cloned().unwrap_or_default(),
            },
            "d" => Entry::Dir { mode },
            "l" => Entry::Link {
                target: text(link)?,
            },
            // A FIFO, a socket or a device: nothing the export holds; it is removed.
            _ => Entry::Link {
                target: format!("\0{kind}"),
            },
        };
        out.insert(path, entry);
    }
    Ok(out)
}

fn checked_name(path: &str) -> Result<&str> {
    let plain = !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if plain {
        Ok(path)
    } else {
        bail!("not a plain relative path: {path:?}")
    }
}

/// Removes entries from the node's export (as root: the export is root's).
fn remove_on_node(transport: &Transport, paths: &[&str]) -> Result<()> {
    let argv: Vec<String> = [
        "sudo", "-n", "env", "-C", NODE_MOUNT, "xargs", "-0", "-r", "rm", "-rf", "--",
    ]
    .map(String::from)
    .to_vec();
    let mut list = Vec::new();
    for path in paths {
        list.extend_from_slice(path.as_bytes());
        list.push(0);
    }
    let out = transport
        .bounded(TRANSFER_TIME)
        .feed(&argv, move |stdin| stdin.write_all(&list))?;
    if !out.status.success() {
        bail!(
            "node {} could not remove {} entries from its export: {}",
            transport.node(),
            paths.len(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A sync while the node builds would change the sources under the build and remove the
/// records it is writing (the host does not have them yet): refused while a build holds the
/// node's build lock.
fn refuse_while_building(transport: &Transport) -> Result<()> {
    let node = transport.node();
    let script = r#"l="$1/provenance/$2/.lock"; [ ! -e "$l" ] || flock -n "$l" true || exit 3"#;
    let argv: Vec<String> = [
        "sudo",
        "-n",
        "sh",
        "-c",
        script,
        "sh",
        NODE_MOUNT,
        node.as_str(),
    ]
    .map(String::from)
    .to_vec();
    let out = transport
        .bounded(LISTING_TIME)
        .output_bounded(&argv, 4096)?;
    match out.status.code() {
        Some(0) => Ok(()),
        Some(3) => bail!(
            "a build is running on node {node} (it holds {NODE_MOUNT}/provenance/{node}/.lock): \
             syncing now would change its sources and remove the records it is writing; wait \
             for it to finish (one `make demo` per node at a time), then run this again"
        ),
        _ => bail!(
            "node {node} could not tell whether a build is running: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// Sends the entries to the node as a tar stream its own tar unpacks into the export.
fn send_to_node(transport: &Transport, wanted: &Wanted, paths: &[&str]) -> Result<()> {
    let bytes: u64 = paths
        .iter()
        .filter_map(|p| wanted.sources.get(*p))
        .filter_map(|source| fs::metadata(source).ok())
        .map(|m| m.len())
        .sum();
    let argv: Vec<String> = [
        "sudo",
        "-n",
        "tar",
        "--extract",
        "--preserve-permissions",
        "--numeric-owner",
        "--directory",
        NODE_MOUNT,
        "--file",
        "-",
    ]
    .map(String::from)
    .to_vec();
    let entries: Vec<(String, Entry, Option<PathBuf>)> = paths
        .iter()
        .map(|p| {
            (
                p.to_string(),
                wanted.entries[*p].clone(),
                wanted.sources.get(*p).cloned(),
            )
        })
        .collect();
    let limit = TRANSFER_TIME + Duration::from_secs(bytes / TRANSFER_RATE);
    let out = transport
        .bounded(limit)
        .feed(&argv, move |stdin| write_tar(stdin, &entries))?;
    if !out.status.success() {
        bail!(
            "node {}'s tar could not unpack what the host sent: {}",
            transport.node(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The entries as a tar stream: owned by root, with the host's modes and file times.
fn write_tar(
    out: &mut dyn Write,
    entries: &[(String, Entry, Option<PathBuf>)],
) -> std::io::Result<()> {
    let mut tar = tar::Builder::new(out);
    for (path, entry, source) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        match (entry, source) {
            (Entry::Dir { mode }, _) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                tar.append_data(&mut header, path, std::io::empty())?;
            }
            (Entry::Link { target }, _) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                tar.append_link(&mut header, path, target)?;
            }
            (Entry::File { mode, .. }, Some(source)) => {
                // A file gone since the listing (the checkout changed meanwhile) is named.
                let file = fs::File::open(source).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", source.display()))
                })?;
                let meta = file.metadata()?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(meta.len());
                header.set_mtime(meta.mtime().max(0) as u64);
                tar.append_data(&mut header, path, file)?;
            }
            (Entry::File { .. }, None) => unreachable!("every wanted file has a source"),
        }
    }
    tar.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gone_since_the_listing_is_named() {
        let gone = std::env::temp_dir().join("prov-sync-test-gone/Makefile");
        let entry = Entry::File {
            mode: 0o644,
            sha256: String::new(),
        };
        let err = write_tar(
            &mut Vec::new(),
            &[("Makefile".into(), entry, Some(gone.clone()))],
        )
        .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&gone.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn the_export_holds_the_checkout_and_the_nodes_own_records_only() {
        for path in [
            "Makefile",
            "scripts/node/up.sh",
            ".git",
            ".git/index",
            "provenance",
            "provenance/README.md",
            "provenance/main",
            "provenance/main/latest",
            "target",
            "target/release",
            "target/release/prov",
            ".cache",
            ".cache/images",
            ".cache/images/ids.env",
            ".cache/crates",
            ".cache/crates/serde-1.0.0.crate",
            "vendor/serde/src/lib.rs",
        ] {
            assert!(exported(path, "main"), "{path} left out");
        }
        for path in [
            ".vagrant",
            ".vagrant/machines/main/id",
            ".git/hooks",
            ".git/hooks/post-checkout",
            "provenance/worker1",
            "provenance/worker1/latest",
            "target/release/deps",
            "target/debug",
            ".cache/images/bases.tar",
            ".cache/venv-attest",
            ".cache/keys/attest.key",
        ] {
            assert!(!exported(path, "main"), "{path} exported");
        }
    }

    #[test]
    fn a_listing_reads_as_entries_and_a_strange_name_is_refused() {
        let digest = "ab".repeat(32);
        let entries =
            b"d 755 scripts\0\0f 644 scripts/a b.sh\0\0l 777 link\0target\0p 644 fifo\0\0";
        let digests = format!("{digest}  scripts/a b.sh\0");
        let listing = parse_listing(entries, digests.as_bytes()).unwrap();
        assert_eq!(listing["scripts"], Entry::Dir { mode: 0o755 });
        assert_eq!(
            listing["scripts/a b.sh"],
            Entry::File {
                mode: 0o644,
                sha256: digest.clone()
            }
        );
        assert_eq!(
            listing["link"],
            Entry::Link {
                target: "target".into()
            }
        );
        assert!(!matches!(
            listing["fifo"],
            Entry::File { .. } | Entry::Dir { .. }
        ));
        for bad in [
            &b"f 644 ../x\0\0"[..],
            b"f 644 /etc/passwd\0\0",
            b"f x y\0\0",
            b"f 644\0\0",
        ] {
            assert!(
                parse_listing(bad, b"").is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_listing(b"", b"nothash  x\0").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_listing_a_node_sends_is_entries_or_an_error(
            entries in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            digests in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ) {
            let _ = parse_listing(&entries, &digests);
        }
    }
}
