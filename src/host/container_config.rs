//! A stack container's whole configuration, as the engine reports it, compared with what the
//! recorded Compose configuration makes of it.
//!
//! Every field the engine reports is in [`FIELDS`], once: compared (with the value Compose, the
//! image or the engine's default gives it), or listed as varying by nature, with the reason. A
//! field that is in neither (a newer engine's) is a difference: nothing is silently ignored, and
//! the unit tests over both engines' answers fail first. Values the engines spell differently
//! for "unset" (`null`, `""`, `[]`, `{}`) compare equal.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::record::compose::ServiceSpec;
use crate::record::engine::ImageConfig;
use crate::record::nodes::NODE_MOUNT;
use crate::record::stack::{self, compose_labels};

/// What a service's container must be: its recorded configuration and what it is made from.
pub struct Expected<'a> {
    pub service: &'a str,
    pub spec: &'a ServiceSpec,
    /// The image ID it must run.
    pub image_id: &'a str,
    /// The image reference Compose created it with (`Config.Image`).
    pub image_ref: &'a str,
    /// The configuration of the image it runs: the defaults Compose leaves in place.
    pub image: &'a ImageConfig,
    /// The container's own ID, which names its default hostname and one of its aliases.
    pub container_id: &'a str,
    /// The Compose version that made the record's configuration (`1.29.2`, `2.26.1`).
    pub compose_version: &'a str,
}

impl Expected<'_> {
    fn compose_v2(&self) -> bool {
        !self.compose_version.starts_with("1.")
    }

    fn short_id(&self) -> &str {
        self.container_id.get(..12).unwrap_or(self.container_id)
    }
}

/// How one field is judged.
enum Rule {
    /// Not compared: it differs between any two correct containers. The reason says why.
    Varies(&'static str),
    /// Compared by another check, named here.
    Judged(&'static str),
    /// The engine's zero value: unset, empty, 0 or false.
    Zero,
    /// Equal to the value given.
    Equals(fn(&Expected) -> Value),
    /// A list holding the same items, in any order.
    Set(fn(&Expected) -> Vec<String>),
    /// A list holding at least these items (the engine's defaults: more is stricter).
    AtLeast(&'static [&'static str]),
    /// One of these values (engines differ in their default).
    OneOf(&'static [&'static str]),
    /// A field of its own shape, compared by its own function (given the name of the object
    /// the field is in: a network's, for an endpoint's fields).
    Custom(fn(&Expected, &str, &Value) -> Vec<String>),
}

