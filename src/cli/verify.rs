//! `prov verify` (on the host): check that nodes run exactly their latest recorded build, and
//! print what was found: a table for people, JSON and JUnit XML for machines.

use std::fmt::Write;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use quick_xml::escape::escape;

use crate::error::{Outcome, Result};
use crate::host::report::{self, NodeReport};
use crate::host::state::HostState;
use crate::host::{attest, verify, vsa};
use crate::record::nodes::{self, NodeName};
use crate::record::policy::{self, DEFAULT_POLICY, POLICY_ENV};
use crate::record::store::Store;

#[derive(clap::Args)]
pub struct Args {
    /// A node to check (repeatable); defaults to the first node in nodes.json.
    #[arg(long = "node", conflicts_with = "all")]
    pub nodes: Vec<NodeName>,
    /// Check every node, in parallel (see --jobs).
    #[arg(long)]
    pub all: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// How many nodes are checked at once (each holds a few ssh processes while it answers).
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: u64,
    /// Seconds each node has to answer (ssh, the engine, HTTP); past it the node is reported as
    /// not checked (exit 2).
    #[arg(long, value_name = "SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
    /// The build policy in force, relative to the repository.
    #[arg(long, env = POLICY_ENV, default_value = DEFAULT_POLICY)]
    pub policy: String,
    /// Also write a signed verification summary (SLSA VSA) per node, PASSED or FAILED, into the
    /// host's state (`prov log` shows the newest), and keep what was proved of each node's stack
    /// (the files it executes, its containers) for later checks not to ask again.
    #[arg(long)]
    pub attest: bool,
    /// Also write what was gathered from each node (its Docker state, the api's answers) under
    /// DIR/<node>/: how tests/fixtures/verify is refreshed from real nodes.
    #[arg(long, value_name = "DIR", hide = true)]
    pub capture: Option<PathBuf>,
}

pub fn run(repo: &Path, args: Args) -> Result<Outcome> {
    let file = nodes::load(repo)?;
    let targets = file.select(&args.nodes, args.all)?;
    let reports = verify::verify_nodes(
        repo,
        &targets,
        &args.policy,
        args.jobs as usize,
        Duration::from_secs(args.timeout),
        args.capture.as_deref(),
    );
    if args.json {
        println!("{}", json(&reports));
    } else {
        print!("{}", human(&reports));
    }
    if let Some(path) = args.junit {
        fs::write(&path, junit(&reports)).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.attest {
        summarise(repo, &reports, &args.policy)?;
    }
    Ok(report::outcome(&reports))
}

/// Signs one verification summary per node report (on stderr: where each went).
pub fn summarise(repo: &Path, reports: &[NodeReport], policy_path: &str) -> anyhow::Result<()> {
    let state = HostState::for_checkout(repo)?;
    let Some(key) = attest::load_signing_key(&state)? else {
        bail!(
            "no verification summary written: no signing key at {}; the golden path makes it \
             (`make demo`), or `prov key init`",
            state.private_key().display()
        );
    };
    // A policy that cannot be read left every node unchecked: their summaries say FAILED.
    let build_policy = policy::load(repo, policy_path).ok();
    let now = chrono::Utc::now();
    let mut unwritten = Vec::new();
    for report in reports.iter().filter(|r| r.error.is_none()) {
        report.proven.write(&state)?;
    }
    for report in reports {
        let policy = vsa::VerifyPolicy::of(report, policy_path, build_policy.as_ref());
        let fallback = Store::new(&repo.join("provenance"), &report.node)
            .latest()
            .ok()
            .and_then(|s| s.manifest.image.map(|i| i.id));
        let written =
            vsa::statement(report, &policy, fallback.as_deref(), now).and_then(|statement| {
                let path = vsa::write(&state, &report.node, &statement, &policy, &key, now)?;
                Ok((statement, path))
            });
        match written {
            Ok((statement, path)) => eprintln!(
                "verification summary of node {} ({}): {}",
                report.node,
                statement["predicate"]["verificationResult"]
                    .as_str()
                    .unwrap_or_default(),
                path.display()
            ),
            Err(e) => {
                eprintln!("no verification summary of node {}: {e:#}", report.node);
                unwritten.push(report.node.as_str());
            }
        }
    }
    if !unwritten.is_empty() {
        bail!(
            "no verification summary was written for node(s) {} (above)",
            unwritten.join(", ")
        );
    }
    Ok(())
}

/// For a terminal: every string from a node or a record has its control characters escaped.
pub fn human(reports: &[NodeReport]) -> String {
    let mut out = String::new();
    for r in &crate::record::text::printable_all(&reports.to_vec()) {
        let failed = r.checks.iter().filter(|c| !c.ok).count();
        let verdict = match (&r.error, failed) {
            (Some(_), _) => "COULD NOT CHECK".to_string(),
            (None, 0) => format!("OK ({} checks)", r.checks.len()),
            (None, n) => format!("FAILED ({n} of {} checks)", r.checks.len()),
        };
        let _ = writeln!(out, "node {}: {verdict}", r.node);
        if let Some(error) = &r.error {
            let _ = writeln!(out, "  error: {error}");
        }
        for c in &r.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "  {mark} {:<17} {}", c.name, c.observed);
            if !c.ok {
                let _ = writeln!(out, "       expected: {}", c.expected);
                if !c.hint.is_empty() {
                    let _ = writeln!(out, "       hint: {}", c.hint);
                }
            }
        }
        for line in &r.reproduced {
            let _ = writeln!(out, "  note {line}");
        }
    }
    out
}

/// One node: its report object. Several: `{"ok": ..., "nodes": [...]}`.
pub fn json(reports: &[NodeReport]) -> String {
    let value = match reports {
        [one] => serde_json::to_value(one),
        many => serde_json::to_value(serde_json::json!({
            "ok": many.iter().all(|r| r.ok),
            "nodes": many,
        })),
    };
    serde_json::to_string_pretty(&value.expect("reports serialize")).expect("json prints")
}

/// A test suite per node, a test case per check; an unchecked node is one errored case.
pub fn junit(reports: &[NodeReport]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for r in reports {
        let failures = r.checks.iter().filter(|c| !c.ok).count();
        let errors = usize::from(r.error.is_some());
        let _ = writeln!(
            out,
            "  <testsuite name=\"prov verify {}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">",
            escape(r.node.as_str()),
            r.checks.len() + errors
        );
        if let Some(error) = &r.error {
            let _ = writeln!(
                out,
                "    <testcase name=\"reach node\"><error message=\"{}\"/></testcase>",
                escape(error.as_str())
            );
        }
        for c in &r.checks {
            let name = escape(c.name.as_str());
            if c.ok {
                let _ = writeln!(out, "    <testcase name=\"{name}\"/>");
            } else {
                let message = format!("expected {}; observed {}", c.expected, c.observed);
                let _ = writeln!(
                    out,
                    "    <testcase name=\"{name}\"><failure message=\"{}\">{}</failure></testcase>",
                    escape(message.as_str()),
                    escape(c.hint.as_str())
                );
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
