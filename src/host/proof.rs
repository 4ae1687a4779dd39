//! Where each claim of a record comes from. A record is written on the node, by a process the
//! node's operator controls; before the host keeps it, the host proves every field it can
//! against something the node cannot choose: the node's engine's answers (the image, its
//! history and layers, the bases it holds), the host's own files (what it synced, its bases) and
//! the host's clock (the build ran between the sync and the import). What cannot be proven so
//! is the node's word, listed here with the reason, and shown as such by `prov show` and in the
//! signed statement. A record whose proven fields disagree is refused, naming the field.
//!
//! [`CLAIMS`] is the schema: every field of a record, once. A unit test fails when a field of
//! [`Manifest`] is in neither list.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use serde::Deserialize;

use crate::host::bases::{self, HostBases};
use crate::host::sync::SyncStamp;
use crate::host::transport::Transport;
use crate::record::compose::{ServiceSpec, COMPOSE_IMAGE_PLACEHOLDER};
use crate::record::engine::{HistoryEntry, ImageInspect};
use crate::record::manifest::{
    labels, BuildContext, BuildStatus, ImageIdKind, ImageStore, Manifest, SourceDate,
};
use crate::record::names;
use crate::record::nodes::NodeName;
use crate::record::stack;

/// Where a claim comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Proven by the host, against what is named.
    Host(&'static str),
    /// The node's word: why the host cannot prove it.
    Node(&'static str),
}

const ENGINE: &str = "the node's engine's answers";
const SYNCED: &str = "what the host synced";
const CLOCK: &str = "the host's clock: between the sync and the import";

/// Every field of a record, and where its claim comes from.
pub const CLAIMS: &[(&str, Source)] = &[
    ("schema", Source::Host("prov's own format")),
    ("build_id", Source::Host("its form, and its start time")),
    ("node", Source::Host("the node the host imported it from")),
    ("started_at", Source::Host(CLOCK)),
    ("finished_at", Source::Host(CLOCK)),
    (
        "status",
        Source::Host("a success has its image in the node's engine"),
    ),
    (
        "error",
        Source::Node("the build's own account of why it failed"),
    ),
    ("git", Source::Host(SYNCED)),
    ("dockerfile", Source::Host(SYNCED)),
    ("compose.path", Source::Host("the stack's one Compose file")),
    (
        "compose.services",
        Source::Host("the node's Compose, run by the host on the host's Compose file"),
    ),
    (
        "compose.config_sha256",
        Source::Host("the services, digested again"),
    ),
    ("cargo_lock", Source::Host(SYNCED)),
    (
        "base_images",
        Source::Host("the host's bases, and the node's engine holding them"),
    ),
    (
        "build_log.path",
        Source::Host("where prov keeps a build's log"),
    ),
    (
        "build_log.sha256",
        Source::Host("the log the host received"),
    ),
    ("build_log.bytes", Source::Host("the log the host received")),
    (
        "build_log.content",
        Source::Node("what the builder printed, as the node kept it"),
    ),
    ("image", Source::Host(ENGINE)),
    (
        "no_cache",
        Source::Host(
            "legacy builder: every own layer made during the build (the engine's \
                      history); BuildKit: the node's word, its log showing no step cached",
        ),
    ),
    (
        "network",
        Source::Node("no trace of it is left in an image"),
    ),
    (
        "build_args",
        Source::Node(
            "no trace of them is left in the final image (the host holds them to the policy)",
        ),
    ),
    ("policy", Source::Host(SYNCED)),
    (
        "context",
        Source::Host("the same stream, made by the host from its own files"),
    ),
    (
        "prev_manifest_sha256",
        Source::Host("the host's copy of the node's previous record"),
    ),
    ("tool.versions.prov", Source::Host("the prov the host sent")),
    ("tool.versions.docker_engine", Source::Host(ENGINE)),
    (
        "tool.versions.docker_client",
        Source::Node("a program on the node"),
    ),
    (
        "tool.versions.compose",
        Source::Node("a program on the node"),
    ),
    (
        "buildkit_provenance",
        Source::Node("BuildKit's own account, as the node kept it (its digest is checked)"),
    ),
    (
        "source_date",
        Source::Host("the synced tree's commit time and the host's bases"),
    ),
    (
        "sbom",
        Source::Node("what the build listed in the image (its digest, form and tree are checked)"),
    ),
];

/// BuildKit sets every time of the image to the source's date: there, a layer's time cannot
/// tell a fresh build from a cached one, and only the build log (the node's) can.
const NO_CACHE_BUILDKIT: Source = Source::Node(
    "BuildKit dates every layer at the source's date: only its log shows no step cached",
);

/// Where each claim of `m` comes from: [`CLAIMS`], as it applies to its builder.
pub fn claims_of(m: &Manifest) -> Vec<(&'static str, Source)> {
    CLAIMS
        .iter()
        .map(|&(field, source)| match field {
            "no_cache" if m.source_date.is_some() => (field, NO_CACHE_BUILDKIT),
            _ => (field, source),
        })
        .collect()
}

/// Where a field's claim comes from (the first listed entry its path starts with).
pub fn source_of(field: &str) -> Option<Source> {
    CLAIMS
        .iter()
        .find(|(path, _)| field == *path || field.starts_with(&format!("{path}.")))
        .map(|(_, source)| *source)
}

/// The fields of `m` that are the node's word, for the signed statement.
pub fn node_claims(m: &Manifest) -> Vec<&'static str> {
    claims_of(m)
        .into_iter()
        .filter(|(_, s)| matches!(s, Source::Node(_)))
        .map(|(path, _)| path)
        .collect()
}

