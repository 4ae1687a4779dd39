//! The Compose configuration as prov records it: `compose config`'s effective configuration,
//! normalised to what the engine will show for each service's container.
//!
//! Compose v1 and v2 print the same configuration in different shapes (ports and volumes in the
//! short or the long syntax, numbers as strings or not, durations as given). Normalising both to
//! one form gives one digest for one configuration, whichever Compose a node runs, and gives
//! verify the exact image, command, user, environment, mounts, ports, networks, healthcheck,
//! restart policy and privileges each container must have.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use serde_yaml_ng::{Mapping, Value};

use serde::{Deserialize, Serialize};

/// Parses `compose config` output (YAML) into each service's normalised configuration.
pub fn normalise(config_yaml: &str, project: &str) -> Result<BTreeMap<String, ServiceSpec>> {
    let root: Value =
        serde_yaml_ng::from_str(config_yaml).context("reading `compose config` output as YAML")?;
    let services = root
        .get("services")
        .and_then(Value::as_mapping)
        .ok_or_else(|| anyhow!("`compose config` printed no services"))?;
    let top = |key: &str| root.get(key).and_then(Value::as_mapping).cloned();
    let (volumes, networks) = (top("volumes"), top("networks"));
    services
        .iter()
        .map(|(name, service)| {
            let name = name
                .as_str()
                .ok_or_else(|| anyhow!("a service name is not a string"))?;
            let spec = service_spec(name, service, project, &volumes, &networks)
                .with_context(|| format!("service {name}"))?;
            Ok((name.to_string(), spec))
        })
        .collect()
}

/// The canonical JSON of the normalised configuration: what `config_sha256` digests.
pub fn canonical_json(services: &BTreeMap<String, ServiceSpec>) -> Vec<u8> {
    serde_json::to_vec(services).expect("specs serialize")
}

/// The service keys prov records. Anything else a Compose file sets for a service (sysctls,
/// devices, a pid mode, ...) would change its containers in a way the record could not name, so
/// such a configuration is refused rather than recorded in part.
const KNOWN_KEYS: &[&str] = &[
    "image",
    "container_name",
    "entrypoint",
    "command",
    "user",
    "environment",
    "volumes",
    "ports",
    "networks",
    "healthcheck",
    "restart",
    "privileged",
    "cap_add",
    "cap_drop",
    "depends_on",
    "read_only",
    "tmpfs",
];

fn service_spec(
    name: &str,
    s: &Value,
    project: &str,
    volumes: &Option<Mapping>,
    networks: &Option<Mapping>,
) -> Result<ServiceSpec> {
    let keys = s
        .as_mapping()
        .ok_or_else(|| anyhow!("a service is not a mapping"))?;
    for key in keys.keys() {
        let key = scalar(Some(key))?.unwrap_or_default();
        if !KNOWN_KEYS.contains(&key.as_str()) {
            bail!(
                "it sets `{key}`, which prov does not record, so verify could not judge it: \
                 remove it from the Compose file, or teach prov to record it (src/compose.rs, \
                 and its comparison in src/container_config.rs)"
            );
        }
    }
    let mut cap_add = strings(s.get("cap_add"))?.unwrap_or_default();
    let mut cap_drop = strings(s.get("cap_drop"))?.unwrap_or_default();
    cap_add.sort();
    cap_drop.sort();
    Ok(ServiceSpec {
        image: scalar(s.get("image"))?.ok_or_else(|| anyhow!("no image"))?,
        image_id: None,
        container_name: scalar(s.get("container_name"))?,
        entrypoint: command(s.get("entrypoint"))?,
        command: command(s.get("command"))?,
        user: scalar(s.get("user"))?,
        environment: environment(s.get("environment"))?,
        volumes: service_volumes(s.get("volumes"), project, volumes)?,
        ports: ports(s.get("ports"))?,
        networks: service_networks(name, s, project, networks)?,
        healthcheck: healthcheck(s.get("healthcheck"))?,
        restart: scalar(s.get("restart"))?.unwrap_or_else(|| "no".into()),
        privileged: boolean(s.get("privileged"), "privileged")?,
        cap_add,
        cap_drop,
        read_only: boolean(s.get("read_only"), "read_only")?,
        tmpfs: tmpfs(s.get("tmpfs"))?,
        depends_on: depends_on(s.get("depends_on"))?,
    })
}

