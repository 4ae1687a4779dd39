//! `prov diff A B`: two builds compared field by field, and their images file by file.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::host::transport::Transport;
use crate::record::image_fs::{self, Listing};
use crate::record::manifest::{side_files, Manifest};
use crate::record::names::is_build_id;
use crate::record::nodes::{self, NodeName};
use crate::record::sbom::SbomComparison;
use crate::record::store::{Store, Stored};
use serde::{Deserialize, Serialize};

/// `node` (its latest build) or `node:build`.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    pub node: NodeName,
    pub build: String,
}

impl std::str::FromStr for Side {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (node, build) = s.split_once(':').unwrap_or((s, "latest"));
        let wrong = || format!("expected NODE or NODE:BUILD (e.g. main:latest), got {s:?}");
        let node = node.parse().map_err(|_| wrong())?;
        if !(build == "latest" || is_build_id(build)) {
            return Err(wrong());
        }
        Ok(Side {
            node,
            build: build.to_string(),
        })
    }
}

fn field(name: &str, a: String, b: String) -> FieldComparison {
    FieldComparison {
        field: name.to_string(),
        same: a == b,
        a,
        b,
    }
}

fn bases(m: &Manifest) -> String {
    m.base_images
        .iter()
        // By configuration digest where recorded: an image's ID depends on the node's store.
        .map(|b| format!("{}={}", b.arg, b.config_digest.as_ref().unwrap_or(&b.id)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The context stream's digest and its derived inputs' (not recorded by older builds).
fn context(m: &Manifest) -> String {
    m.context.as_ref().map_or("(not recorded)".into(), |c| {
        let derived: Vec<String> = c
            .derived
            .iter()
            .map(|d| format!("{} {}", d.path, d.sha256))
            .collect();
        format!("{} {}", c.sha256, derived.join(" "))
    })
}

fn policy(m: &Manifest) -> String {
    m.policy
        .as_ref()
        .map_or("(not recorded)".into(), |p| p.sha256.clone())
}

fn build_flags(m: &Manifest) -> String {
    let mut flags = format!("no_cache={} network={}", m.no_cache, m.network);
    for (k, v) in &m.build_args {
        let _ = write!(flags, " {k}={v}");
    }
    flags
}

/// The manifest-level comparison; `image` is left for [`compare_images`].
pub fn compare_manifests(a: &Stored, b: &Stored) -> DiffReport {
    let (ma, mb) = (&a.manifest, &b.manifest);
    let must_match = vec![
        field("source tree", ma.git.tree.clone(), mb.git.tree.clone()),
        field(
            "Dockerfile",
            ma.dockerfile.sha256.clone(),
            mb.dockerfile.sha256.clone(),
        ),
        field(
            "compose configuration",
            ma.compose.config_sha256.clone(),
            mb.compose.config_sha256.clone(),
        ),
        field("base images", bases(ma), bases(mb)),
        field(
            "lockfile",
            ma.cargo_lock.sha256.clone(),
            mb.cargo_lock.sha256.clone(),
        ),
        field("build flags", build_flags(ma), build_flags(mb)),
        field("build context", context(ma), context(mb)),
        field("build policy", policy(ma), policy(mb)),
    ];
    let expected_to_differ = vec![
        field("node", ma.node.to_string(), mb.node.to_string()),
        field("build id", ma.build_id.clone(), mb.build_id.clone()),
        field(
            "started",
            ma.started_at.to_rfc3339(),
            mb.started_at.to_rfc3339(),
        ),
        field(
            "finished",
            ma.finished_at.to_rfc3339(),
            mb.finished_at.to_rfc3339(),
        ),
        field(
            "build log",
            ma.build_log.sha256.clone(),
            mb.build_log.sha256.clone(),
        ),
    ];
    let tools: BTreeSet<&String> = ma
        .tool
        .versions
        .keys()
        .chain(mb.tool.versions.keys())
        .collect();
    let version = |m: &Manifest, k: &str| m.tool.versions.get(k).cloned().unwrap_or_default();
    let environment = tools
        .into_iter()
        .map(|k| field(k, version(ma, k), version(mb, k)))
        .collect();
    DiffReport {
        a: format!("{}:{}", ma.node, ma.build_id),
        b: format!("{}:{}", mb.node, mb.build_id),
        ok: must_match.iter().all(|f| f.same),
        must_match,
        expected_to_differ,
        environment,
        image: None,
        sbom: None,
        sbom_error: None,
    }
}

/// Image ids, layer diff ids, and (when listings are given) the filesystems file by file.
pub fn compare_images(
    a: &Manifest,
    b: &Manifest,
    listings: Option<Result<(Listing, Listing)>>,
) -> Option<ImageComparison> {
    let (ia, ib) = (a.image.as_ref()?, b.image.as_ref()?);
    let shared_layers = ia
        .layers
        .iter()
        .zip(&ib.layers)
        .take_while(|(x, y)| x == y)
        .count();
    let (files, files_error) = match listings {
        None => (None, None),
        Some(Err(e)) => (None, Some(format!("{e:#}"))),
        Some(Ok((la, lb))) => {
            let c = image_fs::compare(&la, &lb);
            (
                Some(FileComparison {
                    same: c.differing.is_empty() && c.only_a.is_empty() && c.only_b.is_empty(),
                    compared: c.compared,
                    differing: c.differing,
                    only_a: c.only_a,
                    only_b: c.only_b,
                }),
                None,
            )
        }
    };
    Some(ImageComparison {
        a_id: ia.id.clone(),
        b_id: ib.id.clone(),
        same_id: ia.id == ib.id,
        same_layers: ia.layers == ib.layers,
        shared_layers,
        layers_a: ia.layers.len(),
        layers_b: ib.layers.len(),
        files,
        files_error,
    })
}

/// Reads both sides; with `files`, streams both images out of their nodes (in parallel).
pub fn diff(repo: &Path, a: &Side, b: &Side, files: bool) -> Result<DiffReport> {
    let node_list = nodes::load(repo)?;
    let read = |side: &Side| -> Result<Stored> {
        node_list.get(&side.node)?;
        Store::new(&repo.join("provenance"), &side.node)
            .resolve(&side.build)
            .with_context(|| format!("reading {}:{}", side.node, side.build))
    };
    let (sa, sb) = (read(a)?, read(b)?);
    let mut report = compare_manifests(&sa, &sb);
    // The same ID names the same bytes (a digest): there are no files to compare.
    let same_image = matches!(
        (&sa.manifest.image, &sb.manifest.image),
        (Some(x), Some(y)) if x.id == y.id
    );
    let listings = (files && !same_image).then(|| {
        std::thread::scope(|scope| {
            let ta = scope.spawn(|| image_listing(repo, &sa.manifest));
            let tb = scope.spawn(|| image_listing(repo, &sb.manifest));
            let la = ta.join().expect("listing thread")?;
            let lb = tb.join().expect("listing thread")?;
            Ok((la, lb))
        })
    });
    report.image = compare_images(&sa.manifest, &sb.manifest, listings);
    match compare_sboms(repo, &sa, &sb) {
        Ok(c) => report.sbom = Some(c),
        Err(e) => report.sbom_error = Some(format!("{e:#}")),
    }
    Ok(report)
}

/// The two builds' SBOMs, read from the host's copies (checked against their records).
fn compare_sboms(repo: &Path, a: &Stored, b: &Stored) -> Result<SbomComparison> {
    let read = |s: &Stored| -> Result<crate::record::sbom::Bom> {
        let dir = Store::new(&repo.join("provenance"), &s.manifest.node);
        let bytes = s.pinned(dir.dir(), side_files::SBOM)?.with_context(|| {
            format!(
                "build {} has no SBOM (a failed build, or one made before prov wrote them)",
                s.manifest.build_id
            )
        })?;
        crate::record::sbom::parse(&bytes)
    };
    Ok(crate::record::sbom::compare(&read(a)?, &read(b)?))
}

/// The image's filesystem, streamed from `docker save` on its node.
fn image_listing(repo: &Path, m: &Manifest) -> Result<Listing> {
    let Some(image) = &m.image else {
        bail!("build {} has no image", m.build_id)
    };
    read_saved_image(
        &Transport::connect(repo, &m.node)?,
        &image.id,
        image_fs::listing_from_save,
    )
}

/// How long a node has to stream an image out, and the most of it read (the api's image is
/// about 100 MB).
const SAVE_TIME: std::time::Duration = std::time::Duration::from_secs(300);
const MAX_SAVE_BYTES: u64 = 4 << 30;

/// Reads `docker save IMAGE` of a node as it streams out of the node, within the transport's
/// deadline if it has one.
pub fn read_saved_image<T>(
    transport: &Transport,
    image: &str,
    read: impl FnOnce(std::io::Take<std::process::ChildStdout>) -> Result<T>,
) -> Result<T> {
    let node = transport.node();
    let limit = transport
        .remaining()
        .map_or(SAVE_TIME, |left| left.min(SAVE_TIME));
    let mut child = transport
        .command(&["docker".into(), "save".into(), image.to_string()])?
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ssh")?;
    // A node that streams without end is stopped: past the time an image takes, the ssh process
    // is killed (the reader then sees the stream end), and only so many bytes are read.
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(limit).is_err() {
            // The child is waited for below, after this kill: the pid is still ours.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    });
    let stream = child.stdout.take().expect("stdout is piped");
    let read = read(std::io::Read::take(stream, MAX_SAVE_BYTES));
    let out = child.wait_with_output()?;
    let _ = done.send(());
    let _ = watchdog.join();
    if !out.status.success() {
        bail!(
            "docker save {image} on {node} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    read
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
