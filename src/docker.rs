//! The Docker and Compose command-line tools, as prov uses them inside a node.
//!
//! prov drives the CLI rather than the engine API so that what it runs is exactly what an
//! operator would type, and appears in the build log as such. The one exception is `prov
//! verify`'s read-only probe (`probe.rs`), which asks the engine API directly: it answers in
//! about a millisecond where each CLI call costs 30-50 ms. The types below read both, as the
//! CLI's inspect output is the API's.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{ImageIdKind, ImageStore};

/// The subset of `docker image inspect` prov reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageInspect {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Vec<String>,
    #[serde(rename = "RepoDigests", default)]
    pub repo_digests: Vec<String>,
    #[serde(rename = "Created")]
    pub created: DateTime<Utc>,
    #[serde(rename = "Config")]
    pub config: ImageConfig,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
}

/// An image's configuration: the defaults a container of it starts with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "User", default)]
    pub user: String,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Healthcheck", default)]
    pub healthcheck: Option<HealthConfig>,
    #[serde(rename = "Volumes", default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: String,
    #[serde(rename = "StopSignal", default)]
    pub stop_signal: Option<String>,
    #[serde(rename = "Shell", default)]
    pub shell: Option<Vec<String>>,
    #[serde(rename = "ExposedPorts", default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

/// A healthcheck as the engine stores it; unset durations are absent (0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    #[serde(rename = "Test", default)]
    pub test: Vec<String>,
    #[serde(rename = "Interval", default)]
    pub interval: i64,
    #[serde(rename = "Timeout", default)]
    pub timeout: i64,
    #[serde(rename = "Retries", default)]
    pub retries: i64,
    #[serde(rename = "StartPeriod", default)]
    pub start_period: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

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

/// A container as the engine describes it (`docker inspect`): the fields prov reads by name, and
/// the whole answer (`raw`), which verify compares field by field (`container_config.rs`).
#[derive(Debug, Clone)]
pub struct ContainerInspect {
    fields: ContainerFields,
    pub raw: serde_json::Value,
}

impl std::ops::Deref for ContainerInspect {
    type Target = ContainerFields;
    fn deref(&self) -> &ContainerFields {
        &self.fields
    }
}

impl<'de> Deserialize<'de> for ContainerInspect {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        let fields = serde_json::from_value(raw.clone()).map_err(serde::de::Error::custom)?;
        Ok(ContainerInspect { fields, raw })
    }
}

impl Serialize for ContainerInspect {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

/// The fields of a container's inspect answer prov reads by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerFields {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Created")]
    pub created: DateTime<Utc>,
    /// The image id the container runs.
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "State")]
    pub state: ContainerState,
    #[serde(rename = "RestartCount")]
    pub restart_count: i64,
    #[serde(rename = "Config")]
    pub config: ContainerConfig,
    #[serde(rename = "HostConfig", default)]
    pub host_config: HostConfig,
    #[serde(rename = "Mounts", default)]
    pub mounts: Vec<Mount>,
    #[serde(rename = "NetworkSettings")]
    pub network_settings: NetworkSettings,
    /// The engine's log file of the container (the json-file driver's).
    #[serde(rename = "LogPath", default)]
    pub log_path: String,
    /// Exec sessions running in it now.
    #[serde(rename = "ExecIDs", default)]
    pub exec_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "Running")]
    pub running: bool,
    #[serde(rename = "Restarting")]
    pub restarting: bool,
    #[serde(rename = "StartedAt")]
    pub started_at: String,
    #[serde(rename = "Pid")]
    pub pid: i64,
    #[serde(rename = "Health")]
    pub health: Option<Health>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    #[serde(rename = "Status")]
    pub status: String,
}

/// A container's configuration: the image's defaults with what its creator set on top.
pub type ContainerConfig = ImageConfig;

