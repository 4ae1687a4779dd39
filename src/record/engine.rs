//! What a Docker engine answers about its images and containers: the subset of `docker
//! inspect` (and the engine API, whose answers the CLI prints as they are) that prov reads.
//! Nodes produce these answers and the host reads them; they are data, and never trusted for
//! being well-formed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

    /// The command its healthcheck runs, as `ps` and the engine's events show it.
    pub fn healthcheck_command(&self) -> Option<String> {
        let test = &self.config.healthcheck.as_ref()?.test;
        match test.first().map(String::as_str) {
            Some("CMD") => Some(test[1..].join(" ")),
            Some("CMD-SHELL") => Some(format!("/bin/sh -c {}", test[1..].join(" "))),
            _ => None,
        }
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

/// The processes of a container as `ps -eo pid,ppid,args` lists them: those in its process
/// namespace, as verify has the node list them, or, where it cannot, those the engine lists
/// (`GET /containers/{id}/top`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Top {
    #[serde(rename = "Titles")]
    pub titles: Vec<String>,
    #[serde(rename = "Processes", default)]
    pub processes: Option<Vec<Vec<String>>>,
}

impl Top {
    /// Whether a process is listed without its command line (`[name]`, not a zombie): one
    /// between its fork and its exec, or exiting, at the moment `ps` read it; or as `runc init`,
    /// the node's runc setting up an exec session (a healthcheck's), which becomes the session's
    /// command a moment later. Asked again, it is gone; verify judges one that stays as it is.
    pub fn lists_one_in_passing(&self) -> bool {
        let Some(command) = self.titles.iter().position(|t| t == "COMMAND") else {
            return false;
        };
        self.processes
            .iter()
            .flatten()
            .filter_map(|row| row.get(command))
            .any(|c| (c.starts_with('[') && c.ends_with(']')) || c == "runc init")
    }
}

/// A path a container changed against its image: an entry of its writable layer, or of the
/// engine's `GET /containers/{id}/changes`.
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

/// A file a stack container executes, as the node hashed it: a file a process of the container
/// maps executable (its executable, its libraries), or the entrypoint's file as the container's
/// root holds it (`sha256` `None`: it holds none at that path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Executed {
    pub path: String,
    pub sha256: Option<String>,
    #[serde(default)]
    pub entrypoint: bool,
    /// The file's identity on the node (size, device, inode, modification and change times),
    /// when it was found: what the host keeps a proven sha256 under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The node did not hash it: its identity is one the host proved, with this sha256.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proven_before: bool,
}

impl Executed {
    /// The path in the container's root: a file deleted or replaced since it was mapped keeps
    /// the name it was mapped by.
    pub fn path_in_root(&self) -> &str {
        self.path.strip_suffix(" (deleted)").unwrap_or(&self.path)
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
    /// What each stack container executes, by container ID: absent when the node could not
    /// tell.
    #[serde(default)]
    pub executed: BTreeMap<String, Vec<Executed>>,
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

impl NodeState {
    /// Whether what a stack container runs was caught changing: a process listed without its
    /// command line (between fork and exec, or exiting), or a file mapped that is no longer at
    /// its path in the container's root. runc's init shows the latter while it sets up an exec
    /// session (a healthcheck's): the node's own runc and libraries, mapped from outside the
    /// container. Asked again, it is gone; verify judges one that stays as it is. Not for a
    /// container in another's process namespace (the node's, say): it maps what the others run
    /// for as long as it runs, and its configuration fails anyway; asking again only waited.
    pub fn in_passing(&self) -> bool {
        let own_namespace = |id: &String| {
            self.containers
                .iter()
                .any(|c| &c.id == id && c.host_config.pid_mode.is_empty())
        };
        self.processes.values().any(Top::lists_one_in_passing)
            || self.executed.iter().any(|(id, executed)| {
                own_namespace(id) && executed.iter().any(|e| e.sha256.is_none() && !e.entrypoint)
            })
    }
}
