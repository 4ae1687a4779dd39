//! prov: build provenance for Docker Compose stacks on Vagrant nodes.
//!
//! Exit codes: 0 ok; 1 a check failed (or the build failed, or the context was refused);
//! 2 something could not be checked or run (bad input, node unreachable, no manifest, a stall
//! past `--timeout`, or a panic, which is a bug in prov).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use prov::exit::{Failure, EXIT_COULD_NOT_CHECK};

#[derive(Parser)]
#[command(
    name = "prov",
    version,
    about = "Build provenance for Compose stacks on Vagrant nodes"
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
    Build(prov::cli::BuildArgs),
    /// Check from the host that nodes run exactly their latest recorded build (read-only).
    Verify(prov::cli::VerifyArgs),
    /// Show a node's build manifest.
    Show(prov::cli::ShowArgs),
    /// One line per build of a node, newest first, with the state of the hash chain.
    Log(prov::cli::LogArgs),
    /// Compare two builds (across nodes): what must match, what may differ, and the images.
    Diff(prov::cli::DiffArgs),
    /// Write the in-toto/SLSA attestation of a build, DSSE-signed with the project's key.
    Attest(prov::cli::AttestArgs),
    /// Rebuild another node's recorded build on NODE, from scratch, and compare: the same image
    /// ID, or the first layer and file that differ (exit 1). The verdict is signed.
    Reproduce(prov::cli::ReproduceArgs),
    /// The node's side of `prov reproduce`: rebuild given inputs under a tag of their own and
    /// record nothing (runs inside the node).
    Rebuild(prov::cli::RebuildArgs),
    /// Bring a node's new records into the checkout's provenance/<node>/, after checking each
    /// against the node's engine and build log (the host runs it after every build).
    Import {
        #[arg(long)]
        node: String,
    },
    /// Refresh a node's export of the checkout, host to node (the host runs it before every
    /// operation on the node).
    Sync {
        #[arg(long)]
        node: String,
    },
    /// Give a node the host's base images: its engine must hold exactly them under their tags
    /// (the same layers and configuration); they are loaded when it does not, and checked again
    /// (the host runs it whenever it boots a node).
    Bases {
        #[arg(long)]
        node: String,
    },
    /// Manage the project's attestation key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Check that this process runs inside a node from /vagrant (used by every script).
    Context {
        /// The script being run; its real path must be under /vagrant.
        #[arg(long)]
        script: Option<PathBuf>,
    },
    /// Print the working tree's hash (what `git add -A && git write-tree` would print) and
    /// whether it differs from HEAD, without touching the repository.
    Tree {
        #[arg(default_value = ".")]
        path: PathBuf,
    },
    /// Print the sha256 of a file (or stdin), streamed as prov hashes build logs.
    Digest { file: Option<PathBuf> },
    /// List the nodes, or check that one exists.
    Nodes {
        /// Fail with the list of nodes unless NAME is one of them.
        #[arg(long, value_name = "NAME")]
        check: Option<String>,
        /// Print the host port forwarded to NAME's api.
        #[arg(long, value_name = "NAME", conflicts_with = "check")]
        port: Option<String>,
        /// Print NAME's flavour (its Docker stack: bookworm or trixie).
        #[arg(long, value_name = "NAME", conflicts_with_all = ["check", "port"])]
        flavour: Option<String>,
    },
    /// Print the stack's names (Compose project, services, containers, labels) as shell
    /// assignments, for the scripts.
    Stack,
    /// Copy the crate archives Cargo.lock pins from cargo's cache into .cache/crates, against
    /// which `prov build` proves the vendored crates (the host runs it when it vendors).
    VendorArchives {
        /// cargo's archive cache (default: $CARGO_HOME/registry/cache, or ~/.cargo/...).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Print the host-only state folder of this checkout (keys, ssh configuration, pinned host
    /// keys, the newest attested build per node, Vagrant's data, the nodes' exports), outside the
    /// checkout.
    StateDir,
    /// Pin a node's ssh host key (the host does it when it creates the node), or forget it.
    Pin {
        #[arg(long)]
        node: String,
        /// Pin this public key, which the host made for the node before it first booted (drops
        /// any older pin; the node is not contacted).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["new", "forget"])]
        key: Option<PathBuf>,
        /// The node was just created and its key is pinned on this first contact (only a node
        /// the host could not give a key: a real VM's box).
        #[arg(long, conflicts_with = "forget")]
        new: bool,
        /// The node is gone: drop its pin and ssh configuration.
        #[arg(long)]
        forget: bool,
    },
    /// Run a command on a node over the node transport (ssh). Its output is shown line by line
    /// with control sequences escaped; it is stopped past --timeout or --max-output.
    Exec {
        #[arg(long)]
        node: String,
        /// Seconds the command may take (a build takes minutes).
        #[arg(long, value_name = "SECS", default_value_t = 1800)]
        timeout: u64,
        /// Bytes the command may print.
        #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
        max_output: u64,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Generate the project's ed25519 key, once (a project that has one keeps it), and export
    /// its public half, in the host's state folder (never in the checkout). The golden path
    /// runs it before every step that signs.
    Init,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A panic is a bug in prov, never a verdict: it exits 2 ("could not check"), not 101.
    let outcome = std::panic::catch_unwind(|| run(cli)).unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "internal error (a bug in prov; the message is above): nothing was concluded"
        ))
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("prov: error: {err:#}");
            match err.downcast_ref::<Failure>() {
                Some(failure) => failure.exit_code(),
                None => ExitCode::from(EXIT_COULD_NOT_CHECK),
            }
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let repo = cli.repo;
    match cli.command {
        Command::Build(args) => prov::cli::build(&repo, args),
        Command::Verify(args) => prov::cli::verify(&repo, args),
        Command::Show(args) => prov::cli::show(&repo, args),
        Command::Log(args) => prov::cli::log(&repo, args),
        Command::Diff(args) => prov::cli::diff(&repo, args),
        Command::Attest(args) => prov::cli::attest(&repo, args),
        Command::Reproduce(args) => prov::cli::reproduce(&repo, args),
        Command::Rebuild(args) => prov::cli::rebuild(&repo, args),
        Command::Import { node } => prov::cli::import(&repo, &node),
        Command::Sync { node } => prov::cli::sync(&repo, &node),
        Command::Bases { node } => prov::cli::bases(&repo, &node),
        Command::Key {
            command: KeyCommand::Init,
        } => prov::cli::key_init(&repo),
        Command::StateDir => {
            println!("{}", prov::cli::host_state(&repo)?.dir().display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Pin {
            node,
            key,
            new,
            forget,
        } => prov::cli::pin(&repo, &node, key.as_deref(), new, forget),
        Command::Context { script } => prov::cli::context(script),
        Command::Tree { path } => prov::cli::tree(&path),
        Command::Digest { file } => prov::cli::digest(file.as_deref()),
        Command::Nodes {
            check,
            port,
            flavour,
        } => prov::cli::nodes(&repo, check, port, flavour),
        Command::Stack => {
            print!("{}", prov::record::stack::shell_assignments());
            Ok(ExitCode::SUCCESS)
        }
        Command::VendorArchives { cache } => prov::cli::vendor_archives(&repo, cache),
        Command::Exec {
            node,
            command,
            timeout,
            max_output,
        } => prov::cli::exec(
            &repo,
            &node,
            &command,
            std::time::Duration::from_secs(timeout),
            max_output,
        ),
    }
}
