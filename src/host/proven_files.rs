//! What the host already proved of a node's running stack, at its last `prov verify --attest`:
//! each file the stack executes, by its identity on the node (size, device, inode, modification
//! and change times), with the sha256 it held, which was its image's; and the stack's containers
//! as the engine named them then (ID, main process, entrypoint, environment). A later verify
//! hands both to the node, which then neither hashes those files again (a database's libraries
//! alone are 40 MB, most of a verify's time on the node) nor asks its engine who the containers
//! are (`jq` alone takes 20 ms on Debian 12). The host holds what the node listed to its own
//! request's answer, and has the node list again without them when a container no longer
//! matches.
//!
//! Trusting an identity is trusting the change time: any write to a file, or to its metadata, or
//! a file put in its place, sets it to the clock's now, and only a clock set back could give a
//! changed file an old one. So the host keeps this only for nodes that cannot set their clock:
//! unprivileged LXC nodes, whose clock is the host's (measured by
//! `tests/e2e/node/48-escape.bats`). On any other provider (a VM's root, a privileged container)
//! every executed file is hashed on every verify.
//!
//! Host-only state, `proven-files/<node>.json`, written by `prov verify --attest` (which already
//! writes the host's state: the summary it signs) and read by every verify: a table that is
//! missing, unreadable or of another node costs time, never a verdict.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::host::state::HostState;
use crate::record::bounded;
use crate::record::digest::is_sha256_hex;
use crate::record::engine::ContainerInspect;
use crate::record::nodes::NodeName;
use crate::record::store::write_atomic;

/// The only provider whose nodes cannot set the clock their files' change times come from.
const CLOCK_KEEPING_PROVIDER: &str = "lxc";

/// What the host proved of one node's stack.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvenFiles {
    node: Option<NodeName>,
    /// sha256 by identity.
    files: BTreeMap<String, String>,
    #[serde(default)]
    containers: Vec<NamedContainer>,
}

/// A stack container as the engine named it, in the form the node's listing reads (its
/// entrypoint and environment as JSON, as the engine answered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedContainer {
    pub name: String,
    pub id: String,
    pub pid: i64,
    pub entry: String,
    pub env: String,
}

impl NamedContainer {
    pub fn of(c: &ContainerInspect) -> NamedContainer {
        NamedContainer {
            name: c.name.clone(),
            id: c.id.clone(),
            pid: c.state.pid,
            entry: c.raw["Path"].to_string(),
            env: c.raw["Config"]["Env"].to_string(),
        }
    }

    /// One line of the listing's input: `ID TAB name TAB main process TAB entrypoint TAB
    /// environment`.
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}",
            self.id, self.name, self.pid, self.entry, self.env
        )
    }

    /// No field can break the line it is written on.
    fn is_sane(&self) -> bool {
        let plain = |s: &str| !s.is_empty() && !s.contains(['\t', '\n', '\r']);
        self.id.len() == 64
            && self.id.bytes().all(|b| b.is_ascii_hexdigit())
            && self.pid > 0
            && [&self.name, &self.entry, &self.env]
                .iter()
                .all(|f| plain(f))
    }
}

impl ProvenFiles {
    pub fn new(
        node: &NodeName,
        files: Vec<(String, String)>,
        containers: Vec<NamedContainer>,
    ) -> ProvenFiles {
        ProvenFiles {
            node: Some(node.clone()),
            files: files.into_iter().collect(),
            containers,
        }
    }

    /// What the host proved of `node`, when its provider keeps its clock from it; otherwise
    /// nothing.
    pub fn load(state: &HostState, node: &NodeName) -> ProvenFiles {
        if !clock_is_the_hosts(state, node) {
            return ProvenFiles::default();
        }
        let read = bounded::read(&path(state, node)).ok().flatten();
        read.and_then(|bytes| serde_json::from_slice::<ProvenFiles>(&bytes).ok())
            .filter(|table| {
                table.node.as_ref() == Some(node)
                    && table
                        .files
                        .iter()
                        .all(|(identity, sha)| is_identity(identity) && is_sha256_hex(sha))
                    && table.containers.iter().all(NamedContainer::is_sane)
            })
            .unwrap_or_default()
    }

