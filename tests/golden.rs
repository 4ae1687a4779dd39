//! Golden-output tests of `prov show`, `prov log` and `prov diff` over the fixture manifests in
//! tests/fixtures/repo. Each case's exit code, stdout and stderr are compared with
//! tests/golden/<case>.txt; `UPDATE_GOLDEN=1 cargo test --test golden` rewrites them.

use std::path::Path;
use std::process::Command;

fn check(case: &str, args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_prov"))
        .arg("--repo")
        .arg(root.join("tests/fixtures/repo"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("prov runs");
    // Paths differ between checkouts: golden files say <root>.
    let text = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes).replace(&root.display().to_string(), "<root>")
    };
    let actual = format!(
        "$ prov {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    );
    if !args.contains(&"--json") {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let wide: Vec<&str> = stdout.lines().filter(|l| l.chars().count() > 80).collect();
        assert!(wide.is_empty(), "lines over 80 columns: {wide:#?}");
    }
    let golden = root.join("tests/golden").join(format!("{case}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&golden)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", golden.display()));
    assert_eq!(
        actual,
        expected,
        "output of `prov {}` changed",
        args.join(" ")
    );
}

#[test]
fn show_latest_text() {
    check("show-main", &["show", "--node", "main", "--offline"]);
}

#[test]
fn show_latest_json_is_the_manifest() {
    check("show-main-json", &["show", "--node", "main", "--json"]);
}

/// The fixture is a real BuildKit build on a trixie node (worker1), with BuildKit's provenance as
/// the node's containerd store held it; only its link to the previous record was dropped.
#[test]
fn show_a_buildkit_build_beside_buildkits_own_provenance() {
    check("show-trixie", &["show", "--node", "trixie", "--offline"]);
}

#[test]
fn show_a_failed_build() {
    check(
        "show-main-failed",
        &[
            "show",
            "--node",
            "main",
            "20261129-110000-000-bbbb",
            "--offline",
        ],
    );
}

#[test]
fn show_an_unknown_schema_is_a_clear_error() {
    check("show-future", &["show", "--node", "future", "--offline"]);
}

#[test]
fn show_an_unknown_build_is_a_clear_error() {
    check(
        "show-missing",
        &["show", "--node", "main", "20991231-000000-000-0000"],
    );
}

#[test]
fn log_text_and_json() {
    check("log-main", &["log", "--node", "main"]);
    check("log-main-json", &["log", "--node", "main", "--json"]);
}

#[test]
fn log_of_a_broken_chain() {
    check("log-broken", &["log", "--node", "broken"]);
    check("show-broken", &["show", "--node", "broken", "--offline"]);
}

#[test]
fn log_of_an_unknown_schema() {
    check("log-future", &["log", "--node", "future"]);
}

#[test]
fn diff_across_nodes_names_the_source_tree() {
    check(
        "diff-main-worker1",
        &["diff", "main", "worker1", "--no-files"],
    );
    check(
        "diff-main-worker1-json",
        &["diff", "main", "worker1", "--no-files", "--json"],
    );
}

#[test]
fn diff_of_builds_from_the_same_source_agrees() {
    check(
        "diff-main-same",
        &[
            "diff",
            "main:20261129-100000-000-aaaa",
            "main",
            "--no-files",
        ],
    );
}

#[test]
fn diff_bad_input() {
    check(
        "diff-unknown-node",
        &["diff", "main", "nosuch", "--no-files"],
    );
    check("diff-bad-side", &["diff", "main", "a b", "--no-files"]);
}