fn boolean(v: Option<&Value>, what: &str) -> Result<bool> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => bail!("{what} is not a boolean: {other:?}"),
    }
}

/// `tmpfs`: a path, or a list of `PATH[:OPTIONS]`; as the engine keeps it, path -> options.
fn tmpfs(v: Option<&Value>) -> Result<BTreeMap<String, String>> {
    let items = match v {
        Some(Value::String(one)) => vec![one.clone()],
        other => strings(other)?.unwrap_or_default(),
    };
    Ok(items
        .into_iter()
        .map(|item| match item.split_once(':') {
            Some((path, options)) => (path.to_string(), options.to_string()),
            None => (item, String::new()),
        })
        .collect())
}

/// `depends_on`: the services started first, each with its condition (a list means
/// `service_started`).
fn depends_on(v: Option<&Value>) -> Result<BTreeMap<String, String>> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Sequence(_)) => Ok(strings(v)?
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s, "service_started".to_string()))
            .collect()),
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(k, settings)| {
                let name = scalar(Some(k))?.unwrap_or_default();
                let condition =
                    scalar(settings.get("condition"))?.unwrap_or_else(|| "service_started".into());
                Ok((name, condition))
            })
            .collect(),
        Some(other) => bail!("depends_on: unexpected {other:?}"),
    }
}

/// A string, number or boolean as text; `None` when absent or null.
fn scalar(v: Option<&Value>) -> Result<Option<String>> {
    Ok(match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(other) => bail!("expected a scalar, found {other:?}"),
    })
}

fn strings(v: Option<&Value>) -> Result<Option<Vec<String>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| scalar(Some(i))?.ok_or_else(|| anyhow!("a null in a list")))
            .collect::<Result<_>>()
            .map(Some),
        Some(other) => bail!("expected a list, found {other:?}"),
    }
}

/// An entrypoint or command: a list, or a string Compose splits like a shell would.
fn command(v: Option<&Value>) -> Result<Option<Vec<String>>> {
    match v {
        Some(Value::String(s)) => shlex::split(s)
            .map(Some)
            .ok_or_else(|| anyhow!("cannot split the command {s:?}")),
        other => strings(other),
    }
}

fn environment(v: Option<&Value>) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(map)) => {
            for (k, v) in map {
                let key = scalar(Some(k))?.ok_or_else(|| anyhow!("an empty variable name"))?;
                env.insert(key, scalar(Some(v))?.unwrap_or_default());
            }
        }
        Some(Value::Sequence(_)) => {
            for item in strings(v)?.unwrap_or_default() {
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                env.insert(k.to_string(), v.to_string());
            }
        }
        Some(other) => bail!("environment: expected a map or a list, found {other:?}"),
    }
    Ok(env)
}

/// The engine's name of a top-level volume or network: its `name:`, else `<project>_<key>`.
fn engine_name(key: &str, project: &str, top: &Option<Mapping>) -> Result<String> {
    let declared = top.as_ref().and_then(|m| m.get(key));
    Ok(match declared.and_then(|d| d.get("name")) {
        Some(name) => scalar(Some(name))?.unwrap_or_default(),
        None => format!("{project}_{key}"),
    })
}

