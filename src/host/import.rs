//! A node's records, brought back to the host as data.
//!
//! A node writes its records into its own export (`/vagrant/provenance/<node>/`). The host reads
//! them over the node transport as a tar stream it parses in memory: only plain files with a
//! record's name and size are kept, nothing is followed or run. `verify` judges what the node
//! holds; `import` checks each record the host does not have yet against the node's engine and
//! build log, and only then writes it into the checkout's `provenance/<node>/`, where `show`,
//! `log`, `diff` and the attestations read it.

use std::fs;
use std::io::Read;
use std::path::{Component, Path};

use anyhow::{anyhow, bail, Context, Result};
use tempfile::TempDir;

use crate::error::Error;
use crate::host::bases::{HostBases, DATABASE};
use crate::host::held::Held;
use crate::host::image_files::ImageFiles;
use crate::host::state::HostState;
use crate::host::transport::Transport;
use crate::record::bounded::{self, MAX_RECORD_BYTES};
use crate::record::build_log;
use crate::record::manifest::{side_files, BuildStatus};
use crate::record::names;
use crate::record::nodes::{NodeName, NODE_MOUNT};
use crate::record::store::{write_atomic, ChainEntry, ChainLink, Store, StoreError, Stored};

/// How long an import (and the attestation after it) may take, whatever the node does: its
/// records, logs and the engine's answers come in seconds.
pub const IMPORT_TIME: std::time::Duration = std::time::Duration::from_secs(90);

/// The most a node may send for all its manifests at once (a manifest is about 4 KiB).
const MAX_RECORDS_BYTES: u64 = 64 << 20;
/// The most a node may send for the build logs of one import.
const MAX_LOGS_BYTES: u64 = 512 << 20;

/// A node's records, as fetched: a `Store` over a private copy the host made from the stream.
pub struct Fetched {
    _dir: TempDir,
    pub store: Store,
}

/// The node's manifests and its `latest` pointer (no logs, no envelopes).
pub fn fetch_records(state: &HostState, transport: &Transport) -> Result<Fetched> {
    let stream = node_tar(transport, &[], MAX_RECORDS_BYTES)?;
    staged(state, transport.node(), &stream)
}

/// The records and `latest` of a node's tar stream, in a private folder of the host's.
fn staged(state: &HostState, node: &NodeName, stream: &[u8]) -> Result<Fetched> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("from-node-{node}."))
        .tempdir_in(staging_root(state)?)
        .context("making a folder for the node's records")?;
    let records = dir.path().join(node);
    fs::create_dir(&records)?;
    unpack(stream, &records, |name| {
        name == "latest" || names::record_id(name).is_some()
    })
    .with_context(|| format!("reading node {node}'s records"))?;
    Ok(Fetched {
        store: Store::new(dir.path(), node),
        _dir: dir,
    })
}

/// The node's records named after `boundary` (the newest build id the host holds) and `latest`,
/// fetched as `fetch_records` does, and one digest of the records named up to it
/// (`records_digest`, computed on the node with coreutils): what verify asks of a node whose
/// earlier records the host already proved. What the node sends does not grow with its history.
pub struct Since {
    pub fetched: Fetched,
    /// The digest of the node's records up to the boundary, hashed by one `sha256sum` (a process
    /// per record made verify's time grow with the history: 1.9 s at 1,000 records); a name
    /// there that is not a plain file makes it another digest, and the node is read whole.
    pub held_digest: String,
}

