//! `prov show` (on the host): one build, for a reviewer's terminal, or its SBOM. The renderers
//! are pure functions of their inputs, so golden tests cover them without a node.

use std::fmt::Write;
use std::fs;
use std::path::Path;

use anyhow::Context;
use chrono::DateTime;

use super::paint::{duration, status_text, Paint};
use crate::error::{Outcome, Result};
use crate::host::state::HostState;
use crate::host::{attest, verdicts, verify};
use crate::record::buildkit::{self, SideBySide};
use crate::record::manifest::{side_files, ImageIdKind, ImageStore, SourceDateFrom};
use crate::record::nodes::NodeName;
use crate::record::sbom::{self, package_of, Bom, BomComponent};
use crate::record::store::{ChainEntry, Store, Stored};
use crate::record::text::{clip, printable, short_id as short};

#[derive(clap::Args)]
pub struct Args {
    /// The node; defaults to the first one in nodes.json.
    #[arg(long)]
    pub node: Option<NodeName>,
    /// A build id, or `latest`.
    #[arg(default_value = "latest")]
    pub build: String,
    /// Print the manifest itself, as JSON.
    #[arg(long)]
    pub json: bool,
    /// Do not ask the node whether it runs this build.
    #[arg(long)]
    pub offline: bool,
    /// Show the build's SBOM instead (with --json: the CycloneDX file itself).
    #[arg(long)]
    pub sbom: bool,
}

/// Reads the build's record and what is pinned beside it; asks the node (read-only) whether it
/// runs the build, unless --offline. Writes nothing.
pub fn run(repo: &Path, args: Args) -> Result<Outcome> {
    let node = super::node_or_default(repo, args.node.as_ref())?;
    let store = Store::new(&repo.join("provenance"), &node);
    let stored = store.resolve(&args.build)?;
    if args.sbom {
        let bytes = stored
            .pinned(store.dir(), side_files::SBOM)?
            .with_context(|| {
                format!(
                    "build {} has no SBOM (a failed build, or one made before prov wrote them): \
                     run make demo NODE={node} for one that has",
                    stored.manifest.build_id
                )
            })?;
        if args.json {
            print!("{}", String::from_utf8_lossy(&bytes));
        } else {
            print!("{}", render_sbom(&sbom::parse(&bytes)?));
        }
        return Ok(Outcome::Held);
    }
    if args.json {
        // The manifest itself, byte for byte: its sha256 is what the chain pins.
        let path = store.manifest_path(&stored.manifest.build_id);
        print!(
            "{}",
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        );
        return Ok(Outcome::Held);
    }
    let chain = chain_position(&store.chain()?, &stored.manifest.build_id);
    let running = if args.offline {
        Running::NotAsked
    } else {
        match (
            verify::running_api_image(repo, &node),
            &stored.manifest.image,
        ) {
            (Ok(Some(id)), Some(image)) if id == image.id => Running::Yes,
            (Ok(other), _) => Running::No(other),
            (Err(e), _) => Running::Unknown(format!("{e:#}")),
        }
    };
    print!("{}", render(&stored, &chain, &running, Paint::for_stdout()));
    if let Some(bytes) = stored.pinned(store.dir(), side_files::BUILDKIT_PROVENANCE)? {
        let statement: serde_json::Value =
            serde_json::from_slice(&bytes).context("parsing BuildKit's provenance")?;
        print!(
            "{}",
            render_buildkit(&buildkit::side_by_side(&stored.manifest, &statement))
        );
    }
    let key = attest::load_public_key(&HostState::for_checkout(repo)?)?;
    let verdicts = verdicts::verdicts(&store, &stored, key.as_ref());
    if !verdicts.is_empty() {
        println!("\nreproduced (prov reproduce)");
        for (node, verdict) in &verdicts {
            println!(
                "  {}",
                clip(&printable(&verdicts::summary(node, verdict)), 78)
            );
        }
    }
    Ok(Outcome::Held)
}

/// Whether the node runs the shown build now, as far as could be learned.
#[derive(Debug, Clone, PartialEq)]
pub enum Running {
    Yes,
    /// The api container runs another image (or none, when `None`).
    No(Option<String>),
    Unknown(String),
    NotAsked,
}

/// Where a build sits in its node's chain: "#n of N" and whether the chain is intact up to it.
pub fn chain_position(chain: &[ChainEntry], build_id: &str) -> String {
    let Some(index) = chain.iter().position(|e| e.build_id == build_id) else {
        return "not in the chain".to_string();
    };
    let broken = chain[..=index].iter().find(|e| !e.is_intact());
    format!(
        "#{} of {}, {}",
        index + 1,
        chain.len(),
        match broken {
            None => "intact up to here".to_string(),
            Some(e) => format!("BROKEN at {}", e.build_id),
        }
    )
}

