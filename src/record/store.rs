//! The per-node manifest store: `provenance/<node>/<build-id>.json`, the `latest` pointer, and
//! the hash chain that links every manifest to the one before it.
//!
//! The chain's order comes from its links, not from the clock: each manifest names the digest
//! of the one before it. Build ids start with a UTC timestamp, but a node's clock can step back
//! between two builds; ids only break ties and order what the links cannot place.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::record::bounded::{self, ReadError};
use crate::record::digest::sha256_hex;
use crate::record::manifest::{BuildStatus, LatestPointer, Manifest, MANIFEST_SCHEMA};
use crate::record::names::{self, is_build_id};
use crate::record::nodes::NodeName;

const LATEST: &str = "latest";
const LOCK: &str = ".lock";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a valid manifest ({reason}); earlier builds are untouched. Inspect it with \
         `prov log --node <node>`; to start a new chain, move the node's provenance folder aside"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path} has schema {found:?}, this prov reads {MANIFEST_SCHEMA:?}; use the prov version \
         that wrote it"
    )]
    UnknownSchema { path: PathBuf, found: String },
    #[error("no build recorded for node {node} in {dir}: run `make demo NODE={node}`")]
    NoLatest { node: NodeName, dir: PathBuf },
    #[error("build {build_id} is not recorded in {dir}")]
    NoSuchBuild { build_id: String, dir: PathBuf },
    #[error(
        "another build holds the lock {path}: wait for it to finish (only one build per node at \
         a time)"
    )]
    Locked { path: PathBuf },
    #[error(
        "{build_id:?} is not a build id (expected YYYYMMDD-HHMMSS-mmm-xxxx, e.g. \
         20261129-120000-000-a1b2): `prov log` lists the node's builds"
    )]
    BadBuildId { build_id: String },
    #[error("refusing to read {path}: it {reason}")]
    Refused { path: PathBuf, reason: String },
}

impl StoreError {
    /// A few words for a table cell; the full message is the `Display`.
    pub fn brief(&self) -> String {
        match self {
            StoreError::Io { source, .. } => source.to_string(),
            StoreError::Corrupt { .. } => "not a valid manifest".to_string(),
            StoreError::UnknownSchema { found, .. } => format!("unknown schema {found}"),
            StoreError::NoLatest { .. } => "no latest build".to_string(),
            StoreError::NoSuchBuild { .. } => "missing".to_string(),
            StoreError::Locked { .. } => "locked".to_string(),
            StoreError::BadBuildId { .. } => "not a build id".to_string(),
            StoreError::Refused { reason, .. } => format!("refused: it {reason}"),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A record's bytes, read with the limits of `bounded`; `None` when it does not exist.
fn read_record(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    bounded::read(path).map_err(|e| match e {
        ReadError::Io(source) => StoreError::Io {
            path: path.to_path_buf(),
            source,
        },
        refused => StoreError::Refused {
            path: path.to_path_buf(),
            reason: refused.to_string(),
        },
    })
}

/// A manifest read from disk together with the digest of its exact bytes.
#[derive(Debug, Clone)]
pub struct Stored {
    pub manifest: Manifest,
    pub sha256: String,
}

impl Stored {
    /// The file the record pins beside itself under `suffix` (see [`side_files`]), read from
    /// `dir` and checked against the recorded digest. `None` when the record pins none.
    ///
    /// [`side_files`]: crate::record::manifest::side_files
    pub fn pinned(&self, dir: &Path, suffix: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(side) = self
            .manifest
            .side_files()
            .into_iter()
            .find(|f| f.suffix == suffix)
        else {
            return Ok(None);
        };
        let (id, what, recorded) = (&self.manifest.build_id, side.what, side.pinned);
        let path = dir.join(&side.name);
        let bytes = bounded::read(&path)
            .map_err(|e| anyhow::anyhow!("build {id}'s {what} {e}"))?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "build {id}'s {what} is missing ({}): the record names it",
                    path.display()
                )
            })?;
        let sha = sha256_hex(&bytes);
        if sha != recorded.sha256 {
            anyhow::bail!(
                "build {id}'s {what} has sha256 {sha}, the record pins {}: it was changed ({})",
                recorded.sha256,
                path.display()
            );
        }
        Ok(Some(bytes))
    }
}

/// How one manifest sits in the chain.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    Intact,
    /// The manifest's `prev_manifest_sha256` does not match the file before it.
    Broken {
        expected: Option<String>,
        found: Option<String>,
    },
}

