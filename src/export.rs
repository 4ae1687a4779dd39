//! Each node's export of the checkout: what the node sees at `/vagrant`.
//!
//! The host never mounts its checkout into a node: a node's root can remount any mount
//! read-write (measured: `mount -o remount,rw /vagrant` reached the host's files). Each node has
//! its own copy instead, refreshed one way, host to node, before each operation, with unchanged
//! files kept. The copy is made with rsync over the node transport, so the host only reads its
//! checkout and every write lands inside the node; nothing the node leaves in its copy (a
//! symbolic link, a swapped folder) is ever followed by the host. Host-only state stays out.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::context::NODE_MOUNT;
use crate::transport::Transport;

/// What the export holds, as rsync filter rules (the first match wins): the checkout with its
/// git data (the node hashes its tree), the prov binary, the base image ids and the crate
/// archives the build proves vendored files against. Left out: Vagrant's data, every node's
/// records (a node gets its own below), git hooks, build products and host caches.
const TREE_FILTER: &[&str] = &[
    "- /.vagrant/",
    "+ /provenance/",
    "+ /provenance/README.md",
    "- /provenance/*",
    "- /.git/hooks/",
    "+ /target/",
    "+ /target/release/",
    "+ /target/release/prov",
    "- /target/**",
    "+ /.cache/",
    "+ /.cache/images/",
    "+ /.cache/images/ids.env",
    "+ /.cache/crates/***",
    "- /.cache/**",
];

/// Refreshes the node's export from the checkout, then puts back the node's own records as the
/// host holds them: a record the host did not import, or one the node changed, is replaced or
/// removed (the host's copy wins).
pub fn sync(repo: &Path, transport: &Transport) -> Result<()> {
    let node = transport.node();
    let worktree = linked_worktree(repo)?;
    let mut tree = rsync(transport)?;
    // What the filter leaves out is removed from the node too (another node's records, say),
    // except the node's own records, which the second pass refreshes.
    tree.arg("--delete-excluded")
        .arg(format!("--filter=P /provenance/{node}/"));
    if worktree.is_some() {
        tree.args(["--filter=P /.git/", "--filter=- /.git"]);
    }
    for rule in TREE_FILTER {
        tree.arg(format!("--filter={rule}"));
    }
    tree.arg(format!("{}/", repo.display()))
        .arg(format!("{node}:{NODE_MOUNT}/"));
    run(tree, node, "the checkout")?;

    // A linked worktree's .git is a file naming a folder outside the checkout: the node gets an
    // ordinary .git instead, the shared repository's objects and refs with the worktree's own
    // HEAD and index.
    if let Some((own, common)) = worktree {
        let mut shared = rsync(transport)?;
        shared.arg("--delete-excluded").args([
            "--filter=P /HEAD",
            "--filter=P /index",
            "--filter=- /HEAD",
            "--filter=- /index",
            "--filter=- /ORIG_HEAD",
            "--filter=- /logs/",
            "--filter=- /worktrees/",
            "--filter=- /hooks/",
        ]);
        shared
            .arg(format!("{}/", common.display()))
            .arg(format!("{node}:{NODE_MOUNT}/.git/"));
        run(shared, node, "the repository")?;
        let mut head = rsync(transport)?;
        head.arg(own.join("HEAD"))
            .arg(own.join("index"))
            .arg(format!("{node}:{NODE_MOUNT}/.git/"));
        run(head, node, "the worktree's HEAD and index")?;
    }

    let records = repo.join("provenance").join(node);
    std::fs::create_dir_all(&records).with_context(|| format!("creating {}", records.display()))?;
    let mut own = rsync(transport)?;
    own.args(["--mkpath", "--filter=- .lock"])
        .arg(format!("{}/", records.display()))
        .arg(format!("{node}:{NODE_MOUNT}/provenance/{node}/"));
    run(own, node, "its records")
}

/// The git folder of a linked worktree (`git worktree add`) and of the repository it shares.
fn linked_worktree(repo: &Path) -> Result<Option<(PathBuf, PathBuf)>> {
    if !repo.join(".git").is_file() {
        return Ok(None);
    }
    let git = git2::Repository::open(repo)
        .with_context(|| format!("opening the git checkout {}", repo.display()))?;
    Ok(git
        .is_worktree()
        .then(|| (git.path().to_path_buf(), git.commondir().to_path_buf())))
}

/// rsync to the node as root (the export is root's), through the node transport's ssh.
fn rsync(transport: &Transport) -> Result<Command> {
    let mut cmd = Command::new("rsync");
    cmd.args(["--recursive", "--links", "--perms", "--times", "--delete"])
        .args(["--rsync-path", "sudo -n rsync"])
        .arg("--rsh")
        .arg(transport.remote_shell()?);
    Ok(cmd)
}

fn run(mut cmd: Command, node: &str, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .context("running rsync: is it installed? (make installs it)")?;
    if !out.status.success() {
        bail!(
            "refreshing node {node}'s export of {what} failed (rsync exit {}): {}; is the node up \
             (`make up NODE={node}`)?",
            out.status
                .code()
                .map_or("by signal".into(), |c| c.to_string()),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
