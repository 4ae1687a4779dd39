//! `prov verify` output: a table for people, JSON and JUnit XML for machines, and the exit code.

use std::fmt::Write;

use quick_xml::escape::escape;

use crate::exit::{EXIT_COULD_NOT_CHECK, EXIT_FAILED, EXIT_OK};
use serde::{Deserialize, Serialize};

/// 2 when any node went unchecked, else 1 when any check failed, else 0.
pub fn exit_code(reports: &[NodeReport]) -> u8 {
    if reports.iter().any(|r| r.error.is_some()) {
        EXIT_COULD_NOT_CHECK
    } else if reports.iter().any(|r| !r.ok) {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
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
