//! `prov build`: record the materials, run `docker build --no-cache --network=none` with the
//! output streamed to the terminal and the log, stamp the image, write the manifest, move `latest`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::error::Error;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::node::docker;
use crate::record::build_context;
use crate::record::build_inputs::{base_context_name, passed_build_args, source_url, Builder};
use crate::record::buildkit::ImageArchive;
use crate::record::compose;
use crate::record::compose::{ComposeConfig, COMPOSE_IMAGE_PLACEHOLDER};
use crate::record::digest::{sha256_file, sha256_hex, HashingWriter};
use crate::record::manifest::side_files;
use crate::record::manifest::{
    labels, BaseImage, BuildLog, BuildStatus, FileDigest, GitSource, ImageRecord, ImageStore,
    LatestPointer, Manifest, SourceDate, ToolInfo, MANIFEST_SCHEMA,
};
use crate::record::names;
use crate::record::nodes::NodeName;
use crate::record::policy;
use crate::record::reproduction::Rebuilt;
use crate::record::sbom;
use crate::record::stack;
use crate::record::store::Store;
use crate::record::tree_hash;

pub struct BuildRequest {
    /// Repository root (`/vagrant` on a node).
    pub repo: PathBuf,
    pub node: NodeName,
    /// Relative to the repository root, like every path below.
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    pub compose_file: PathBuf,
    pub image_name: String,
    /// Dockerfile build argument -> base image reference (tag or id).
    pub bases: Vec<(String, String)>,
    /// Other build arguments, recorded in the manifest.
    pub build_args: Vec<(String, String)>,
    /// The build policy (relative to the repository) the arguments must satisfy.
    pub policy: String,
}

/// Everything known before the build starts.
struct Materials {
    policy: FileDigest,
    /// The context made from the recorded tree, as a tar file docker reads.
    context: build_context::Made,
    git: GitSource,
    dockerfile: FileDigest,
    compose: ComposeConfig,
    cargo_lock: FileDigest,
    base_images: Vec<BaseImage>,
    tool: ToolInfo,
    source_url: String,
    /// What every timestamp in the image is set to, where the builder can (BuildKit).
    source_date: SourceDate,
    store: ImageStore,
    builder: Builder,
}

