//! `prov sync` (on the host): refresh a node's export of the checkout, host to node only.

use std::path::Path;

use crate::error::{Outcome, Result};
use crate::host::state::HostState;
use crate::host::sync;
use crate::host::transport::Transport;
use crate::record::nodes::NodeName;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub node: NodeName,
}

pub fn run(repo: &Path, args: Args) -> Result<Outcome> {
    let node = &args.node;
    super::declared(repo, node)?;
    let transport = Transport::connect(repo, node)?;
    let synced = sync::sync(repo, &HostState::for_checkout(repo)?, &transport)?;
    if synced.sent + synced.removed > 0 {
        eprintln!(
            "prov: node {node}'s export refreshed: {} entries sent, {} removed",
            synced.sent, synced.removed
        );
    }
    Ok(Outcome::Held)
}
