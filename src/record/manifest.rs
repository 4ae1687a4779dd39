//! The build manifest: what `prov build` records of one build (its inputs, its log, its image),
//! the files it pins beside itself, the `latest` pointer, and the host's memory of the newest
//! attested build. Plain serde structs, so that the on-disk format reads at a glance.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::record::compose::ComposeConfig;
use crate::record::names;
use crate::record::nodes::NodeName;

/// Version tag of the manifest format. Readers refuse any other value.
pub const MANIFEST_SCHEMA: &str = "prov.build-manifest/v1";

/// Label keys prov stamps on every image it builds. Each value depends on the build's inputs
/// only (the node, the build id and the times are the record's), so that the same inputs give
/// the same image.
pub mod labels {
    pub const OCI_REVISION: &str = "org.opencontainers.image.revision";
    /// The source's date (`SOURCE_DATE_EPOCH`), not the build's.
    pub const OCI_CREATED: &str = "org.opencontainers.image.created";
    pub const OCI_SOURCE: &str = "org.opencontainers.image.source";
    pub const OCI_TITLE: &str = "org.opencontainers.image.title";
    /// Every image prov builds carries it: it also tells prov's images apart.
    pub const TREE: &str = "dev.prov.source.tree";
    pub const DOCKERFILE_SHA256: &str = "dev.prov.dockerfile.sha256";
    pub const NO_CACHE: &str = "dev.prov.build.no-cache";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Success,
    Failed,
}

/// One build, as recorded by `prov build` in `provenance/<node>/<build_id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub build_id: String,
    pub node: NodeName,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status: BuildStatus,
    /// Why the build failed; absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub git: GitSource,
    pub dockerfile: FileDigest,
    pub compose: ComposeConfig,
    pub cargo_lock: FileDigest,
    pub base_images: Vec<BaseImage>,
    pub build_log: BuildLog,
    /// The built image; absent when the build failed.
    pub image: Option<ImageRecord>,
    pub no_cache: bool,
    pub network: String,
    /// Build arguments given beyond the bases and prov's own (e.g. API_FEATURES).
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// The build policy the arguments were checked against (path and digest); absent in
    /// records made before prov had one, which verify then fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<FileDigest>,
    /// The build context docker received, made by prov from the recorded tree; absent in
    /// records made before prov made it, which verify then fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<BuildContext>,
    /// sha256 of the node's previous manifest file, byte for byte: the hash chain.
    pub prev_manifest_sha256: Option<String>,
    pub tool: ToolInfo,
    /// BuildKit's own SLSA provenance of this build, kept beside the record
    /// (`<build id>.buildkit.json`), where the builder and the store make one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildkit_provenance: Option<FileDigest>,
    /// The time the image's timestamps were set to (`SOURCE_DATE_EPOCH`), on BuildKit: its
    /// history's, by BuildKit, and its own layer's files', by the Dockerfile; absent in records
    /// made before builds were reproducible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date: Option<SourceDate>,
    /// The image's SBOM (CycloneDX JSON), kept beside the record (`<build id>.sbom.cdx.json`);
    /// absent in records made before prov wrote one, and for a failed build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<FileDigest>,
}

/// The files a record pins beside itself, named `<build id>.<suffix>`.
pub mod side_files {
    pub const BUILDKIT_PROVENANCE: &str = "buildkit.json";
    pub const SBOM: &str = "sbom.cdx.json";
}

/// A file a record pins beside itself.
pub struct SideFile<'a> {
    /// One of [`side_files`].
    pub suffix: &'static str,
    /// `<build id>.<suffix>`.
    pub name: String,
    /// What it is, for messages.
    pub what: &'static str,
    pub pinned: &'a FileDigest,
}

impl Manifest {
    /// The files this record pins beside itself.
    pub fn side_files(&self) -> Vec<SideFile<'_>> {
        [
            (
                side_files::BUILDKIT_PROVENANCE,
                "BuildKit provenance",
                &self.buildkit_provenance,
            ),
            (side_files::SBOM, "SBOM", &self.sbom),
        ]
        .into_iter()
        .filter_map(|(suffix, what, pinned)| {
            pinned.as_ref().map(|pinned| SideFile {
                suffix,
                name: names::side(&self.build_id, suffix),
                what,
                pinned,
            })
        })
        .collect()
    }
}

/// The source's date, from which an image's every timestamp is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDate {
    /// Seconds since the epoch.
    pub epoch: i64,
    pub from: SourceDateFrom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceDateFrom {
    /// The commit's time: the tree is the commit's.
    Commit,
    /// Derived from the tree: a dirty tree has no commit of its own to take a time from.
    Tree,
    /// The newest base image's creation time, later than the source's: an image is never dated
    /// before its bases. (The rule dates from when BuildKit's `rewrite-timestamp` set every
    /// newer file time in every layer to the date, which an earlier date made rewrite the bases'
    /// own layers; prov no longer asks for that rewrite.)
    Bases,
}

