//! `prov verify` output: a table for people, JSON and JUnit XML for machines, and the exit code.

use std::fmt::Write;

use quick_xml::escape::escape;

use crate::exit::{EXIT_COULD_NOT_CHECK, EXIT_FAILED, EXIT_OK};
use crate::model::NodeReport;

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
    for r in &crate::text::printable_all(&reports.to_vec()) {
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