/// One entry of the chain walk: the build id (from the file name) and either its manifest or why
/// it could not be read.
#[derive(Debug)]
pub struct ChainEntry {
    pub build_id: String,
    pub read: Result<Stored, StoreError>,
    pub link: Link,
}

impl ChainEntry {
    /// Intact here and everywhere before (the caller folds this along the chain).
    pub fn is_intact(&self) -> bool {
        self.read.is_ok() && self.link == Link::Intact
    }
}

/// A record's place in a chain without its content: what the chain checks judge, whether the
/// record was read now or proven earlier (the host's copy of what it imported).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainLink {
    pub build_id: String,
    /// The sha256 of its bytes; `None` when it could not be read.
    pub sha256: Option<String>,
    /// A successful build's record (false when it could not be read).
    pub success: bool,
    /// Why it does not belong where it sits (unreadable, or chained to another record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl From<&ChainEntry> for ChainLink {
    fn from(entry: &ChainEntry) -> Self {
        let problem = match (&entry.read, &entry.link) {
            (Err(err), _) => Some(format!("{}: {err}", entry.build_id)),
            (Ok(_), Link::Broken { .. }) => Some(format!(
                "{}: previous-manifest digest does not match",
                entry.build_id
            )),
            (Ok(_), Link::Intact) => None,
        };
        let read = entry.read.as_ref().ok();
        ChainLink {
            build_id: entry.build_id.clone(),
            sha256: read.map(|s| s.sha256.clone()),
            success: read.is_some_and(|s| s.manifest.status == BuildStatus::Success),
            problem,
        }
    }
}

/// One digest of a set of records: the sha256 of the lines `sha256sum` prints for them
/// (`<sha256>  <file name>`), in byte order of the names. A node computes it over the records it
/// holds with coreutils; the host over the ones it imported, to learn they are the same without
/// moving them.
pub fn records_digest<'a>(records: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut records: Vec<(&str, &str)> = records.into_iter().collect();
    records.sort();
    let lines: String = records
        .iter()
        .map(|(build_id, sha)| format!("{sha}  {}\n", names::record(build_id)))
        .collect();
    sha256_hex(lines.as_bytes())
}

/// The manifests of one node.
pub struct Store {
    node: NodeName,
    dir: PathBuf,
}

impl Store {
    pub fn new(provenance_root: &Path, node: &NodeName) -> Self {
        Store {
            node: node.clone(),
            dir: provenance_root.join(node),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The folder itself must not lead elsewhere.
    fn check_dir(&self) -> Result<(), StoreError> {
        if bounded::is_symlink(&self.dir) {
            return Err(StoreError::Refused {
                path: self.dir.clone(),
                reason: "is a symbolic link: a node's records live in its own folder".into(),
            });
        }
        Ok(())
    }

    pub fn manifest_path(&self, build_id: &str) -> PathBuf {
        self.dir.join(names::record(build_id))
    }

    pub fn log_path(&self, build_id: &str) -> PathBuf {
        self.dir.join(names::log(build_id))
    }

    /// A file the record pins beside itself (`manifest::side_files`).
    pub fn side_path(&self, build_id: &str, suffix: &str) -> PathBuf {
        self.dir.join(names::side(build_id, suffix))
    }

    /// The host's attestation of the record.
    pub fn envelope_path(&self, build_id: &str) -> PathBuf {
        self.dir.join(names::envelope(build_id))
    }

    /// The host's attestation of the record's SBOM.
    pub fn sbom_envelope_path(&self, build_id: &str) -> PathBuf {
        self.dir.join(names::sbom_envelope(build_id))
    }

    /// The host's verdict of the build's reproduction on `node`.
    pub fn verdict_path(&self, build_id: &str, node: &NodeName) -> PathBuf {
        self.dir.join(names::verdict(build_id, node))
    }

    /// The verdicts kept for a build: (rebuilding node, path), by node name.
    pub fn verdicts(&self, build_id: &str) -> Vec<(NodeName, PathBuf)> {
        let mut found: Vec<(NodeName, PathBuf)> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let node = names::verdict_node(&entry.file_name().to_string_lossy(), build_id)?;
                Some((node, entry.path()))
            })
            .collect();
        found.sort();
        found
    }