/// One build, within 80 columns.
pub fn render(stored: &Stored, chain: &str, running: &Running, paint: Paint) -> String {
    let m = &crate::record::text::printable_all(&stored.manifest);
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "build    {} on {}: {}",
        m.build_id,
        m.node,
        status_text(paint, m.status)
    );
    let _ = writeln!(
        w,
        "         {} .. {} ({})",
        m.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        m.finished_at.format("%H:%M:%S"),
        duration(m.started_at, m.finished_at)
    );
    if let Some(error) = &m.error {
        let options = textwrap::Options::new(80)
            .initial_indent("error    ")
            .subsequent_indent("         ");
        let _ = writeln!(w, "{}", textwrap::fill(error, options));
    }
    let _ = writeln!(
        w,
        "what     commit {}\n         tree   {} ({})",
        m.git.commit.as_deref().unwrap_or("(no commit)"),
        m.git.tree,
        if m.git.dirty {
            "dirty: uncommitted changes"
        } else {
            "clean"
        }
    );
    let inputs = [
        ("Dockerfile", &m.dockerfile.path, &m.dockerfile.sha256),
        ("compose", &m.compose.path, &m.compose.config_sha256),
        ("lockfile", &m.cargo_lock.path, &m.cargo_lock.sha256),
    ];
    for (i, (label, path, sha)) in inputs.iter().enumerate() {
        let head = if i == 0 { "from" } else { "" };
        let _ = writeln!(w, "{head:<8} {label:<11} {path:<18} sha256 {}", short(sha));
    }
    for base in &m.base_images {
        let _ = writeln!(w, "         base {:<14} {}", base.arg, base.reference);
        let _ = writeln!(w, "{:<28}= {}", "", short(&base.id));
    }
    if let Some(policy) = &m.policy {
        let _ = writeln!(
            w,
            "         {:<11} {:<18} sha256 {}",
            "policy",
            policy.path,
            short(&policy.sha256)
        );
    }
    if let Some(context) = &m.context {
        let _ = writeln!(
            w,
            "         context     {} files from the tree and derived, sha256 {}",
            context.files,
            short(&context.sha256)
        );
        for input in &context.derived {
            let _ = writeln!(
                w,
                "         derived     {:<18} {} files, sha256 {}",
                input.path,
                input.files,
                short(&input.sha256)
            );
        }
    }
    let _ = writeln!(
        w,
        "how      {}, network {}",
        if m.no_cache {
            "no cache"
        } else {
            "CACHE ALLOWED"
        },
        m.network,
    );
    if let Some(date) = m.source_date {
        let from = match date.from {
            SourceDateFrom::Commit => "the commit's",
            SourceDateFrom::Tree => "derived from the dirty tree",
            SourceDateFrom::Bases => "the newest base's",
        };
        let _ = writeln!(
            w,
            "         every time in the image {} ({from})",
            DateTime::from_timestamp(date.epoch, 0).map_or(date.epoch.to_string(), |t| t
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string())
        );
    }
    for (arg, value) in &m.build_args {
        let _ = writeln!(w, "         build arg {arg}={value}");
    }
    for (tool, version) in &m.tool.versions {
        let _ = writeln!(w, "         {tool:<14} {version}");
    }
    match &m.image {
        Some(image) => {
            let _ = writeln!(w, "result   image\n         {}", image.id);
            if let Some(kind) = image.id_kind {
                let kind = match kind {
                    ImageIdKind::Config => "its configuration",
                    ImageIdKind::Manifest => "its manifest",
                    ImageIdKind::Index => "its index (manifest and attestations)",
                };
                let store = match image.store {
                    Some(ImageStore::Containerd) => "; containerd store",
                    Some(ImageStore::Classic) | None => "; classic store",
                };
                let _ = writeln!(w, "         ID = digest of {kind}{store}");
            }
            if let Some(manifest) = &image.manifest_digest {
                let _ = writeln!(w, "         manifest {}", short(manifest));
            }
            if let Some(config) = &image.config_digest {
                let _ = writeln!(w, "         configuration {}", short(config));
            }
            let _ = writeln!(w, "         tag {}", image.tag);
            if let Some(sbom) = &m.sbom {
                let _ = writeln!(
                    w,
                    "         sbom {} (prov show --sbom)\n         sha256 {}",
                    clip(&sbom.path, 60),
                    short(&sbom.sha256)
                );
            }
            let _ = writeln!(w, "         {} layers, labels:", image.layers.len());
            for (k, v) in &image.labels {
                let _ = writeln!(w, "{}", clip(&format!("           {k}={v}"), 80));
            }
        }
        None => {
            let _ = writeln!(w, "result   no image");
        }
    }
    let _ = writeln!(
        w,
        "log      {}\n         {} bytes, sha256 {}",
        m.build_log.path,
        m.build_log.bytes,
        short(&m.build_log.sha256)
    );
    let _ = writeln!(
        w,
        "chain    {}\n         manifest sha256 {}, previous {}",
        printable(chain),
        short(&stored.sha256),
        m.prev_manifest_sha256.as_deref().map_or("(first)", short)
    );
    let running = match running {
        Running::Yes => paint.good("yes: the node's api container runs this image"),
        Running::No(Some(other)) => paint.bad(&format!(
            "no: the api container runs {}",
            printable(short(other))
        )),
        Running::No(None) => paint.bad("no: no api container runs on the node"),
        Running::Unknown(why) => format!("unknown: {}", printable(why)),
        Running::NotAsked => "not asked (--offline)".to_string(),
    };
    let _ = writeln!(w, "running  {running}");
    claims(w, m);
    out
}