/// How the engine runs a container: what Compose (or `docker run`) asked for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostConfig {
    /// `container:<id or name>`, `host`, or empty: whose process namespace it shares.
    #[serde(rename = "PidMode", default)]
    pub pid_mode: String,
    #[serde(rename = "IpcMode", default)]
    pub ipc_mode: String,
    /// A network's name, or `container:<id or name>`, or `host`.
    #[serde(rename = "NetworkMode", default)]
    pub network_mode: String,
    #[serde(rename = "UTSMode", default)]
    pub uts_mode: String,
    #[serde(rename = "VolumesFrom", default)]
    pub volumes_from: Option<Vec<String>>,
    /// `"8080/tcp"` -> the host addresses and ports it is published on.
    #[serde(rename = "PortBindings", default)]
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    #[serde(rename = "RestartPolicy", default)]
    pub restart_policy: RestartPolicy,
    #[serde(rename = "Privileged", default)]
    pub privileged: bool,
    #[serde(rename = "CapAdd", default)]
    pub cap_add: Option<Vec<String>>,
    #[serde(rename = "CapDrop", default)]
    pub cap_drop: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PortBinding {
    #[serde(rename = "HostIp", default)]
    pub host_ip: String,
    #[serde(rename = "HostPort", default)]
    pub host_port: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// Empty when none was set, which means `no`.
    #[serde(rename = "Name", default)]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mount {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Name", default)]
    pub name: Option<String>,
    #[serde(rename = "Source", default)]
    pub source: String,
    #[serde(rename = "Destination")]
    pub destination: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkSettings {
    #[serde(rename = "Networks", default)]
    pub networks: BTreeMap<String, Endpoint>,
}

/// A container's place on one network.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Endpoint {
    #[serde(rename = "Aliases", default)]
    pub aliases: Option<Vec<String>>,
}

impl ContainerInspect {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.config.labels.as_ref()?.get(key).map(String::as_str)
    }
}

/// One entry of an image's history (`GET /images/{id}/history`), newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The id of the local image whose top entry this is, else `<missing>`.
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Created", with = "chrono::serde::ts_seconds")]
    pub created: DateTime<Utc>,
    #[serde(rename = "CreatedBy")]
    pub created_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageHistory {
    pub image: String,
    pub entries: Vec<HistoryEntry>,
}

/// The processes of a container, as the engine lists them (`GET /containers/{id}/top`, run
/// with `ps -eo pid,ppid,args`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Top {
    #[serde(rename = "Titles")]
    pub titles: Vec<String>,
    #[serde(rename = "Processes", default)]
    pub processes: Option<Vec<Vec<String>>>,
}

/// A path a container changed against its image (`GET /containers/{id}/changes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    #[serde(rename = "Path")]
    pub path: String,
    /// 0 modified, 1 added, 2 deleted.
    #[serde(rename = "Kind")]
    pub kind: u8,
}

impl Change {
    pub fn describe(&self) -> String {
        let what = match self.kind {
            0 => "changed",
            1 => "added",
            2 => "deleted",
            _ => "touched",
        };
        format!("{} ({what})", self.path)
    }
}

/// One event the engine remembers (`GET /events`, with `since` and `until`: it keeps the last
/// 256, of every container).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineEvent {
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: EventActor,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventActor {
    #[serde(rename = "ID")]
    pub id: String,
}

/// One line of a container's json-file log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub log: String,
    pub stream: String,
    pub time: DateTime<Utc>,
}

/// A node's Docker state as `prov verify` reads it (`probe.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    /// Every container: the stack's two first, when they exist.
    pub containers: Vec<ContainerInspect>,
    pub images: Vec<ImageInspect>,
    pub history: Vec<ImageHistory>,
    /// The processes of each stack container, by container ID.
    #[serde(default)]
    pub processes: BTreeMap<String, Top>,
    /// What each stack container changed in its files against its image, by container ID.
    #[serde(default)]
    pub changes: BTreeMap<String, Vec<Change>>,
    /// The starts and exec sessions of the stack's containers the engine still remembers.
    #[serde(default)]
    pub events: Vec<EngineEvent>,
    /// The api container's log since verify began asking (where the api notes each request
    /// that carries verify's nonce), or why it could not be read.
    #[serde(default)]
    pub api_log: Option<Result<Vec<LogLine>, String>>,
    /// The containers the list shows beyond the stack's, not asked for yet (`probe::after_http`).
    #[serde(skip)]
    pub others: Vec<String>,
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