    /// Creates the node's folder and takes its build lock; the lock is released on drop.
    pub fn lock(&self) -> Result<File, StoreError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let path = self.dir.join(LOCK);
        let file = File::create(&path).map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path }),
            Err(fs::TryLockError::Error(source)) => Err(StoreError::Io { path, source }),
        }
    }

    /// Build ids of every manifest file, in chain order.
    pub fn build_ids(&self) -> Result<Vec<String>, StoreError> {
        self.check_dir()?;
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let name = entry.map_err(io_err(&self.dir))?.file_name();
            let name = name.to_string_lossy();
            // `<build id>.json` only: temporary files (`.x.tmp-N`), attestations
            // (`<id>.dsse.json`) and anything else are not manifests.
            if let Some(id) = names::record_id(&name) {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    pub fn read(&self, build_id: &str) -> Result<Stored, StoreError> {
        // Checked before it becomes part of a path: `../x` must not leave the folder.
        if !is_build_id(build_id) {
            return Err(StoreError::BadBuildId {
                build_id: build_id.to_string(),
            });
        }
        self.check_dir()?;
        let path = self.manifest_path(build_id);
        let bytes = read_record(&path)?.ok_or_else(|| StoreError::NoSuchBuild {
            build_id: build_id.to_string(),
            dir: self.dir.clone(),
        })?;
        let manifest = parse_manifest(&path, &bytes)?;
        if manifest.build_id != build_id {
            return Err(StoreError::Corrupt {
                path,
                reason: format!("it names build {}", manifest.build_id),
            });
        }
        Ok(Stored {
            manifest,
            sha256: sha256_hex(&bytes),
        })
    }

    /// The chain's newest manifest, which a new build must chain onto; it must be readable.
    pub fn head(&self) -> Result<Option<Stored>, StoreError> {
        self.chain()?.pop().map(|entry| entry.read).transpose()
    }

    pub fn latest_pointer(&self) -> Result<Option<LatestPointer>, StoreError> {
        self.check_dir()?;
        let path = self.dir.join(LATEST);
        let Some(bytes) = read_record(&path)? else {
            return Ok(None);
        };
        let pointer: LatestPointer =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if !is_build_id(&pointer.build_id) || !is_sha256_hex(&pointer.manifest_sha256) {
            return Err(StoreError::Corrupt {
                path,
                reason: "it names no valid build id and manifest digest".into(),
            });
        }
        Ok(Some(pointer))
    }

    /// The build `latest` points at, checked against the digest the pointer pins.
    pub fn latest(&self) -> Result<Stored, StoreError> {
        let pointer = self.latest_pointer()?.ok_or_else(|| StoreError::NoLatest {
            node: self.node.clone(),
            dir: self.dir.clone(),
        })?;
        self.pinned(&pointer)
    }

    /// The build a `latest` pointer names, read here and checked against the digest it pins.
    pub fn pinned(&self, pointer: &LatestPointer) -> Result<Stored, StoreError> {
        let stored = self.read(&pointer.build_id)?;
        if stored.sha256 != pointer.manifest_sha256 {
            return Err(StoreError::Corrupt {
                path: self.manifest_path(&pointer.build_id),
                reason: format!(
                    "its sha256 is {}, but `latest` pinned {} when it was written: it was edited",
                    stored.sha256, pointer.manifest_sha256
                ),
            });
        }
        Ok(stored)
    }

    /// Resolves `latest` or a build id.
    pub fn resolve(&self, build: &str) -> Result<Stored, StoreError> {
        if build == LATEST {
            self.latest()
        } else {
            self.read(build)
        }
    }

    /// Every manifest in chain order, with each link of the hash chain checked. The order
    /// follows the links from the first manifest (the one with no previous); what they do not
    /// reach (after a deleted or edited manifest) follows in id order, its links broken.
    pub fn chain(&self) -> Result<Vec<ChainEntry>, StoreError> {
        self.chain_from(None)
    }

    /// The manifests of this folder in chain order, the first chained onto `tip` (the sha256 of
    /// the manifest before them, which lives elsewhere: the host's proven copy), links checked.
    pub fn chain_from(&self, tip: Option<&str>) -> Result<Vec<ChainEntry>, StoreError> {
        let start = tip.map(str::to_string);
        let mut reads: Vec<Option<(String, Result<Stored, StoreError>)>> = self
            .build_ids()?
            .into_iter()
            .map(|id| {
                let read = self.read(&id);
                Some((id, read))
            })
            .collect();
        let mut ordered = Vec::with_capacity(reads.len());
        let mut tip = start.clone();
        while let Some(next) = reads
            .iter()
            .position(|r| matches!(r, Some((_, Ok(s))) if s.manifest.prev_manifest_sha256 == tip))
        {
            let taken = reads[next].take().expect("found above");
            tip = taken.1.as_ref().ok().map(|s| s.sha256.clone());
            ordered.push(taken);
        }
        ordered.extend(reads.into_iter().flatten());

        let mut entries = Vec::new();
        let mut prev_sha = start;
        for (build_id, read) in ordered {
            let link = match &read {
                Ok(stored) if stored.manifest.prev_manifest_sha256 == prev_sha => Link::Intact,
                Ok(stored) => Link::Broken {
                    expected: prev_sha.clone(),
                    found: stored.manifest.prev_manifest_sha256.clone(),
                },
                Err(_) => Link::Broken {
                    expected: prev_sha.clone(),
                    found: None,
                },
            };
            prev_sha = read.as_ref().ok().map(|s| s.sha256.clone());
            entries.push(ChainEntry {
                build_id,
                read,
                link,
            });
        }
        Ok(entries)
    }

    /// The newest successful build in the chain: what `latest` must point at.
    pub fn newest_success(chain: &[ChainEntry]) -> Option<&Stored> {
        chain
            .iter()
            .rev()
            .filter_map(|e| e.read.as_ref().ok())
            .find(|s| s.manifest.status == BuildStatus::Success)
    }

    /// Writes a manifest atomically and returns the sha256 of the bytes written.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<String, StoreError> {
        let mut bytes = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
        bytes.push(b'\n');
        write_atomic(&self.manifest_path(&manifest.build_id), &bytes)?;
        Ok(sha256_hex(&bytes))
    }

    pub fn set_latest(&self, pointer: &LatestPointer) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec_pretty(pointer).expect("pointer serializes");
        bytes.push(b'\n');
        write_atomic(&self.dir.join(LATEST), &bytes)
    }
}