fn service_volumes(
    v: Option<&Value>,
    project: &str,
    top: &Option<Mapping>,
) -> Result<Vec<VolumeSpec>> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(items)) => items,
        Some(other) => bail!("volumes: expected a list, found {other:?}"),
    };
    let mut out = Vec::new();
    for item in items {
        let (kind, source, target, read_only) = match item {
            // Short syntax: SOURCE:TARGET[:MODE], or TARGET alone (an anonymous volume).
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                match parts.as_slice() {
                    [target] => (
                        "volume".to_string(),
                        String::new(),
                        target.to_string(),
                        false,
                    ),
                    [source, target, mode @ ..] => {
                        let bind = source.starts_with('/') || source.starts_with('.');
                        let kind = if bind { "bind" } else { "volume" };
                        let read_only = mode
                            .first()
                            .is_some_and(|m| m.split(',').any(|o| o == "ro"));
                        (
                            kind.to_string(),
                            source.to_string(),
                            target.to_string(),
                            read_only,
                        )
                    }
                    [] => bail!("an empty volume entry"),
                }
            }
            Value::Mapping(_) => (
                scalar(item.get("type"))?.unwrap_or_else(|| "volume".into()),
                scalar(item.get("source"))?.unwrap_or_default(),
                scalar(item.get("target"))?.ok_or_else(|| anyhow!("a volume without target"))?,
                boolean(item.get("read_only"), "a volume's read_only")?,
            ),
            other => bail!("volumes: unexpected entry {other:?}"),
        };
        let source = if kind == "volume" && !source.is_empty() {
            engine_name(&source, project, top)?
        } else {
            source
        };
        out.push(VolumeSpec {
            kind,
            source,
            target,
            read_only,
        });
    }
    out.sort();
    Ok(out)
}

fn ports(v: Option<&Value>) -> Result<Vec<PortSpec>> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(items)) => items,
        Some(other) => bail!("ports: expected a list, found {other:?}"),
    };
    let mut out = Vec::new();
    for item in items {
        let port = match item {
            Value::Mapping(_) => PortSpec {
                host_ip: scalar(item.get("host_ip"))?.unwrap_or_default(),
                published: scalar(item.get("published"))?.unwrap_or_default(),
                target: scalar(item.get("target"))?
                    .ok_or_else(|| anyhow!("a port without target"))?
                    .parse()
                    .context("a port's target")?,
                protocol: scalar(item.get("protocol"))?.unwrap_or_else(|| "tcp".into()),
            },
            // Short syntax: [[HOST_IP:]PUBLISHED:]TARGET[/PROTOCOL].
            short => {
                let text = scalar(Some(short))?.unwrap_or_default();
                let (addr, protocol) = text.split_once('/').unwrap_or((&text, "tcp"));
                let parts: Vec<&str> = addr.rsplitn(3, ':').collect();
                let (target, published, host_ip) = match parts.as_slice() {
                    [t] => (*t, "", ""),
                    [t, p] => (*t, *p, ""),
                    [t, p, h] => (*t, *p, *h),
                    _ => bail!("cannot read the port {text:?}"),
                };
                PortSpec {
                    host_ip: host_ip.to_string(),
                    published: published.to_string(),
                    target: target.parse().context("a port's target")?,
                    protocol: protocol.to_string(),
                }
            }
        };
        out.push(port);
    }
    out.sort();
    Ok(out)
}

fn service_networks(
    service: &str,
    s: &Value,
    project: &str,
    top: &Option<Mapping>,
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    let mut add = |key: &str, aliases: Vec<String>| -> Result<()> {
        // Compose always gives a service's containers the service name as an alias.
        let mut all = vec![service.to_string()];
        all.extend(aliases);
        all.sort();
        all.dedup();
        out.insert(engine_name(key, project, top)?, all);
        Ok(())
    };
    match s.get("networks") {
        None | Some(Value::Null) => add("default", Vec::new())?,
        Some(Value::Sequence(names)) => {
            for name in names {
                add(&scalar(Some(name))?.unwrap_or_default(), Vec::new())?;
            }
        }
        Some(Value::Mapping(map)) => {
            for (name, settings) in map {
                let aliases = strings(settings.get("aliases"))?.unwrap_or_default();
                add(&scalar(Some(name))?.unwrap_or_default(), aliases)?;
            }
        }
        Some(other) => bail!("networks: unexpected {other:?}"),
    }
    Ok(out)
}

