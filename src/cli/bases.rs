//! `prov bases` (on the host): give a node exactly the host's base images, checked by layers and
//! configuration after loading.

use std::path::Path;

use crate::error::{Outcome, Result};
use crate::host::bases;
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
    let wrong = bases::ship(repo, &Transport::connect(repo, node)?)?;
    if !wrong.is_empty() {
        eprintln!(
            "prov: node {node}'s engine did not hold the host's bases ({}): loaded them; it \
             holds exactly them now",
            wrong.join("; ")
        );
    }
    Ok(Outcome::Held)
}