/// Paths the engine masks or makes read-only in every container by default (Engine 20.10 and
/// 26; newer engines add paths, never remove them).
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The logging every node's engine is configured with (images/node/daemon-*.json).
pub fn node_log_config() -> Value {
    json!({"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}})
}

/// The engine's default size of /dev/shm.
const SHM_SIZE: u64 = 64 << 20;

const ID: &str = "assigned by the engine when the container is made";
const STATE: &str = "the container's state, judged by service:<name>";
const ADDRESS: &str = "assigned when the container starts";
const PATHS: &str = "the engine's own files for this container, named by its ID";
const DEFAULT_BRIDGE: &str =
    "set only on the default bridge network, which a stack container is not on (Networks)";

/// Every field of a container's inspect answer, by path (`*` stands for a network's name).
static FIELDS: &[(&str, Rule)] = &[
    ("Id", Rule::Varies(ID)),
    ("Created", Rule::Judged("container-fresh")),
    ("Path", Rule::Equals(|e| json!(process(e).first()))),
    ("Args", Rule::Equals(|e| json!(process(e).get(1..)))),
    ("State", Rule::Varies(STATE)),
    ("Image", Rule::Equals(|e| json!(e.image_id))),
    ("ResolvConfPath", Rule::Varies(PATHS)),
    ("HostnamePath", Rule::Varies(PATHS)),
    ("HostsPath", Rule::Varies(PATHS)),
    ("LogPath", Rule::Varies(PATHS)),
    (
        "Name",
        Rule::Equals(|e| json!(format!("/{}", container_name(e)))),
    ),
    (
        "RestartCount",
        Rule::Varies("how often the restart policy (compared) restarted it"),
    ),
    ("Driver", Rule::Varies("the node's storage driver")),
    ("Platform", Rule::Equals(|_| json!("linux"))),
    ("MountLabel", Rule::Zero),
    ("ProcessLabel", Rule::Zero),
    ("AppArmorProfile", Rule::OneOf(&["", "docker-default"])),
    ("ExecIDs", Rule::Judged("processes:<name>")),
    (
        "GraphDriver",
        Rule::Varies("the storage driver's folders for this container"),
    ),
    ("Mounts", Rule::Custom(mounts)),
    // Config: what the container runs.
    ("Config.Hostname", Rule::Equals(|e| json!(e.short_id()))),
    ("Config.Domainname", Rule::Zero),
    ("Config.User", Rule::Equals(|e| json!(user(e)))),
    ("Config.AttachStdin", Rule::Zero),
    // Compose v2 creates containers it can attach to; v1 detached ones.
    (
        "Config.AttachStdout",
        Rule::Equals(|e| json!(e.compose_v2())),
    ),
    (
        "Config.AttachStderr",
        Rule::Equals(|e| json!(e.compose_v2())),
    ),
    ("Config.ExposedPorts", Rule::Set(exposed_ports)),
    ("Config.Tty", Rule::Zero),
    ("Config.OpenStdin", Rule::Zero),
    ("Config.StdinOnce", Rule::Zero),
    ("Config.Env", Rule::Custom(environment)),
    (
        "Config.Cmd",
        Rule::Equals(|e| json!(command(e).unwrap_or_default())),
    ),
    ("Config.Healthcheck", Rule::Custom(healthcheck)),
    ("Config.Image", Rule::Equals(|e| json!(e.image_ref))),
    (
        "Config.Volumes",
        Rule::Set(|e| {
            e.image
                .volumes
                .iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect()
        }),
    ),
    (
        "Config.WorkingDir",
        Rule::Equals(|e| json!(e.image.working_dir)),
    ),
    (
        "Config.Entrypoint",
        Rule::Equals(|e| json!(entrypoint(e).unwrap_or_default())),
    ),
    ("Config.OnBuild", Rule::Zero),
    ("Config.Labels", Rule::Custom(labels)),
    (
        "Config.StopSignal",
        Rule::Equals(|e| json!(e.image.stop_signal)),
    ),
    ("Config.StopTimeout", Rule::Zero),
    ("Config.Shell", Rule::Equals(|e| json!(e.image.shell))),
    ("Config.MacAddress", Rule::Zero),
    ("Config.NetworkDisabled", Rule::Zero),
    ("Config.ArgsEscaped", Rule::Zero),
    // HostConfig: how the engine runs it.
    (
        "HostConfig.Binds",
        Rule::Varies("how Compose v1 asks for mounts; the mounts made are compared (Mounts)"),
    ),
    (
        "HostConfig.Mounts",
        Rule::Varies("how Compose v2 asks for mounts; the mounts made are compared (Mounts)"),
    ),
    ("HostConfig.Tmpfs", Rule::Custom(tmpfs)),
    ("HostConfig.ContainerIDFile", Rule::Zero),
    ("HostConfig.LogConfig", Rule::Equals(|_| node_log_config())),
    (
        "HostConfig.NetworkMode",
        Rule::Equals(|e| json!(e.spec.networks.keys().next())),
    ),
    ("HostConfig.PortBindings", Rule::Custom(port_bindings)),
    ("HostConfig.RestartPolicy", Rule::Custom(restart_policy)),
    ("HostConfig.AutoRemove", Rule::Zero),
    ("HostConfig.VolumeDriver", Rule::Zero),
    ("HostConfig.VolumesFrom", Rule::Zero),
    ("HostConfig.ConsoleSize", Rule::Equals(|_| json!([0, 0]))),
    ("HostConfig.Annotations", Rule::Zero),
    ("HostConfig.CapAdd", Rule::Set(|e| e.spec.cap_add.clone())),
    ("HostConfig.CapDrop", Rule::Set(|e| e.spec.cap_drop.clone())),
    // cgroup v1 nodes default to the host's namespace, cgroup v2 nodes to a private one.
    ("HostConfig.CgroupnsMode", Rule::OneOf(&["host", "private"])),
    ("HostConfig.Dns", Rule::Zero),
    ("HostConfig.DnsOptions", Rule::Zero),
    ("HostConfig.DnsSearch", Rule::Zero),
    ("HostConfig.ExtraHosts", Rule::Zero),
    ("HostConfig.GroupAdd", Rule::Zero),
    ("HostConfig.IpcMode", Rule::Equals(|_| json!("private"))),
    ("HostConfig.Cgroup", Rule::Zero),
    ("HostConfig.Links", Rule::Zero),
    ("HostConfig.OomScoreAdj", Rule::Zero),
    ("HostConfig.PidMode", Rule::Zero),
    (
        "HostConfig.Privileged",
        Rule::Equals(|e| json!(e.spec.privileged)),
    ),
    ("HostConfig.PublishAllPorts", Rule::Zero),
    (
        "HostConfig.ReadonlyRootfs",
        Rule::Equals(|e| json!(e.spec.read_only)),
    ),
    ("HostConfig.SecurityOpt", Rule::Zero),
    ("HostConfig.StorageOpt", Rule::Zero),
    ("HostConfig.UTSMode", Rule::Zero),
    ("HostConfig.UsernsMode", Rule::Zero),
    ("HostConfig.ShmSize", Rule::Equals(|_| json!(SHM_SIZE))),
    ("HostConfig.Sysctls", Rule::Zero),
    ("HostConfig.Runtime", Rule::Equals(|_| json!("runc"))),
    ("HostConfig.Isolation", Rule::Zero),
    ("HostConfig.CpuShares", Rule::Zero),
    ("HostConfig.Memory", Rule::Zero),
    ("HostConfig.NanoCpus", Rule::Zero),
    ("HostConfig.CgroupParent", Rule::Zero),
    ("HostConfig.BlkioWeight", Rule::Zero),
    ("HostConfig.BlkioWeightDevice", Rule::Zero),
    ("HostConfig.BlkioDeviceReadBps", Rule::Zero),
    ("HostConfig.BlkioDeviceWriteBps", Rule::Zero),
    ("HostConfig.BlkioDeviceReadIOps", Rule::Zero),
    ("HostConfig.BlkioDeviceWriteIOps", Rule::Zero),
    ("HostConfig.CpuPeriod", Rule::Zero),
    ("HostConfig.CpuQuota", Rule::Zero),
    ("HostConfig.CpuRealtimePeriod", Rule::Zero),
    ("HostConfig.CpuRealtimeRuntime", Rule::Zero),
    ("HostConfig.CpusetCpus", Rule::Zero),
    ("HostConfig.CpusetMems", Rule::Zero),
    ("HostConfig.Devices", Rule::Zero),
    ("HostConfig.DeviceCgroupRules", Rule::Zero),
    ("HostConfig.DeviceRequests", Rule::Zero),
    ("HostConfig.KernelMemory", Rule::Zero),
    ("HostConfig.KernelMemoryTCP", Rule::Zero),
    ("HostConfig.MemoryReservation", Rule::Zero),
    ("HostConfig.MemorySwap", Rule::Zero),
    ("HostConfig.MemorySwappiness", Rule::Zero),
    ("HostConfig.OomKillDisable", Rule::Zero),
    ("HostConfig.PidsLimit", Rule::Zero),
    ("HostConfig.Ulimits", Rule::Zero),
    ("HostConfig.CpuCount", Rule::Zero),
    ("HostConfig.CpuPercent", Rule::Zero),
    ("HostConfig.IOMaximumIOps", Rule::Zero),
    ("HostConfig.IOMaximumBandwidth", Rule::Zero),
    ("HostConfig.MaskedPaths", Rule::AtLeast(MASKED_PATHS)),
    ("HostConfig.ReadonlyPaths", Rule::AtLeast(READONLY_PATHS)),
    ("HostConfig.Init", Rule::Zero),
    // NetworkSettings: where it is reachable.
    ("NetworkSettings.Bridge", Rule::Zero),
    ("NetworkSettings.SandboxID", Rule::Varies(ADDRESS)),
    ("NetworkSettings.SandboxKey", Rule::Varies(ADDRESS)),
    ("NetworkSettings.HairpinMode", Rule::Zero),
    ("NetworkSettings.LinkLocalIPv6Address", Rule::Zero),
    ("NetworkSettings.LinkLocalIPv6PrefixLen", Rule::Zero),
    (
        "NetworkSettings.Ports",
        Rule::Varies("the addresses bound at start for the port bindings (compared)"),
    ),
    ("NetworkSettings.SecondaryIPAddresses", Rule::Zero),
    ("NetworkSettings.SecondaryIPv6Addresses", Rule::Zero),
    ("NetworkSettings.EndpointID", Rule::Varies(DEFAULT_BRIDGE)),
    ("NetworkSettings.Gateway", Rule::Varies(DEFAULT_BRIDGE)),
    (
        "NetworkSettings.GlobalIPv6Address",
        Rule::Varies(DEFAULT_BRIDGE),
    ),
    (
        "NetworkSettings.GlobalIPv6PrefixLen",
        Rule::Varies(DEFAULT_BRIDGE),
    ),
    ("NetworkSettings.IPAddress", Rule::Varies(DEFAULT_BRIDGE)),
    ("NetworkSettings.IPPrefixLen", Rule::Varies(DEFAULT_BRIDGE)),
    ("NetworkSettings.IPv6Gateway", Rule::Varies(DEFAULT_BRIDGE)),
    ("NetworkSettings.MacAddress", Rule::Varies(DEFAULT_BRIDGE)),
    (
        "NetworkSettings.Networks",
        Rule::Set(|e| e.spec.networks.keys().cloned().collect()),
    ),
    // NetworkSettings.Networks.<name>: the container on each of its networks.
    ("NetworkSettings.Networks.*.IPAMConfig", Rule::Zero),
    ("NetworkSettings.Networks.*.Links", Rule::Zero),
    ("NetworkSettings.Networks.*.Aliases", Rule::Custom(aliases)),
    (
        "NetworkSettings.Networks.*.DNSNames",
        Rule::Custom(dns_names),
    ),
    ("NetworkSettings.Networks.*.DriverOpts", Rule::Zero),
    ("NetworkSettings.Networks.*.NetworkID", Rule::Varies(ID)),
    (
        "NetworkSettings.Networks.*.EndpointID",
        Rule::Varies(ADDRESS),
    ),
    (
        "NetworkSettings.Networks.*.MacAddress",
        Rule::Varies(ADDRESS),
    ),
    ("NetworkSettings.Networks.*.Gateway", Rule::Varies(ADDRESS)),
    (
        "NetworkSettings.Networks.*.IPAddress",
        Rule::Varies(ADDRESS),
    ),
    (
        "NetworkSettings.Networks.*.IPPrefixLen",
        Rule::Varies(ADDRESS),
    ),
    (
        "NetworkSettings.Networks.*.IPv6Gateway",
        Rule::Varies(ADDRESS),
    ),
    (
        "NetworkSettings.Networks.*.GlobalIPv6Address",
        Rule::Varies(ADDRESS),
    ),
    (
        "NetworkSettings.Networks.*.GlobalIPv6PrefixLen",
        Rule::Varies(ADDRESS),
    ),
];

/// The sections whose fields are listed one by one rather than compared whole.
const SECTIONS: &[&str] = &["Config", "HostConfig", "NetworkSettings"];

/// Every difference between a container's inspect answer and what it must be, by field.
pub fn differences(e: &Expected, found: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(top) = found.as_object() else {
        return vec!["the engine's answer is not an object".into()];
    };
    compare(e, "", "", "", top, &mut out);
    for section in SECTIONS {
        match top.get(*section) {
            Some(Value::Object(fields)) => compare(e, section, section, "", fields, &mut out),
            _ => out.push(format!("{section}: missing from the engine's answer")),
        }
    }
    if let Some(Value::Object(networks)) = found.pointer("/NetworkSettings/Networks") {
        for (name, endpoint) in networks {
            let shown = format!("NetworkSettings.Networks.{name}");
            match endpoint.as_object() {
                Some(fields) => compare(e, NETWORK, &shown, name, fields, &mut out),
                None => out.push(format!("{shown}: not an object")),
            }
        }
    }
    out
}

/// Where the rules of one network's endpoint are listed.
const NETWORK: &str = "NetworkSettings.Networks.*";

/// The rules of the fields directly under `prefix`, by key.
fn rules_under(prefix: &str) -> impl Iterator<Item = (&'static str, &'static Rule)> + '_ {
    FIELDS.iter().filter_map(move |(path, rule)| {
        let key = if prefix.is_empty() {
            Some(*path)
        } else {
            path.strip_prefix(prefix)?.strip_prefix('.')
        }?;
        (!key.contains('.')).then_some((key, rule))
    })
}

/// Compares the fields of one object of the answer (the top level, a section, or a network's
/// endpoint, named `object` for the rules that need it) with the rules listed under `prefix`;
/// differences are named under `shown`.
fn compare(
    e: &Expected,
    prefix: &str,
    shown: &str,
    object: &str,
    fields: &Map<String, Value>,
    out: &mut Vec<String>,
) {
    let name = |key: &str| {
        if shown.is_empty() {
            key.to_string()
        } else {
            format!("{shown}.{key}")
        }
    };
    for key in fields.keys() {
        let is_section = prefix.is_empty() && SECTIONS.contains(&key.as_str());
        if !is_section && !rules_under(prefix).any(|(k, _)| k == key) {
            out.push(format!(
                "{}: a field prov does not know (a newer engine?), so it cannot be judged: \
                 add it to src/container_config.rs",
                name(key)
            ));
        }
    }
    for (key, rule) in rules_under(prefix) {
        let found = fields.get(key).unwrap_or(&Value::Null);
        out.extend(judge(e, &name(key), object, rule, found));
    }
}

/// The differences one field shows under its rule.
fn judge(e: &Expected, name: &str, object: &str, rule: &Rule, found: &Value) -> Vec<String> {
    let mismatch = |expected: String| {
        vec![format!(
            "{name}: expected {expected}, found {}",
            show(found)
        )]
    };
    let differs = match rule {
        Rule::Varies(_) | Rule::Judged(_) => None,
        Rule::Zero => (!is_zero(found)).then(|| mismatch("unset".into())),
        Rule::Equals(value) => {
            let expected = value(e);
            (!same(&expected, found)).then(|| mismatch(show(&expected)))
        }
        Rule::Set(items) => {
            let expected: BTreeSet<String> = items(e).into_iter().collect();
            (Some(&expected) != items_of(found).as_ref()).then(|| mismatch(format!("{expected:?}")))
        }
        Rule::AtLeast(items) => {
            let held = items_of(found).unwrap_or_default();
            let missing = items.iter().any(|i| !held.contains(*i));
            missing.then(|| mismatch(format!("at least {items:?}")))
        }
        Rule::OneOf(values) => {
            let text = found.as_str().unwrap_or_default();
            (!values.contains(&text)).then(|| mismatch(format!("one of {values:?}")))
        }
        Rule::Custom(compare) => {
            let found = compare(e, object, found);
            (!found.is_empty()).then(|| found.into_iter().map(|d| format!("{name}: {d}")).collect())
        }
    };
    differs.unwrap_or_default()
}

/// The engine's zero values: what a field shows when nobody set it.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Equal, counting every spelling of "unset" as one.
fn same(a: &Value, b: &Value) -> bool {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    (empty(a) && empty(b)) || a == b
}

/// A list's items, or an object's keys, as text (none for `null`); `None` for anything else,
/// which no list equals.
fn items_of(v: &Value) -> Option<BTreeSet<String>> {
    match v {
        Value::Null => Some(BTreeSet::new()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect(),
        ),
        Value::Object(map) => Some(map.keys().cloned().collect()),
        _ => None,
    }
}

/// A value, shortened for a message.
fn show(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

fn container_name(e: &Expected) -> String {
    e.spec
        .container_name
        .clone()
        .unwrap_or_else(|| format!("{}-{}-1", stack::PROJECT, e.service))
}

fn user(e: &Expected) -> String {
    e.spec.user.clone().unwrap_or_else(|| e.image.user.clone())
}

fn entrypoint(e: &Expected) -> Option<Vec<String>> {
    e.spec
        .entrypoint
        .clone()
        .or_else(|| e.image.entrypoint.clone())
}

/// The command: the configured one; else the image's, unless the configuration replaced the
/// entrypoint (the engine then drops the image's command).
fn command(e: &Expected) -> Option<Vec<String>> {
    match (&e.spec.command, &e.spec.entrypoint) {
        (Some(command), _) => Some(command.clone()),
        (None, Some(_)) => None,
        (None, None) => e.image.cmd.clone(),
    }
}

/// What the engine runs: entrypoint, then command.
fn process(e: &Expected) -> Vec<String> {
    entrypoint(e)
        .into_iter()
        .flatten()
        .chain(command(e).into_iter().flatten())
        .collect()
}

fn exposed_ports(e: &Expected) -> Vec<String> {
    let image = e
        .image
        .exposed_ports
        .iter()
        .flatten()
        .map(|(k, _)| k.clone());
    let configured = e
        .spec
        .ports
        .iter()
        .map(|p| format!("{}/{}", p.target, p.protocol));
    image.chain(configured).collect()
}

/// Compose v1 adds this when it recreates a container (a Swarm scheduling hint that keeps the
/// container's volumes on the same host); it is Compose's, not the configuration's.
const COMPOSE_V1_RECREATE_HINT: &str = "affinity:container";

fn env_map(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The image's environment, with the configuration's on top. Values are not shown: they may be
/// secrets.
fn environment(e: &Expected, _: &str, found: &Value) -> Vec<String> {
    let mut expected = env_map(e.image.env.as_deref().unwrap_or_default());
    expected.extend(e.spec.environment.clone());
    let found_list: Vec<String> = match shaped(found) {
        Ok(found) => found,
        Err(why) => return why,
    };
    let mut found = env_map(&found_list);
    found.remove(COMPOSE_V1_RECREATE_HINT);
    let keys: BTreeSet<&String> = expected.keys().chain(found.keys()).collect();
    keys.into_iter()
        .filter_map(|key| match (expected.get(key), found.get(key)) {
            (Some(a), Some(b)) if a == b => None,
            (Some(_), Some(_)) => Some(format!("expected {key} as recorded, found {key} changed")),
            (Some(_), None) => Some(format!("expected {key} set, found {key} unset")),
            (None, _) => Some(format!("expected no {key}, found {key} added")),
        })
        .collect()
}

fn healthcheck(e: &Expected, _: &str, found: &Value) -> Vec<String> {
    let expected = match &e.spec.healthcheck {
        Some(h) => json!({
            "Test": h.test,
            "Interval": h.interval_ns,
            "Timeout": h.timeout_ns,
            "Retries": h.retries,
            "StartPeriod": h.start_period_ns,
        }),
        None => serde_json::to_value(&e.image.healthcheck).unwrap_or_default(),
    };
    // The engine leaves out the durations nobody set.
    let fields = [
        "Test",
        "Interval",
        "Timeout",
        "Retries",
        "StartPeriod",
        "StartInterval",
    ];
    let mut out = unknown_keys(found, &fields);
    for field in fields {
        let (want, got) = (&expected[field], &found[field]);
        if !(same(want, got) || (is_zero(want) && is_zero(got))) {
            out.push(format!(
                "{field}: expected {}, found {}",
                show(want),
                show(got)
            ));
        }
    }
    out
}

/// What a label must be.
enum Want {
    Exactly(String),
    /// Present, with a value of Compose's own making.
    Any,
    /// Present or not, as Compose decides.
    Maybe,
    /// A version Compose spells shorter than it reports itself (`2.26.1` for `2.26.1-4`).
    VersionOf(String),
}

/// The image's labels, and Compose's own, with the values Compose gives them.
fn labels(e: &Expected, _: &str, found: &Value) -> Vec<String> {
    let mut expected: BTreeMap<String, Want> = e
        .image
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Want::Exactly(v.clone())))
        .collect();
    let exactly = |v: &str| Want::Exactly(v.to_string());
    let mut compose = vec![
        (compose_labels::PROJECT, exactly(stack::PROJECT)),
        (compose_labels::SERVICE, exactly(e.service)),
        (compose_labels::ONEOFF, exactly("False")),
        ("com.docker.compose.container-number", exactly("1")),
        (compose_labels::WORKING_DIR, exactly(NODE_MOUNT)),
        (
            compose_labels::CONFIG_FILES,
            Want::Exactly(format!("{NODE_MOUNT}/{}", stack::COMPOSE_FILE)),
        ),
        (
            "com.docker.compose.version",
            Want::VersionOf(e.compose_version.to_string()),
        ),
        // Compose's digest of the configuration this check compares field by field.
        ("com.docker.compose.config-hash", Want::Any),
    ];
    if e.compose_v2() {
        compose.push((compose_labels::IMAGE, exactly(e.image_id)));
        let depends: Vec<String> = e
            .spec
            .depends_on
            .iter()
            .map(|(service, condition)| format!("{service}:{condition}:false"))
            .collect();
        compose.push((
            "com.docker.compose.depends_on",
            Want::Exactly(depends.join(",")),
        ));
        // The ID of the container this one replaced, when Compose recreated it.
        compose.push(("com.docker.compose.replace", Want::Maybe));
    }
    for (key, want) in compose {
        expected.insert(key.to_string(), want);
    }
    let found: BTreeMap<String, String> = match shaped(found) {
        Ok(found) => found,
        Err(why) => return why,
    };
    let keys: BTreeSet<&String> = expected.keys().chain(found.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let got = found.get(key);
            let ok = match (expected.get(key), got) {
                (Some(Want::Maybe), _) | (Some(Want::Any), Some(_)) => true,
                (Some(Want::Exactly(want)), Some(got)) => want == got,
                (Some(Want::VersionOf(full)), Some(got)) => {
                    !got.is_empty()
                        && (full == got
                            || full
                                .strip_prefix(got.as_str())
                                .is_some_and(|r| r.starts_with('-')))
                }
                (None, None) => true,
                _ => false,
            };
            (!ok).then(|| match (expected.get(key), got) {
                (None, Some(got)) => format!("{key}: not expected, found {got:?}"),
                (Some(_), None) => format!("{key}: expected, missing"),
                (Some(Want::Exactly(want)), Some(got)) => {
                    format!("{key}: expected {want:?}, found {got:?}")
                }
                (Some(Want::VersionOf(want)), Some(got)) => {
                    format!("{key}: expected the version {want:?}, found {got:?}")
                }
                _ => format!("{key}: unexpected"),
            })
        })
        .collect()
}

