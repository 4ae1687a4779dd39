//! `prov rebuild` (inside a node): `prov reproduce`'s side, which rebuilds given inputs under a
//! tag of their own and records nothing.

use crate::error::{Outcome, Result};
use crate::host::reproduce::IMAGE_NAME;
use crate::node::build;
use crate::record::names::is_build_id;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub build: super::build::Args,
    /// The tag to build under (`prov reproduce` names one no build of the node's uses).
    #[arg(long, value_parser = parse_tag)]
    pub tag: String,
    /// The tree the build to reproduce is of: the node's checkout must be it.
    #[arg(long)]
    pub expect_tree: String,
}

/// Rebuilds and prints what was made, as JSON on stdout (the builder's output is on stderr).
pub fn run(args: Args) -> Result<Outcome> {
    let req = super::build::request(args.build)?;
    let rebuilt = build::rebuild(&req, &args.tag, &args.expect_tree)?;
    println!(
        "{}",
        serde_json::to_string(&rebuilt).expect("a rebuild serializes")
    );
    Ok(Outcome::Held)
}

/// `prov-reproduce:<build id>`: a tag of its own, never one the node's stack runs.
fn parse_tag(s: &str) -> Result<String, String> {
    match s.split_once(':') {
        Some((IMAGE_NAME, id)) if is_build_id(id) => Ok(s.to_string()),
        _ => Err(format!("expected {IMAGE_NAME}:<build id>, got {s:?}")),
    }
}
