//! The data prov writes and reads: build manifests, the `latest` pointer, check results.
//! Plain serde structs, kept in one place so the on-disk format is readable at a glance.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// Build ids are `YYYYMMDD-HHMMSS-mmm-xxxx` (UTC start time, four hex digits): they name files,
/// image tags and command arguments, so nothing else is accepted as one.
pub fn is_build_id(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 24
        && b[8] == b'-'
        && b[15] == b'-'
        && b[19] == b'-'
        && digits(0..8)
        && digits(9..15)
        && digits(16..19)
        && b[20..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
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
    pub node: String,
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
    /// The time the image's timestamps were set to (`SOURCE_DATE_EPOCH`), where the builder
    /// rewrites them (BuildKit); absent in records made before builds were reproducible.
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
                name: format!("{}.{suffix}", self.build_id),
                what,
                pinned,
            })
        })
        .collect()
    }
}

/// What a node rebuilt for `prov reproduce` (written by the node: the host checks it against the
/// record it reproduces and the node's engine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rebuilt {
    pub node: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub git: GitSource,
    pub source_date: SourceDate,
    pub base_images: Vec<BaseImage>,
    pub build_args: BTreeMap<String, String>,
    pub image: ImageRecord,
    /// The builder's output (sent to the host's terminal): its digest and size.
    pub build_log: BuildLog,
}

/// The verdict of `prov reproduce`: the predicate of its signed statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reproduction {
    /// The build reproduced: its node, id, image and record (sha256 of its bytes).
    pub of_node: String,
    pub of_build: String,
    pub of_image: String,
    pub of_record_sha256: String,
    pub of_source: GitSource,
    /// The node that rebuilt it, and what it made.
    pub node: String,
    pub rebuilt: Rebuilt,
    /// The rebuild was of the same commit and tree: a reproduction, not a comparison.
    pub same_source: bool,
    /// The same image ID: the same bytes.
    pub identical: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_difference: Option<FirstDifference>,
    pub at: DateTime<Utc>,
}

/// Where two images of the same inputs first part: the first layer (bottom first) whose files
/// differ and the first path in it that does (no path when every differing layer differs only
/// in what it removes or in metadata: then the first differing layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstDifference {
    pub layer: usize,
    /// The layer's diff id on each side (none where one image has fewer layers).
    pub layer_a: Option<String>,
    pub layer_b: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
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
    /// The newest base image's creation time, later than the source's: BuildKit sets every
    /// newer file time in every layer to the date, so an earlier date would rewrite the bases'
    /// own layers too.
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
pub struct ComposeConfig {
    pub path: String,
    /// sha256 of the effective configuration: the canonical JSON of `services` when the record
    /// has them (older records: of `compose config`'s output), with the per-build api image
    /// reference replaced by [`COMPOSE_IMAGE_PLACEHOLDER`], so that equal configurations hash
    /// equal across builds, nodes and Compose versions.
    pub config_sha256: String,
    /// What each service's container must be, from `compose config`, normalised (see
    /// `compose.rs`): verify compares every running container with it. Absent in records made
    /// before prov recorded it; verify then fails `config:<service>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<BTreeMap<String, ServiceSpec>>,
}

/// One service's effective configuration, as Compose resolves it and the engine must show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// The image reference as configured (the api's is the placeholder).
    pub image: String,
    /// The image's ID on the building node, for images prov does not build (the database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    pub container_name: Option<String>,
    /// `None`: the image's own.
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub user: Option<String>,
    pub environment: BTreeMap<String, String>,
    pub volumes: Vec<VolumeSpec>,
    pub ports: Vec<PortSpec>,
    /// Network name as the engine knows it (`<project>_<name>`) -> aliases the service needs.
    pub networks: BTreeMap<String, Vec<String>>,
    /// `None`: the image's own.
    pub healthcheck: Option<HealthSpec>,
    /// `no`, `always`, `on-failure` or `unless-stopped`.
    pub restart: String,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// The root filesystem is read-only: the container writes only to its volumes and tmpfs.
    #[serde(default)]
    pub read_only: bool,
    /// tmpfs mounts: path -> mount options (empty for the engine's defaults).
    #[serde(default)]
    pub tmpfs: BTreeMap<String, String>,
    /// The services started before this one, each with its condition.
    #[serde(default)]
    pub depends_on: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// `volume`, `bind` or `tmpfs`.
    pub kind: String,
    /// The engine's volume name (`<project>_<name>`) or the bind source path.
    pub source: String,
    pub target: String,
    /// Mounted read-only (`:ro`, or `read_only: true` in the long syntax).
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortSpec {
    /// Empty for every address.
    pub host_ip: String,
    pub published: String,
    pub target: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    pub test: Vec<String>,
    pub interval_ns: i64,
    pub timeout_ns: i64,
    pub retries: i64,
    pub start_period_ns: i64,
}

/// Stands in for the per-build api image reference when the Compose configuration is hashed.
pub const COMPOSE_IMAGE_PLACEHOLDER: &str = "prov-api:build";

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

