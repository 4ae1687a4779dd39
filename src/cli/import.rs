//! `prov import` (on the host): bring a node's new records into the checkout's
//! `provenance/<node>/`, each proven first.

use std::path::Path;

use crate::error::{Outcome, Result};
use crate::host::import::{self, Imported};
use crate::host::state::HostState;
use crate::host::transport::Transport;
use crate::record::nodes::NodeName;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub node: NodeName,
}

pub fn run(repo: &Path, args: Args) -> Result<Outcome> {
    super::declared(repo, &args.node)?;
    let state = HostState::for_checkout(repo)?;
    let transport = Transport::connect(repo, &args.node)?.bounded(import::IMPORT_TIME);
    report(&args.node, &import::import(repo, &state, &transport)?);
    Ok(Outcome::Held)
}

/// One line on stderr when records came in.
pub fn report(node: &NodeName, imported: &Imported) {
    if !imported.build_ids.is_empty() {
        eprintln!(
            "prov: imported {} record(s) of node {node} after checking them: {}",
            imported.build_ids.len(),
            imported.build_ids.join(", ")
        );
    }
}