/// Where each claim of a record comes from (`proof.rs`): what the host proved before it kept
/// the record, against what, and what is the node's word. Fields are grouped by their source.
fn claims(w: &mut String, m: &crate::record::manifest::Manifest) {
    use crate::host::proof::Source;
    let mut groups: Vec<(bool, &str, Vec<&str>)> = Vec::new();
    for (field, source) in crate::host::proof::claims_of(m) {
        let (host, why) = match source {
            Source::Host(against) => (true, against),
            Source::Node(why) => (false, why),
        };
        match groups.iter_mut().find(|(h, w, _)| *h == host && *w == why) {
            Some((_, _, fields)) => fields.push(field),
            None => groups.push((host, why, vec![field])),
        }
    }
    for (host, title) in [
        (true, "proved by the host, against:"),
        (false, "the node's word:"),
    ] {
        let head = if host { "claims" } else { "" };
        let _ = writeln!(w, "{head:<8} {title}");
        for (_, why, fields) in groups.iter().filter(|(h, _, _)| *h == host) {
            let options = textwrap::Options::new(80)
                .initial_indent("           ")
                .subsequent_indent("             ");
            let _ = writeln!(
                w,
                "{}",
                textwrap::fill(&format!("{}: {why}", fields.join(", ")), options)
            );
        }
    }
}

/// BuildKit's account of the build beside prov's (`prov show` on a BuildKit node).
pub fn render_buildkit(cmp: &SideBySide) -> String {
    let mut out =
        String::from("\nBuildKit's provenance of the same build (SLSA v0.2), beside prov's\n");
    for (what, ours, theirs) in &cmp.rows {
        let _ = writeln!(out, "  {}", clip(&printable(what), 76));
        let _ = writeln!(out, "    prov      {}", clip(&printable(ours), 66));
        let _ = writeln!(out, "    BuildKit  {}", clip(&printable(theirs), 66));
    }
    let _ = writeln!(out, "  only BuildKit records");
    for line in &cmp.only_buildkit {
        let _ = writeln!(out, "    {}", clip(&printable(line), 74));
    }
    let _ = writeln!(out, "  only prov records");
    for line in &cmp.only_prov {
        let _ = writeln!(out, "    {}", clip(&printable(line), 74));
    }
    out
}

/// `prov show --sbom`: one line per component, crates first, within 80 columns.
pub fn render_sbom(bom: &Bom) -> String {
    let mut out = String::new();
    let head = format!(
        "sbom (CycloneDX {}) of {} {}: {} components",
        crate::record::text::printable(&bom.spec_version),
        crate::record::text::printable(&bom.metadata.component.name),
        crate::record::text::printable(crate::record::text::short_id(
            &bom.metadata.component.version
        )),
        bom.components.len()
    );
    let _ = writeln!(out, "{}", crate::record::text::clip(&head, 80));
    let mut sorted: Vec<&BomComponent> = bom.components.iter().collect();
    sorted.sort_by_key(|c| (package_of(c), c.version.clone()));
    for c in sorted {
        let sha = c
            .hashes
            .iter()
            .find(|h| h.alg == "SHA-256")
            .map_or(String::new(), |h| {
                format!("sha256:{}", crate::record::text::short_id(&h.content))
            });
        // Every field is the node's text: escaped, then shortened.
        let field = |s: &str, n| crate::record::text::clip(&crate::record::text::printable(s), n);
        let line = format!(
            "  {:<11} {:<26} {:<18} {}",
            field(&c.kind, 11),
            field(&package_of(c), 26),
            field(&c.version, 18),
            field(&sha, 19)
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}
