//! `prov tree`: the working tree's hash, as `git add -A && git write-tree` would print it, without
//! touching the repository.

use std::path::PathBuf;

use crate::error::{Outcome, Result};
use crate::record::tree_hash;

#[derive(clap::Args)]
pub struct Args {
    #[arg(default_value = ".")]
    pub path: PathBuf,
}

pub fn run(args: Args) -> Result<Outcome> {
    let state = tree_hash::tree_state(&args.path)?;
    println!("{}{}", state.tree, if state.dirty { " dirty" } else { "" });
    Ok(Outcome::Held)
}