/// A field read as `T`: its engine's shape, `null` counting as empty.
fn shaped<T: serde::de::DeserializeOwned + Default>(found: &Value) -> Result<T, Vec<String>> {
    if found.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(found.clone()).map_err(|_| {
        vec![format!(
            "not the shape the engine gives it: {}",
            show(found)
        )]
    })
}

fn tmpfs(e: &Expected, _: &str, found: &Value) -> Vec<String> {
    let found: BTreeMap<String, String> = match shaped(found) {
        Ok(found) => found,
        Err(why) => return why,
    };
    if found == e.spec.tmpfs {
        Vec::new()
    } else {
        vec![format!("expected {:?}, found {found:?}", e.spec.tmpfs)]
    }
}

/// `"8080/tcp"` -> the published addresses, as `HOST_IP:PORT->TARGET/PROTOCOL`.
fn port_bindings(e: &Expected, _: &str, found: &Value) -> Vec<String> {
    let mut expected: Vec<String> = e
        .spec
        .ports
        .iter()
        .map(|p| format!("{}:{}->{}/{}", p.host_ip, p.published, p.target, p.protocol))
        .collect();
    expected.sort();
    let mut bound = Vec::new();
    for (port, bindings) in found.as_object().into_iter().flatten() {
        let (target, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
        let Some(bindings) = bindings.as_array() else {
            bound.push(format!("{port}: {}", show(bindings)));
            continue;
        };
        for b in bindings {
            let text = |k: &str| b[k].as_str().unwrap_or_default().to_string();
            bound.push(format!(
                "{}:{}->{target}/{protocol}",
                text("HostIp"),
                text("HostPort")
            ));
        }
    }
    bound.sort();
    if bound == expected {
        Vec::new()
    } else {
        vec![format!("expected {expected:?}, found {bound:?}")]
    }
}

fn restart_policy(e: &Expected, _: &str, found: &Value) -> Vec<String> {
    let name = match found["Name"].as_str().unwrap_or_default() {
        "" => "no",
        name => name,
    };
    let mut out = unknown_keys(found, &["Name", "MaximumRetryCount"]);
    if name != e.spec.restart {
        out.push(format!("expected {:?}, found {name:?}", e.spec.restart));
    }
    if !is_zero(&found["MaximumRetryCount"]) {
        out.push(format!(
            "MaximumRetryCount: expected unset, found {}",
            found["MaximumRetryCount"]
        ));
    }
    out
}

/// The mounts the container has: the configured volumes and binds, and an anonymous volume for
/// each of the image's `VOLUME`s they do not cover.
fn mounts(e: &Expected, _: &str, found: &Value) -> Vec<String> {
    let mut expected: Vec<String> = e
        .spec
        .volumes
        .iter()
        .map(|v| match v.kind.as_str() {
            "volume" => mount_text("volume", &v.source, &v.target, !v.read_only, "local", ""),
            kind => mount_text(kind, &v.source, &v.target, !v.read_only, "", "rprivate"),
        })
        .collect();
    for target in e.image.volumes.iter().flat_map(|v| v.keys()) {
        if !e.spec.volumes.iter().any(|v| &v.target == target) {
            expected.push(mount_text(
                "volume",
                "(anonymous)",
                target,
                true,
                "local",
                "",
            ));
        }
    }
    expected.sort();
    let known = [
        "Type",
        "Name",
        "Source",
        "Destination",
        "Driver",
        "Mode",
        "RW",
        "Propagation",
    ];
    let mut out = Vec::new();
    let mut made = Vec::new();
    for m in found.as_array().into_iter().flatten() {
        out.extend(unknown_keys(m, &known));
        let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
        let target = text("Destination");
        let anonymous = e.image.volumes.iter().any(|v| v.contains_key(&target))
            && !e.spec.volumes.iter().any(|v| v.target == target);
        let source = match text("Type").as_str() {
            "volume" if anonymous => "(anonymous)".to_string(),
            "volume" => text("Name"),
            _ => text("Source"),
        };
        made.push(mount_text(
            &text("Type"),
            &source,
            &target,
            m["RW"].as_bool().unwrap_or(false),
            &text("Driver"),
            &text("Propagation"),
        ));
    }
    made.sort();
    if made != expected {
        out.push(format!("expected {expected:?}, found {made:?}"));
    }
    out
}

/// The keys of an object that prov does not know (of a field compared as a whole).
fn unknown_keys(v: &Value, known: &[&str]) -> Vec<String> {
    v.as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| format!("{k}: a field prov does not know"))
        .collect()
}

