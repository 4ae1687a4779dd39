//! `prov exec` (on the host): run a command on a node over the node transport, its output shown
//! line by line with control sequences escaped, within a time and an output bound.

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;

use super::Exit;
use crate::error::Result;
use crate::host::transport::Transport;
use crate::record::nodes::NodeName;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub node: NodeName,
    /// Seconds the command may take (a build takes minutes).
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub timeout: u64,
    /// Bytes the command may print.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    pub max_output: u64,
    #[arg(trailing_var_arg = true, required = true)]
    pub command: Vec<String>,
}

/// Ends with the remote command's own status, which the node's scripts decide.
pub fn run(repo: &Path, args: Args) -> Result<Exit> {
    let node = &args.node;
    super::declared(repo, node)?;
    let status = Transport::connect(repo, node)?
        .bounded(Duration::from_secs(args.timeout))
        .exec(&args.command, args.max_output)?;
    match status.code() {
        Some(code) => Ok(Exit::Remote(u8::try_from(code).unwrap_or(1))),
        None => Err(anyhow!("the remote command on {node} was killed by a signal").into()),
    }
}
