//! `prov vendor-archives` (on the host): copy the crate archives Cargo.lock pins from cargo's
//! cache into .cache/crates, against which `prov build` proves the vendored crates.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::error::{Outcome, Result};
use crate::record::vendor::{collect_archives, ARCHIVES};

#[derive(clap::Args)]
pub struct Args {
    /// cargo's archive cache (default: $CARGO_HOME/registry/cache, or ~/.cargo/...).
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

pub fn run(repo: &Path, args: Args) -> Result<Outcome> {
    let cache = match args.cache {
        Some(cache) => cache,
        None => std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .context("neither CARGO_HOME nor HOME is set: pass --cache")?
            .join("registry/cache"),
    };
    let copied = collect_archives(&repo.join("Cargo.lock"), &cache, &repo.join(ARCHIVES))?;
    println!("prov: {copied} crate archive(s) in {ARCHIVES}");
    Ok(Outcome::Held)
}
