//! What a build is made of, gathered before it starts: the policy, the recorded tree and the
//! context planned from it, the Dockerfile, the lockfile, the bases (by ID), the engine's
//! versions and store; and the labels they give the image. Compose's version and the stack's
//! configuration, which only the record needs, are asked while the image builds.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::node::docker;
use crate::record::build_context;
use crate::record::build_inputs::{source_url, Builder};
use crate::record::compose;
use crate::record::compose::{ComposeConfig, COMPOSE_IMAGE_PLACEHOLDER};
use crate::record::digest::{sha256_file, sha256_hex};
use crate::record::engine::ImageInspect;
use crate::record::manifest::{
    labels, BaseImage, FileDigest, GitSource, ImageStore, SourceDate, ToolInfo,
};
use crate::record::policy;
use crate::record::stack;
use crate::record::tree_hash;

use super::phases::Phases;
use super::BuildRequest;

/// Everything known before the build starts.
pub(super) struct Materials {
    pub(super) policy: FileDigest,
    /// The context from the recorded tree, streamed to the builder as it reads it.
    pub(super) context: build_context::Plan,
    pub(super) git: GitSource,
    pub(super) dockerfile: FileDigest,
    pub(super) cargo_lock: FileDigest,
    pub(super) base_images: Vec<BaseImage>,
    /// Without Compose's version: Compose is asked while the image builds (`ask_compose`).
    pub(super) tool: ToolInfo,
    pub(super) source_url: String,
    /// What every timestamp in the image is set to, where the builder can (BuildKit).
    pub(super) source_date: SourceDate,
    pub(super) store: ImageStore,
    pub(super) builder: Builder,
}

/// The record's inputs and the build context (the phases `materials` and `context`).
pub(super) fn gather_materials(req: &BuildRequest, phases: &mut Phases) -> Result<Materials> {
    let start = std::time::Instant::now();
    let materials = gather(req, phases);
    phases.set_less("materials", start.elapsed().as_secs_f64(), "context");
    materials
}

pub(super) fn gather(req: &BuildRequest, phases: &mut Phases) -> Result<Materials> {
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
    // tree is hashed and the context planned.
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

/// What the node's Docker engine says that the build itself needs.
pub(super) struct EngineFacts {
    pub(super) versions: BTreeMap<String, String>,
    pub(super) store: ImageStore,
    pub(super) builder: Builder,
    pub(super) base_images: Vec<BaseImage>,
    pub(super) base_times: Vec<DateTime<Utc>>,
}

/// The engine's versions (which also show that it answers), its store, its builder and the
/// bases: each a CLI call of its own (30 to 60 ms each here), all at once.
pub(super) fn ask_engine(req: &BuildRequest) -> Result<EngineFacts> {
    std::thread::scope(|scope| {
        let versions = scope.spawn(docker::versions);
        let store = scope.spawn(docker::image_store);
        let buildx = scope.spawn(docker::has_buildx);
        let inspected: Vec<_> = req
            .bases
            .iter()
            .map(|(arg, reference)| {
                scope.spawn(move || docker::image_inspect(reference).map(|i| (arg, reference, i)))
            })
            .collect();
        let joined = || anyhow!("asking the Docker engine panicked");
        let (docker_client, docker_engine) = versions.join().map_err(|_| joined())??;
        let store = store.join().map_err(|_| joined())??;
        let builder = if buildx.join().map_err(|_| joined())? {
            Builder::BuildKit
        } else {
            Builder::Legacy
        };
        let mut versions = BTreeMap::new();
        versions.insert("prov".to_string(), env!("CARGO_PKG_VERSION").to_string());
        versions.insert("docker_client".to_string(), docker_client);
        versions.insert("docker_engine".to_string(), docker_engine);
        let (base_images, base_times) = inspected
            .into_iter()
            .map(|handle| {
                let (arg, reference, image) = handle.join().map_err(|_| joined())??;
                resolve_base(arg, reference, image, store)
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        Ok(EngineFacts {
            versions,
            store,
            builder,
            base_images,
            base_times,
        })
    })
}

/// What Compose says, which only the record needs: asked while the image builds (Compose v1
/// takes 0.3 s a call on a bookworm node). Its version, and the stack's configuration.
pub(super) fn ask_compose(
    req: &BuildRequest,
    store: ImageStore,
) -> Result<(String, ComposeConfig)> {
    let compose = docker::compose_command();
    let version = docker::compose_version(&compose)?;
    let config = compose_config(&compose, &req.repo, &req.compose_file, store)?;
    Ok((version, config))
}

/// `path` (relative to the repository) relative to the context folder, if it is inside.
pub(super) fn in_context_dir<'a>(context: &Path, path: &'a Path) -> Option<&'a Path> {
    path.strip_prefix(build_context::as_prefix(context)).ok()
}

/// The build context, from the tree just hashed. The Dockerfile must be one of its files.
pub(super) fn make_context(
    req: &BuildRequest,
    spec: &crate::record::policy::ContextSpec,
    files: &[tree_hash::TreeFile],
) -> Result<build_context::Plan> {
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
    build_context::plan(&req.repo, &req.context, spec, files)
        .context("making the build context from the recorded tree")
}

pub(super) fn file_digest(repo: &Path, rel: &Path) -> Result<FileDigest> {
    let sha256 =
        sha256_file(&repo.join(rel)).with_context(|| format!("hashing {}", rel.display()))?;
    Ok(FileDigest {
        path: rel.to_string_lossy().into_owned(),
        sha256,
    })
}

/// The base as the node holds it (`image`, as inspected), and when it was made.
fn resolve_base(
    arg: &str,
    reference: &str,
    image: Option<ImageInspect>,
    store: ImageStore,
) -> Result<(BaseImage, DateTime<Utc>)> {
    let image = image.ok_or_else(|| {
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
pub(super) fn compose_config(
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
pub(super) fn stamp(req: &BuildRequest, m: &Materials) -> BTreeMap<String, String> {
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

/// The bases still resolve to the IDs the build was given: a base retagged during the build
/// would have given the image another parent than the one recorded.
pub(super) fn check_bases_unchanged(bases: &[BaseImage]) -> Result<()> {
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
