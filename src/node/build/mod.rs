//! `prov build`: record the materials, run `docker build --no-cache --network=none` with the
//! output streamed to the terminal and the log, stamp the image, write the manifest, move `latest`.
//! And `prov rebuild`, the same build under a tag of its own, recording nothing. The phases are
//! in files of their own: what the build is made of (`materials`), the builder (`docker_build`),
//! what is kept beside the record (`keep`), and how long each took (`phases`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::record::build_inputs::Builder;
use crate::record::digest::sha256_hex;
use crate::record::manifest::{
    BuildContext, BuildLog, BuildStatus, ImageRecord, LatestPointer, Manifest, MANIFEST_SCHEMA,
};
use crate::record::names;
use crate::record::nodes::NodeName;
use crate::record::reproduction::Rebuilt;
use crate::record::store::Store;

mod docker_build;
mod keep;
mod materials;
mod phases;

use docker_build::{archive_path, load_archive, run_docker_build, Ran};
use keep::{keep_buildkit_provenance, keep_sbom, read_back};
use materials::{ask_compose, check_bases_unchanged, gather_materials, stamp, Materials};
use phases::Phases;

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
    /// Keep BuildKit's own provenance beside the record (BuildKit nodes; `prov build
    /// --buildkit-provenance`).
    pub buildkit_provenance: bool,
}

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
    let (made, compose) = std::thread::scope(|scope| {
        let compose = scope.spawn(|| ask_compose(req, materials.store));
        let made = phases.time_with_cpu("build", "while_building", || {
            make_image(
                req,
                &materials,
                &tag,
                &req.repo.join(&log_rel),
                &mut std::io::stdout(),
            )
        });
        (made, compose.join())
    });
    let made = made?;
    let (compose_version, compose) = compose
        .map_err(|_| anyhow!("asking Compose panicked"))?
        .with_context(|| {
            format!(
                "the image {tag} was built, but the stack's Compose configuration could not be \
                 read, so no manifest was written: mend it and build again"
            )
        })?;
    let mut tool = materials.tool.clone();
    tool.versions.insert("compose".to_string(), compose_version);
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
        None if req.buildkit_provenance
            && materials.builder == Builder::BuildKit
            && result.is_ok() =>
        {
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
        compose,
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
        context: Some(made.context),
        prev_manifest_sha256: prev.map(|p| p.sha256),
        tool,
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
    /// The build context's record.
    context: BuildContext,
    /// Whether the builder (and, for BuildKit, loading the image) succeeded.
    result: Result<()>,
    image: Option<ImageRecord>,
    /// BuildKit's provenance of the image, when asked for and attached.
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
    // The build's scratch: the legacy builder's image ID, before the image is labelled; and,
    // with its provenance asked for, BuildKit's OCI archive, which prov loads (`load_archive`).
    let scratch = tempfile::Builder::new()
        .prefix("prov-build.")
        .tempdir()
        .context("making a scratch folder for the build's output")?;
    let archive = archive_path(req, materials, scratch.path());
    let Ran {
        log,
        context,
        mut result,
    } = run_docker_build(
        req,
        materials,
        tag,
        &image_labels,
        scratch.path(),
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
        context,
        result,
        image,
        statement,
    })
}