/// Where prov's time goes in one build, by phase: written as JSON to the file `PROV_TIMINGS`
/// names, when set (the benchmarks read it).
#[derive(Default)]
struct Phases(BTreeMap<&'static str, f64>);

impl Phases {
    fn time<T>(&mut self, phase: &'static str, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let out = f();
        *self.0.entry(phase).or_default() += start.elapsed().as_secs_f64();
        out
    }

    fn write(&self) -> Result<()> {
        let Some(path) = std::env::var_os(TIMINGS_ENV).filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        std::fs::write(&path, serde_json::to_vec(&self.0)?)
            .with_context(|| format!("writing {TIMINGS_ENV}={}", Path::new(&path).display()))
    }
}

pub const TIMINGS_ENV: &str = "PROV_TIMINGS";

/// A build input's path, confined to the repository (the node's export, at /vagrant): relative to
/// it, or absolute inside it, and no symbolic link may lead out. Returns it relative to the
/// repository, as the manifest records it.
pub fn confine(repo: &Path, what: &str, path: &Path) -> Result<PathBuf> {
    let root = repo
        .canonicalize()
        .with_context(|| format!("resolving {}", repo.display()))?;
    let real = repo.join(path).canonicalize().with_context(|| {
        format!(
            "{what}: there is no {} (expected a file or folder of the repository)",
            repo.join(path).display()
        )
    })?;
    match real.strip_prefix(&root) {
        Ok(rel) if rel.as_os_str().is_empty() => Ok(PathBuf::from(".")),
        Ok(rel) => Ok(rel.to_path_buf()),
        Err(_) => bail!(
            "{what} {} resolves to {}, outside {}: a build's inputs come from /vagrant \
             only, so that the record names what was built",
            path.display(),
            real.display(),
            repo.display()
        ),
    }
}

pub fn new_build_id(started_at: DateTime<Utc>, node: &NodeName) -> String {
    let salt = sha256_hex(format!("{node} {started_at:?} {}", std::process::id()).as_bytes());
    format!("{}-{}", started_at.format("%Y%m%d-%H%M%S-%3f"), &salt[..4])
}

/// The node's record store, and its build lock (released on drop): one build at a time.
fn lock_store(req: &BuildRequest) -> Result<(Store, File)> {
    let store = Store::new(&req.repo.join("provenance"), &req.node);
    let lock = store.lock().with_context(|| {
        format!(
            "cannot take the build lock in {}: the folder must be writable by this user",
            store.dir().display()
        )
    })?;
    Ok((store, lock))
}

/// Runs one build; on success returns the manifest that `latest` now points at. A build that
/// ran and failed is a failed check (its record says so); anything that kept the build from
/// running at all (a held lock, a missing input) could not be checked.
pub fn build(req: &BuildRequest) -> crate::error::Result<Manifest> {
    let (store, _lock) = lock_store(req)?;
    let prev = store
        .head()
        .context("the node's previous manifest cannot be chained onto")?;
    let started_at = Utc::now();
    let build_id = new_build_id(started_at, &req.node);
    let mut phases = Phases::default();
    let materials = gather_materials(req, &mut phases)?;
    let tag = format!("{}:{build_id}", req.image_name);
    let log_rel = Path::new("provenance")
        .join(&req.node)
        .join(names::log(&build_id));
    let made = phases.time("build", || {
        make_image(
            req,
            &materials,
            &tag,
            &req.repo.join(&log_rel),
            &mut std::io::stdout(),
        )
    })?;
    let (build_log, result, image) = (made.log, made.result, made.image);
    let (result, sbom) = phases.time("sbom", || match (result, &image) {
        (Ok(()), Some(image)) => match keep_sbom(&store, &build_id, &image.id, req, &materials) {
            Ok(pinned) => (Ok(()), Some(pinned)),
            Err(e) => (
                Err(e.context("the image was built, but its SBOM could not be made")),
                None,
            ),
        },
        (result, _) => (result, None),
    });
    let finished_at = Utc::now();
    let buildkit_provenance = match &made.statement {
        Some(statement) => Some(keep_buildkit_provenance(&store, &build_id, statement)?),
        None if materials.builder == Builder::BuildKit && result.is_ok() => {
            eprintln!("prov: BuildKit attached no provenance to {tag}");
            None
        }
        None => None,
    };
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA.to_string(),
        build_id: build_id.clone(),
        node: req.node.clone(),
        started_at,
        finished_at,
        status: if result.is_ok() {
            BuildStatus::Success
        } else {
            BuildStatus::Failed
        },
        error: result.as_ref().err().map(|e| e.to_string()),
        git: materials.git,
        dockerfile: materials.dockerfile,
        compose: materials.compose,
        cargo_lock: materials.cargo_lock,
        base_images: materials.base_images,
        build_log: BuildLog {
            path: log_rel.to_string_lossy().into_owned(),
            ..build_log
        },
        image,
        no_cache: true,
        network: "none".to_string(),
        build_args: req.build_args.iter().cloned().collect(),
        policy: Some(materials.policy),
        context: Some(materials.context.record.clone()),
        prev_manifest_sha256: prev.map(|p| p.sha256),
        tool: materials.tool,
        buildkit_provenance,
        source_date: (materials.builder == Builder::BuildKit).then_some(materials.source_date),
        sbom,
    };
    let manifest_sha256 = phases.time("record", || store.write_manifest(&manifest))?;
    if let Err(e) = result {
        return Err(Error::failed(e.context(format!(
            "build {build_id} failed; its manifest records the failure, `latest` is unchanged"
        ))));
    }
    phases.time("record", || {
        store.set_latest(&LatestPointer {
            build_id,
            manifest_sha256,
        })
    })?;
    phases.write()?;
    Ok(manifest)
}

