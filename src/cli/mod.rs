//! The command line: one file per subcommand, each with its arguments, its handler and how it
//! prints what it found. Handlers parse and print; `host` and `node` do the work. How a run
//! ends, and so its exit code, is an [`Outcome`] or an [`Error`]: nothing else decides it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::{Error, Outcome, Result};
use crate::record::nodes::{self, NodeName};

pub mod attest;
pub mod bases;
pub mod build;
pub mod diff;
pub mod digest;
pub mod exec;
pub mod guard;
pub mod import;
pub mod key;
pub mod log;
pub mod nodes_cmd;
pub mod paint;
pub mod pin;
pub mod rebuild;
pub mod reproduce;
pub mod show;
pub mod stack;
pub mod state_dir;
pub mod sync;
pub mod tree;
pub mod vendor_archives;
pub mod verify;
pub mod watch;

#[derive(Parser)]
#[command(
    name = "prov",
    version,
    about = "Build provenance for Compose stacks on Vagrant nodes",
    after_help = exit_codes()
)]
struct Cli {
    /// The project's root folder (where nodes.json and provenance/ are).
    #[arg(long, global = true, default_value = ".")]
    repo: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the api image inside a node and record its manifest (runs inside the node).
    Build(build::BuildArgs),
    /// Check from the host that nodes run exactly their latest recorded build (read-only).
    Verify(verify::Args),
    /// Judge nodes again on every engine event that can change their verdict, until stopped: a
    /// line per change, and per drift, each with a signed summary.
    Watch(watch::Args),
    /// Show a node's build manifest.
    Show(show::Args),
    /// One line per build of a node, newest first, with the state of the hash chain.
    Log(log::Args),
    /// Compare two builds (across nodes): what must match, what may differ, and the images.
    Diff(diff::Args),
    /// Write the in-toto/SLSA attestation of a build, DSSE-signed with the project's key.
    Attest(attest::Args),
    /// Rebuild another node's recorded build on NODE, from scratch, and compare: the same image
    /// ID, or the first layer and file that differ (exit 1). The verdict is signed.
    Reproduce(reproduce::Args),
    /// The node's side of `prov reproduce`: rebuild given inputs under a tag of their own and
    /// record nothing (runs inside the node).
    Rebuild(rebuild::Args),
    /// Bring a node's new records into the checkout's provenance/<node>/, after checking each
    /// against the node's engine and build log (the host runs it after every build).
    Import(import::Args),
    /// Refresh a node's export of the checkout, host to node (the host runs it before every
    /// operation on the node).
    Sync(sync::Args),
    /// Give a node the host's base images: its engine must hold exactly them under their tags
    /// (the same layers and configuration); they are loaded when it does not, and checked again
    /// (the host runs it whenever it boots a node).
    Bases(bases::Args),
    /// Manage the project's attestation key.
    Key {
        #[command(subcommand)]
        command: key::Command,
    },
    /// Check that this process runs inside a node from /vagrant (used by every script).
    Guard(guard::Args),
    /// Print the working tree's hash (what `git add -A && git write-tree` would print) and
    /// whether it differs from HEAD, without touching the repository.
    Tree(tree::Args),
    /// Print the sha256 of a file (or stdin), streamed as prov hashes build logs.
    Digest(digest::Args),
    /// List the nodes, or check that one exists.
    Nodes(nodes_cmd::Args),
    /// Print the stack's names (Compose project, services, containers, labels) as shell
    /// assignments, for the scripts.
    Stack,
    /// Copy the crate archives Cargo.lock pins from cargo's cache into .cache/crates, against
    /// which `prov build` proves the vendored crates (the host runs it when it vendors).
    VendorArchives(vendor_archives::Args),
    /// Print the host-only state folder of this checkout (keys, ssh configuration, pinned host
    /// keys, the newest attested build per node, Vagrant's data, the nodes' exports), outside the
    /// checkout.
    StateDir,
    /// Pin a node's ssh host key (the host does it when it creates the node), or forget it.
    Pin(pin::Args),
    /// Run a command on a node over the node transport (ssh). Its output is shown line by line
    /// with control sequences escaped; it is stopped past --timeout or --max-output. prov exits
    /// with the command's own status.
    Exec(exec::Args),
}

/// The exit codes, as `prov --help` ends (the README's table is tested against the same
/// source, `Outcome`).
fn exit_codes() -> String {
    let mut text = String::from("Exit codes (prov exec: the remote command's own):\n");
    for outcome in Outcome::ALL {
        text.push_str(&format!("  {}  {}\n", outcome.code(), outcome.meaning()));
    }
    text
}

/// How a subcommand ends: with an outcome, or (`prov exec`) with the remote command's status.
pub enum Exit {
    Outcome(Outcome),
    Remote(u8),
}

impl From<Outcome> for Exit {
    fn from(outcome: Outcome) -> Exit {
        Exit::Outcome(outcome)
    }
}

/// prov's `main`: parses the command line, runs the subcommand, prints an error if there is
/// one, and exits with the code its outcome decides.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A panic is a bug in prov, never a verdict: it exits 2 ("could not check"), not 101.
    let ended = std::panic::catch_unwind(|| run(cli)).unwrap_or_else(|_| {
        Err(Error::from(anyhow::anyhow!(
            "internal error (a bug in prov; the message is above): nothing was concluded"
        )))
    });
    match ended {
        Ok(Exit::Outcome(outcome)) => outcome.exit_code(),
        Ok(Exit::Remote(code)) => ExitCode::from(code),
        Err(err) => {
            eprintln!("prov: error: {err}");
            err.outcome().exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<Exit> {
    let repo = &cli.repo;
    let outcome = match cli.command {
        Command::Build(args) => build::run(args),
        Command::Verify(args) => verify::run(repo, args),
        Command::Watch(args) => watch::run(repo, args),
        Command::Show(args) => show::run(repo, args),
        Command::Log(args) => log::run(repo, args),
        Command::Diff(args) => diff::run(repo, args),
        Command::Attest(args) => attest::run(repo, args),
        Command::Reproduce(args) => reproduce::run(repo, args),
        Command::Rebuild(args) => rebuild::run(args),
        Command::Import(args) => import::run(repo, args),
        Command::Sync(args) => sync::run(repo, args),
        Command::Bases(args) => bases::run(repo, args),
        Command::Key { command } => key::run(repo, command),
        Command::Guard(args) => guard::run(args),
        Command::Tree(args) => tree::run(args),
        Command::Digest(args) => digest::run(args),
        Command::Nodes(args) => nodes_cmd::run(repo, args),
        Command::Stack => stack::run(),
        Command::VendorArchives(args) => vendor_archives::run(repo, args),
        Command::StateDir => state_dir::run(repo),
        Command::Pin(args) => pin::run(repo, args),
        Command::Exec(args) => return exec::run(repo, args),
    }?;
    Ok(outcome.into())
}

/// A node named on the command line, checked against nodes.json, or the default one.
pub fn node_or_default(repo: &Path, node: Option<&NodeName>) -> Result<NodeName> {
    let file = nodes::load(repo)?;
    Ok(match node {
        Some(name) => file.get(name)?.name.clone(),
        None => file.default_node().name.clone(),
    })
}

/// A node named on the command line, which nodes.json must declare.
pub fn declared(repo: &Path, node: &NodeName) -> Result<()> {
    nodes::load(repo)?.get(node)?;
    Ok(())
}
