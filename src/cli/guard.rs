//! `prov guard` (inside a node): the execution-context rule every node script checks first.

use std::path::PathBuf;

use anyhow::Context;

use crate::error::{Error, Outcome, Result};
use crate::node::guard;

#[derive(clap::Args)]
pub struct Args {
    /// The script being run; its real path must be under /vagrant.
    #[arg(long)]
    pub script: Option<PathBuf>,
}

/// A refusal is a failed check (exit 1): the script was run from the wrong place.
pub fn run(args: Args) -> Result<Outcome> {
    let program = match args.script {
        Some(script) => script,
        None => std::env::current_exe().context("locating the prov binary")?,
    };
    guard::check(&program).map_err(Error::failed)?;
    Ok(Outcome::Held)
}