/// Rebuilds, for `prov reproduce`, the inputs of a build another node recorded: the same tree
/// (`expect_tree`), bases and arguments, under `tag`, without cache, and records nothing. The
/// builder's output goes to stderr; what was made is returned. The node's stack is not touched.
pub fn rebuild(req: &BuildRequest, tag: &str, expect_tree: &str) -> crate::error::Result<Rebuilt> {
    let (_store, _lock) = lock_store(req)?;
    let started_at = Utc::now();
    let materials = gather_materials(req, &mut Phases::default())?;
    if materials.git.tree != expect_tree {
        return Err(anyhow!(
            "this node's checkout is tree {}, the build to reproduce is of tree {expect_tree}: \
             run `prov reproduce` again from a checkout of that tree",
            materials.git.tree
        )
        .into());
    }
    if materials.builder != Builder::BuildKit {
        return Err(anyhow!(
            "node {} builds with the legacy builder, which stamps each build's times into its \
             image: only a BuildKit node (flavour trixie) can reproduce an image",
            req.node
        )
        .into());
    }
    let scratch = tempfile::Builder::new()
        .prefix("prov-rebuild.")
        .tempdir()
        .context("making a scratch folder for the rebuild's log")?;
    let made = make_image(
        req,
        &materials,
        tag,
        &scratch.path().join("build.log"),
        &mut std::io::stderr(),
    )?;
    made.result
        .with_context(|| format!("the rebuild on node {} failed", req.node))
        .map_err(Error::failed)?;
    Ok(Rebuilt {
        node: req.node.clone(),
        started_at,
        finished_at: Utc::now(),
        git: materials.git,
        source_date: materials.source_date,
        base_images: materials.base_images,
        build_args: req.build_args.iter().cloned().collect(),
        image: made.image.expect("a successful build has an image"),
        build_log: made.log,
    })
}

/// What one run of the builder made.
struct Made {
    log: BuildLog,
    /// Whether the builder (and, for BuildKit, loading the image) succeeded.
    result: Result<()>,
    image: Option<ImageRecord>,
    /// BuildKit's provenance of the image, when it attached one.
    statement: Option<serde_json::Value>,
}

/// Builds the image under `tag`, its output on `echo` and in the log at `log_path`, and loads it
/// into the node's store. The outer error means the builder could not be run at all.
fn make_image(
    req: &BuildRequest,
    materials: &Materials,
    tag: &str,
    log_path: &Path,
    echo: &mut dyn Write,
) -> Result<Made> {
    let image_labels = stamp(req, materials);
    // BuildKit writes the image as an OCI archive here; prov loads it (see `load_archive`).
    let scratch = tempfile::Builder::new()
        .prefix("prov-build.")
        .tempdir()
        .context("making a scratch folder for the build's output")?;
    let archive =
        (materials.builder == Builder::BuildKit).then(|| scratch.path().join("image.tar"));
    let (log, mut result) = run_docker_build(
        req,
        materials,
        tag,
        &image_labels,
        archive.as_deref(),
        log_path,
        echo,
    )
    .context("the build did not run; no manifest was written")?;
    let mut statement = None;
    if let (Ok(()), Some(archive)) = (&result, &archive) {
        match load_archive(archive) {
            Ok(loaded) => statement = loaded,
            Err(e) => result = Err(e),
        }
    }
    let image = match &result {
        Ok(()) => {
            check_bases_unchanged(&materials.base_images)?;
            Some(read_back(tag, &image_labels, materials.store)?)
        }
        Err(_) => None,
    };
    Ok(Made {
        log,
        result,
        image,
        statement,
    })
}

/// The record's inputs and the build context (the phases `materials` and `context`).
fn gather_materials(req: &BuildRequest, phases: &mut Phases) -> Result<Materials> {
    let start = std::time::Instant::now();
    let materials = gather(req, phases);
    let context = phases.0.get("context").copied().unwrap_or_default();
    phases
        .0
        .insert("materials", start.elapsed().as_secs_f64() - context);
    materials
}

