//! `prov pin` (on the host): pin a node's ssh host key, or forget it.

use std::path::{Path, PathBuf};

use crate::error::{Outcome, Result};
use crate::host::transport;
use crate::record::nodes::NodeName;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub node: NodeName,
    /// Pin this public key, which the host made for the node before it first booted (drops
    /// any older pin; the node is not contacted).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["new", "forget"])]
    pub key: Option<PathBuf>,
    /// The node was just created and its key is pinned on this first contact (only a node
    /// the host could not give a key: a real VM's box).
    #[arg(long, conflicts_with = "forget")]
    pub new: bool,
    /// The node is gone: drop its pin and ssh configuration.
    #[arg(long)]
    pub forget: bool,
}

pub fn run(repo: &Path, args: Args) -> Result<Outcome> {
    let node = &args.node;
    super::declared(repo, node)?;
    if args.forget {
        transport::unpin(repo, node)?;
        return Ok(Outcome::Held);
    }
    let fingerprint = match &args.key {
        Some(key) => transport::pin_key(repo, node, key)?,
        None => transport::pin(repo, node, args.new)?,
    };
    eprintln!("prov: node {node}'s ssh host key is pinned: {fingerprint}");
    Ok(Outcome::Held)
}