    /// Replaces its node's table with this one, when its provider keeps its clock from it;
    /// otherwise removes any table it has.
    pub fn write(&self, state: &HostState) -> Result<()> {
        let Some(node) = &self.node else {
            bail!("a table of proven files names no node (a bug in prov)");
        };
        let path = path(state, node);
        if !clock_is_the_hosts(state, node) {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("removing {}", path.display()))
                }
                _ => Ok(()),
            };
        }
        let dir = path.parent().expect("the table is in a folder");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_atomic(&path, &serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    /// The stack's containers as the engine named them.
    pub fn named(&self) -> &[NamedContainer] {
        &self.containers
    }

    /// The files alone: the node asks its engine who the containers are.
    pub fn files_only(&self) -> ProvenFiles {
        ProvenFiles {
            containers: Vec::new(),
            ..self.clone()
        }
    }

    /// The sha256 the host proved for the file with this identity.
    pub fn sha256_of(&self, identity: &str) -> Option<&str> {
        self.files.get(identity).map(String::as_str)
    }

    /// Every identity proven, for the node to skip.
    pub fn identities(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
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

    /// Host state whose Vagrant data says each node was made by the providers given.
    fn state_with(made: &[(&str, &[&str])]) -> (tempfile::TempDir, HostState) {
        let dir = tempfile::tempdir().unwrap();
        for (node, providers) in made {
            made_with(dir.path(), node, providers);
        }
        let state = HostState::at(dir.path());
        (dir, state)
    }

    fn node(name: &str) -> NodeName {
        name.parse().unwrap()
    }

    fn container() -> NamedContainer {
        NamedContainer {
            name: "/prov-db".into(),
            id: "ab".repeat(32),
            pid: 2122,
            entry: r#""prov-postgres-entrypoint""#.into(),
            env: r#"["PATH=/usr/local/bin:/usr/bin"]"#.into(),
        }
    }

    fn table(name: &str) -> ProvenFiles {
        ProvenFiles::new(
            &node(name),
            vec![(ID.into(), "ab".repeat(32))],
            vec![container()],
        )
    }

    #[test]
    fn only_an_lxc_node_keeps_its_proven_files() {
        let (dir, state) = state_with(&[
            ("lxc1", &["lxc"]),
            ("vm1", &["virtualbox"]),
            ("both", &["lxc", "docker"]),
        ]);
        for name in ["lxc1", "vm1", "both", "unmade"] {
            table(name).write(&state).unwrap();
            let kept = ProvenFiles::load(&state, &node(name));
            assert_eq!(kept.sha256_of(ID).is_some(), name == "lxc1", "{name}");
            assert_eq!(kept.named().len(), usize::from(name == "lxc1"), "{name}");
        }
        // A node re-made by another provider loses the table it had.
        made_with(dir.path(), "lxc1", &["docker"]);
        table("lxc1").write(&state).unwrap();
        assert!(!path(&state, &node("lxc1")).exists());
    }

    #[test]
    fn a_table_of_another_node_or_with_a_bad_entry_is_none() {
        let (_dir, state) = state_with(&[("a", &["lxc"]), ("b", &["lxc"])]);
        let none = |name| ProvenFiles::load(&state, &node(name)) == ProvenFiles::default();
        table("a").write(&state).unwrap();
        assert!(!none("a"));
        std::fs::copy(path(&state, &node("a")), path(&state, &node("b"))).unwrap();
        assert!(none("b"));
        let sha = "ab".repeat(32);
        ProvenFiles::new(&node("a"), vec![("1 2 3".into(), sha.clone())], vec![])
            .write(&state)
            .unwrap();
        assert!(none("a"));
        for bad in [
            NamedContainer {
                entry: "\"a\tb\"".into(),
                ..container()
            },
            NamedContainer {
                id: "x".repeat(64),
                ..container()
            },
            NamedContainer {
                pid: 0,
                ..container()
            },
        ] {
            ProvenFiles::new(&node("a"), vec![], vec![bad])
                .write(&state)
                .unwrap();
            assert!(none("a"));
        }
        std::fs::write(path(&state, &node("a")), "{").unwrap();
        assert!(none("a"));
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