fn gather(req: &BuildRequest, phases: &mut Phases) -> Result<Materials> {
    // Refused before anything else is done: an argument the policy does not allow.
    let policy = policy::load(&req.repo, &req.policy)?;
    let args: BTreeMap<String, String> = req.build_args.iter().cloned().collect();
    let refused = policy.policy.refusals(&args);
    if !refused.is_empty() {
        bail!(
            "the build policy {} refuses this build: {}. Real builds take no such argument; \
             tests that need one use the test policy ({}=tests/fixtures/test-policy.json)",
            policy.path,
            refused.join("; "),
            policy::POLICY_ENV
        );
    }
    let dockerfile_path = req.repo.join(&req.dockerfile);
    if !dockerfile_path.is_file() {
        bail!(
            "no Dockerfile at {}: expected the api's Dockerfile there (pass --dockerfile)",
            dockerfile_path.display()
        );
    }
    // What the engine says (each docker CLI call costs tens of milliseconds) is asked while the
    // tree is hashed and the context written.
    let (engine, tree_and_context) = std::thread::scope(|scope| {
        let engine = scope.spawn(|| ask_engine(req));
        let tree_and_context = tree_hash::tree_files(&req.repo)
            .context("hashing the source tree")
            .and_then(|(tree, files)| {
                let context = phases.time("context", || {
                    make_context(req, &policy.policy.context, &files)
                })?;
                Ok((tree, context))
            });
        (engine.join(), tree_and_context)
    });
    let engine = engine.map_err(|_| anyhow!("asking the Docker engine panicked"))??;
    let (tree, context) = tree_and_context?;
    let newest_base = engine.base_times.iter().max().map(DateTime::timestamp);
    Ok(Materials {
        context,
        policy: FileDigest {
            path: policy.path,
            sha256: policy.sha256,
        },
        source_date: SourceDate::of(&tree.tree, tree.dirty, tree.head_time)
            .not_before_bases(newest_base),
        git: GitSource {
            commit: tree.head_commit,
            tree: tree.tree,
            dirty: tree.dirty,
        },
        dockerfile: file_digest(&req.repo, &req.dockerfile)?,
        compose: engine.compose,
        cargo_lock: file_digest(&req.repo, Path::new("Cargo.lock"))?,
        base_images: engine.base_images,
        tool: ToolInfo {
            versions: engine.versions,
        },
        source_url: source_url(&req.repo, &req.repo),
        store: engine.store,
        builder: engine.builder,
    })
}

/// The materials the node's Docker engine and tools give.
struct EngineFacts {
    versions: BTreeMap<String, String>,
    store: ImageStore,
    builder: Builder,
    base_images: Vec<BaseImage>,
    base_times: Vec<DateTime<Utc>>,
    compose: ComposeConfig,
}

fn ask_engine(req: &BuildRequest) -> Result<EngineFacts> {
    let (docker_client, docker_engine) = docker::versions()?;
    let compose = docker::compose_command();
    let mut versions = BTreeMap::new();
    versions.insert("prov".to_string(), env!("CARGO_PKG_VERSION").to_string());
    versions.insert("docker_client".to_string(), docker_client);
    versions.insert("docker_engine".to_string(), docker_engine);
    versions.insert("compose".to_string(), docker::compose_version(&compose)?);
    let store = docker::image_store()?;
    let builder = if docker::has_buildx() {
        Builder::BuildKit
    } else {
        Builder::Legacy
    };
    let (base_images, base_times) = req
        .bases
        .iter()
        .map(|(arg, reference)| resolve_base(arg, reference, store))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    Ok(EngineFacts {
        versions,
        store,
        builder,
        base_images,
        base_times,
        compose: compose_config(&compose, &req.repo, &req.compose_file, store)?,
    })
}

/// `path` (relative to the repository) relative to the context folder, if it is inside.
fn in_context_dir<'a>(context: &Path, path: &'a Path) -> Option<&'a Path> {
    path.strip_prefix(build_context::as_prefix(context)).ok()
}

/// The build context, from the tree just hashed. The Dockerfile must be one of its files.
fn make_context(
    req: &BuildRequest,
    spec: &crate::record::policy::ContextSpec,
    files: &[tree_hash::TreeFile],
) -> Result<build_context::Made> {
    let in_context = in_context_dir(&req.context, &req.dockerfile)
        .filter(|rel| spec.from_tree.iter().any(|root| rel.starts_with(root)));
    if in_context.is_none() {
        bail!(
            "the Dockerfile {} is not part of the build context ({} under {}): the context \
             holds only what the build policy declares",
            req.dockerfile.display(),
            spec.from_tree.join(", "),
            req.context.display()
        );
    }
    let tar = std::env::temp_dir().join(format!("prov-context-{}.tar", std::process::id()));
    build_context::make(&req.repo, &req.context, spec, files, &tar).map_err(|e| {
        let _ = std::fs::remove_file(&tar);
        e.context("making the build context from the recorded tree")
    })
}

