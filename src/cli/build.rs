//! `prov build` (inside a node): build the api image from the recorded tree and record it.

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::error::{Error, Outcome, Result};
use crate::node::build::{self, BuildRequest};
use crate::node::guard;
use crate::record::nodes::{self, NodeName, NODE_MOUNT};
use crate::record::policy::{DEFAULT_POLICY, POLICY_ENV};

// No argument group of its own: `prov rebuild` flattens these into its own `Args`.
#[derive(clap::Args)]
#[group(skip)]
pub struct Args {
    /// The node building; defaults to this machine's hostname, which must be a declared node.
    #[arg(long)]
    pub node: Option<NodeName>,
    #[arg(long, default_value = "api/Dockerfile")]
    pub dockerfile: PathBuf,
    #[arg(long, default_value = ".")]
    pub context: PathBuf,
    #[arg(long, default_value = "compose.yaml")]
    pub compose_file: PathBuf,
    /// Repository part of the image tag; the tag itself is the build id.
    #[arg(long, default_value = "prov-api")]
    pub image_name: String,
    /// A base image: the Dockerfile's build argument and the image reference, as ARG=REF.
    #[arg(long = "base", value_name = "ARG=REF", value_parser = parse_pair)]
    pub bases: Vec<(String, String)>,
    /// Another Dockerfile build argument, recorded in the manifest (e.g. API_FEATURES=...);
    /// the build policy must allow it.
    #[arg(long = "build-arg", value_name = "ARG=VALUE", value_parser = parse_pair)]
    pub build_args: Vec<(String, String)>,
    /// The build policy, relative to the repository.
    #[arg(long, env = POLICY_ENV, default_value = DEFAULT_POLICY)]
    pub policy: String,
}

/// `prov build`'s own options beside the build's inputs (`Args`, which `prov rebuild` shares).
#[derive(clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub inputs: Args,
    /// On a BuildKit node, also keep BuildKit's own SLSA provenance of the build beside the
    /// record (`<build id>.buildkit.json`). It costs the build an OCI archive of the whole
    /// image, written and loaded again (about 3 s here); the image and its ID are the same.
    #[arg(long)]
    pub buildkit_provenance: bool,
}

pub fn run(args: BuildArgs) -> Result<Outcome> {
    let mut req = request(args.inputs)?;
    req.buildkit_provenance = args.buildkit_provenance;
    let manifest = build::build(&req)?;
    let image = manifest
        .image
        .as_ref()
        .expect("a successful build has an image");
    // The node never signs: the host attests the record after checking it against this
    // node's engine (`prov attest`, which `make demo` runs on the host).
    println!(
        "prov: build {} recorded: image {} ({}), manifest provenance/{}/{}.json",
        manifest.build_id, image.id, image.tag, manifest.node, manifest.build_id
    );
    Ok(Outcome::Held)
}

/// `ARG=VALUE`; prov's own PROV_* arguments cannot be overridden.
fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((arg, value)) if !arg.is_empty() && !arg.starts_with("PROV_") => {
            Ok((arg.to_string(), value.to_string()))
        }
        _ => Err(format!(
            "expected ARG=VALUE, ARG not starting with PROV_ (e.g. RUNTIME_IMAGE=sha256:...), got {s:?}"
        )),
    }
}

/// The build request of `prov build` (and `prov rebuild`), once the guard let it run: inside a
/// node, from /vagrant, every path confined to it.
pub fn request(args: Args) -> Result<BuildRequest> {
    let exe = std::env::current_exe().context("locating the prov binary")?;
    guard::check(&exe).map_err(Error::failed)?;
    let repo = PathBuf::from(NODE_MOUNT);
    let node = match args.node {
        Some(node) => node,
        None => hostname()?,
    };
    nodes::load(&repo)?.get(&node)?;
    let confine = |what, path| build::confine(&repo, what, path);
    Ok(BuildRequest {
        node,
        dockerfile: confine("--dockerfile", &args.dockerfile)?,
        context: confine("--context", &args.context)?,
        compose_file: confine("--compose-file", &args.compose_file)?,
        image_name: args.image_name,
        bases: args.bases,
        build_args: args.build_args,
        policy: args.policy,
        buildkit_provenance: false,
        repo,
    })
}

/// This machine's name, which names the node when --node is not given.
fn hostname() -> anyhow::Result<NodeName> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").context("reading the hostname")?;
    let name = name.trim();
    if name.is_empty() {
        bail!("this machine has no hostname; pass --node");
    }
    name.parse()
        .map_err(|e: String| anyhow::anyhow!("{e}; pass --node"))
}
