//! The node list, `nodes.json`, shared with the Vagrantfile so both agree on names and ports.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::model::{NodeSpec, NodesFile};

pub const NODES_FILE: &str = "nodes.json";

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
            crate::model::Flavour::Trixie
        );
        assert_eq!(file.default_node().name, "main");
    }
}