fn file_digest(repo: &Path, rel: &Path) -> Result<FileDigest> {
    let sha256 =
        sha256_file(&repo.join(rel)).with_context(|| format!("hashing {}", rel.display()))?;
    Ok(FileDigest {
        path: rel.to_string_lossy().into_owned(),
        sha256,
    })
}

/// The base as the node holds it, and when it was made.
fn resolve_base(
    arg: &str,
    reference: &str,
    store: ImageStore,
) -> Result<(BaseImage, DateTime<Utc>)> {
    let image = docker::image_inspect(reference)?.ok_or_else(|| {
        anyhow!(
            "base image {reference} (build argument {arg}) is not on this node: \
             run `make bases` on the host, then `make demo`"
        )
    })?;
    let base = BaseImage {
        arg: arg.to_string(),
        reference: reference.to_string(),
        config_digest: Some(docker::config_digest(store, &image.id)?),
        id: image.id,
    };
    Ok((base, image.created))
}

/// The effective Compose configuration, normalised, with the per-build api image reference held
/// constant; every other service's image is pinned by its ID on this node. The digest pins them
/// by configuration digest instead, the same in every image store, so that the same
/// configuration has the same digest on every node.
fn compose_config(
    compose: &[String],
    repo: &Path,
    file: &Path,
    store: ImageStore,
) -> Result<ComposeConfig> {
    let mut args: Vec<String> = compose[1..].to_vec();
    args.extend([
        "-p".into(),
        stack::PROJECT.into(),
        "-f".into(),
        repo.join(file).to_string_lossy().into_owned(),
        "config".into(),
    ]);
    let out = duct::cmd(&compose[0], &args)
        .dir(repo)
        .env(stack::API_IMAGE_VAR, COMPOSE_IMAGE_PLACEHOLDER)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .context("running compose config")?;
    if !out.status.success() {
        bail!(
            "`{} config` rejected {}: {}",
            compose.join(" "),
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8(out.stdout).context("compose config printed non-UTF-8")?;
    let mut services = compose::normalise(&text, stack::PROJECT)?;
    let mut digested = services.clone();
    for ((name, spec), (_, pinned)) in services.iter_mut().zip(digested.iter_mut()) {
        if spec.image == COMPOSE_IMAGE_PLACEHOLDER {
            continue;
        }
        let image = docker::image_inspect(&spec.image)?.ok_or_else(|| {
            anyhow!(
                "image {} of service {name} is not on this node: run `make bases` on the host, \
                 then `make demo`",
                spec.image
            )
        })?;
        pinned.image_id = Some(docker::config_digest(store, &image.id)?);
        spec.image_id = Some(image.id);
    }
    Ok(ComposeConfig {
        path: file.to_string_lossy().into_owned(),
        config_sha256: sha256_hex(&compose::canonical_json(&digested)),
        services: Some(services),
    })
}

/// The image's labels: each a function of the build's inputs.
fn stamp(req: &BuildRequest, m: &Materials) -> BTreeMap<String, String> {
    let created = DateTime::from_timestamp(m.source_date.epoch, 0).unwrap_or_default();
    let pairs = [
        (
            labels::OCI_REVISION,
            m.git.commit.clone().unwrap_or_default(),
        ),
        (
            labels::OCI_CREATED,
            created.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
        (labels::OCI_SOURCE, m.source_url.clone()),
        (labels::OCI_TITLE, req.image_name.clone()),
        (labels::TREE, m.git.tree.clone()),
        (labels::DOCKERFILE_SHA256, m.dockerfile.sha256.clone()),
        (labels::NO_CACHE, "true".to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Runs the build, copying its output to the terminal and the log while hashing it. The outer
/// error means the build could not be run at all; the inner one that docker build failed.
fn run_docker_build(
    req: &BuildRequest,
    m: &Materials,
    tag: &str,
    image_labels: &BTreeMap<String, String>,
    archive: Option<&Path>,
    log_path: &Path,
    echo: &mut dyn Write,
) -> Result<(BuildLog, Result<()>)> {
    let dockerfile = in_context_dir(&req.context, &req.dockerfile)
        .expect("checked when the context was made")
        .to_string_lossy()
        .into_owned();
    let mut args: Vec<String> = match (m.builder, archive) {
        (Builder::Legacy, _) => vec!["build".into(), "--force-rm".into()],
        // Plain progress streams like the legacy builder's. The image, its timestamps set to
        // the source's date, and BuildKit's own provenance go to an OCI archive (the docker
        // exporter takes no provenance, and `--load` cannot rewrite timestamps).
        (Builder::BuildKit, archive) => vec![
            "buildx".into(),
            "build".into(),
            "--progress=plain".into(),
            "--provenance=mode=max".into(),
            "--output".into(),
            format!(
                "type=oci,name={tag},rewrite-timestamp=true,dest={}",
                archive.expect("a BuildKit build has an archive").display()
            ),
        ],
    };
    args.extend([
        "--no-cache".into(),
        "--network=none".into(),
        "--file".into(),
        dockerfile,
        "--tag".into(),
        tag.into(),
    ]);
    // BuildKit cannot take `FROM <image id>`; a named context resolves a local image offline,
    // and its ID is checked again after the build.
    if m.builder == Builder::BuildKit {
        for base in &m.base_images {
            args.push("--build-context".into());
            args.push(format!(
                "{}=docker-image://{}",
                base_context_name(&base.arg),
                base.reference
            ));
        }
    }
    let build_args = passed_build_args(
        m.builder,
        &m.base_images,
        &m.git,
        Some(&m.source_date),
        req.build_args.iter().cloned(),
    );
    for (k, v) in build_args {
        args.push("--build-arg".into());
        args.push(format!("{k}={v}"));
    }
    for (k, v) in image_labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    // The context is the stream prov made from the recorded tree, on standard input.
    args.push("-".into());

    let file = File::create(log_path).with_context(|| {
        format!(
            "cannot create the build log {}: the provenance folder must be writable",
            log_path.display()
        )
    })?;
    let mut log = HashingWriter::new(file);
    // The exact command heads the log, so the log alone says how the image was made.
    let context = &m.context.record;
    let env = match m.builder {
        Builder::Legacy => "DOCKER_BUILDKIT=0 ",
        Builder::BuildKit => "",
    };
    writeln!(
        log,
        "$ {env}docker {} < context.tar ({} files, {} bytes, sha256 {})",
        args.join(" "),
        context.files,
        context.bytes,
        context.sha256
    )?;

    let mut reader = duct::cmd("docker", &args)
        .dir(&req.repo)
        .stdin_path(&m.context.tar)
        .env(
            "DOCKER_BUILDKIT",
            if m.builder == Builder::Legacy {
                "0"
            } else {
                "1"
            },
        )
        .stderr_to_stdout()
        .unchecked()
        .reader()
        .context("starting docker build")?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buf)
            .context("reading docker build output")?;
        if n == 0 {
            break;
        }
        echo.write_all(&buf[..n])?;
        echo.flush()?;
        log.write_all(&buf[..n])
            .with_context(|| format!("writing {}", log_path.display()))?;
    }
    let status = reader
        .try_wait()?
        .ok_or_else(|| anyhow!("docker build output ended before the process"))?
        .status;
    let (file, sha256, bytes) = log.finish()?;
    file.sync_all()?;
    let result = if status.success() {
        Ok(())
    } else {
        Err(anyhow!(
            "docker build exited with {status}; see the log {}",
            log_path.display()
        ))
    };
    Ok((
        BuildLog {
            path: String::new(),
            sha256,
            bytes,
        },
        result,
    ))
}

/// Loads the image of BuildKit's OCI archive into the node's store, without BuildKit's provenance
/// (see [`ImageArchive::write_image_only`]), and returns the provenance.
fn load_archive(path: &Path) -> Result<Option<serde_json::Value>> {
    let open = || File::open(path).with_context(|| format!("opening {}", path.display()));
    let archive = ImageArchive::read(open()?).context("reading BuildKit's OCI archive")?;
    let mut load = std::process::Command::new("docker")
        .arg("load")
        .stdin(std::process::Stdio::piped())
        // Its one line goes to stderr: a rebuild reports on stdout.
        .stdout(std::io::stderr())
        .spawn()
        .context("running docker load")?;
    let written = archive.write_image_only(open()?, load.stdin.take().expect("stdin is piped"));
    let status = load.wait().context("running docker load")?;
    written.context("streaming the image to docker load")?;
    if !status.success() {
        bail!("docker load of the built image exited with {status}");
    }
    Ok(archive.statement)
}

/// Writes BuildKit's provenance of the image beside the record.
fn keep_buildkit_provenance(
    store: &Store,
    build_id: &str,
    statement: &serde_json::Value,
) -> Result<FileDigest> {
    let mut bytes = serde_json::to_vec_pretty(statement).expect("a statement serializes");
    bytes.push(b'\n');
    let path = store.side_path(build_id, side_files::BUILDKIT_PROVENANCE);
    crate::record::store::write_atomic(&path, &bytes)?;
    Ok(FileDigest {
        path: format!(
            "provenance/{}/{}",
            store.node(),
            names::side(build_id, side_files::BUILDKIT_PROVENANCE)
        ),
        sha256: sha256_hex(&bytes),
    })
}

/// Writes the image's SBOM beside the record, from what the build listed in the image and the
/// recorded Cargo.lock's checksums.
fn keep_sbom(
    store: &Store,
    build_id: &str,
    image_id: &str,
    req: &BuildRequest,
    materials: &Materials,
) -> Result<FileDigest> {
    let mut files = docker::files_in_image(image_id, sbom::IMAGE_DIR, 4 << 20)?;
    let mut take = |name: &str| -> Result<String> {
        let bytes = files.remove(name).with_context(|| {
            format!(
                "the image has no {}/{name}: api/Dockerfile writes it",
                sbom::IMAGE_DIR
            )
        })?;
        String::from_utf8(bytes).with_context(|| format!("{name} in the image is not UTF-8"))
    };
    let listed = sbom::Listed {
        crates: take(sbom::CRATES_FILE)?,
        packages: take(sbom::PACKAGES_FILE)?,
        distro: take(sbom::DISTRO_FILE)?,
    };
    let lock_path = req.repo.join("Cargo.lock");
    let lock_bytes =
        std::fs::read(&lock_path).with_context(|| format!("reading {}", lock_path.display()))?;
    if sha256_hex(&lock_bytes) != materials.cargo_lock.sha256 {
        bail!("Cargo.lock changed during the build: build again");
    }
    let lock = crate::record::vendor::parse_lock(&String::from_utf8_lossy(&lock_bytes))
        .context("parsing Cargo.lock")?;
    let bytes = sbom::to_bytes(&sbom::bom(&listed, &lock, &materials.git.tree)?);
    let name = names::side(build_id, side_files::SBOM);
    crate::record::store::write_atomic(&store.dir().join(&name), &bytes)?;
    Ok(FileDigest {
        path: format!("provenance/{}/{name}", store.node()),
        sha256: sha256_hex(&bytes),
    })
}

/// The bases still resolve to the IDs the build was given: a base retagged during the build
/// would have given the image another parent than the one recorded.
fn check_bases_unchanged(bases: &[BaseImage]) -> Result<()> {
    for base in bases {
        let now = docker::image_inspect(&base.reference)?.map(|i| i.id);
        if now.as_deref() != Some(base.id.as_str()) {
            bail!(
                "base image {} (build argument {}) was {} when the build started and is {} now: \
                 it changed during the build, so the record could not say what the image is \
                 made from; run `make demo` again",
                base.reference,
                base.arg,
                base.id,
                now.unwrap_or_else(|| "gone".into())
            );
        }
    }
    Ok(())
}

fn read_back(
    tag: &str,
    expected_labels: &BTreeMap<String, String>,
    store: ImageStore,
) -> Result<ImageRecord> {
    let image = docker::image_inspect(tag)?
        .ok_or_else(|| anyhow!("docker build succeeded but {tag} is not in the engine"))?;
    let labels = image.config.labels.unwrap_or_default();
    for (k, v) in expected_labels {
        if labels.get(k) != Some(v) {
            bail!("image {tag} lacks label {k}={v}: the engine did not apply the build's labels");
        }
    }
    let digests = docker::image_digests(store, &image.id)?;
    Ok(ImageRecord {
        config_digest: Some(digests.config),
        manifest_digest: digests.manifest,
        id_kind: Some(digests.id_kind),
        store: Some(store),
        id: image.id,
        tag: tag.to_string(),
        created: image.created,
        labels,
        layers: image.root_fs.layers,
    })
}