impl SourceDate {
    /// The commit's time when the tree is the commit's. A dirty tree's is derived from the tree
    /// (the same wherever the same tree is built): its HEAD commit's time, or 2001-09-09 without
    /// one, plus up to a day given by the tree's id.
    pub fn of(tree: &str, dirty: bool, commit_time: Option<i64>) -> SourceDate {
        match commit_time {
            Some(epoch) if !dirty => SourceDate {
                epoch,
                from: SourceDateFrom::Commit,
            },
            _ => {
                let prefix = tree.get(..8).and_then(|h| u32::from_str_radix(h, 16).ok());
                SourceDate {
                    epoch: commit_time.unwrap_or(1_000_000_000)
                        + i64::from(prefix.unwrap_or(0) % 86_400),
                    from: SourceDateFrom::Tree,
                }
            }
        }
    }

    /// Never before the newest base (see [`SourceDateFrom::Bases`]).
    pub fn not_before_bases(self, newest_base: Option<i64>) -> SourceDate {
        match newest_base {
            Some(base) if base > self.epoch => SourceDate {
                epoch: base,
                from: SourceDateFrom::Bases,
            },
            _ => self,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitSource {
    /// HEAD commit, absent in a repository without commits.
    pub commit: Option<String>,
    /// What `git add -A && git write-tree` would print for the working tree at build time.
    pub tree: String,
    pub dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Path relative to the repository root.
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseImage {
    /// The Dockerfile build argument that carries this base.
    pub arg: String,
    /// How the caller named it (tag or id).
    pub reference: String,
    /// What that resolved to on the node, and what the build was given.
    pub id: String,
    /// The digest of its configuration: the same on every node, whatever its image store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
}

/// The tar stream docker received as the build context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildContext {
    /// The context folder, relative to the repository.
    pub path: String,
    /// Paths of the recorded tree the context holds (relative to the context folder).
    pub from_tree: Vec<String>,
    /// Inputs made from the tree and not in it (vendored crates), each with its own digest.
    pub derived: Vec<DerivedInput>,
    /// Files and links in the stream, and its size and sha256.
    pub files: u64,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DerivedInput {
    pub path: String,
    /// sha256 of the listing "mode sha256 path" (or "link path target") of every file in it.
    pub sha256: String,
    pub files: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildLog {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:...` as the engine reports it: the configuration's digest in the classic store,
    /// the manifest's (or the index's) in the containerd store.
    pub id: String,
    pub tag: String,
    pub created: DateTime<Utc>,
    pub labels: BTreeMap<String, String>,
    /// RootFS diff ids, bottom layer first.
    pub layers: Vec<String>,
    /// The engine's image store (absent in records made before prov told them apart: classic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<ImageStore>,
    /// The digest of the image's configuration, whatever the store calls the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// The digest of the image's manifest (the containerd store only: the classic store keeps
    /// no manifest of a local build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// What `id` is the digest of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_kind: Option<ImageIdKind>,
}

/// What an engine's image ID is the digest of: the configuration (classic store), the manifest
/// (containerd store), or the index that holds the manifest and its attestations (containerd
/// store, BuildKit's provenance attached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageIdKind {
    Config,
    Manifest,
    Index,
}

/// Where the engine keeps its images. In the classic store an image's ID is the digest of its
/// configuration; in the containerd store it is the digest of its manifest (or of its index,
/// when it carries attestations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageStore {
    Classic,
    Containerd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub versions: BTreeMap<String, String>,
}

/// `provenance/<node>/latest`: which build the node's stack runs, pinned by manifest digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestPointer {
    pub build_id: String,
    pub manifest_sha256: String,
}

/// The newest build of a node the host attested (host-only state): a record older than this
/// one showing up as `latest` is a rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttestedMark {
    pub build_id: String,
    pub manifest_sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_tree_takes_its_commits_time_a_dirty_one_a_time_from_its_id() {
        let tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
        assert_eq!(
            SourceDate::of(tree, false, Some(1_764_000_000)),
            SourceDate {
                epoch: 1_764_000_000,
                from: SourceDateFrom::Commit
            }
        );
        let dirty = SourceDate::of(tree, true, Some(1_764_000_000));
        assert_eq!(dirty.from, SourceDateFrom::Tree);
        assert_eq!(dirty.epoch, 1_764_000_000 + 0x4b82_5dc6 % 86_400);
        assert_eq!(
            SourceDate::of(tree, true, None).epoch,
            1_000_000_000 + 0x4b82_5dc6 % 86_400
        );
        let other = SourceDate::of("0000000000000000000000000000000000000000", true, None);
        assert_ne!(SourceDate::of(tree, true, None), other);
    }

    #[test]
    fn the_date_is_never_before_the_newest_base() {
        let source = SourceDate::of("4b825dc642cb6eb9a060e54bf8d69288fbee4904", false, Some(100));
        assert_eq!(source.not_before_bases(Some(50)), source);
        assert_eq!(source.not_before_bases(None), source);
        assert_eq!(
            source.not_before_bases(Some(200)),
            SourceDate {
                epoch: 200,
                from: SourceDateFrom::Bases
            }
        );
    }
}
