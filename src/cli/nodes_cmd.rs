//! `prov nodes`: the nodes nodes.json declares, or one of them checked, or its port or flavour.

use std::path::Path;

use crate::error::{Outcome, Result};
use crate::record::nodes::{self, NodeName};

#[derive(clap::Args)]
pub struct Args {
    /// Fail with the list of nodes unless NAME is one of them.
    #[arg(long, value_name = "NAME")]
    pub check: Option<NodeName>,
    /// Print the host port forwarded to NAME's api.
    #[arg(long, value_name = "NAME", conflicts_with = "check")]
    pub port: Option<NodeName>,
    /// Print NAME's flavour (its Docker stack: bookworm or trixie).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["check", "port"])]
    pub flavour: Option<NodeName>,
}

pub fn run(repo: &Path, args: Args) -> Result<Outcome> {
    let file = nodes::load(repo)?;
    if let Some(name) = &args.check {
        file.get(name)?;
    } else if let Some(name) = &args.port {
        println!("{}", file.get(name)?.api_port);
    } else if let Some(name) = &args.flavour {
        println!("{}", file.get(name)?.flavour);
    } else {
        for node in &file.nodes {
            println!("{}", node.name);
        }
    }
    Ok(Outcome::Held)
}