/// How far the node's clock may be from the host's (one kernel's clock for containers; a VM
/// keeps its own).
const CLOCK_SKEW: i64 = 2;

/// What the host knows, and what it asked the node's engine, when it imports a record.
#[derive(Debug, Clone)]
pub struct Facts {
    pub node: NodeName,
    pub synced: SyncStamp,
    pub imported_at: DateTime<Utc>,
    /// The sha256 of the record before it in the chain, as the host holds it.
    pub previous: Option<String>,
    pub bases: HostBases,
    /// The host's image tag of each base (`.cache/images/ids.env`).
    pub prov_version: String,
    pub source_url: String,
    /// The engine's answers: the record's image, its history, each recorded base and the
    /// database's image, by reference as asked (`None`: not there).
    pub images: BTreeMap<String, Option<ImageInspect>>,
    /// The history of the image named by `history_of`.
    pub history: Option<Vec<HistoryEntry>>,
    pub history_of: Option<String>,
    pub engine_version: String,
    pub store: ImageStore,
    /// The image's configuration digest, read from the engine's content store (containerd).
    pub config_digest: Option<String>,
    /// What the node's Compose makes of the host's Compose file, normalised.
    pub services: Result<BTreeMap<String, ServiceSpec>, String>,
    /// The build context the host makes from its own files, or why it could not.
    pub context: Result<BuildContext, String>,
}

