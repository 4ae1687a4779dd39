//! Command handlers: argument structs and the glue from parsed arguments to the modules.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::exit::{Failure, EXIT_FAILED, EXIT_OK};
use crate::host::attest;
use crate::host::diff;
use crate::host::import;
use crate::host::report;
use crate::host::show::{self, Paint, Running};
use crate::host::state::HostState;
use crate::host::sync;
use crate::host::transport::Transport;
use crate::host::verify;
use crate::node::build::{self, BuildRequest};
use crate::node::guard;
use crate::record::buildkit;
use crate::record::manifest::side_files;
use crate::record::nodes;
use crate::record::nodes::NodeSpec;
use crate::record::store::Store;
use crate::record::tree_hash;

#[derive(Args)]
pub struct BuildArgs {
    /// The node building; defaults to this machine's hostname, which must be a declared node.
    #[arg(long)]
    pub node: Option<String>,
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
    #[arg(long, env = crate::record::policy::POLICY_ENV, default_value = crate::record::policy::DEFAULT_POLICY)]
    pub policy: String,
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

#[derive(Args)]
pub struct VerifyArgs {
    /// A node to check (repeatable); defaults to the first node in nodes.json.
    #[arg(long = "node", conflicts_with = "all")]
    pub nodes: Vec<String>,
    /// Check every node, in parallel.
    #[arg(long)]
    pub all: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Seconds each node has to answer (ssh, the engine, HTTP); past it the node is reported as
    /// not checked (exit 2).
    #[arg(long, value_name = "SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
    /// The build policy in force, relative to the repository.
    #[arg(long, env = crate::record::policy::POLICY_ENV, default_value = crate::record::policy::DEFAULT_POLICY)]
    pub policy: String,
    /// Also write a signed verification summary (SLSA VSA) per node, PASSED or FAILED, into the
    /// host's state; `prov log` shows the newest.
    #[arg(long)]
    pub attest: bool,
    /// Also write what was gathered from each node (its Docker state, the api's answers) under
    /// DIR/<node>/: how tests/fixtures/verify is refreshed from real nodes.
    #[arg(long, value_name = "DIR", hide = true)]
    pub capture: Option<PathBuf>,
}

#[derive(Args)]
pub struct ShowArgs {
    /// The node; defaults to the first one in nodes.json.
    #[arg(long)]
    pub node: Option<String>,
    /// A build id, or `latest`.
    #[arg(default_value = "latest")]
    pub build: String,
    /// Print the manifest itself, as JSON.
    #[arg(long)]
    pub json: bool,
    /// Do not ask the node whether it runs this build.
    #[arg(long)]
    pub offline: bool,
    /// Show the build's SBOM instead (with --json: the CycloneDX file itself).
    #[arg(long)]
    pub sbom: bool,
}

#[derive(Args)]
pub struct AttestArgs {
    /// The node; defaults to the first one in nodes.json.
    #[arg(long)]
    pub node: Option<String>,
    /// A build id, or `latest`.
    #[arg(default_value = "latest")]
    pub build: String,
}

#[derive(Args)]
pub struct LogArgs {
    /// The node; defaults to the first one in nodes.json.
    #[arg(long)]
    pub node: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct DiffArgs {
    /// NODE or NODE:BUILD (a build id or `latest`).
    pub a: diff::Side,
    /// NODE or NODE:BUILD.
    pub b: diff::Side,
    #[arg(long)]
    pub json: bool,
    /// Skip the file-by-file comparison of the two images (no node is contacted).
    #[arg(long)]
    pub no_files: bool,
}

#[derive(Args)]
pub struct ReproduceArgs {
    /// The node that rebuilds (a trixie node other than the one that built).
    #[arg(long)]
    pub node: String,
    /// The build to reproduce: NODE or NODE:BUILD (a build id or `latest`).
    #[arg(long)]
    pub of: diff::Side,
    #[arg(long)]
    pub json: bool,
}

/// The build request of `prov build` (and `prov rebuild`), once the guard let it run: inside a
/// node, from /vagrant, every path confined to it.
fn node_build_request(args: BuildArgs) -> Result<BuildRequest> {
    let exe = std::env::current_exe().context("locating the prov binary")?;
    guard::check(&exe).map_err(|e| Failure(e.to_string()))?;
    let repo = PathBuf::from(crate::record::nodes::NODE_MOUNT);
    let node = match args.node {
        Some(node) => node,
        None => hostname()?,
    };
    nodes::load(&repo)?.get(&node)?;
    let confine =
        |what, path| build::confine(&repo, what, path).map_err(|e| Failure(format!("{e:#}")));
    Ok(BuildRequest {
        node,
        dockerfile: confine("--dockerfile", &args.dockerfile)?,
        context: confine("--context", &args.context)?,
        compose_file: confine("--compose-file", &args.compose_file)?,
        image_name: args.image_name,
        bases: args.bases,
        build_args: args.build_args,
        policy: args.policy,
        repo,
    })
}

pub fn build(_repo: &Path, args: BuildArgs) -> Result<ExitCode> {
    let manifest =
        build::build(&node_build_request(args)?).map_err(|e| Failure(format!("{e:#}")))?;
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
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// The tag to build under (`prov reproduce` names one no build of the node's uses).
    #[arg(long, value_parser = parse_rebuild_tag)]
    pub tag: String,
    /// The tree the build to reproduce is of: the node's checkout must be it.
    #[arg(long)]
    pub expect_tree: String,
}

/// `prov-reproduce:<build id>`: a tag of its own, never one the node's stack runs.
fn parse_rebuild_tag(s: &str) -> Result<String, String> {
    match s.split_once(':') {
        Some((crate::host::reproduce::IMAGE_NAME, id))
            if crate::record::manifest::is_build_id(id) =>
        {
            Ok(s.to_string())
        }
        _ => Err(format!(
            "expected {}:<build id>, got {s:?}",
            crate::host::reproduce::IMAGE_NAME
        )),
    }
}

pub fn reproduce(repo: &Path, args: ReproduceArgs) -> Result<ExitCode> {
    let file = nodes::load(repo)?;
    file.get(&args.node)?;
    file.get(&args.of.node)?;
    let of = Store::new(&repo.join("provenance"), &args.of.node)
        .resolve(&args.of.build)
        .with_context(|| format!("reading {}:{}", args.of.node, args.of.build))?;
    let state = host_state(repo)?;
    let (verdict, path) = crate::host::reproduce::reproduce(repo, &state, &args.node, &of)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&verdict).expect("a verdict serializes")
        );
    } else {
        print!("{}", show::render_reproduction(&verdict));
        println!("signed verdict: {}", path.display());
    }
    // A reproduction: the same source gave the same image.
    Ok(if verdict.identical && verdict.same_source {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// The node's side of `prov reproduce`: rebuild, print what was made as JSON on stdout.
pub fn rebuild(_repo: &Path, args: RebuildArgs) -> Result<ExitCode> {
    let req = node_build_request(args.build)?;
    let rebuilt = build::rebuild(&req, &args.tag, &args.expect_tree)
        .map_err(|e| Failure(format!("{e:#}")))?;
    println!(
        "{}",
        serde_json::to_string(&rebuilt).expect("a rebuild serializes")
    );
    Ok(ExitCode::SUCCESS)
}

pub fn verify(repo: &Path, args: VerifyArgs) -> Result<ExitCode> {
    let file = nodes::load(repo)?;
    let targets: Vec<NodeSpec> = if args.all {
        file.nodes.clone()
    } else if args.nodes.is_empty() {
        vec![file.default_node().clone()]
    } else {
        args.nodes
            .iter()
            .map(|n| file.get(n).cloned())
            .collect::<Result<_>>()?
    };
    let outcomes = verify::verify_nodes(
        repo,
        &targets,
        &args.policy,
        std::time::Duration::from_secs(args.timeout),
        args.capture.as_deref(),
    );
    if args.json {
        println!("{}", report::json(&outcomes));
    } else {
        print!("{}", report::human(&outcomes));
    }
    if let Some(path) = args.junit {
        fs::write(&path, report::junit(&outcomes))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.attest {
        summarise(repo, &outcomes, &args.policy)?;
    }
    Ok(ExitCode::from(report::exit_code(&outcomes)))
}

/// Signs one verification summary per node report (on stderr: where each went).
fn summarise(
    repo: &Path,
    outcomes: &[crate::host::report::NodeReport],
    policy: &str,
) -> Result<()> {
    let state = host_state(repo)?;
    let Some(key) = attest::load_signing_key(&state)? else {
        bail!(
            "no verification summary written: no signing key at {}; the golden path makes it \
             (`make demo`), or `prov key init`",
            state.private_key().display()
        );
    };
    // A policy that cannot be read left every node unchecked: their summaries say FAILED.
    let build_policy = crate::record::policy::load(repo, policy).ok();
    let now = chrono::Utc::now();
    let mut unwritten = Vec::new();
    for report in outcomes {
        let policy = crate::host::vsa::VerifyPolicy::of(report, policy, build_policy.as_ref());
        let fallback = Store::new(&repo.join("provenance"), &report.node)
            .latest()
            .ok()
            .and_then(|s| s.manifest.image.map(|i| i.id));
        let written = crate::host::vsa::statement(report, &policy, fallback.as_deref(), now)
            .and_then(|statement| {
                let path =
                    crate::host::vsa::write(&state, &report.node, &statement, &policy, &key, now)?;
                Ok((statement, path))
            });
        match written {
            Ok((statement, path)) => eprintln!(
                "verification summary of node {} ({}): {}",
                report.node,
                statement["predicate"]["verificationResult"]
                    .as_str()
                    .unwrap_or_default(),
                path.display()
            ),
            Err(e) => {
                eprintln!("no verification summary of node {}: {e:#}", report.node);
                unwritten.push(report.node.as_str());
            }
        }
    }
    if !unwritten.is_empty() {
        bail!(
            "no verification summary was written for node(s) {} (above)",
            unwritten.join(", ")
        );
    }
    Ok(())
}

pub fn show(repo: &Path, args: ShowArgs) -> Result<ExitCode> {
    let node = resolve_node(repo, args.node.as_deref())?;
    let store = Store::new(&repo.join("provenance"), &node);
    let stored = store.resolve(&args.build)?;
    if args.sbom {
        let bytes = stored
            .pinned(store.dir(), side_files::SBOM)?
            .with_context(|| {
                format!(
                    "build {} has no SBOM (a failed build, or one made before prov wrote them): \
                     run make demo NODE={node} for one that has",
                    stored.manifest.build_id
                )
            })?;
        if args.json {
            print!("{}", String::from_utf8_lossy(&bytes));
        } else {
            let bom = crate::record::sbom::parse(&bytes)?;
            print!("{}", crate::record::sbom::render(&bom));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        // The manifest itself, byte for byte: its sha256 is what the chain pins.
        let path = store.manifest_path(&stored.manifest.build_id);
        print!(
            "{}",
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let chain = show::chain_position(&store.chain()?, &stored.manifest.build_id);
    let running = if args.offline {
        Running::NotAsked
    } else {
        match (
            verify::running_api_image(repo, &node),
            &stored.manifest.image,
        ) {
            (Ok(Some(id)), Some(image)) if id == image.id => Running::Yes,
            (Ok(other), _) => Running::No(other),
            (Err(e), _) => Running::Unknown(format!("{e:#}")),
        }
    };
    print!(
        "{}",
        show::render(&stored, &chain, &running, Paint::for_stdout())
    );
    if let Some(bytes) = stored.pinned(store.dir(), side_files::BUILDKIT_PROVENANCE)? {
        let statement: serde_json::Value =
            serde_json::from_slice(&bytes).context("parsing BuildKit's provenance")?;
        print!(
            "{}",
            show::render_buildkit(&buildkit::side_by_side(&stored.manifest, &statement))
        );
    }
    let key = attest::load_public_key(&host_state(repo)?)?;
    let verdicts = crate::host::reproduce::verdicts(store.dir(), &stored, key.as_ref());
    if !verdicts.is_empty() {
        println!("\nreproduced (prov reproduce)");
        for (node, verdict) in &verdicts {
            println!(
                "  {}",
                crate::record::text::clip(
                    &crate::record::text::printable(&crate::host::reproduce::summary(
                        node, verdict
                    )),
                    78
                )
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Imports the node's new records (checked against its engine), then signs the latest.
pub fn attest(repo: &Path, args: AttestArgs) -> Result<ExitCode> {
    let node = resolve_node(repo, args.node.as_deref())?;
    let state = host_state(repo)?;
    let transport = Transport::connect(repo, &node)?.bounded(import::IMPORT_TIME);
    report_import(&node, &import::import(repo, &state, &transport)?);
    let Some(key) = attest::load_signing_key(&state)? else {
        bail!(
            "no signing key at {}: the golden path makes it (`make demo`), or `prov key init`",
            state.private_key().display()
        );
    };
    let store = Store::new(&repo.join("provenance"), &node);
    let stored = store.resolve(&args.build)?;
    let path = attest::attest_checked(&state, &store, &stored, &key, &transport)
        .map_err(|e| Failure(format!("{e:#}")))?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// Brings the node's new records into the checkout's `provenance/<node>/`, checked first.
pub fn import(repo: &Path, node: &str) -> Result<ExitCode> {
    nodes::load(repo)?.get(node)?;
    let state = host_state(repo)?;
    let transport = Transport::connect(repo, node)?.bounded(import::IMPORT_TIME);
    report_import(node, &import::import(repo, &state, &transport)?);
    Ok(ExitCode::SUCCESS)
}

fn report_import(node: &str, imported: &import::Imported) {
    if !imported.build_ids.is_empty() {
        eprintln!(
            "prov: imported {} record(s) of node {node} after checking them: {}",
            imported.build_ids.len(),
            imported.build_ids.join(", ")
        );
    }
}

/// Gives the node the host's bases, checked by layers and configuration after loading.
pub fn bases(repo: &Path, node: &str) -> Result<ExitCode> {
    nodes::load(repo)?.get(node)?;
    let transport = Transport::connect(repo, node)?;
    let wrong = crate::host::bases::ship(repo, &transport)?;
    if !wrong.is_empty() {
        eprintln!(
            "prov: node {node}'s engine did not hold the host's bases ({}): loaded them; it \
             holds exactly them now",
            wrong.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Refreshes the node's export of the checkout (host to node only).
pub fn sync(repo: &Path, node: &str) -> Result<ExitCode> {
    nodes::load(repo)?.get(node)?;
    let transport = Transport::connect(repo, node)?;
    let synced = sync::sync(repo, &host_state(repo)?, &transport)?;
    if synced.sent + synced.removed > 0 {
        eprintln!(
            "prov: node {node}'s export refreshed: {} entries sent, {} removed",
            synced.sent, synced.removed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes the project's key, once: a project that has one keeps it (the golden path runs this
/// before every step that signs).
pub fn key_init(repo: &Path) -> Result<ExitCode> {
    let state = host_state(repo)?;
    let (public, made) = attest::init_key(&state)?;
    println!(
        "prov: key {}; private half {} (mode 0600, outside the checkout), public half {}",
        if made {
            "made"
        } else {
            "kept (the project has one)"
        },
        state.private_key().display(),
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn pin(
    repo: &Path,
    node: &str,
    key: Option<&Path>,
    new: bool,
    forget: bool,
) -> Result<ExitCode> {
    nodes::load(repo)?.get(node)?;
    if forget {
        crate::host::transport::unpin(repo, node)?;
        return Ok(ExitCode::SUCCESS);
    }
    let fingerprint = match key {
        Some(key) => crate::host::transport::pin_key(repo, node, key)?,
        None => crate::host::transport::pin(repo, node, new)?,
    };
    eprintln!("prov: node {node}'s ssh host key is pinned: {fingerprint}");
    Ok(ExitCode::SUCCESS)
}

/// The checkout's host-only state, with keys an older prov left in the checkout moved there.
pub fn host_state(repo: &Path) -> Result<HostState> {
    let state = HostState::for_checkout(repo)?;
    if let Some(line) = state.migrate(repo)? {
        eprintln!("{line}");
    }
    Ok(state)
}

pub fn log(repo: &Path, args: LogArgs) -> Result<ExitCode> {
    let node = resolve_node(repo, args.node.as_deref())?;
    let store = Store::new(&repo.join("provenance"), &node);
    let chain = store.chain()?;
    let latest = store.latest_pointer().ok().flatten().map(|p| p.build_id);
    if args.json {
        let entries = show::log_entries(&chain, latest.as_deref());
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print!(
            "{}",
            show::render_log(&chain, latest.as_deref(), Paint::for_stdout())
        );
        let state = host_state(repo)?;
        let key = attest::load_public_key(&state)?;
        if let Some(summary) = crate::host::vsa::newest(&state, &node, key.as_ref()) {
            println!(
                "\nverified (prov verify --attest; {} summaries kept in {})\n  {}",
                summary.count,
                summary
                    .path
                    .parent()
                    .map_or_else(String::new, |p| p.display().to_string()),
                crate::record::text::printable(&crate::host::vsa::summary_line(&summary))
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn diff(repo: &Path, args: DiffArgs) -> Result<ExitCode> {
    let report = diff::diff(repo, &args.a, &args.b, !args.no_files)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", diff::render(&report));
    }
    Ok(ExitCode::from(if report.ok {
        EXIT_OK
    } else {
        EXIT_FAILED
    }))
}

pub fn context(script: Option<PathBuf>) -> Result<ExitCode> {
    let program = match script {
        Some(script) => script,
        None => std::env::current_exe().context("locating the prov binary")?,
    };
    guard::check(&program).map_err(|e| Failure(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

pub fn tree(path: &Path) -> Result<ExitCode> {
    let state = tree_hash::tree_state(path)?;
    println!("{}{}", state.tree, if state.dirty { " dirty" } else { "" });
    Ok(ExitCode::SUCCESS)
}

pub fn digest(file: Option<&Path>) -> Result<ExitCode> {
    let (hex, bytes) = match file {
        Some(path) => crate::record::digest::sha256_reader(
            fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )?,
        None => crate::record::digest::sha256_reader(std::io::stdin().lock())?,
    };
    println!("{hex}  {bytes}");
    Ok(ExitCode::SUCCESS)
}

pub fn nodes(
    repo: &Path,
    check: Option<String>,
    port: Option<String>,
    flavour: Option<String>,
) -> Result<ExitCode> {
    let file = nodes::load(repo)?;
    if let Some(name) = check {
        file.get(&name)?;
    } else if let Some(name) = port {
        println!("{}", file.get(&name)?.api_port);
    } else if let Some(name) = flavour {
        println!("{}", file.get(&name)?.flavour);
    } else {
        for node in &file.nodes {
            println!("{}", node.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a command on a node: its output shown escaped, within `timeout` and `max_output`.
pub fn exec(
    repo: &Path,
    node: &str,
    command: &[String],
    timeout: std::time::Duration,
    max_output: u64,
) -> Result<ExitCode> {
    nodes::load(repo)?.get(node)?;
    let status = Transport::connect(repo, node)?
        .bounded(timeout)
        .exec(command, max_output)?;
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => bail!("the remote command on {node} was killed by a signal"),
    })
}

pub fn vendor_archives(repo: &Path, cache: Option<PathBuf>) -> Result<ExitCode> {
    let cache = match cache {
        Some(cache) => cache,
        None => std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .context("neither CARGO_HOME nor HOME is set: pass --cache")?
            .join("registry/cache"),
    };
    let copied = crate::record::vendor::collect_archives(
        &repo.join("Cargo.lock"),
        &cache,
        &repo.join(crate::record::vendor::ARCHIVES),
    )?;
    println!(
        "prov: {copied} crate archive(s) in {}",
        crate::record::vendor::ARCHIVES
    );
    Ok(ExitCode::SUCCESS)
}

/// A node named on the command line, or the default one.
pub fn resolve_node(repo: &Path, node: Option<&str>) -> Result<String> {
    let file = nodes::load(repo)?;
    Ok(match node {
        Some(name) => file.get(name)?.name.clone(),
        None => file.default_node().name.clone(),
    })
}

fn hostname() -> Result<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").context("reading the hostname")?;
    let name = name.trim();
    if name.is_empty() {
        bail!("this machine has no hostname; pass --node");
    }
    Ok(name.to_string())
}