/// Parses manifest bytes, telling an unknown schema apart from garbage.
pub fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest, StoreError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    match value.get("schema").and_then(|s| s.as_str()) {
        Some(MANIFEST_SCHEMA) => {}
        Some(other) => {
            return Err(StoreError::UnknownSchema {
                path: path.to_path_buf(),
                found: other.to_string(),
            })
        }
        None => {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: "no \"schema\" field".to_string(),
            })
        }
    }
    let manifest: Manifest = serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    check_fields(&manifest).map_err(|reason| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(manifest)
}

/// 64 lowercase hex digits: a sha256 as prov writes it.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `sha256:` and 64 hex digits: an image, layer or base id.
pub fn is_image_id(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(is_sha256_hex)
}

/// What the serde types cannot say: the identifiers are well formed (they end up in paths,
/// commands and comparisons), and a successful build names its image.
fn check_fields(m: &Manifest) -> Result<(), String> {
    let digests = [
        ("dockerfile.sha256", m.dockerfile.sha256.as_str()),
        ("compose.config_sha256", m.compose.config_sha256.as_str()),
        ("cargo_lock.sha256", m.cargo_lock.sha256.as_str()),
        ("build_log.sha256", m.build_log.sha256.as_str()),
    ];
    let image_ids = m
        .base_images
        .iter()
        .map(|b| ("base_images[].id", b.id.as_str()))
        .chain(m.image.iter().map(|i| ("image.id", i.id.as_str())))
        .chain(
            m.image
                .iter()
                .flat_map(|i| i.layers.iter().map(|l| ("image.layers[]", l.as_str()))),
        )
        .chain(m.base_images.iter().filter_map(|b| {
            b.config_digest
                .as_deref()
                .map(|d| ("base_images[].config_digest", d))
        }))
        .chain(m.image.iter().filter_map(|i| {
            i.config_digest
                .as_deref()
                .map(|d| ("image.config_digest", d))
        }))
        .chain(m.image.iter().filter_map(|i| {
            i.manifest_digest
                .as_deref()
                .map(|d| ("image.manifest_digest", d))
        }));
    if !is_build_id(&m.build_id) {
        return Err(format!("build_id {:?} is not a build id", m.build_id));
    }
    if let Some((field, _)) = digests.iter().find(|(_, d)| !is_sha256_hex(d)) {
        return Err(format!("{field} is not a sha256"));
    }
    if let Some(prev) = &m.prev_manifest_sha256 {
        if !is_sha256_hex(prev) {
            return Err("prev_manifest_sha256 is not a sha256".into());
        }
    }
    if let Some((field, _)) = image_ids.clone().find(|(_, id)| !is_image_id(id)) {
        return Err(format!("{field} is not an image id (sha256:<64 hex>)"));
    }
    if m.status == BuildStatus::Success && m.image.is_none() {
        return Err("a successful build with no image: a material field is missing".into());
    }
    Ok(())
}

/// Temporary file, fsync, rename, fsync of the folder: readers see the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().expect("a file path has a parent");
    let name = path
        .file_name()
        .expect("a file path has a name")
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}