/// Every field of the record the facts contradict, each named with what was expected and found.
pub fn disagreements(m: &Manifest, f: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |field: &str, ok: bool, detail: String| {
        if !ok {
            out.push(format!("{field}: {detail}"));
        }
    };
    check(
        "schema",
        m.schema == crate::record::manifest::MANIFEST_SCHEMA,
        format!("{:?} is not prov's", m.schema),
    );
    check(
        "node",
        m.node == f.node,
        format!("{} is not node {}", m.node, f.node),
    );
    let id_time = m.started_at.format("%Y%m%d-%H%M%S-%3f").to_string();
    check(
        "build_id",
        crate::record::names::is_build_id(&m.build_id) && m.build_id.starts_with(&id_time),
        format!("{} does not name its start {id_time}", m.build_id),
    );
    let (from, to) = (
        f.synced.at - Span::seconds(CLOCK_SKEW),
        f.imported_at + Span::seconds(CLOCK_SKEW),
    );
    for (field, at) in [("started_at", m.started_at), ("finished_at", m.finished_at)] {
        check(
            field,
            at >= from && at <= to,
            format!(
                "{} is not between the host's sync ({}) and its import ({})",
                rfc(at),
                rfc(f.synced.at),
                rfc(f.imported_at)
            ),
        );
    }
    check(
        "finished_at",
        m.finished_at >= m.started_at,
        "before the build started".into(),
    );
    check(
        "git",
        m.git.tree == f.synced.tree
            && m.git.dirty == f.synced.dirty
            && m.git.commit == f.synced.commit,
        format!(
            "tree {} (commit {:?}), the host synced tree {} (commit {:?})",
            m.git.tree, m.git.commit, f.synced.tree, f.synced.commit
        ),
    );
    for (field, path, sha) in [
        ("dockerfile", &m.dockerfile.path, &m.dockerfile.sha256),
        ("cargo_lock", &m.cargo_lock.path, &m.cargo_lock.sha256),
    ] {
        check(
            field,
            f.synced.files.get(path) == Some(sha),
            synced_file(f, path, sha),
        );
    }
    match &m.policy {
        Some(p) => check(
            "policy",
            f.synced.files.get(&p.path) == Some(&p.sha256),
            synced_file(f, &p.path, &p.sha256),
        ),
        None => check("policy", false, "the record names none".into()),
    }
    check(
        "compose.path",
        m.compose.path == stack::COMPOSE_FILE,
        format!("{} is not {}", m.compose.path, stack::COMPOSE_FILE),
    );
    match (&m.context, &f.context) {
        (Some(claimed), Ok(made)) => check(
            "context",
            claimed == made,
            format!(
                "sha256 {} ({} files), the host makes {} ({} files) of the synced tree",
                claimed.sha256, claimed.files, made.sha256, made.files
            ),
        ),
        (None, _) => check("context", false, "the record names none".into()),
        (Some(_), Err(why)) => check(
            "context",
            false,
            format!("the host could not make it: {why}"),
        ),
    }
    check(
        "tool.versions.prov",
        m.tool.versions.get("prov") == Some(&f.prov_version),
        format!(
            "{:?}, the host sent prov {}",
            m.tool.versions.get("prov"),
            f.prov_version
        ),
    );
    check(
        "tool.versions.docker_engine",
        m.tool.versions.get("docker_engine") == Some(&f.engine_version),
        format!(
            "{:?}, the engine says {}",
            m.tool.versions.get("docker_engine"),
            f.engine_version
        ),
    );
    check(
        "prev_manifest_sha256",
        m.prev_manifest_sha256 == f.previous,
        format!(
            "{:?}, the record before it is {:?}",
            m.prev_manifest_sha256, f.previous
        ),
    );
    check(
        "build_log.path",
        m.build_log.path == format!("provenance/{}/{}", m.node, names::log(&m.build_id)),
        format!(
            "{} is not where prov keeps this build's log",
            m.build_log.path
        ),
    );
    out.extend(compose_disagreements(m, f));
    out.extend(base_disagreements(m, f));
    if m.status == BuildStatus::Success {
        out.extend(image_disagreements(m, f));
    }
    out
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn synced_file(f: &Facts, path: &str, sha: &str) -> String {
    match f.synced.files.get(path) {
        Some(synced) => format!("{path} with sha256 {sha}, the host synced {synced}"),
        None => format!("{path}, which the host did not sync"),
    }
}

/// The services are what the node's Compose makes of the host's file, the database's image is
/// the host's postgres, and the digest is of those services.
fn compose_disagreements(m: &Manifest, f: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    let Some(recorded) = &m.compose.services else {
        return vec!["compose.services: the record has none".into()];
    };
    match &f.services {
        Err(why) => out.push(format!(
            "compose.services: the host could not have them made: {why}"
        )),
        Ok(made) => {
            let without_ids = |services: &BTreeMap<String, ServiceSpec>| {
                let mut services = services.clone();
                services.values_mut().for_each(|s| s.image_id = None);
                services
            };
            if without_ids(recorded) != without_ids(made) {
                let names: Vec<&String> = recorded
                    .iter()
                    .filter(|(name, spec)| {
                        made.get(*name).map(|m| ServiceSpec {
                            image_id: None,
                            ..m.clone()
                        }) != Some(ServiceSpec {
                            image_id: None,
                            ..(*spec).clone()
                        })
                    })
                    .map(|(name, _)| name)
                    .chain(made.keys().filter(|n| !recorded.contains_key(*n)))
                    .collect();
                out.push(format!(
                    "compose.services: {names:?} are not what Compose makes of the host's {}",
                    stack::COMPOSE_FILE
                ));
            }
        }
    }
    // The database's image is the host's postgres, by content.
    let db = recorded.get(stack::DB_SERVICE);
    match (
        db.and_then(|s| s.image_id.as_ref()),
        f.bases.get(bases::DATABASE),
    ) {
        (Some(id), Ok(base)) => match f.images.get(id).and_then(Option::as_ref) {
            None => out.push(format!("compose.services.db: the engine has no image {id}")),
            Some(image) => {
                if let Some(why) = bases::differs(base, image) {
                    out.push(format!("compose.services.db: image {id}: {why}"));
                }
            }
        },
        (None, _) => out.push("compose.services.db: no image recorded".into()),
        (_, Err(why)) => out.push(format!("compose.services.db: {why:#}")),
    }
    // The digest: of the services, each image pinned by configuration digest.
    let mut digested = recorded.clone();
    for (name, spec) in digested.iter_mut() {
        if spec.image == COMPOSE_IMAGE_PLACEHOLDER {
            continue;
        }
        let base = if name == stack::DB_SERVICE {
            f.bases.get(bases::DATABASE).ok().map(|b| b.id.clone())
        } else {
            None
        };
        spec.image_id = base;
    }
    let sha = crate::record::digest::sha256_hex(&crate::record::compose::canonical_json(&digested));
    if sha != m.compose.config_sha256 {
        out.push(format!(
            "compose.config_sha256: {}, the services digest to {sha}",
            m.compose.config_sha256
        ));
    }
    out
}

/// The bases are the host's: the arguments and tags the host gives, the host's configuration
/// digests, and images the node's engine holds with the host's layers and configuration.
fn base_disagreements(m: &Manifest, f: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    let args: Vec<&str> = m.base_images.iter().map(|b| b.arg.as_str()).collect();
    if args != ["BUILDER_IMAGE", "RUNTIME_IMAGE"] {
        out.push(format!(
            "base_images: {args:?}, where api/Dockerfile takes BUILDER_IMAGE and RUNTIME_IMAGE"
        ));
    }
    for b in &m.base_images {
        let field = format!("base_images.{}", b.arg);
        let Some(name) = bases::base_of_arg(&b.arg) else {
            continue;
        };
        let base = match f.bases.get(name) {
            Ok(base) => base,
            Err(why) => {
                out.push(format!("{field}: {why:#}"));
                continue;
            }
        };
        if b.reference != base.tag || b.config_digest.as_deref() != Some(base.id.as_str()) {
            out.push(format!(
                "{field}: {} (configuration {}), not the host's {} ({})",
                b.reference,
                b.config_digest.as_deref().unwrap_or("not recorded"),
                base.tag,
                base.id
            ));
            continue;
        }
        match f.images.get(&b.id).and_then(Option::as_ref) {
            None => out.push(format!("{field}: the node's engine has no image {}", b.id)),
            Some(image) => {
                if let Some(why) = bases::differs(base, image) {
                    out.push(format!("{field}: image {}: {why}", b.id));
                }
            }
        }
    }
    // The source's date (BuildKit): the synced commit's time, never before the bases.
    let newest = f
        .bases
        .newest(&["builder", "runtime"])
        .map(|t| t.timestamp());
    let expected = SourceDate::of(&f.synced.tree, f.synced.dirty, f.synced.commit_time)
        .not_before_bases(newest);
    if let Some(date) = m.source_date {
        if date != expected {
            out.push(format!(
                "source_date: {} ({:?}), the synced source's is {} ({:?})",
                date.epoch, date.from, expected.epoch, expected.from
            ));
        }
    }
    out
}

/// The image is in the node's engine as recorded, made on the host's runtime base, stamped with
/// the proven inputs, and (legacy builder) every layer of its own made during the build.
fn image_disagreements(m: &Manifest, f: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    let Some(image) = &m.image else {
        return vec!["image: a successful build names none".into()];
    };
    let Some(found) = f.images.get(&image.id).and_then(Option::as_ref) else {
        return vec![format!(
            "image: the node's engine has no image {}",
            image.id
        )];
    };
    let mut check = |field: &str, ok: bool, detail: String| {
        if !ok {
            out.push(format!("image.{field}: {detail}"));
        }
    };
    check(
        "tag",
        image.tag == format!("prov-api:{}", m.build_id) && found.repo_tags.contains(&image.tag),
        format!("{}, the engine tags it {:?}", image.tag, found.repo_tags),
    );
    check(
        "created",
        found.created == image.created,
        format!(
            "{}, the engine says {}",
            rfc(image.created),
            rfc(found.created)
        ),
    );
    let found_labels = found.config.labels.clone().unwrap_or_default();
    check(
        "labels",
        found_labels == image.labels,
        "not the engine's labels of the image".into(),
    );
    check(
        "layers",
        found.root_fs.layers == image.layers,
        "not the engine's layers of the image".into(),
    );
    let date = m
        .source_date
        .map(|d| DateTime::from_timestamp(d.epoch, 0).unwrap_or_default());
    let created_label = date
        .unwrap_or_else(|| {
            let (tree, dirty, time) = (&f.synced.tree, f.synced.dirty, f.synced.commit_time);
            let newest = f
                .bases
                .newest(&["builder", "runtime"])
                .map(|t| t.timestamp());
            let epoch = SourceDate::of(tree, dirty, time)
                .not_before_bases(newest)
                .epoch;
            DateTime::from_timestamp(epoch, 0).unwrap_or_default()
        })
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    let stamped = [
        (labels::TREE, m.git.tree.clone()),
        (
            labels::OCI_REVISION,
            m.git.commit.clone().unwrap_or_default(),
        ),
        (labels::DOCKERFILE_SHA256, m.dockerfile.sha256.clone()),
        (labels::NO_CACHE, "true".to_string()),
        (labels::OCI_TITLE, "prov-api".to_string()),
        (labels::OCI_SOURCE, f.source_url.clone()),
        (labels::OCI_CREATED, created_label),
    ];
    for (key, want) in stamped {
        check(
            "labels",
            image.labels.get(key) == Some(&want),
            format!(
                "{key} is {:?}, the proven inputs say {want:?}",
                image.labels.get(key)
            ),
        );
    }
    // Made on the host's runtime base: its layers, unchanged, at the bottom of the image's (on
    // BuildKit too: the Dockerfile dates the build's own files, so nothing rewrites the base's).
    match f.bases.get("runtime") {
        Ok(runtime) => check(
            "layers",
            image.layers.len() > runtime.layers.len() && image.layers.starts_with(&runtime.layers),
            "do not start with the host's runtime base's layers".into(),
        ),
        Err(why) => check("layers", false, format!("{why:#}")),
    }
    let (kind, manifest) = match f.store {
        ImageStore::Classic => (ImageIdKind::Config, None),
        ImageStore::Containerd => (ImageIdKind::Manifest, Some(image.id.clone())),
    };
    check(
        "store",
        image.store == Some(f.store),
        format!("{:?}, the engine's is {:?}", image.store, f.store),
    );
    check(
        "id_kind",
        image.id_kind == Some(kind),
        format!(
            "{:?}, the engine's store names images by {kind:?}",
            image.id_kind
        ),
    );
    check(
        "manifest_digest",
        image.manifest_digest == manifest,
        format!("{:?}, expected {manifest:?}", image.manifest_digest),
    );
    let config = match f.store {
        ImageStore::Classic => Some(image.id.clone()),
        ImageStore::Containerd => f.config_digest.clone(),
    };
    check(
        "config_digest",
        config.is_some() && image.config_digest == config,
        format!(
            "{:?}, the engine's store says {config:?}",
            image.config_digest
        ),
    );
    // The legacy builder dates every entry of its own (those above the base's, which the classic
    // store names by its ID): made between the build's start and end.
    if m.source_date.is_none() && f.history_of.as_deref() == Some(image.id.as_str()) {
        let stale: Vec<String> = f
            .history
            .iter()
            .flatten()
            .take_while(|e| !m.base_images.iter().any(|b| b.id == e.id))
            .filter(|e| {
                e.created < m.started_at - Span::seconds(1)
                    || e.created > m.finished_at + Span::seconds(1)
            })
            .map(|e| {
                format!(
                    "{} ({})",
                    crate::record::text::abbrev(&e.created_by, 40),
                    e.created
                )
            })
            .collect();
        if !stale.is_empty() {
            out.push(format!(
                "no_cache: layers made outside the build: {}",
                stale.join("; ")
            ));
        }
    }
    out
}

/// The engine's answers the import needs, asked at once.
#[derive(Debug, Deserialize)]
struct VersionAnswer {
    #[serde(rename = "Version")]
    version: String,
}

/// Gathers what the host proves `records` against (`m`, the newest of them, names the Compose
/// and the context to make): the sync stamp, its bases, its files and the node's engine (one
/// round trip; the containerd store's content, and Compose, one more each). `previous` is left
/// for each record's own.
pub fn gather(
    repo: &Path,
    state: &crate::host::state::HostState,
    transport: &Transport,
    records: &[&Manifest],
    m: &Manifest,
) -> Result<Facts> {
    let node = transport.node();
    let synced = SyncStamp::read(state, node)?;
    let bases = HostBases::load(repo)?;
    let mut references: Vec<String> = Vec::new();
    for r in records {
        references.extend(r.image.iter().map(|i| i.id.clone()));
        references.extend(r.base_images.iter().map(|b| b.id.clone()));
        references.extend(
            r.compose
                .services
                .iter()
                .flat_map(|s| s.values())
                .filter_map(|s| s.image_id.clone()),
        );
    }
    references.sort();
    references.dedup();
    let (engine, services, context) = std::thread::scope(|scope| {
        let services = scope.spawn(|| compose_of_host_file(repo, transport, m));
        let context = scope.spawn(|| context_of_host_files(repo, &synced, m));
        let histories: Vec<String> = m.image.iter().map(|i| i.id.clone()).collect();
        let engine = crate::host::probe::import_facts(transport, &references, &histories);
        (engine, services.join(), context.join())
    });
    let engine = engine?;
    let history = engine.histories.into_iter().next().flatten();
    let version: VersionAnswer =
        serde_json::from_value(engine.version.clone()).context("reading the engine's /version")?;
    let store = engine.store;
    // Asked only of an image the engine holds: for one it does not, the image check names that.
    let held = |id: &str| {
        references
            .iter()
            .zip(&engine.images)
            .any(|(r, i)| r == id && i.is_some())
    };
    let config_digest = match (store, &m.image) {
        (ImageStore::Containerd, Some(image)) if held(&image.id) => {
            Some(containerd_config_digest(transport, &image.id)?)
        }
        _ => None,
    };
    Ok(Facts {
        node: node.clone(),
        synced,
        imported_at: Utc::now(),
        previous: None,
        bases,
        prov_version: env!("CARGO_PKG_VERSION").to_string(),
        source_url: crate::record::build_inputs::source_url(
            repo,
            Path::new(crate::record::nodes::NODE_MOUNT),
        ),
        images: references.into_iter().zip(engine.images).collect(),
        history,
        history_of: m.image.as_ref().map(|i| i.id.clone()),
        engine_version: version.version,
        store,
        config_digest,
        services: services
            .map_err(|_| anyhow!("running Compose panicked"))?
            .map_err(|e| format!("{e:#}")),
        context: context
            .map_err(|_| anyhow!("making the context panicked"))?
            .map_err(|e| format!("{e:#}")),
    })
}

/// What the node's Compose makes of the host's Compose file (fed on standard input, so that no
/// file of the node's is read), normalised as `prov build` normalises it.
fn compose_of_host_file(
    repo: &Path,
    transport: &Transport,
    m: &Manifest,
) -> Result<BTreeMap<String, ServiceSpec>> {
    let file = std::fs::read(repo.join(stack::COMPOSE_FILE))
        .with_context(|| format!("reading {}", stack::COMPOSE_FILE))?;
    let compose_v2 = !m
        .tool
        .versions
        .get("compose")
        .is_some_and(|v| v.starts_with("1."));
    let db_tag = HostBases::load(repo)?.get(bases::DATABASE)?.tag.clone();
    let mut argv: Vec<String> = vec![
        "env".into(),
        "-C".into(),
        "/".into(),
        format!("{}={COMPOSE_IMAGE_PLACEHOLDER}", stack::API_IMAGE_VAR),
        format!("PROV_DB_IMAGE={db_tag}"),
    ];
    if compose_v2 {
        argv.extend(["docker".into(), "compose".into()]);
    } else {
        argv.push("docker-compose".into());
    }
    argv.extend(["-p", stack::PROJECT, "-f", "-", "config"].map(String::from));
    let out = transport
        .bounded(std::time::Duration::from_secs(30))
        .feed(&argv, move |stdin| std::io::Write::write_all(stdin, &file))?;
    if !out.status.success() {
        bail!(
            "the node's Compose rejected the host's {}: {}",
            stack::COMPOSE_FILE,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    crate::record::compose::normalise(&String::from_utf8_lossy(&out.stdout), stack::PROJECT)
}

/// The context the host makes from its own files, when they are still the synced tree.
fn context_of_host_files(repo: &Path, synced: &SyncStamp, m: &Manifest) -> Result<BuildContext> {
    let claimed = m.context.as_ref().context("the record names no context")?;
    let policy = crate::record::policy::load(
        repo,
        m.policy
            .as_ref()
            .map_or(crate::record::policy::DEFAULT_POLICY, |p| &p.path),
    )?;
    let (tree, files) =
        crate::record::tree_hash::tree_files(repo).context("hashing the checkout")?;
    if tree.tree != synced.tree {
        bail!(
            "the checkout changed since the host synced it (tree {} then, {} now): run `make \
             demo` again",
            synced.tree,
            tree.tree
        );
    }
    crate::record::build_context::record_of(
        repo,
        Path::new(&claimed.path),
        &policy.policy.context,
        &files,
    )
}

/// The configuration digest of an image in the node's containerd store: its manifest's.
fn containerd_config_digest(transport: &Transport, id: &str) -> Result<String> {
    let argv: Vec<String> = [
        "sudo",
        "-n",
        "ctr",
        "--address",
        "/run/docker/containerd/containerd.sock",
        "--namespace",
        "moby",
        "content",
        "get",
        id,
    ]
    .map(String::from)
    .to_vec();
    let out = transport
        .bounded(std::time::Duration::from_secs(30))
        .output_bounded(&argv, 1 << 20)?;
    if !out.status.success() {
        bail!(
            "the node's containerd store has no manifest {id}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading the image's manifest")?;
    manifest
        .pointer("/config/digest")
        .and_then(|d| d.as_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the manifest {id} names no configuration"))
}