pub fn fetch_since(
    state: &HostState,
    transport: &Transport,
    boundary: Option<&str>,
) -> Result<Since> {
    let node = transport.node();
    // Build ids only (the same pattern `names::is_build_id` accepts), in byte order.
    let script = r#"d="$1/provenance/$2" b="$3.json"
        export LC_ALL=C
        held=() new=()
        if [[ -d $d ]]; then
          cd "$d" || exit 1
          shopt -s nullglob
          for f in [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f].json; do
            if [[ -n $3 && ! $f > $b ]]; then held+=("$f"); else new+=("$f"); fi
          done
          if [[ -e latest || -L latest ]]; then new+=(latest); fi
        fi
        {
          for f in "${held[@]}"; do
            [[ -f $f && ! -L $f ]] || { echo "not-a-file  $f"; exit 0; }
          done
          ((${#held[@]} == 0)) || printf '%s\0' "${held[@]}" | xargs -0 sha256sum -- || exit 1
        } | sha256sum | cut -c1-64
        ((${#new[@]})) || exit 0
        exec tar -cf - -- "${new[@]}""#;
    let argv: Vec<String> = [
        "bash",
        "-c",
        script,
        "bash",
        NODE_MOUNT,
        node,
        boundary.unwrap_or(""),
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let out = transport.output_bounded(&argv, MAX_RECORDS_BYTES)?;
    let digest_line = out.stdout.get(..65).filter(|l| l[64] == b'\n');
    let held_digest = match digest_line.map(|l| std::str::from_utf8(&l[..64])) {
        Some(Ok(hex)) if out.status.success() && crate::record::store::is_sha256_hex(hex) => {
            hex.to_string()
        }
        _ => bail!(
            "node {node} could not list its records in {NODE_MOUNT}/provenance/{node}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    };
    Ok(Since {
        fetched: staged(state, node, &out.stdout[65..])?,
        held_digest,
    })
}

/// A node's chain of records as the host judges it. When the node's copies of the records the
/// host imported have the host's digest, the host's own links stand for them and only the
/// records after them were read from the node; otherwise every record was read from the node.
pub struct NodeChain {
    /// Where the records read from the node are.
    pub fetched: Fetched,
    /// Every link of the chain, in order.
    pub links: Vec<ChainLink>,
    /// How many of the first links are the host's (0 when the node was read whole).
    pub from_host: usize,
    /// The records read from the node, in chain order.
    pub read: Vec<ChainEntry>,
    /// The record the node's `latest` names: the host's copy when it is one the host imported.
    pub latest: Result<Stored, StoreError>,
}

/// The node's chain from what `fetch_since` brought for the host's `held` records (`host`, the
/// host's copy), reading the node whole only when its copies of them differ.
pub fn node_chain(
    state: &HostState,
    transport: &Transport,
    host: &Store,
    held: &Held,
    since: Since,
) -> Result<NodeChain> {
    if since.held_digest != held.digest {
        let fetched = fetch_records(state, transport)?;
        let read = fetched.store.chain()?;
        let latest = fetched.store.latest();
        return Ok(NodeChain {
            links: read.iter().map(ChainLink::from).collect(),
            from_host: 0,
            read,
            latest,
            fetched,
        });
    }
    let store = &since.fetched.store;
    let read = store.chain_from(held.tip())?;
    let latest = match store.latest_pointer() {
        Ok(Some(pointer)) => match held.links.iter().find(|l| l.build_id == pointer.build_id) {
            Some(link) if link.sha256.as_deref() == Some(&pointer.manifest_sha256) => {
                host.pinned(&pointer)
            }
            Some(link) => Err(StoreError::Corrupt {
                path: Path::new(NODE_MOUNT)
                    .join("provenance")
                    .join(transport.node())
                    .join("latest"),
                reason: format!(
                    "it pins sha256 {} for build {}, whose record (the node's copy is the \
                     host's) has sha256 {}: the pointer was edited",
                    pointer.manifest_sha256,
                    pointer.build_id,
                    link.sha256.as_deref().unwrap_or("none")
                ),
            }),
            None => store.pinned(&pointer),
        },
        Ok(None) => store.latest(),
        Err(e) => Err(e),
    };
    let links = held.links.iter().cloned();
    Ok(NodeChain {
        links: links.chain(read.iter().map(ChainLink::from)).collect(),
        from_host: held.links.len(),
        read,
        latest,
        fetched: since.fetched,
    })
}

fn staging_root(state: &HostState) -> Result<std::path::PathBuf> {
    let root = state.dir().join("from-nodes");
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    Ok(root)
}

/// `tar` of the node's records folder (the named files only, when `names` is not empty), sent
/// back on stdout. No folder means no records: an empty stream.
fn node_tar(transport: &Transport, names: &[String], max: u64) -> Result<Vec<u8>> {
    let node = transport.node();
    // Without names: `latest` and the records, whose names end in a build id's four hex digits
    // (the side files, attestations and BuildKit's provenance, stay behind: the host asks for
    // them by name). Of those asked for, the ones there (a dangling link or a FIFO included, so
    // that the host can refuse it by name); a missing one is then missing on the host, and
    // refused by name too.
    let script = r#"d="$1/provenance/$2"; shift 2
        [ -d "$d" ] || exit 0
        cd "$d" || exit 1
        [ $# -gt 0 ] || set -- latest *-[0-9a-f][0-9a-f][0-9a-f][0-9a-f].json
        for f; do shift; { [ -e "$f" ] || [ -L "$f" ]; } && set -- "$@" "$f"; done
        [ $# -gt 0 ] || exit 0
        exec tar -cf - -- "$@""#;
    let argv: Vec<String> = ["sh", "-c", script, "sh", NODE_MOUNT, node]
        .into_iter()
        .map(String::from)
        .chain(names.iter().cloned())
        .collect();
    let out = transport.output_bounded(&argv, max)?;
    if !out.status.success() {
        bail!(
            "node {node} could not list its records in {NODE_MOUNT}/provenance/{node}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Writes the stream's files whose name `wanted` accepts into `into`. A plain file is copied
/// (at most `MAX_RECORD_BYTES` for a record); a symbolic link or a FIFO is recreated as one, so
/// that reading it is refused exactly as it would be on the node; anything else is refused here.
fn unpack(stream: &[u8], into: &Path, wanted: impl Fn(&str) -> bool) -> Result<()> {
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().context("not a tar stream")? {
        let mut entry = entry.context("a damaged tar stream")?;
        let path = entry.path().context("an entry with no path")?.into_owned();
        let mut parts = path.components().filter(|c| *c != Component::CurDir);
        let (Some(Component::Normal(name)), None) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(name) = name.to_str().filter(|n| wanted(n)) else {
            continue;
        };
        let target = into.join(name);
        let kind = entry.header().entry_type();
        if kind.is_file() {
            let limit = if name.ends_with(".log") {
                MAX_LOGS_BYTES
            } else {
                MAX_RECORD_BYTES
            };
            if entry.size() > limit {
                bail!(
                    "{name} has {} bytes, more than any record prov writes",
                    entry.size()
                );
            }
            // A name the stream holds twice is refused: written again, it could be a FIFO
            // made a moment ago, whose opening for writing never returns.
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .with_context(|| format!("{name} appears twice in the node's stream"))?;
            std::io::copy(&mut entry.by_ref().take(limit), &mut file)
                .with_context(|| format!("writing {}", target.display()))?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink("/dev/null", &target)?;
        } else if kind.is_fifo() {
            let c = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())?;
            if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
        } else {
            bail!(
                "{name} is not a regular file (tar entry type {kind:?}): records are plain files"
            );
        }
    }
    Ok(())
}

/// What `import` brought in.
#[derive(Debug, Default)]
pub struct Imported {
    pub build_ids: Vec<String>,
}

/// Brings the node's new records into the checkout, after checking them: the node's chain is
/// intact and still holds, byte for byte, every record the host imported before, with `latest`
/// no older than the host's; each new record's build log has its recorded digest and size; and
/// the node's engine holds the new latest build's image with the recorded id, labels and layers.
/// Refuses (and writes nothing) otherwise.
pub fn import(repo: &Path, state: &HostState, transport: &Transport) -> Result<Imported> {
    let node = transport.node();
    let refuse = |why: String| anyhow!("refusing to import node {node}'s records: {why}");
    let host = Store::new(&repo.join("provenance"), node);
    let held = Held::load(state, &host)?;
    let since = fetch_since(state, transport, held.boundary())?;
    let chain = node_chain(state, transport, &host, &held, since)?;

    let mut new = Vec::new();
    for entry in &chain.read {
        let stored = entry.read.as_ref().map_err(|e| refuse(e.to_string()))?;
        if !entry.is_intact() {
            return Err(refuse(format!(
                "its hash chain is broken at {} (`prov log` on the node shows where)",
                entry.build_id
            )));
        }
        match held.links.iter().find(|l| l.build_id == entry.build_id) {
            Some(ours) if ours.sha256.as_deref() != Some(stored.sha256.as_str()) => {
                return Err(refuse(format!(
                    "the node changed record {} after the host imported it (sha256 {} here, {} \
                     on the node); the host's copy is kept, and the next `make demo` puts it back",
                    entry.build_id,
                    ours.sha256.as_deref().unwrap_or("unreadable"),
                    stored.sha256
                )));
            }
            Some(_) => {}
            None => new.push(stored.clone()),
        }
    }
    let position = |id: &str| chain.links.iter().position(|l| l.build_id == id);
    if let Some(missing) = held.links.iter().find(|l| position(&l.build_id).is_none()) {
        return Err(refuse(format!(
            "record {}, which the host imported, is gone from the node",
            missing.build_id
        )));
    }
    let latest = match chain.latest {
        Ok(stored) => Some(stored),
        Err(StoreError::NoLatest { .. }) if chain.links.is_empty() => None,
        Err(e) => return Err(refuse(e.to_string())),
    };
    if let (Some(ours), Some(theirs)) = (host.latest_pointer()?, &latest) {
        if position(&theirs.manifest.build_id) < position(&ours.build_id) {
            return Err(refuse(format!(
                "its latest build {} is older than {}, the latest the host imported (a rollback)",
                theirs.manifest.build_id, ours.build_id
            )));
        }
    }

    let logs_dir = tempfile::Builder::new()
        .prefix(&format!("logs-from-{node}."))
        .tempdir_in(staging_root(state)?)?;
    if !new.is_empty() {
        let names: Vec<String> = new
            .iter()
            .flat_map(|s| {
                let log = names::log(&s.manifest.build_id);
                let pinned = s.manifest.side_files().into_iter().map(|f| f.name);
                std::iter::once(log).chain(pinned)
            })
            .collect();
        let stream = node_tar(transport, &names, MAX_LOGS_BYTES)?;
        unpack(&stream, logs_dir.path(), |name| {
            names.iter().any(|n| n == name)
        })?;
        // A log or a side file is a plain file: anything else is refused by name, never opened
        // (a FIFO's reader waits forever).
        for name in &names {
            let path = logs_dir.path().join(name);
            if let Ok(meta) = fs::symlink_metadata(&path) {
                if !meta.is_file() {
                    return Err(refuse(format!(
                        "{name} is not a plain file on the node (a FIFO, a link or a device): \
                         refused, never opened"
                    )));
                }
            }
        }
    }
    for stored in &new {
        let log = logs_dir.path().join(names::log(&stored.manifest.build_id));
        check_log(stored, &log).map_err(refuse)?;
        check_side_files(stored, logs_dir.path()).map_err(refuse)?;
    }
    // Every new record's claims, proven against what the node cannot choose (`proof.rs`).
    if let Some(newest) = new.last() {
        let mut facts = crate::host::proof::gather(
            repo,
            state,
            transport,
            &new_records(&new),
            &newest.manifest,
        )
        .map_err(|e| refuse(format!("its records could not be proven: {e:#}")))?;
        for stored in &new {
            let at = position(&stored.manifest.build_id).expect("a new record is in the chain");
            facts.previous = at
                .checked_sub(1)
                .and_then(|before| chain.links[before].sha256.clone());
            let wrong = crate::host::proof::disagreements(&stored.manifest, &facts);
            if !wrong.is_empty() {
                return Err(refuse(format!(
                    "record {} claims what the host proves otherwise: {}",
                    stored.manifest.build_id,
                    wrong.join("; ")
                )));
            }
        }
    }

    // Only with new records: proving them needs the host's bases already, and a host that
    // imports nothing new (another checkout attesting a record, say) lists nothing.
    if !new.is_empty() {
        list_images(repo, state, transport, latest.as_ref())
            .map_err(|e| refuse(format!("{e:#}")))?;
    }

    fs::create_dir_all(host.dir()).with_context(|| format!("creating {}", host.dir().display()))?;
    for stored in &new {
        let id = &stored.manifest.build_id;
        fs::copy(logs_dir.path().join(names::log(id)), host.log_path(id))
            .with_context(|| format!("writing {}", host.log_path(id).display()))?;
        for name in stored.manifest.side_files().into_iter().map(|f| f.name) {
            fs::copy(logs_dir.path().join(&name), host.dir().join(&name))
                .with_context(|| format!("writing {}", host.dir().join(&name).display()))?;
        }
        let bytes = bounded::read(&chain.fetched.store.manifest_path(id))?
            .context("a fetched record vanished")?;
        write_atomic(&host.manifest_path(id), &bytes)?;
    }
    if let Some(theirs) = &latest {
        host.set_latest(&crate::record::manifest::LatestPointer {
            build_id: theirs.manifest.build_id.clone(),
            manifest_sha256: theirs.sha256.clone(),
        })?;
    }
    Held::of_store(&host)?.save(state, node)?;
    Ok(Imported {
        build_ids: new.into_iter().map(|s| s.manifest.build_id).collect(),
    })
}

/// The files of the images the stack runs (the latest build's, the database's base), which
/// verify holds what runs to: listed once per image, from the node's engine, proven by their
/// layers' digests (`image_files`). A host that imported a build before prov listed images
/// lists them at its next build's import; verify says so until then.
fn list_images(
    repo: &Path,
    state: &HostState,
    transport: &Transport,
    latest: Option<&Stored>,
) -> Result<()> {
    let built = latest
        .map(|s| &s.manifest)
        .filter(|m| m.status == BuildStatus::Success)
        .and_then(|m| m.image.as_ref());
    let Some(image) = built else { return Ok(()) };
    ImageFiles::ensure(transport, state, &image.id, &image.layers)?;
    let bases = HostBases::load(repo)?;
    let db = bases.get(DATABASE)?;
    ImageFiles::ensure(transport, state, &db.tag, &db.layers)
}

/// The build log at `log` has the digest and size the record names, and shows no step taken
/// from the builder's cache.
pub fn check_log(stored: &Stored, log: &Path) -> Result<(), String> {
    let m = &stored.manifest;
    let open = || fs::File::open(log).map_err(|e| format!("build {}'s log: {e}", m.build_id));
    let reading = |e: std::io::Error| format!("reading {}: {e}", log.display());
    let (sha, bytes) = crate::record::digest::sha256_reader(open()?).map_err(reading)?;
    if sha != m.build_log.sha256 || bytes != m.build_log.bytes {
        return Err(format!(
            "build {}'s log has sha256 {sha} and {bytes} bytes, the record says {} and {}",
            m.build_id, m.build_log.sha256, m.build_log.bytes
        ));
    }
    let cached = build_log::cached_steps(std::io::BufReader::new(open()?)).map_err(reading)?;
    if !cached.is_empty() {
        return Err(format!(
            "build {}'s log shows steps taken from the cache, which a build with --no-cache \
             never does: {}",
            m.build_id,
            cached.join("; ")
        ));
    }
    Ok(())
}

/// Every file the record pins beside itself is there with the pinned digest; its SBOM reads as
/// a CycloneDX bill of the record's tree.
fn check_side_files(stored: &Stored, dir: &Path) -> Result<(), String> {
    for side in stored.manifest.side_files() {
        let bytes = stored
            .pinned(dir, side.suffix)
            .map_err(|e| format!("{e:#}"))?
            .unwrap_or_default();
        if side.suffix == side_files::SBOM {
            let bom = crate::record::sbom::parse(&bytes)
                .map_err(|e| format!("build {}'s SBOM: {e:#}", stored.manifest.build_id))?;
            if bom.metadata.component.version != stored.manifest.git.tree {
                return Err(format!(
                    "build {}'s SBOM is of tree {}, the record of tree {}",
                    stored.manifest.build_id,
                    bom.metadata.component.version,
                    stored.manifest.git.tree
                ));
            }
        }
    }
    Ok(())
}

/// The records whose claims an import proves.
fn new_records(new: &[Stored]) -> Vec<&crate::record::manifest::Manifest> {
    new.iter().map(|s| &s.manifest).collect()
}

/// The node's engine holds the record's image with the recorded id, labels and layers. A failed
/// build has no image to check.
/// A node whose engine cannot be asked could not be checked; an image not as recorded failed.
pub fn check_against_engine(stored: &Stored, transport: &Transport) -> crate::error::Result<()> {
    let m = &stored.manifest;
    let Some(image) = m
        .image
        .as_ref()
        .filter(|_| m.status == BuildStatus::Success)
    else {
        return Ok(());
    };
    let on_node =
        crate::host::probe::images_by_reference(transport, std::slice::from_ref(&image.id))
            .context("the node's engine could not be asked")?;
    let differs = |what: String| Err(Error::failed(anyhow!(what)));
    let Some(found) = on_node.into_iter().flatten().find(|i| i.id == image.id) else {
        return differs(format!("the node's engine has no image {}", image.id));
    };
    if found.config.labels.clone().unwrap_or_default() != image.labels {
        return differs("the image's labels are not the recorded ones".into());
    }
    if found.root_fs.layers != image.layers {
        return differs("the image's layers are not the recorded ones".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::store::StoreError;

    fn stream(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        builder.into_inner().unwrap()
    }

    fn file(builder: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // Written raw, so that a path tar::Builder would refuse (`..`) can be sent too.
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder.append(&header, bytes).unwrap();
    }

    fn special(builder: &mut tar::Builder<Vec<u8>>, path: &str, kind: tar::EntryType) {
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_entry_type(kind);
        if kind.is_symlink() {
            header.set_link_name("/dev/zero").unwrap();
        }
        builder
            .append_data(&mut header, path, std::io::empty())
            .unwrap();
    }

    fn is_record(name: &str) -> bool {
        name == "latest" || names::record_id(name).is_some()
    }

    const ID: &str = "20261130-120000-000-a1b2";

    #[test]
    fn only_a_records_plain_files_at_the_top_are_kept() {
        let into = tempfile::tempdir().unwrap();
        let tar = stream(|b| {
            file(b, &format!("./{ID}.json"), b"{}");
            file(b, "./latest", b"{}");
            file(b, "./notes.txt", b"not a record");
            file(b, &format!("drills/{ID}.json"), b"in a subfolder");
            file(b, &format!("../{ID}.json"), b"outside");
        });
        unpack(&tar, into.path(), is_record).unwrap();
        let mut names: Vec<String> = fs::read_dir(into.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [format!("{ID}.json"), "latest".to_string()]);
        assert!(!into
            .path()
            .parent()
            .unwrap()
            .join(format!("{ID}.json"))
            .exists());
    }

    #[test]
    fn a_link_or_a_fifo_among_the_records_is_refused_when_read_by_name() {
        for (kind, says) in [
            (tar::EntryType::Symlink, "a symbolic link"),
            (tar::EntryType::Fifo, "a FIFO"),
        ] {
            let root = tempfile::tempdir().unwrap();
            let into = root.path().join("main");
            fs::create_dir(&into).unwrap();
            let tar = stream(|b| special(b, &format!("{ID}.json"), kind));
            unpack(&tar, &into, is_record).unwrap();
            match Store::new(root.path(), &"main".parse().unwrap()).read(ID) {
                Err(StoreError::Refused { reason, .. }) => {
                    assert!(reason.contains(says), "{reason}")
                }
                other => panic!("{kind:?} was read: {other:?}"),
            }
        }
    }

    #[test]
    fn a_device_or_an_oversized_record_is_refused() {
        let into = tempfile::tempdir().unwrap();
        let device = stream(|b| special(b, "latest", tar::EntryType::Char));
        let err = unpack(&device, into.path(), is_record).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let big = vec![b' '; MAX_RECORD_BYTES as usize + 1];
        let oversized = stream(|b| file(b, &format!("{ID}.json"), &big));
        let err = unpack(&oversized, into.path(), is_record).unwrap_err();
        assert!(err.to_string().contains("more than any record"), "{err}");
    }

    #[test]
    fn a_name_sent_twice_is_refused_and_never_blocks() {
        let into = tempfile::tempdir().unwrap();
        let tar = stream(|b| {
            special(b, "latest", tar::EntryType::Fifo);
            file(b, "./latest", b"{}");
        });
        let err = unpack(&tar, into.path(), is_record).unwrap_err();
        assert!(format!("{err:#}").contains("appears twice"), "{err:#}");
    }

    #[test]
    fn garbage_is_not_a_stream() {
        let into = tempfile::tempdir().unwrap();
        assert!(unpack(
            b"not a tar stream at all, just bytes",
            into.path(),
            is_record
        )
        .is_err());
    }
}
