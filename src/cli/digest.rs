//! `prov digest`: a file's sha256 (or stdin's), streamed as prov hashes build logs.

use std::fs::File;
use std::path::PathBuf;

use anyhow::Context;

use crate::error::{Outcome, Result};
use crate::record::digest::sha256_reader;

#[derive(clap::Args)]
pub struct Args {
    pub file: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<Outcome> {
    let (hex, bytes) = match &args.file {
        Some(path) => {
            sha256_reader(File::open(path).with_context(|| format!("opening {}", path.display()))?)?
        }
        None => sha256_reader(std::io::stdin().lock())?,
    };
    println!("{hex}  {bytes}");
    Ok(Outcome::Held)
}
