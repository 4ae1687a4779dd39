//! The audit commands change nothing on disk: `show`, `log`, `diff` and `verify` leave the
//! checkout and the host's state folder as they found them, byte for byte and time for time,
//! whether they succeed, fail, or cannot reach the node. The checkout holds what would tempt a
//! command to tidy up (keys an older prov left in it, which only `prov key init` moves), and the
//! state names a node whose ssh answers nothing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// Every entry under `root`: its kind, mode, size, modification time and content digest.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let content = if meta.is_file() {
                hex::encode(Sha256::digest(fs::read(&path).unwrap()))
            } else {
                String::new()
            };
            if meta.is_dir() {
                todo.push(path.clone());
            }
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let what = format!(
                "mode {:o} size {} mtime {}.{} {content}",
                meta.mode(),
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec()
            );
            out.insert(rel, what);
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn show_log_diff_and_verify_write_nothing() {
    let tmp = TempDir::new().unwrap();
    let repo = tmp.path().join("repo");
    let state = tmp.path().join("state");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo"),
        &repo,
    );
    fs::create_dir_all(repo.join(".cache/keys")).unwrap();
    fs::write(repo.join(".cache/keys/attest.key"), "an old key\n").unwrap();
    fs::create_dir_all(state.join("ssh")).unwrap();
    // A node that refuses every connection: the reading commands try it and give up.
    fs::write(
        state.join("ssh/main.config"),
        "Host main\n  HostName 127.0.0.1\n  Port 9\n  User nobody\n",
    )
    .unwrap();
    let before = (snapshot(&repo), snapshot(&state));

    let runs: &[(&[&str], i32)] = &[
        (&["show", "--node", "main", "--offline"], 0),
        (&["show", "--node", "main"], 0),
        (&["show", "--node", "main", "--json"], 0),
        (&["show", "--node", "main", "--sbom"], 2),
        (&["show", "--node", "broken", "--offline"], 0),
        (&["log", "--node", "main"], 0),
        (&["log", "--node", "broken", "--json"], 0),
        (&["diff", "main", "worker1", "--no-files"], 1),
        (&["diff", "main", "worker1"], 1),
        (&["verify", "--node", "main", "--timeout", "5"], 2),
        (&["verify", "--node", "worker1", "--timeout", "5"], 2),
    ];
    for (args, code) in runs {
        let out = Command::new(env!("CARGO_BIN_EXE_prov"))
            .arg("--repo")
            .arg(&repo)
            .args(*args)
            .env("PROV_STATE_DIR", &state)
            .env("NO_COLOR", "1")
            .output()
            .expect("prov runs");
        assert_eq!(
            out.status.code(),
            Some(*code),
            "prov {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = (snapshot(&repo), snapshot(&state));
        assert_eq!(
            after, before,
            "prov {args:?} changed the checkout or the state"
        );
    }
}
