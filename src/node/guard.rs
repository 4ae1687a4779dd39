//! The execution-context rule: operational work happens only inside a node, from `/vagrant`.
//!
//! Running Compose or a build from the wrong directory silently picks up the wrong compose file,
//! `.env` or source. This module is the one implementation of the rule; the shell scripts reach
//! it through `prov guard --script "$0"`, and `prov build` calls it directly.

use std::fs;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::record::nodes::NODE_MOUNT;

const HOW_TO: &str = "run it from the host with make (e.g. `make demo NODE=<name>`), or inside \
the node as `cd /vagrant && <script>`";

#[derive(Debug, Error)]
pub enum ContextError {
    #[error("refusing to run: the working directory is {found}, expected {NODE_MOUNT}; {HOW_TO}")]
    WrongDirectory { found: PathBuf },
    #[error(
        "refusing to run: {path} resolves to {real}, which is outside {NODE_MOUNT} \
         (a copy of the repository?); {HOW_TO}"
    )]
    OutsideMount { path: PathBuf, real: PathBuf },
    #[error(
        "refusing to run: {NODE_MOUNT} is a plain directory, not a mount point; the repository \
         must be the node's export of the checkout that Vagrant mounts there (run `make up NODE=<name>` on the host)"
    )]
    NotAMountPoint,
    #[error(
        "refusing to run: {NODE_MOUNT} is not the root of the project's git checkout ({detail}); \
         mount the whole repository, not a part of it"
    )]
    NotACheckout { detail: String },
    #[error(
        "refusing to run: the tree at {NODE_MOUNT} is not whole: {count} tracked file(s) missing, \
         e.g. {first}; mount the whole repository (a partial mount or a deleted file?)"
    )]
    TreeNotWhole { count: usize, first: String },
    #[error("could not check the execution context: {0}")]
    Io(String),
}

/// Checks the rule for the process running now; `program` is the script or binary being run.
/// The refusals are exercised through real mounts inside a node (tests/e2e/20-guard.bats).
pub fn check(program: &Path) -> Result<(), ContextError> {
    let mount = Path::new(NODE_MOUNT);
    let cwd = std::env::current_dir().map_err(|e| ContextError::Io(format!("getcwd: {e}")))?;
    if cwd != mount {
        return Err(ContextError::WrongDirectory { found: cwd });
    }
    let real = fs::canonicalize(program)
        .map_err(|e| ContextError::Io(format!("resolve {}: {e}", program.display())))?;
    if !real.starts_with(mount) {
        return Err(ContextError::OutsideMount {
            path: program.to_path_buf(),
            real,
        });
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| ContextError::Io(format!("read /proc/self/mountinfo: {e}")))?;
    if !is_mount_point(&mountinfo, mount) {
        return Err(ContextError::NotAMountPoint);
    }
    check_tree_whole(mount)
}

/// Whether `path` is the mount point of some entry in a `/proc/<pid>/mountinfo` listing.
pub fn is_mount_point(mountinfo: &str, path: &Path) -> bool {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|field| Path::new(&unescape_mountinfo(field)) == path)
}

/// mountinfo escapes space, tab, newline and backslash as three-digit octal (`\040`).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|_| bytes[i] == b'\\');
        match octal.and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every file the index tracks must be present: a partial mount or a pruned copy is refused.
fn check_tree_whole(root: &Path) -> Result<(), ContextError> {
    let repo = git2::Repository::open(root).map_err(|e| ContextError::NotACheckout {
        detail: e.message().to_string(),
    })?;
    if repo.workdir() != Some(root) {
        return Err(ContextError::NotACheckout {
            detail: format!("the checkout's root is {:?}", repo.workdir()),
        });
    }
    let index = repo.index().map_err(|e| ContextError::NotACheckout {
        detail: e.message().to_string(),
    })?;
    let missing: Vec<String> = index
        .iter()
        .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
        .filter(|path| fs::symlink_metadata(root.join(path)).is_err())
        .collect();
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(ContextError::TreeNotWhole {
            count: missing.len(),
            first: first.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime - overlay overlay rw
40 22 254:0 /work/main /vagrant rw,relatime - ext4 /dev/vda rw
41 22 254:0 /srv/my\\040dir /mnt/my\\040dir rw - ext4 /dev/vda rw
";

    #[test]
    fn finds_mount_points() {
        assert!(is_mount_point(MOUNTINFO, Path::new("/vagrant")));
        assert!(is_mount_point(MOUNTINFO, Path::new("/mnt/my dir")));
        assert!(!is_mount_point(MOUNTINFO, Path::new("/vagrant/scripts")));
        assert!(!is_mount_point(MOUNTINFO, Path::new("/home/vagrant")));
    }

    #[test]
    fn unescapes_octal_and_keeps_stray_backslashes() {
        assert_eq!(unescape_mountinfo(r"a\040b\011c"), "a b\tc");
        assert_eq!(unescape_mountinfo(r"a\x"), r"a\x");
        assert_eq!(unescape_mountinfo(r"end\04"), r"end\04");
    }
}
