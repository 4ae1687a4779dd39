//! The Docker and Compose command-line tools, as prov uses them inside a node.
//!
//! prov drives the CLI rather than the engine API so that what it runs is exactly what an
//! operator would type, and appears in the build log as such. The one exception is `prov
//! verify`'s read-only probe (`probe.rs`), which asks the engine API directly: it answers in
//! about a millisecond where each CLI call costs 30-50 ms. Both answer with the types of
//! `record::engine`, as the CLI's inspect output is the API's.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use crate::record::engine::ImageInspect;
use crate::record::manifest::{ImageIdKind, ImageStore};

/// `docker image inspect REF`, or `None` when the engine has no such image.
pub fn image_inspect(reference: &str) -> Result<Option<ImageInspect>> {
    let out = duct::cmd!("docker", "image", "inspect", reference)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .context("running `docker image inspect`")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No such image") {
            return Ok(None);
        }
        bail!("docker image inspect {reference}: {}", stderr.trim());
    }
    let mut images: Vec<ImageInspect> =
        serde_json::from_slice(&out.stdout).context("parsing `docker image inspect` output")?;
    images
        .pop()
        .map(Some)
        .ok_or_else(|| anyhow!("docker image inspect {reference} printed no image"))
}

#[derive(Debug, Deserialize)]
struct VersionInfo {
    #[serde(rename = "Client")]
    client: Component,
    #[serde(rename = "Server")]
    server: Option<Component>,
}

#[derive(Debug, Deserialize)]
struct Component {
    #[serde(rename = "Version")]
    version: String,
}

