//! The base images the host made (`make bases`), as the host's own engine describes them
//! (`.cache/images/bases.json`, written by scripts/host/bases.sh): what every node's copy of them,
//! every record naming them and the running database are held to. A node's image store may name
//! an image otherwise (the containerd store names it by its manifest), so an image is one of the
//! host's when it has the same layers and the same configuration.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::host::probe::{self, ImageQuery};
use crate::host::transport::Transport;
use crate::record::engine::{ImageConfig, ImageInspect};

/// Where scripts/host/bases.sh describes the bases it made.
pub const BASES_JSON: &str = ".cache/images/bases.json";
/// What it saves of them, for nodes to load.
pub const BASES_TAR: &str = ".cache/images/bases.tar";

/// One base, as the host's engine describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct HostBase {
    /// `runtime`, `postgres` or `builder`.
    pub name: String,
    pub tag: String,
    /// Its ID on the host's classic store: the digest of its configuration.
    pub id: String,
    pub created: DateTime<Utc>,
    pub layers: Vec<String>,
    pub config: ImageConfig,
    /// Its history, newest first: the bottom of the history of every image built on it.
    pub history: Vec<BaseHistoryEntry>,
}

/// One entry of a base's history, as the host's engine describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct BaseHistoryEntry {
    pub created: DateTime<Utc>,
    pub created_by: String,
}

#[derive(Debug, Clone)]
pub struct HostBases(pub Vec<HostBase>);

/// The base a build argument of api/Dockerfile carries, and the database's.
pub fn base_of_arg(arg: &str) -> Option<&'static str> {
    match arg {
        "BUILDER_IMAGE" => Some("builder"),
        "RUNTIME_IMAGE" => Some("runtime"),
        _ => None,
    }
}
pub const DATABASE: &str = "postgres";

impl HostBases {
    pub fn load(repo: &Path) -> Result<HostBases> {
        let path = repo.join(BASES_JSON);
        let bytes = crate::record::bounded::read(&path)?.ok_or_else(|| {
            anyhow!(
                "{} is missing: the host describes its base images there; run `make bases`",
                path.display()
            )
        })?;
        let bases: Vec<HostBase> = serde_json::from_slice(&bytes)
            .with_context(|| format!("reading {}: run `make bases` again", path.display()))?;
        Ok(HostBases(bases))
    }

    pub fn get(&self, name: &str) -> Result<&HostBase> {
        self.0
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| anyhow!("{BASES_JSON} describes no {name} base: run `make bases`"))
    }

    /// The newest base's creation time (a build's source date is never earlier).
    pub fn newest(&self, names: &[&str]) -> Option<DateTime<Utc>> {
        self.0
            .iter()
            .filter(|b| names.contains(&b.name.as_str()))
            .map(|b| b.created)
            .max()
    }
}

/// Why an image a node's engine holds is not the host's base, or `None` when it is: the same
/// layers and the same configuration.
pub fn differs(base: &HostBase, found: &ImageInspect) -> Option<String> {
    if found.root_fs.layers != base.layers {
        return Some(format!(
            "its layers are not those of the host's {} ({})",
            base.name, base.tag
        ));
    }
    let (ours, theirs) = (
        serde_json::to_value(&base.config).ok(),
        serde_json::to_value(&found.config).ok(),
    );
    if ours != theirs {
        return Some(format!(
            "its configuration is not that of the host's {} ({})",
            base.name, base.tag
        ));
    }
    None
}

/// `prov bases --node N`: the node's engine holds exactly the host's bases under their tags.
/// When it lacks one, or a tag names another image, the host's saved bases are loaded into it,
/// and checked again. Returns what was wrong before, if anything.
///
/// A tag that names another image is removed before the load, not left for `docker load` to
/// move: Engine 26's containerd store keeps a moved tag's labels, so the base would carry the
/// classic builder's parent label of the image built from it, a parent cycle in which the
/// engine's next pruning `docker image rm` loops until the node runs out of memory (measured).
pub fn ship(repo: &Path, transport: &Transport) -> Result<Vec<String>> {
    let bases = HostBases::load(repo)?;
    let quick = transport.bounded(std::time::Duration::from_secs(30));
    let wrong = check_node(&bases, &quick)?;
    if wrong.is_empty() {
        return Ok(Vec::new());
    }
    let tar = repo.join(BASES_TAR);
    let size = std::fs::metadata(&tar)
        .with_context(|| format!("{} is missing: run `make bases`", tar.display()))?
        .len();
    let moved: Vec<String> = wrong
        .iter()
        .filter(|w| w.moved)
        .map(|w| w.tag.clone())
        .collect();
    if !moved.is_empty() {
        // Forced, so that a container on the moved tag keeps its image (then untagged only);
        // without pruning, so that the engine does not walk parents it may have in a cycle.
        let argv: Vec<String> = ["docker", "image", "rm", "--force", "--no-prune"]
            .into_iter()
            .map(String::from)
            .chain(moved)
            .collect();
        let out = quick.output(&argv)?;
        if !out.status.success() {
            bail!(
                "removing the moved base tags from node {} failed: {}",
                transport.node(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let limit = std::time::Duration::from_secs(60 + size / (10 << 20));
    let out = transport
        .bounded(limit)
        .feed(&["docker".to_string(), "load".to_string()], move |stdin| {
            std::io::copy(&mut std::fs::File::open(&tar)?, stdin).map(drop)
        })?;
    if !out.status.success() {
        bail!(
            "loading the host's bases into node {} failed: {}",
            transport.node(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let still = check_node(
        &bases,
        &transport.bounded(std::time::Duration::from_secs(30)),
    )?;
    if !still.is_empty() {
        bail!(
            "node {}'s engine does not hold the host's bases even after loading them: {}",
            transport.node(),
            still
                .iter()
                .map(|w| w.why.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(wrong.into_iter().map(|w| w.why).collect())
}

/// A base the node's engine does not hold as the host's under its tag.
struct Wrong {
    tag: String,
    /// The tag names another image (rather than nothing).
    moved: bool,
    why: String,
}

/// What is wrong with the node's copy of each base, by tag.
fn check_node(bases: &HostBases, transport: &Transport) -> Result<Vec<Wrong>> {
    let query = ImageQuery {
        inspect: bases.0.iter().map(|b| b.tag.clone()).collect(),
        history: Vec::new(),
    };
    let found = probe::images_by_reference(transport, &query.inspect)?;
    Ok(bases
        .0
        .iter()
        .zip(found)
        .filter_map(|(base, image)| match image {
            None => Some(Wrong {
                tag: base.tag.clone(),
                moved: false,
                why: format!("{} is missing", base.tag),
            }),
            Some(image) => differs(base, &image).map(|why| Wrong {
                tag: base.tag.clone(),
                moved: true,
                why: format!(
                    "{} names {}: {why}",
                    base.tag,
                    crate::record::text::short_id(&image.id)
                ),
            }),
        })
        .collect())
}
