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

/// One line on stderr when records came in: each build id, or the first and the last of many.
pub fn report(node: &NodeName, imported: &Imported) {
    if !imported.build_ids.is_empty() {
        eprintln!(
            "prov: imported {} record(s) of node {node} after checking them: {}",
            imported.build_ids.len(),
            named(&imported.build_ids)
        );
    }
}

fn named(ids: &[String]) -> String {
    match ids {
        [first, .., last] if ids.len() > 3 => format!("{first} … {last}"),
        _ => ids.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::named;

    #[test]
    fn a_few_records_are_each_named_and_many_by_the_first_and_the_last() {
        let ids = |n: usize| (1..=n).map(|i| format!("b{i}")).collect::<Vec<_>>();
        assert_eq!(named(&ids(3)), "b1, b2, b3");
        assert_eq!(named(&ids(990)), "b1 … b990");
    }
}