/// One verification check, as printed by `prov verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub expected: String,
    pub observed: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hint: String,
}

/// One answer of the api over HTTP: the status, and the body (or, with no status, why there
/// was no answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpAnswer {
    pub status: Option<u16>,
    pub body: String,
}

/// What the api answered on its three paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpAnswers {
    pub health: HttpAnswer,
    pub ready: HttpAnswer,
    pub version: HttpAnswer,
    /// The random value the requests carried (`X-Prov-Nonce`), which the api notes in its log.
    #[serde(default)]
    pub nonce: Option<String>,
}

/// A node's verification result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    pub node: String,
    pub ok: bool,
    /// Set when the node could not be checked (unreachable, nothing recorded): never ok then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub checks: Vec<Check>,
    /// Independent rebuilds of the running build (`prov reproduce`), one line each: not judged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reproduced: Vec<String>,
    /// What the checks were about: the verification summary names it.
    #[serde(default)]
    pub judged: Judged,
}

/// What verify judged on a node: the image the api runs and the record and attestation it was
/// held against. Empty where the node could not be asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    /// The image of the running api container.
    pub running_image: Option<String>,
    pub build_id: Option<String>,
    pub recorded_image: Option<String>,
    /// The sha256 of the latest record's file: the head of the node's chain.
    pub manifest_sha256: Option<String>,
    /// The sha256 of the build's attestation envelope on the host.
    pub attestation_sha256: Option<String>,
    /// A signed `prov reproduce` verdict says another node rebuilt the build identically.
    pub reproduced: bool,
}

/// A node as declared in `nodes.json` (shared with the Vagrantfile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: String,
    /// Host port (on 127.0.0.1) forwarded to the node's api port.
    pub api_port: u16,
    /// Which Docker stack the node runs.
    pub flavour: Flavour,
}

/// A node's Docker stack, from Debian's own packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// Debian 12: Engine 20.10, Compose v1, the legacy builder, the classic image store.
    Bookworm,
    /// Debian 13: Engine 26, the Compose v2 plugin, BuildKit through buildx, the containerd
    /// image store.
    Trixie,
}

impl std::fmt::Display for Flavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flavour::Bookworm => "bookworm",
            Flavour::Trixie => "trixie",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodesFile {
    pub api_guest_port: u16,
    pub nodes: Vec<NodeSpec>,
}

/// One field compared between two builds, as `prov diff` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldComparison {
    pub field: String,
    pub a: String,
    pub b: String,
    pub same: bool,
}

/// Whether two images hold the same bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageComparison {
    pub a_id: String,
    pub b_id: String,
    pub same_id: bool,
    pub same_layers: bool,
    /// Diff ids present at the same position in both images, from the bottom.
    pub shared_layers: usize,
    pub layers_a: usize,
    pub layers_b: usize,
    /// File-by-file comparison of the filesystems; absent when skipped or unreadable.
    pub files: Option<FileComparison>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileComparison {
    pub same: bool,
    pub compared: usize,
    pub differing: Vec<String>,
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
}

/// A CycloneDX (1.5) bill of materials: what prov writes for each image, and all it reads back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    pub bom_format: String,
    pub spec_version: String,
    pub version: u32,
    pub metadata: BomMetadata,
    pub components: Vec<BomComponent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BomMetadata {
    pub tools: BomTools,
    /// The image the bill is of.
    pub component: BomComponent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BomTools {
    pub components: Vec<BomComponent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BomComponent {
    /// `container`, `application` or `library`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "bom-ref", default, skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<BomHash>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BomHash {
    /// `SHA-256`.
    pub alg: String,
    pub content: String,
}

/// How two bills differ, by package (its purl without the version): added, removed, changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SbomComparison {
    /// Packages listed by each side.
    pub a_count: usize,
    pub b_count: usize,
    pub added: Vec<PackageVersions>,
    pub removed: Vec<PackageVersions>,
    pub changed: Vec<PackageChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageVersions {
    /// The package's purl without its version, e.g. `pkg:cargo/axum`.
    pub package: String,
    pub versions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageChange {
    pub package: String,
    pub a: Vec<String>,
    pub b: Vec<String>,
}

/// `prov diff A B`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffReport {
    pub a: String,
    pub b: String,
    /// Every must-match field agrees.
    pub ok: bool,
    pub must_match: Vec<FieldComparison>,
    pub expected_to_differ: Vec<FieldComparison>,
    /// Tool versions: reported, not judged.
    pub environment: Vec<FieldComparison>,
    pub image: Option<ImageComparison>,
    /// The two SBOMs compared, when both builds have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<SbomComparison>,
    /// Why the SBOMs were not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom_error: Option<String>,
}

/// One line of `prov log --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub build_id: String,
    pub started_at: Option<DateTime<Utc>>,
    pub status: Option<BuildStatus>,
    pub commit: Option<String>,
    pub image_id: Option<String>,
    /// Every link of the chain up to and including this build holds.
    pub chain_intact: bool,
    pub latest: bool,
    /// Why the manifest could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
