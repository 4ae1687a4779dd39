//! `prov attest` (on the host): import the node's new records, then sign one, after checking it
//! against the node's engine and its build log.

use std::path::Path;

use anyhow::anyhow;

use crate::error::{Outcome, Result};
use crate::host::state::HostState;
use crate::host::transport::Transport;
use crate::host::{attest, import};
use crate::record::nodes::NodeName;
use crate::record::store::Store;

#[derive(clap::Args)]
pub struct Args {
    /// The node; defaults to the first one in nodes.json.
    #[arg(long)]
    pub node: Option<NodeName>,
    /// A build id, or `latest`.
    #[arg(default_value = "latest")]
    pub build: String,
}

pub fn run(repo: &Path, args: Args) -> Result<Outcome> {
    let node = super::node_or_default(repo, args.node.as_ref())?;
    let state = HostState::for_checkout(repo)?;
    let transport = Transport::connect(repo, &node)?.bounded(import::IMPORT_TIME);
    super::import::report(&node, &import::import(repo, &state, &transport)?);
    let Some(key) = attest::load_signing_key(&state)? else {
        return Err(anyhow!(
            "no signing key at {}: the golden path makes it (`make demo`), or `prov key init`",
            state.private_key().display()
        )
        .into());
    };
    let store = Store::new(&repo.join("provenance"), &node);
    let stored = store.resolve(&args.build)?;
    let path = attest::attest_checked(&state, &store, &stored, &key, &transport)?;
    println!("{}", path.display());
    Ok(Outcome::Held)
}