/// Client and engine versions; fails with a clear message when the engine does not answer.
pub fn versions() -> Result<(String, String)> {
    let out = duct::cmd!("docker", "version", "--format", "{{json .}}")
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .context("running `docker version`: is the docker client installed on this node?")?;
    let info: Option<VersionInfo> = serde_json::from_slice(&out.stdout).ok();
    match info {
        Some(VersionInfo {
            client,
            server: Some(server),
        }) if out.status.success() => Ok((client.version, server.version)),
        _ => bail!(
            "the Docker engine on this node does not answer ({}); start it \
             (`sudo service docker start`, or `make up` from the host) and build again",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// The Compose command of this node: the v2 plugin when present, else v1 `docker-compose`.
pub fn compose_command() -> Vec<String> {
    let v2 = duct::cmd!("docker", "compose", "version")
        .stdout_null()
        .stderr_null()
        .unchecked()
        .run()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if v2 {
        vec!["docker".into(), "compose".into()]
    } else {
        vec!["docker-compose".into()]
    }
}

pub fn compose_version(compose: &[String]) -> Result<String> {
    let mut args: Vec<&str> = compose[1..].iter().map(String::as_str).collect();
    args.extend(["version", "--short"]);
    let out = duct::cmd(&compose[0], &args)
        .read()
        .with_context(|| format!("running `{} version --short`", compose.join(" ")))?;
    Ok(out.trim().to_string())
}

/// The node engine's image store, from `docker info` (the containerd store reports the
/// snapshotter as its driver type).
pub fn image_store() -> Result<ImageStore> {
    let status: Vec<Vec<String>> = json_output(
        duct::cmd!("docker", "info", "--format", "{{json .DriverStatus}}"),
        "docker info",
    )?;
    let containerd = status
        .iter()
        .any(|pair| pair.len() == 2 && pair[0] == "driver-type" && pair[1].contains("snapshotter"));
    Ok(if containerd {
        ImageStore::Containerd
    } else {
        ImageStore::Classic
    })
}

/// Runs a command that prints JSON and parses what it printed; a failure carries its stderr.
fn json_output<T: serde::de::DeserializeOwned>(command: duct::Expression, what: &str) -> Result<T> {
    let out = command
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .with_context(|| format!("running `{what}`"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("parsing what `{what}` printed"))
}

/// The regular files in folder `dir` of an image, read through a container that is created,
/// never started, and removed. Each file is read up to `limit` bytes.
pub fn files_in_image(image: &str, dir: &str, limit: u64) -> Result<BTreeMap<String, Vec<u8>>> {
    let created = duct::cmd!("docker", "create", "--network", "none", image)
        .stderr_capture()
        .read()
        .with_context(|| format!("docker create {image}"))?;
    let container = created.trim();
    let copied = duct::cmd!("docker", "cp", format!("{container}:{dir}/."), "-")
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run();
    let removed = duct::cmd!("docker", "rm", container)
        .stdout_null()
        .stderr_capture()
        .unchecked()
        .run();
    let copied = copied.context("running docker cp")?;
    if !copied.status.success() {
        bail!(
            "docker cp {dir} out of {image}: {}",
            String::from_utf8_lossy(&copied.stderr).trim()
        );
    }
    if !removed.is_ok_and(|r| r.status.success()) {
        bail!("could not remove container {container}, made to read {image}: remove it by hand");
    }
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(copied.stdout.as_slice());
    for entry in archive.entries().context("reading docker cp's archive")? {
        let entry = entry.context("reading docker cp's archive")?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry
            .path()?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(entry, limit + 1), &mut bytes)?;
        if bytes.len() as u64 > limit {
            bail!("{dir}/{name} in {image} is larger than {limit} bytes");
        }
        files.insert(name, bytes);
    }
    Ok(files)
}

/// Whether the node has BuildKit through the buildx plugin (the builder on Engine 23 and
/// later); without it, the legacy builder.
pub fn has_buildx() -> bool {
    duct::cmd!("docker", "buildx", "version")
        .stdout_null()
        .stderr_null()
        .unchecked()
        .run()
        .is_ok_and(|o| o.status.success())
}

/// The containerd socket of a dockerd that manages its own containerd (how the nodes run it).
const CONTAINERD_SOCKET: &str = "/run/docker/containerd/containerd.sock";

/// What an image's ID names, and the digests of its manifest and configuration. The classic
/// store names an image by its configuration and keeps no manifest; the containerd store names
/// it by its manifest, or by its index when the image carries attestations.
pub fn image_digests(store: ImageStore, image_id: &str) -> Result<ImageDigests> {
    if store == ImageStore::Classic {
        return Ok(ImageDigests {
            id_kind: ImageIdKind::Config,
            manifest: None,
            config: image_id.to_string(),
        });
    }
    let top = containerd_blob(image_id)?;
    let (id_kind, manifest_digest, manifest) = match top.get("manifests").and_then(|m| m.as_array())
    {
        // An index: the image manifest is the one that is not an attestation.
        Some(children) => {
            let child = children
                .iter()
                .find(|c| {
                    c.pointer("/annotations/vnd.docker.reference.type")
                        .is_none()
                })
                .and_then(|c| c.get("digest"))
                .and_then(|d| d.as_str())
                .ok_or_else(|| anyhow!("image index {image_id} holds no image manifest"))?;
            (
                ImageIdKind::Index,
                child.to_string(),
                containerd_blob(child)?,
            )
        }
        None => (ImageIdKind::Manifest, image_id.to_string(), top),
    };
    let config = manifest
        .pointer("/config/digest")
        .and_then(|d| d.as_str())
        .ok_or_else(|| anyhow!("the manifest of {image_id} names no configuration"))?;
    Ok(ImageDigests {
        id_kind,
        manifest: Some(manifest_digest),
        config: config.to_string(),
    })
}

/// The digest of an image's configuration: the same on every node, whatever its store.
pub fn config_digest(store: ImageStore, image_id: &str) -> Result<String> {
    Ok(image_digests(store, image_id)?.config)
}

/// An image's identity in each sense (see [`image_digests`]).
pub struct ImageDigests {
    pub id_kind: ImageIdKind,
    pub manifest: Option<String>,
    pub config: String,
}

/// A JSON blob of containerd's content store, by digest.
fn containerd_blob(digest: &str) -> Result<serde_json::Value> {
    // Reading the containerd store needs root: the host runs the node scripts under sudo.
    json_output(
        duct::cmd!(
            "ctr",
            "--address",
            CONTAINERD_SOCKET,
            "--namespace",
            "moby",
            "content",
            "get",
            digest
        ),
        &format!("ctr content get {digest}"),
    )
}