fn mount_text(
    kind: &str,
    source: &str,
    target: &str,
    rw: bool,
    driver: &str,
    propagation: &str,
) -> String {
    let mode = if rw { "rw" } else { "ro" };
    let mut text = format!("{kind} {source} {target} {mode}");
    if !driver.is_empty() {
        text.push_str(&format!(" driver={driver}"));
    }
    if !propagation.is_empty() {
        text.push_str(&format!(" propagation={propagation}"));
    }
    text
}

/// The names the container answers to on a network: its service's (and the configured aliases),
/// and the name each Compose version adds (v1 the container's short ID, v2 its name).
fn expected_aliases(e: &Expected, network: &str) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = e
        .spec
        .networks
        .get(network)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    names.insert(e.service.to_string());
    names.insert(if e.compose_v2() {
        container_name(e)
    } else {
        e.short_id().to_string()
    });
    names
}

fn aliases(e: &Expected, network: &str, found: &Value) -> Vec<String> {
    let (expected, found) = (expected_aliases(e, network), items_of(found));
    if Some(&expected) == found.as_ref() {
        Vec::new()
    } else {
        vec![format!("expected {expected:?}, found {found:?}")]
    }
}

/// Engine 25 and later also list every name the container answers to in DNS: its name, its
/// short ID and its aliases (older engines leave the field out).
fn dns_names(e: &Expected, network: &str, found: &Value) -> Vec<String> {
    if found.is_null() {
        return Vec::new();
    }
    let mut expected = expected_aliases(e, network);
    expected.extend([container_name(e), e.short_id().to_string()]);
    let found = items_of(found);
    if Some(&expected) == found.as_ref() {
        Vec::new()
    } else {
        vec![format!("expected {expected:?}, found {found:?}")]
    }
}

/// Every field prov classifies, with what it does with it: for the README and the tests.
pub fn classified() -> impl Iterator<Item = (&'static str, Option<&'static str>)> {
    FIELDS.iter().map(|(path, rule)| {
        let reason = match rule {
            Rule::Varies(reason) | Rule::Judged(reason) => Some(*reason),
            _ => None,
        };
        (*path, reason)
    })
}
