//! `prov show` and `prov log`: a build, and a node's builds, for a reviewer's terminal.
//! Renderers are pure functions of their inputs, so golden tests cover them without a node.

use std::fmt::Write;

use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Utc};

use crate::record::manifest::{BuildStatus, ImageIdKind, ImageStore, SourceDateFrom};
use crate::record::store::{ChainEntry, Link, Stored};

/// Whether the node runs the shown build now, as far as could be learned.
#[derive(Debug, Clone, PartialEq)]
pub enum Running {
    Yes,
    /// The api container runs another image (or none, when `None`).
    No(Option<String>),
    Unknown(String),
    NotAsked,
}

/// Colour only on a terminal, and never with NO_COLOR set.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    pub fn for_stdout() -> Self {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        Paint(terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
    }

    fn paint(self, color: AnsiColor, text: &str) -> String {
        if self.0 {
            let style = Style::new().fg_color(Some(color.into())).bold();
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    fn good(self, text: &str) -> String {
        self.paint(AnsiColor::Green, text)
    }

    fn bad(self, text: &str) -> String {
        self.paint(AnsiColor::Red, text)
    }
}

use crate::record::text::{abbrev, clip, printable, short_id as short};
use serde::{Deserialize, Serialize};

fn duration(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let secs = (to - from).num_seconds().max(0);
    format!("{}m{:02}s", secs / 60, secs % 60)
}

fn status_text(paint: Paint, status: BuildStatus) -> String {
    match status {
        BuildStatus::Success => paint.good("success"),
        BuildStatus::Failed => paint.bad("FAILED"),
    }
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

/// The log as data, newest first.
pub fn log_entries(chain: &[ChainEntry], latest: Option<&str>) -> Vec<LogEntry> {
    let mut intact = true;
    let mut entries: Vec<LogEntry> = chain
        .iter()
        .map(|entry| {
            intact &= entry.is_intact();
            let m = entry.read.as_ref().ok().map(|s| &s.manifest);
            LogEntry {
                build_id: entry.build_id.clone(),
                started_at: m.map(|m| m.started_at),
                status: m.map(|m| m.status),
                commit: m.and_then(|m| m.git.commit.clone()),
                image_id: m.and_then(|m| m.image.as_ref().map(|i| i.id.clone())),
                chain_intact: intact,
                latest: Some(entry.build_id.as_str()) == latest,
                error: entry.read.as_ref().err().map(|e| e.to_string()),
            }
        })
        .collect();
    entries.reverse();
    entries
}

/// One line per build, newest first; `*` marks the build `latest` points at.
pub fn render_log(chain: &[ChainEntry], latest: Option<&str>, paint: Paint) -> String {
    let mut out = format!(
        "  {:<24}  {:<11}  {:<7}  {:<7}  {:<12}  {}\n",
        "BUILD", "TIME (UTC)", "STATUS", "COMMIT", "IMAGE", "CHAIN"
    );
    for (line, entry) in log_entries(chain, latest).iter().zip(chain.iter().rev()) {
        let marker = if line.latest { "*" } else { " " };
        let chain_text = if line.chain_intact {
            paint.good("intact")
        } else {
            paint.bad("BROKEN")
        };
        let columns = match (&entry.read, line.status) {
            (Err(e), _) => format!(
                "{:<43}",
                paint.bad(&clip(&printable(&format!("unreadable: {}", e.brief())), 43))
            ),
            (Ok(_), status) => format!(
                "{:<11}  {:<7}  {:<7}  {:<12}",
                line.started_at
                    .map_or(String::new(), |t| t.format("%m-%d %H:%M").to_string()),
                status.map_or(String::new(), |s| status_text(paint, s)),
                line.commit.as_deref().map_or("-", |c| abbrev(c, 7)),
                line.image_id.as_deref().map_or("-", short),
            ),
        };
        let _ = writeln!(
            out,
            "{marker} {:<24}  {columns}  {chain_text}",
            line.build_id
        );
        if let (Ok(_), Link::Broken { expected, found }) = (&entry.read, &entry.link) {
            let _ = writeln!(
                out,
                "{:<28}prev digest {} != file before {}",
                "",
                found.as_deref().map_or("(none)", short),
                expected.as_deref().map_or("(none)", short)
            );
        }
    }
    if latest.is_some() {
        out.push_str("* latest\n");
    }
    out
}

/// A verdict of `prov reproduce`, for people.
pub fn render_reproduction(r: &crate::record::reproduction::Reproduction) -> String {
    let mut out = format!(
        "{}:{} rebuilt on {} ({} .. {}): ",
        r.of_node,
        r.of_build,
        r.node,
        r.rebuilt.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        r.rebuilt.finished_at.format("%H:%M:%S")
    );
    if !r.same_source {
        let _ = writeln!(
            out,
            "other source\n  built from tree {}, rebuilt from tree {}",
            r.of_source.tree, r.rebuilt.git.tree
        );
    }
    match &r.first_difference {
        None => {
            let _ = writeln!(
                out,
                "identical
  image {}",
                r.of_image
            );
        }
        Some(d) => {
            let _ = writeln!(
                out,
                "DIFFERENT
  image {} there, {} here",
                short(&r.of_image),
                short(&r.rebuilt.image.id)
            );
            let side = |l: &Option<String>| l.as_deref().map_or("(none)", short).to_string();
            let what = if d.path.is_some() {
                "first layer whose files differ"
            } else {
                "first differing layer"
            };
            let _ = writeln!(
                out,
                "  {what} #{} (from the bottom): {} there, {} here",
                d.layer + 1,
                side(&d.layer_a),
                side(&d.layer_b)
            );
            let _ = writeln!(
                out,
                "  first differing file: {}",
                d.path
                    .as_deref()
                    .map_or("(none: only removals or metadata differ)".into(), |p| {
                        format!("/{}", printable(p))
                    })
            );
        }
    }
    out
}

/// BuildKit's account of the build beside prov's (`prov show` on a BuildKit node).
pub fn render_buildkit(cmp: &crate::record::buildkit::SideBySide) -> String {
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
