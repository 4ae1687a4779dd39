//! The node list, `nodes.json`, shared with the Vagrantfile so both agree on names and ports.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use serde::{Deserialize, Serialize};

pub const NODES_FILE: &str = "nodes.json";

/// Where Vagrant mounts the repository inside every node.
pub const NODE_MOUNT: &str = "/vagrant";

/// Node names are used in paths, hostnames and shell commands: keep them plain.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

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
    for node in &nodes.nodes {
        if !is_valid_name(&node.name) {
            bail!(
                "{} declares node {:?}: names may use only A-Z a-z 0-9 _ -",
                path.display(),
                node.name
            );
        }
    }
    Ok(nodes)
}

impl NodesFile {
    pub fn names(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    /// Looks a node up by name; the error lists the declared nodes.
    pub fn get(&self, name: &str) -> Result<&NodeSpec> {
        if !is_valid_name(name) {
            bail!("invalid node name {name:?}: use only A-Z a-z 0-9 _ -");
        }
        match self.nodes.iter().find(|n| n.name == name) {
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
}

/// A node as declared in `nodes.json` (shared with the Vagrantfile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: String,
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

impl std::fmt::Display for Flavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_restricted() {
        assert!(is_valid_name("worker1"));
        assert!(is_valid_name("a_b-C9"));
        for bad in ["", "a b", "a;rm", "../x", "a/b", "$(x)", "é"] {
            assert!(!is_valid_name(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn unknown_node_lists_the_nodes() {
        let file: NodesFile = serde_json::from_str(
            r#"{"api_guest_port":8080,"nodes":[{"name":"main","api_port":1,"flavour":"bookworm"},
                {"name":"w","api_port":2,"flavour":"trixie"}]}"#,
        )
        .unwrap();
        let err = file.get("nope").unwrap_err().to_string();
        assert!(err.contains("main, w"), "{err}");
        assert_eq!(file.get("w").unwrap().api_port, 2);
        assert_eq!(
            file.get("w").unwrap().flavour,
            crate::record::nodes::Flavour::Trixie
        );
        assert_eq!(file.default_node().name, "main");
    }
}