/// Go-style durations (`2s`, `1m30s`, `500ms`) as nanoseconds; absent is 0, as the engine
/// shows an unset one.
fn duration_ns(v: Option<&Value>) -> Result<i64> {
    let Some(text) = scalar(v)? else { return Ok(0) };
    let d = humantime::parse_duration(&text).with_context(|| format!("the duration {text:?}"))?;
    i64::try_from(d.as_nanos()).context("a duration too long")
}

fn healthcheck(v: Option<&Value>) -> Result<Option<HealthSpec>> {
    let Some(h) = v.filter(|h| !h.is_null()) else {
        return Ok(None);
    };
    if h.get("disable").and_then(Value::as_bool) == Some(true) {
        return Ok(Some(HealthSpec {
            test: vec!["NONE".into()],
            interval_ns: 0,
            timeout_ns: 0,
            retries: 0,
            start_period_ns: 0,
        }));
    }
    let test = match h.get("test") {
        Some(Value::String(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
        other => strings(other)?.unwrap_or_default(),
    };
    Ok(Some(HealthSpec {
        test,
        interval_ns: duration_ns(h.get("interval"))?,
        timeout_ns: duration_ns(h.get("timeout"))?,
        retries: scalar(h.get("retries"))?
            .map(|r| r.parse())
            .transpose()
            .context("retries")?
            .unwrap_or(0),
        start_period_ns: duration_ns(h.get("start_period"))?,
    }))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComposeConfig {
    pub path: String,
    /// sha256 of the effective configuration: the canonical JSON of `services` when the record
    /// has them (older records: of `compose config`'s output), with the per-build api image
    /// reference replaced by [`COMPOSE_IMAGE_PLACEHOLDER`], so that equal configurations hash
    /// equal across builds, nodes and Compose versions.
    pub config_sha256: String,
    /// What each service's container must be, from `compose config`, normalised (see
    /// `compose.rs`): verify compares every running container with it. Absent in records made
    /// before prov recorded it; verify then fails `config:<service>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<BTreeMap<String, ServiceSpec>>,
}

/// One service's effective configuration, as Compose resolves it and the engine must show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// The image reference as configured (the api's is the placeholder).
    pub image: String,
    /// The image's ID on the building node, for images prov does not build (the database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    pub container_name: Option<String>,
    /// `None`: the image's own.
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub user: Option<String>,
    pub environment: BTreeMap<String, String>,
    pub volumes: Vec<VolumeSpec>,
    pub ports: Vec<PortSpec>,
    /// Network name as the engine knows it (`<project>_<name>`) -> aliases the service needs.
    pub networks: BTreeMap<String, Vec<String>>,
    /// `None`: the image's own.
    pub healthcheck: Option<HealthSpec>,
    /// `no`, `always`, `on-failure` or `unless-stopped`.
    pub restart: String,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// The root filesystem is read-only: the container writes only to its volumes and tmpfs.
    #[serde(default)]
    pub read_only: bool,
    /// tmpfs mounts: path -> mount options (empty for the engine's defaults).
    #[serde(default)]
    pub tmpfs: BTreeMap<String, String>,
    /// The services started before this one, each with its condition.
    #[serde(default)]
    pub depends_on: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// `volume`, `bind` or `tmpfs`.
    pub kind: String,
    /// The engine's volume name (`<project>_<name>`) or the bind source path.
    pub source: String,
    pub target: String,
    /// Mounted read-only (`:ro`, or `read_only: true` in the long syntax).
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortSpec {
    /// Empty for every address.
    pub host_ip: String,
    pub published: String,
    pub target: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    pub test: Vec<String>,
    pub interval_ns: i64,
    pub timeout_ns: i64,
    pub retries: i64,
    pub start_period_ns: i64,
}

/// Stands in for the per-build api image reference when the Compose configuration is hashed.
pub const COMPOSE_IMAGE_PLACEHOLDER: &str = "prov-api:build";

#[cfg(test)]
mod tests {
    use super::*;

    /// `docker-compose config` (v1.29) of this project's compose.yaml, as a node printed it.
    const V1: &str = include_str!("../../tests/fixtures/compose/config-v1.yaml");
    /// The same configuration in the shapes Compose v2 prints (long syntax, strings).
    const V2: &str = include_str!("../../tests/fixtures/compose/config-v2.yaml");

    #[test]
    fn v1_and_v2_shapes_normalise_to_the_same_configuration() {
        let v1 = normalise(V1, "prov").unwrap();
        let v2 = normalise(V2, "prov").unwrap();
        assert_eq!(v1, v2);
        assert_eq!(canonical_json(&v1), canonical_json(&v2));
        let db = &v1["db"];
        assert_eq!(
            db.volumes,
            vec![VolumeSpec {
                kind: "volume".into(),
                source: "prov_dbdata".into(),
                target: "/var/lib/postgresql/data".into(),
                read_only: false,
            }]
        );
        let api = &v1["api"];
        assert_eq!(api.ports[0].published, "8080");
        assert_eq!(api.ports[0].target, 8080);
        assert_eq!(api.networks["prov_default"], vec!["api".to_string()]);
        let health = api.healthcheck.as_ref().unwrap();
        assert_eq!((health.interval_ns, health.retries), (2_000_000_000, 15));
        assert_eq!(api.restart, "no");
        assert_eq!(api.entrypoint, None);
    }

    #[test]
    fn short_forms_are_read_like_compose_reads_them() {
        let yaml = r#"
services:
  s:
    image: x
    command: run --flag "two words"
    environment: ["A=1", "B="]
    ports: ["127.0.0.1:9000:90/udp", "80"]
    volumes: ["/etc:/host-etc:ro", "/anon"]
    networks: {back: {aliases: [b1]}}
    healthcheck: {test: "pg_isready", interval: 1m30s}
    cap_add: [SYS_ADMIN, NET_ADMIN]
    privileged: true
    restart: always
networks:
  back: {name: shared-back}
"#;
        let s = &normalise(yaml, "p").unwrap()["s"];
        assert_eq!(
            s.command.as_deref().unwrap(),
            ["run", "--flag", "two words"]
        );
        assert_eq!(s.environment["B"], "");
        // Sorted: the port on every address first.
        assert_eq!((s.ports[0].published.as_str(), s.ports[0].target), ("", 80));
        assert_eq!(s.ports[1].host_ip, "127.0.0.1");
        assert_eq!(s.ports[1].protocol, "udp");
        assert_eq!(s.volumes[0].kind, "bind");
        assert_eq!(s.volumes[1].source, "");
        assert_eq!(s.networks["shared-back"], vec!["b1", "s"]);
        assert_eq!(
            s.healthcheck.as_ref().unwrap().test,
            ["CMD-SHELL", "pg_isready"]
        );
        assert_eq!(s.healthcheck.as_ref().unwrap().interval_ns, 90_000_000_000);
        assert_eq!(s.cap_add, ["NET_ADMIN", "SYS_ADMIN"]);
        assert!(s.privileged);
    }

    #[test]
    fn malformed_configurations_are_errors() {
        for bad in [
            "services: 3",
            "services: {s: {}}",
            "services: {s: {image: x, ports: [{published: 1}]}}",
            "services: {s: {image: x, healthcheck: {interval: soon}}}",
        ] {
            assert!(normalise(bad, "p").is_err(), "{bad}");
        }
    }
}
