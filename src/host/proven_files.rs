//! What the host already proved of the files a node's stack executes: each file's sha256, kept
//! under the file's identity on the node (size, device, inode, modification and change times),
//! so that verify has the node hash only the files it has not proven (a database's libraries
//! alone are 40 MB, most of a verify's time on the node).
//!
//! Trusting an identity is trusting the change time: any write to a file, or to its metadata, or
//! a file put in its place, sets it to the clock's now, and only a clock set back could give a
//! changed file an old one. So the host keeps proven files only for nodes that cannot set their
//! clock: unprivileged LXC nodes, whose clock is the host's (measured by
//! `tests/e2e/node/48-escape.bats`). On any other provider (a VM's root, a privileged container)
//! every executed file is hashed on every verify.
//!
//! Written by `prov verify --attest`, which already writes the host's state (the summary it
//! signs): each file of that run whose bytes are the image's, as the host listed it. A plain
//! verify reads it and writes nothing. Host-only state, `proven-files/<node>.json`: a table
//! that is missing, unreadable or of another node costs time, never a verdict.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::host::state::HostState;
use crate::record::bounded;
use crate::record::digest::is_sha256_hex;
use crate::record::nodes::NodeName;
use crate::record::store::write_atomic;

/// The only provider whose nodes cannot set the clock their files' change times come from.
const CLOCK_KEEPING_PROVIDER: &str = "lxc";

/// The proven files of one node: sha256 by identity.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvenFiles {
    node: String,
    files: BTreeMap<String, String>,
}

impl ProvenFiles {
    /// The table of `node`, when its provider keeps its clock from it; otherwise none.
    pub fn load(state: &HostState, node: &NodeName) -> ProvenFiles {
        if !clock_is_the_hosts(state, node) {
            return ProvenFiles::default();
        }
        let read = bounded::read(&path(state, node)).ok().flatten();
        read.and_then(|bytes| serde_json::from_slice::<ProvenFiles>(&bytes).ok())
            .filter(|table| {
                table.node == node.as_str()
                    && table
                        .files
                        .iter()
                        .all(|(identity, sha)| is_identity(identity) && is_sha256_hex(sha))
            })
            .unwrap_or_default()
    }

    /// Replaces `node`'s table with `files` (identity, sha256), when its provider keeps its
    /// clock from it; otherwise removes any table it has.
    pub fn write(state: &HostState, node: &NodeName, files: &[(String, String)]) -> Result<()> {
        let path = path(state, node);
        if !clock_is_the_hosts(state, node) {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("removing {}", path.display()))
                }
                _ => Ok(()),
            };
        }
        let table = ProvenFiles {
            node: node.to_string(),
            files: files.iter().cloned().collect(),
        };
        let dir = path.parent().expect("the table is in a folder");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_atomic(&path, &serde_json::to_vec_pretty(&table)?)?;
        Ok(())
    }

    /// The sha256 the host proved for the file with this identity.
    pub fn sha256_of(&self, identity: &str) -> Option<&str> {
        self.files.get(identity).map(String::as_str)
    }

    /// Every identity proven, for the node to skip.
    pub fn identities(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// A file's identity as the node prints it (`find -printf '%s %D %i %T@ %C@'`): size, device,
/// inode, then the modification and change times in seconds with their fraction.
pub fn is_identity(text: &str) -> bool {
    let fields: Vec<&str> = text.split(' ').collect();
    let number = |f: &str| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit());
    let time = |f: &str| {
        f.split_once('.')
            .is_some_and(|(s, frac)| number(s) && number(frac))
    };
    fields.len() == 5
        && fields[..3].iter().all(|f| number(f))
        && fields[3..].iter().all(|f| time(f))
}

fn path(state: &HostState, node: &NodeName) -> PathBuf {
    state
        .dir()
        .join("proven-files")
        .join(format!("{node}.json"))
}

/// Whether Vagrant's machine data (host-only state) says the node was made by the LXC provider,
/// and by no other.
fn clock_is_the_hosts(state: &HostState, node: &NodeName) -> bool {
    let machine = state.vagrant_dir().join("machines").join(node.as_str());
    let Ok(providers) = std::fs::read_dir(&machine) else {
        return false;
    };
    let made: Vec<String> = providers
        .flatten()
        .filter(|p| p.path().join("id").is_file())
        .map(|p| p.file_name().to_string_lossy().into_owned())
        .collect();
    made == [CLOCK_KEEPING_PROVIDER]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "16384 47 1234 1796681490.9702310000 1796681490.9702310000";

    fn made_with(dir: &std::path::Path, node: &str, providers: &[&str]) {
        for p in providers {
            let machine = dir.join("vagrant/machines").join(node).join(p);
            std::fs::create_dir_all(&machine).unwrap();
            std::fs::write(machine.join("id"), "x").unwrap();
        }
    }

    fn node(name: &str) -> NodeName {
        name.parse().unwrap()
    }

    #[test]
    fn only_an_lxc_node_keeps_its_proven_files() {
        let dir = tempfile::tempdir().unwrap();
        let state = HostState::at(dir.path());
        made_with(dir.path(), "lxc1", &["lxc"]);
        made_with(dir.path(), "vm1", &["virtualbox"]);
        made_with(dir.path(), "both", &["lxc", "docker"]);
        let sha = "ab".repeat(32);
        for name in ["lxc1", "vm1", "both", "unmade"] {
            ProvenFiles::write(&state, &node(name), &[(ID.into(), sha.clone())]).unwrap();
            let kept = ProvenFiles::load(&state, &node(name));
            assert_eq!(kept.sha256_of(ID).is_some(), name == "lxc1", "{name}");
        }
        // A node re-made by another provider loses the table it had.
        made_with(dir.path(), "lxc1", &["docker"]);
        ProvenFiles::write(&state, &node("lxc1"), &[]).unwrap();
        assert!(!path(&state, &node("lxc1")).exists());
    }

    #[test]
    fn a_table_of_another_node_or_with_a_bad_entry_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let state = HostState::at(dir.path());
        made_with(dir.path(), "a", &["lxc"]);
        made_with(dir.path(), "b", &["lxc"]);
        let sha = "ab".repeat(32);
        ProvenFiles::write(&state, &node("a"), &[(ID.into(), sha.clone())]).unwrap();
        std::fs::copy(path(&state, &node("a")), path(&state, &node("b"))).unwrap();
        assert!(ProvenFiles::load(&state, &node("b")).is_empty());
        ProvenFiles::write(&state, &node("a"), &[("1 2 3".into(), sha)]).unwrap();
        assert!(ProvenFiles::load(&state, &node("a")).is_empty());
        std::fs::write(path(&state, &node("a")), "{").unwrap();
        assert!(ProvenFiles::load(&state, &node("a")).is_empty());
    }

    #[test]
    fn an_identity_is_five_numbers_the_times_with_a_fraction() {
        assert!(is_identity(ID));
        for bad in [
            "",
            "1 2 3 4.0",
            "1 2 3 4 5.0",
            "1 2 3 4.0 5.0 6",
            "1 2 x 4.0 5.0",
            "1  2 3 4.0 5.0",
            "1 2 3 4. 5.0",
        ] {
            assert!(!is_identity(bad), "{bad:?}");
        }
    }
}
