//! The nodes: their names, and the node list, `nodes.json`, shared with the Vagrantfile so both
//! agree on names and ports.

use std::fmt;
use std::fs;
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub const NODES_FILE: &str = "nodes.json";

/// Where Vagrant mounts the repository inside every node.
pub const NODE_MOUNT: &str = "/vagrant";

/// A node's name. Names are used in paths, hostnames and shell commands, so they are kept plain
/// (A-Z a-z 0-9 _ -); a value of this type has been checked, where it came in (the command line,
/// nodes.json, a record's path).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeName(String);

/// Quoted like the string it is, in messages that show a name with `{:?}`.
impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl NodeName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeName {
    type Error = String;

    fn try_from(name: String) -> Result<NodeName, String> {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if plain {
            Ok(NodeName(name))
        } else {
            Err(format!(
                "invalid node name {name:?}: use only A-Z a-z 0-9 _ - (the names are in {NODES_FILE})"
            ))
        }
    }
}

impl FromStr for NodeName {
    type Err = String;

    fn from_str(name: &str) -> Result<NodeName, String> {
        NodeName::try_from(name.to_string())
    }
}

impl From<NodeName> for String {
    fn from(name: NodeName) -> String {
        name.0
    }
}

impl std::ops::Deref for NodeName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// A checked name is a plain path component and a plain argument.
impl AsRef<Path> for NodeName {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl AsRef<std::ffi::OsStr> for NodeName {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for NodeName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for NodeName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A node as declared in `nodes.json` (shared with the Vagrantfile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: NodeName,
    /// Host port (on 127.0.0.1) forwarded to the node's api port.
    pub api_port: u16,
    /// Which Docker stack the node runs.
    pub flavour: Flavour,
}

/// A node's Docker stack, from Debian's own packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// Debian 12: Engine 20.10, Compose v1, the legacy builder, the classic image store.
    Bookworm,
    /// Debian 13: Engine 26, the Compose v2 plugin, BuildKit through buildx, the containerd
    /// image store.
    Trixie,
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavour::Bookworm => "bookworm",
            Flavour::Trixie => "trixie",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodesFile {
    pub api_guest_port: u16,
    pub nodes: Vec<NodeSpec>,
}

/// Reads nodes.json; every name in it is checked as it is parsed.
pub fn load(repo: &Path) -> Result<NodesFile> {
    let path = repo.join(NODES_FILE);
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {}: run prov from the project's root folder",
            path.display()
        )
    })?;
    let nodes: NodesFile =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if nodes.nodes.is_empty() {
        bail!("{} declares no node", path.display());
    }
    Ok(nodes)
}

impl NodesFile {
    pub fn names(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    /// Looks a node up by name; the error lists the declared nodes.
    pub fn get(&self, name: &NodeName) -> Result<&NodeSpec> {
        match self.nodes.iter().find(|n| &n.name == name) {
            Some(node) => Ok(node),
            None => bail!(
                "unknown node {name:?}; the nodes are: {} (from {NODES_FILE})",
                self.names().join(", ")
            ),
        }
    }

    /// The first node is the default one.
    pub fn default_node(&self) -> &NodeSpec {
        &self.nodes[0]
    }

    /// The nodes a command takes: every node with `all`, else those named, else the default.
    pub fn select(&self, names: &[NodeName], all: bool) -> Result<Vec<NodeSpec>> {
        if all {
            Ok(self.nodes.clone())
        } else if names.is_empty() {
            Ok(vec![self.default_node().clone()])
        } else {
            names.iter().map(|n| self.get(n).cloned()).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_restricted() {
        assert!("worker1".parse::<NodeName>().is_ok());
        assert!("a_b-C9".parse::<NodeName>().is_ok());
        for bad in ["", "a b", "a;rm", "../x", "a/b", "$(x)", "é"] {
            assert!(bad.parse::<NodeName>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_bad_name_in_nodes_json_is_refused_as_it_is_read() {
        let parsed: Result<NodesFile, _> = serde_json::from_str(
            r#"{"api_guest_port":8080,"nodes":[{"name":"a;rm","api_port":1,"flavour":"trixie"}]}"#,
        );
        let err = parsed.unwrap_err().to_string();
        assert!(err.contains("invalid node name \"a;rm\""), "{err}");
    }

    #[test]
    fn unknown_node_lists_the_nodes() {
        let file: NodesFile = serde_json::from_str(
            r#"{"api_guest_port":8080,"nodes":[{"name":"main","api_port":1,"flavour":"bookworm"},
                {"name":"w","api_port":2,"flavour":"trixie"}]}"#,
        )
        .unwrap();
        let name = |s: &str| s.parse::<NodeName>().unwrap();
        let err = file.get(&name("nope")).unwrap_err().to_string();
        assert!(err.contains("main, w"), "{err}");
        assert_eq!(file.get(&name("w")).unwrap().api_port, 2);
        assert_eq!(file.get(&name("w")).unwrap().flavour, Flavour::Trixie);
        assert_eq!(file.default_node().name, "main");
    }
}
