//! `prov log` (on the host): one line per build of a node, newest first, with the state of the
//! hash chain, and the newest verification summary. Writes nothing.

use std::fmt::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::paint::{status_text, Paint};
use crate::error::{Outcome, Result};
use crate::host::state::HostState;
use crate::host::{attest, vsa};
use crate::record::manifest::BuildStatus;
use crate::record::nodes::NodeName;
use crate::record::store::{ChainEntry, Link, Store};
use crate::record::text::{abbrev, clip, printable, short_id as short};

#[derive(clap::Args)]
pub struct Args {
    /// The node; defaults to the first one in nodes.json.
    #[arg(long)]
    pub node: Option<NodeName>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(repo: &Path, args: Args) -> Result<Outcome> {
    let node = super::node_or_default(repo, args.node.as_ref())?;
    let store = Store::new(&repo.join("provenance"), &node);
    let chain = store.chain()?;
    let latest = store.latest_pointer().ok().flatten().map(|p| p.build_id);
    if args.json {
        let entries = log_entries(&chain, latest.as_deref());
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(Outcome::Held);
    }
    print!(
        "{}",
        render_log(&chain, latest.as_deref(), Paint::for_stdout())
    );
    let state = HostState::for_checkout(repo)?;
    let key = attest::load_public_key(&state)?;
    if let Some(summary) = vsa::newest(&state, &node, key.as_ref()) {
        println!(
            "\nverified (prov verify --attest; {} summaries kept in {})\n  {}",
            summary.count,
            summary
                .path
                .parent()
                .map_or_else(String::new, |p| p.display().to_string()),
            printable(&vsa::summary_line(&summary))
        );
    }
    Ok(Outcome::Held)
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
