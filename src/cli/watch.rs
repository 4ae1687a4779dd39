//! `prov watch` (on the host): each node judged again on every engine event that can change its
//! verdict; a line per change of verdict, and per drift, each with a signed summary.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::cli::verify;
use crate::error::{Outcome, Result};
use crate::host::watch::{self, Seen};
use crate::record::nodes::{self, NodeName};
use crate::record::policy::{DEFAULT_POLICY, POLICY_ENV};

#[derive(clap::Args)]
pub struct Args {
    /// A node to watch (repeatable); defaults to the first node in nodes.json.
    #[arg(long = "node", conflicts_with = "all")]
    pub nodes: Vec<NodeName>,
    /// Watch every node.
    #[arg(long)]
    pub all: bool,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Seconds each judgement of a node has (as verify's --timeout).
    #[arg(long, value_name = "SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
    /// The longest a verdict stands without a full verify: what changes a node without an
    /// engine event (a process entered with nsenter, a file written on the node's disk) is seen
    /// by the next one.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=3600))]
    pub every: u64,
    /// The build policy in force, relative to the repository.
    #[arg(long, env = POLICY_ENV, default_value = DEFAULT_POLICY)]
    pub policy: String,
}

pub fn run(repo: &Path, args: Args) -> Result<Outcome> {
    let file = nodes::load(repo)?;
    let targets = file.select(&args.nodes, args.all)?;
    // Each node's last verdict, as printed: a line only when it changes.
    let last: Mutex<BTreeMap<NodeName, String>> = Mutex::new(BTreeMap::new());
    let seen = |seen: Seen| {
        let verdict = verdict(&seen);
        {
            let mut last = last.lock().expect("no thread panics holding it");
            if !seen.drift && last.get(&seen.report.node) == Some(&verdict) {
                return;
            }
            last.insert(seen.report.node.clone(), verdict.clone());
        }
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        if args.json {
            let event_at = seen.event_time_ns.map(|ns| {
                chrono::DateTime::from_timestamp_nanos(ns)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            });
            println!(
                "{}",
                serde_json::json!({"at": at, "node": seen.report.node, "verdict": verdict,
                    "cause": seen.cause, "event_at": event_at, "report": seen.report})
            );
        } else {
            println!("{at} node {}: {verdict} ({})", seen.report.node, seen.cause);
        }
        if let Err(e) = verify::summarise(repo, std::slice::from_ref(&seen.report), &args.policy) {
            eprintln!("prov watch: {e:#}");
        }
    };
    let options = watch::Options {
        policy: args.policy.clone(),
        timeout: Duration::from_secs(args.timeout),
        every: Duration::from_secs(args.every),
    };
    std::thread::scope(|scope| {
        for node in &targets {
            let (seen, options) = (&seen, &options);
            scope.spawn(move || watch::watch_node(repo, node, options, seen));
        }
    });
    unreachable!("a watch ends only with the process")
}

/// A verdict in a line: PASSED, FAILED and the checks that failed, or NOT CHECKED and why.
fn verdict(seen: &Seen) -> String {
    let report = &seen.report;
    match &report.error {
        Some(why) => format!("NOT CHECKED: {why}"),
        None if report.ok => format!("PASSED ({} checks)", report.checks.len()),
        None => format!("FAILED ({})", report.failed_checks().join(", ")),
    }
}
