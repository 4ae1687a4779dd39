//! `prov reproduce` (on the host): rebuild another node's recorded build on a BuildKit node,
//! from scratch, compare the images, and sign the verdict.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;

use crate::error::{Outcome, Result};
use crate::host::diff::Side;
use crate::host::reproduce;
use crate::host::state::HostState;
use crate::record::nodes::{self, NodeName};
use crate::record::reproduction::Reproduction;
use crate::record::store::Store;
use crate::record::text::{printable, short_id as short};

#[derive(clap::Args)]
pub struct Args {
    /// The node that rebuilds (a trixie node other than the one that built).
    #[arg(long)]
    pub node: NodeName,
    /// The build to reproduce: NODE or NODE:BUILD (a build id or `latest`).
    #[arg(long)]
    pub of: Side,
    #[arg(long)]
    pub json: bool,
}

pub fn run(repo: &Path, args: Args) -> Result<Outcome> {
    let file = nodes::load(repo)?;
    file.get(&args.node)?;
    file.get(&args.of.node)?;
    let of = Store::new(&repo.join("provenance"), &args.of.node)
        .resolve(&args.of.build)
        .with_context(|| format!("reading {}:{}", args.of.node, args.of.build))?;
    let state = HostState::for_checkout(repo)?;
    let (verdict, path) = reproduce::reproduce(repo, &state, &args.node, &of)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&verdict).expect("a verdict serializes")
        );
    } else {
        print!("{}", render_reproduction(&verdict));
        println!("signed verdict: {}", path.display());
    }
    // A reproduction: the same source gave the same image.
    Ok(if verdict.identical && verdict.same_source {
        Outcome::Held
    } else {
        Outcome::Failed
    })
}

/// A verdict of `prov reproduce`, for people.
pub fn render_reproduction(r: &Reproduction) -> String {
    let mut out = format!(
        "{}:{} rebuilt on {} ({} .. {}): ",
        r.of_node,
        r.of_build,
        r.node,
        r.rebuilt.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        r.rebuilt.finished_at.format("%H:%M:%S")
    );
    if !r.same_source {
        let _ = writeln!(
            out,
            "other source\n  built from tree {}, rebuilt from tree {}",
            r.of_source.tree, r.rebuilt.git.tree
        );
    }
    match &r.first_difference {
        None => {
            let _ = writeln!(
                out,
                "identical
  image {}",
                r.of_image
            );
        }
        Some(d) => {
            let _ = writeln!(
                out,
                "DIFFERENT
  image {} there, {} here",
                short(&r.of_image),
                short(&r.rebuilt.image.id)
            );
            let side = |l: &Option<String>| l.as_deref().map_or("(none)", short).to_string();
            let what = if d.path.is_some() {
                "first layer whose files differ"
            } else {
                "first differing layer"
            };
            let _ = writeln!(
                out,
                "  {what} #{} (from the bottom): {} there, {} here",
                d.layer + 1,
                side(&d.layer_a),
                side(&d.layer_b)
            );
            let _ = writeln!(
                out,
                "  first differing file: {}",
                d.path
                    .as_deref()
                    .map_or("(none: only removals or metadata differ)".into(), |p| {
                        format!("/{}", printable(p))
                    })
            );
        }
    }
    out
}
