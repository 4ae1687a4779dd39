//! The verdict: every check of `prov verify` as a pure function of what was gathered (the
//! node's records, its Docker state, the api's HTTP answers, the host's source tree and the
//! attestation). Nothing here reads a file or the network, so every case has a unit test
//! (tests/verify_checks.rs) that runs in milliseconds.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration as Span, DurationRound};

use crate::attest::{self, PublicKeyFile};
use crate::context::NODE_MOUNT;
use crate::docker::{ContainerInspect, HistoryEntry, ImageInspect, NodeState};
use crate::manifest::{ChainEntry, Link, Store, StoreError, Stored};
use crate::model::{
    labels, AttestedMark, BuildStatus, Check, HttpAnswer, HttpAnswers, ImageStore, Manifest,
    ServiceSpec,
};
use crate::policy::LoadedPolicy;
use crate::stack::{self, compose_labels};
use crate::text::short_id as short;

/// Everything one node's verdict is judged from.
pub struct Evidence {
    pub node: String,
    /// Every manifest in chain order, and what `latest` resolved to.
    pub chain: Vec<ChainEntry>,
    pub latest: Result<Stored, StoreError>,
    pub state: NodeState,
    pub http: HttpAnswers,
    /// The host's source tree hash now, or why it could not be computed.
    pub tree_now: Result<String, String>,
    /// The project's public key and the latest build's envelope (bytes, or why not), once the
    /// project has a key.
    pub attestation: Option<(PublicKeyFile, Result<Vec<u8>, String>)>,
    /// The build policy in force on the host.
    pub policy: LoadedPolicy,
    /// The newest build of this node the host attested (host-only state), if any.
    pub attested: Option<AttestedMark>,
    /// The sha256 of the host's imported copy of the latest build's record, if it has one.
    pub imported: Option<String>,
    /// The steps the latest build's log (the host's imported copy) shows taken from the cache,
    /// or why the log could not be read.
    pub cached_steps: Result<Vec<String>, String>,
}

/// Collects checks in order.
#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, name: &str, ok: bool, expected: String, observed: String, hint: &str) {
        self.0.push(Check {
            name: name.to_string(),
            ok,
            expected,
            observed,
            hint: if ok { String::new() } else { hint.to_string() },
        });
    }
}

/// The manifest verify checks the node against: the latest, when it is readable, pinned and
/// successful.
pub fn usable_manifest(latest: &Result<Stored, StoreError>) -> Option<&Manifest> {
    match latest {
        Ok(stored) if stored.manifest.status == BuildStatus::Success => Some(&stored.manifest),
        _ => None,
    }
}

/// Every check, in report order.
pub fn judge(e: &Evidence) -> Vec<Check> {
    let mut checks = Checks::default();
    let manifest = check_manifests(e, &mut checks);
    let services = check_services(&e.state, &mut checks);
    if let Some(m) = manifest {
        check_image(m, &e.state, services[0], &mut checks);
    }
    check_configuration(manifest, &e.state, &services, &mut checks);
    check_wiring(&services, manifest, &mut checks);
    check_no_bypass(&e.state, manifest, &services, &mut checks);
    if let (Some(m), Ok(stored)) = (manifest, &e.latest) {
        check_imported(m, stored, e.imported.as_deref(), &mut checks);
    }
    if let Some(m) = manifest {
        check_log_fresh(&e.cached_steps, &mut checks);
        check_build_inputs(m, &e.policy, &mut checks);
        check_source(&e.tree_now, m, &mut checks);
        check_one_tree(m, &e.state, &e.http, &mut checks);
        if let (Some((key, envelope)), Ok(stored)) = (&e.attestation, &e.latest) {
            check_attestation(key, envelope, stored, services[0], &mut checks);
        }
        if let Some(mark) = &e.attested {
            check_no_rollback(mark, &e.chain, m, &mut checks);
        }
    }
    check_http(manifest, &e.http, &mut checks);
    checks.0
}

/// The node's latest record is the one the host imported after checking it against the node's
/// engine: a record the node wrote or changed afterwards is not.
fn check_imported(m: &Manifest, stored: &Stored, imported: Option<&str>, checks: &mut Checks) {
    let observed = match imported {
        Some(sha) if sha == stored.sha256 => format!("{} (sha256 {})", m.build_id, short(sha)),
        Some(sha) => format!(
            "the host imported {} with sha256 {}, the node holds {}",
            m.build_id,
            short(sha),
            short(&stored.sha256)
        ),
        None => format!("the host never imported {}", m.build_id),
    };
    checks.add(
        "imported",
        imported == Some(stored.sha256.as_str()),
        "the node's latest record is the one the host imported and checked".into(),
        observed,
        "a record the host did not import (a build outside make demo, or a record changed on the \
         node): run make demo NODE=<node>, whose import checks it against the node's engine",
    );
}

/// The latest manifest, its pinned digest and the hash chain.
fn check_manifests<'a>(e: &'a Evidence, checks: &mut Checks) -> Option<&'a Manifest> {
    let (chain, node) = (&e.chain, &e.node);
    let manifest = match &e.latest {
        Ok(stored) if stored.manifest.status == BuildStatus::Success => {
            checks.add(
                "manifest",
                true,
                "latest build recorded, successful, digest as pinned".into(),
                format!(
                    "{} (sha256 {})",
                    stored.manifest.build_id,
                    short(&stored.sha256)
                ),
                "",
            );
            Some(&stored.manifest)
        }
        Ok(stored) => {
            checks.add(
                "manifest",
                false,
                "latest points at a successful build".into(),
                format!(
                    "{} has status {:?}",
                    stored.manifest.build_id, stored.manifest.status
                ),
                "run `make demo` to record a good build",
            );
            None
        }
        Err(e) => {
            checks.add(
                "manifest",
                false,
                "a readable latest manifest whose digest matches the pointer".into(),
                e.to_string(),
                "the record was edited or removed: run `make demo` to record a fresh build",
            );
            None
        }
    };

    let broken: Vec<String> = chain
        .iter()
        .filter(|e| !e.is_intact())
        .map(|e| match (&e.read, &e.link) {
            (Err(err), _) => format!("{}: {err}", e.build_id),
            (Ok(_), Link::Broken { .. }) => {
                format!("{}: previous-manifest digest does not match", e.build_id)
            }
            (Ok(_), Link::Intact) => unreachable!("filtered out"),
        })
        .collect();
    checks.add(
        "hash-chain",
        broken.is_empty(),
        format!(
            "{} manifest(s), each chained to the one before",
            chain.len()
        ),
        observed_list(&broken, "intact"),
        "a manifest was deleted or edited after it was written; prov log shows where",
    );
    if let Some(m) = &manifest {
        let newest = Store::newest_success(chain).map(|s| s.manifest.build_id.clone());
        checks.add(
            "latest-is-newest",
            newest.as_deref() == Some(&m.build_id),
            format!(
                "latest = newest successful build ({})",
                newest.as_deref().unwrap_or("none")
            ),
            format!("latest = {}", m.build_id),
            &format!("`latest` was moved by hand: run `make demo NODE={node}`"),
        );
    }
    manifest
}

/// Exactly one running, healthy container per service; returns them in `SERVICES` order.
fn check_services<'a>(
    state: &'a NodeState,
    checks: &mut Checks,
) -> Vec<Option<&'a ContainerInspect>> {
    stack::SERVICES
        .iter()
        .map(|service| {
            let found: Vec<&ContainerInspect> = state
                .containers
                .iter()
                .filter(|c| {
                    c.label(compose_labels::PROJECT) == Some(stack::PROJECT)
                        && c.label(compose_labels::SERVICE) == Some(service)
                        && c.label(compose_labels::ONEOFF) != Some("True")
                })
                .collect();
            let observed = match found.as_slice() {
                [] => "no container".to_string(),
                [c] => describe_state(c),
                many => format!("{} containers", many.len()),
            };
            let healthy = |c: &ContainerInspect| {
                c.state.running
                    && !c.state.restarting
                    && c.state
                        .health
                        .as_ref()
                        .is_none_or(|h| h.status == "healthy")
            };
            let ok = found.len() == 1 && healthy(found[0]);
            checks.add(
                &format!("service:{service}"),
                ok,
                "exactly one container, running, healthy".into(),
                observed,
                "start the stack through the golden path: `make up` (or `make demo`)",
            );
            (found.len() == 1).then(|| found[0])
        })
        .collect()
}

fn describe_state(c: &ContainerInspect) -> String {
    let health = c.state.health.as_ref().map(|h| h.status.as_str());
    format!(
        "{} {}{}",
        short(&c.id),
        c.state.status,
        health.map(|h| format!(", {h}")).unwrap_or_default()
    )
}

/// The running api is exactly the manifest's image, local, fresh, and created after the build.
fn check_image(
    m: &Manifest,
    state: &NodeState,
    api: Option<&ContainerInspect>,
    checks: &mut Checks,
) {
    let Some(recorded) = &m.image else {
        // The store refuses such a record; never skip the image checks silently regardless.
        checks.add(
            "image-id",
            false,
            "the record names its image".into(),
            "no image recorded".into(),
            "run `make demo` to record a complete build",
        );
        return;
    };
    let hint = "the running image is not the recorded build: run `make demo`";
    checks.add(
        "image-id",
        api.is_some_and(|c| c.image == recorded.id),
        recorded.id.clone(),
        api.map_or("no api container".into(), |c| c.image.clone()),
        hint,
    );
    let image = state.images.iter().find(|i| i.id == recorded.id);
    let Some(image) = image else {
        checks.add(
            "image-labels",
            false,
            format!("image {} on the node", short(&recorded.id)),
            "absent".into(),
            hint,
        );
        return;
    };
    let node_labels = image.config.labels.clone().unwrap_or_default();
    let differing: Vec<String> = recorded
        .labels
        .iter()
        .filter(|(k, v)| node_labels.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(
            node_labels
                .keys()
                .filter(|k| !recorded.labels.contains_key(*k))
                .cloned(),
        )
        .collect();
    checks.add(
        "image-labels",
        differing.is_empty(),
        format!("{} labels as recorded", recorded.labels.len()),
        if differing.is_empty() {
            "identical".into()
        } else {
            format!("differ: {}", differing.join(", "))
        },
        hint,
    );
    let floating = image.repo_tags.iter().any(|t| t.ends_with(":latest"));
    // The containerd store names a local build by its own digest (`<name>@<its id>`); any other
    // digest names an image from a registry.
    let foreign_digests = image
        .repo_digests
        .iter()
        .filter(|d| {
            recorded.store != Some(ImageStore::Containerd)
                || d.rsplit_once('@').map(|(_, digest)| digest) != Some(recorded.id.as_str())
        })
        .count();
    checks.add(
        "image-local",
        foreign_digests == 0 && !floating && image.repo_tags.contains(&recorded.tag),
        format!(
            "local build (no registry digest), tagged {}, never :latest",
            recorded.tag
        ),
        format!(
            "digests {:?}, tags {:?}",
            image.repo_digests, image.repo_tags
        ),
        "the image came from elsewhere or was retagged: run `make demo`",
    );
    check_layers_fresh(m, state, image, checks);
    checks.add(
        "container-fresh",
        api.is_some_and(|c| c.created > m.finished_at),
        format!(
            "api container created after the build finished ({})",
            m.finished_at
        ),
        api.map_or("no api container".into(), |c| {
            format!("created {}", c.created)
        }),
        "the container predates the build: run `make demo`",
    );
}

/// Every history entry above the final stage's base was made inside the build's time window: a
/// layer taken from a cache would carry an older time. The base begins at the first entry that
/// carries a recorded base image's id (the engine gives each local image's top entry its id).
fn check_layers_fresh(m: &Manifest, state: &NodeState, image: &ImageInspect, checks: &mut Checks) {
    let own = state
        .history
        .iter()
        .find(|h| h.image == image.id)
        .and_then(|h| own_history(m, state, &h.entries));
    let Some(own) = own else {
        checks.add(
            "layers-fresh",
            false,
            "the image's history, down to a recorded base image".into(),
            "no recorded base in the image's history".into(),
            "the image is not built on the recorded bases: run `make demo`",
        );
        return;
    };
    // History times have one-second resolution. Where the build set them to the source's date,
    // every layer of its own carries that date exactly, and the log tells fresh from cached
    // (log-fresh).
    let from = m
        .started_at
        .duration_trunc(Span::seconds(1))
        .unwrap_or(m.started_at);
    let to = m.finished_at + Span::seconds(1);
    let dated = |e: &&HistoryEntry| match m.source_date {
        Some(date) => e.created.timestamp() == date.epoch,
        None => e.created >= from && e.created <= to,
    };
    let window = match m.source_date {
        Some(date) => format!(
            "dated {} (the source's date)",
            DateTime::from_timestamp(date.epoch, 0).unwrap_or_default()
        ),
        None => format!("created {from} .. {to}"),
    };
    let stale: Vec<String> = own
        .iter()
        .filter(|e| !dated(e))
        .map(|e| {
            format!(
                "{} ({})",
                e.created_by.chars().take(40).collect::<String>(),
                e.created
            )
        })
        .collect();
    checks.add(
        "layers-fresh",
        !own.is_empty() && stale.is_empty(),
        format!("{} layer(s) above the base, all {window}", own.len()),
        if stale.is_empty() {
            "all as expected".into()
        } else {
            format!("outside: {}", stale.join("; "))
        },
        "a layer was reused from a cache or the image was made elsewhere: run `make demo`",
    );
}

/// The entries of an image's history (newest first) above its recorded base. The classic store
/// names the base's entry by the base's ID; the containerd store names no entry below the top,
/// so there the base's own history must be the bottom of the image's, entry for entry (by time
/// too, unless the build set every time to the source's date).
fn own_history<'a>(
    m: &Manifest,
    state: &NodeState,
    entries: &'a [HistoryEntry],
) -> Option<&'a [HistoryEntry]> {
    if let Some(at) = entries
        .iter()
        .position(|e| m.base_images.iter().any(|b| b.id == e.id))
    {
        return Some(&entries[..at]);
    }
    m.base_images.iter().find_map(|base| {
        let below = &state.history.iter().find(|h| h.image == base.id)?.entries;
        let at = entries.len().checked_sub(below.len())?;
        let same = |a: &HistoryEntry, b: &HistoryEntry| {
            a.created_by == b.created_by && (m.source_date.is_some() || a.created == b.created)
        };
        (at > 0 && entries[at..].iter().zip(below).all(|(a, b)| same(a, b))).then(|| &entries[..at])
    })
}

/// Each service's container is exactly what the recorded Compose configuration asks for: image
/// (by ID), name, entrypoint and command, user, environment, mounts, published ports,
/// networks and aliases, healthcheck, restart policy, privileges and capabilities. Labels can
/// be copied by hand; this cannot be faked without running what Compose would have run.
fn check_configuration(
    m: Option<&Manifest>,
    state: &NodeState,
    containers: &[Option<&ContainerInspect>],
    checks: &mut Checks,
) {
    let specs = m.and_then(|m| m.compose.services.as_ref());
    for (service, container) in stack::SERVICES.iter().zip(containers) {
        let name = format!("config:{service}");
        let expected = "the container as the recorded Compose configuration defines it";
        let hint = "the container was made or changed outside the golden path: `make clean && \
                    make demo`";
        let (Some(m), Some(container)) = (m, container) else {
            let why = if m.is_none() {
                "no usable record"
            } else {
                "no single container"
            };
            checks.add(&name, false, expected.into(), why.into(), hint);
            continue;
        };
        let Some(spec) = specs.and_then(|s| s.get(*service)) else {
            checks.add(
                &name,
                false,
                expected.into(),
                "the record has no Compose configuration for it (made by an older prov)".into(),
                "rebuild with `make demo` to record it",
            );
            continue;
        };
        let image_id = if *service == stack::API_SERVICE {
            m.image.as_ref().map(|i| i.id.clone())
        } else {
            spec.image_id.clone()
        };
        let differences = config_differences(spec, image_id.as_deref(), container, state);
        checks.add(
            &name,
            differences.is_empty(),
            expected.into(),
            observed_list(&differences, "as recorded"),
            hint,
        );
    }
}

/// What differs between a service's recorded configuration and its container, field by field.
/// Where the configuration leaves a field to the image (entrypoint, command, user, healthcheck,
/// environment underneath), the image's own value is expected.
pub fn config_differences(
    spec: &ServiceSpec,
    image_id: Option<&str>,
    c: &ContainerInspect,
    state: &NodeState,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, expected: String, found: String| {
        if expected != found {
            out.push(format!("{name}: expected {expected}, found {found}"));
        }
    };
    field(
        "image",
        image_id.unwrap_or("(not recorded)").to_string(),
        c.image.clone(),
    );
    let defaults = state
        .images
        .iter()
        .find(|i| i.id == c.image)
        .map(|i| i.config.clone())
        .unwrap_or_default();
    if let Some(wanted) = &spec.container_name {
        field("name", format!("/{wanted}"), c.name.clone());
    }
    let words = |v: Option<&Vec<String>>| format!("{:?}", v.cloned().unwrap_or_default());
    field(
        "entrypoint",
        words(spec.entrypoint.as_ref().or(defaults.entrypoint.as_ref())),
        words(c.config.entrypoint.as_ref()),
    );
    field(
        "command",
        words(spec.command.as_ref().or(defaults.cmd.as_ref())),
        words(c.config.cmd.as_ref()),
    );
    field(
        "user",
        format!("{:?}", spec.user.clone().unwrap_or(defaults.user.clone())),
        format!("{:?}", c.config.user),
    );
    let mut env = env_map(defaults.env.as_deref());
    env.extend(spec.environment.clone());
    let mut found_env = env_map(c.config.env.as_deref());
    // Compose v1 adds this when it recreates a container (a Swarm scheduling hint that keeps
    // the container's volumes on the same host); it is Compose's, not the configuration's.
    found_env.remove(COMPOSE_V1_RECREATE_HINT);
    let env_keys: BTreeSet<&String> = env.keys().chain(found_env.keys()).collect();
    for key in env_keys {
        match (env.get(key), found_env.get(key)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(_), Some(_)) => field(
                "environment",
                format!("{key} as recorded"),
                format!("{key} changed"),
            ),
            (Some(_), None) => field("environment", format!("{key} set"), format!("{key} unset")),
            (None, _) => field("environment", format!("no {key}"), format!("{key} added")),
        }
    }
    field(
        "mounts",
        format!("{:?}", expected_mounts(spec, &defaults)),
        format!("{:?}", found_mounts(c, spec, &defaults)),
    );
    field(
        "ports",
        format!("{:?}", spec.ports.iter().map(port_text).collect::<Vec<_>>()),
        format!("{:?}", found_ports(c)),
    );
    let networks: Vec<&String> = c.network_settings.networks.keys().collect();
    field(
        "networks",
        format!("{:?}", spec.networks.keys().collect::<Vec<_>>()),
        format!("{networks:?}"),
    );
    for (network, aliases) in &spec.networks {
        if let Some(endpoint) = c.network_settings.networks.get(network) {
            let found = endpoint.aliases.clone().unwrap_or_default();
            let missing: Vec<&String> = aliases.iter().filter(|a| !found.contains(a)).collect();
            if !missing.is_empty() {
                field(
                    "aliases",
                    format!("{network}: {aliases:?}"),
                    format!("{network}: {found:?}"),
                );
            }
        }
    }
    let health = spec
        .healthcheck
        .as_ref()
        .map(|h| crate::docker::HealthConfig {
            test: h.test.clone(),
            interval: h.interval_ns,
            timeout: h.timeout_ns,
            retries: h.retries,
            start_period: h.start_period_ns,
        });
    field(
        "healthcheck",
        format!("{:?}", health.or(defaults.healthcheck.clone())),
        format!("{:?}", c.config.healthcheck),
    );
    let restart = match c.host_config.restart_policy.name.as_str() {
        "" => "no",
        name => name,
    };
    field("restart", spec.restart.clone(), restart.to_string());
    field(
        "privileged",
        spec.privileged.to_string(),
        c.host_config.privileged.to_string(),
    );
    let sorted = |v: &Option<Vec<String>>| {
        let mut v = v.clone().unwrap_or_default();
        v.sort();
        format!("{v:?}")
    };
    field(
        "cap_add",
        format!("{:?}", spec.cap_add),
        sorted(&c.host_config.cap_add),
    );
    field(
        "cap_drop",
        format!("{:?}", spec.cap_drop),
        sorted(&c.host_config.cap_drop),
    );
    out
}

const COMPOSE_V1_RECREATE_HINT: &str = "affinity:container";

fn env_map(list: Option<&[String]>) -> BTreeMap<String, String> {
    list.unwrap_or_default()
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// (type, source, target) of every mount the container must have: the configured ones, and an
/// anonymous volume for each `VOLUME` of the image that they do not cover.
fn expected_mounts(spec: &ServiceSpec, image: &crate::docker::ImageConfig) -> Vec<String> {
    let mut mounts: Vec<String> = spec
        .volumes
        .iter()
        .map(|v| format!("{} {} {}", v.kind, v.source, v.target))
        .collect();
    for target in image.volumes.iter().flat_map(|v| v.keys()) {
        if !spec.volumes.iter().any(|v| &v.target == target) {
            mounts.push(format!("volume (anonymous) {target}"));
        }
    }
    mounts.sort();
    mounts
}

fn found_mounts(
    c: &ContainerInspect,
    spec: &ServiceSpec,
    image: &crate::docker::ImageConfig,
) -> Vec<String> {
    let anonymous = |target: &str| {
        image.volumes.iter().any(|v| v.contains_key(target))
            && !spec.volumes.iter().any(|v| v.target == target)
    };
    let mut mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|mnt| {
            let source = match mnt.kind.as_str() {
                "volume" if anonymous(&mnt.destination) => "(anonymous)".to_string(),
                "volume" => mnt.name.clone().unwrap_or_default(),
                _ => mnt.source.clone(),
            };
            format!("{} {source} {}", mnt.kind, mnt.destination)
        })
        .collect();
    mounts.sort();
    mounts
}

fn port_text(p: &crate::model::PortSpec) -> String {
    format!("{}:{}->{}/{}", p.host_ip, p.published, p.target, p.protocol)
}

fn found_ports(c: &ContainerInspect) -> Vec<String> {
    let mut ports: Vec<String> = c
        .host_config
        .port_bindings
        .iter()
        .flatten()
        .flat_map(|(port, bindings)| {
            let (target, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
            bindings
                .iter()
                .flatten()
                .map(move |b| format!("{}:{}->{target}/{protocol}", b.host_ip, b.host_port))
        })
        .collect();
    ports.sort();
    ports
}

/// Compose put the stack together from /vagrant: its directory and its file.
fn check_wiring(services: &[Option<&ContainerInspect>], m: Option<&Manifest>, checks: &mut Checks) {
    let expected_file = format!("{NODE_MOUNT}/{}", stack::COMPOSE_FILE);
    // Compose v2 also names the image it created the container from; v1 does not.
    let compose_v2 = m
        .and_then(|m| m.tool.versions.get("compose"))
        .is_some_and(|v| !v.starts_with("1."));
    let mut problems = Vec::new();
    for (service, container) in stack::SERVICES.iter().zip(services) {
        let Some(c) = container else {
            problems.push(format!("{service}: no single container"));
            continue;
        };
        let label = |k: &str| c.label(k).unwrap_or("(none)").to_string();
        let dir = label(compose_labels::WORKING_DIR);
        if dir != NODE_MOUNT {
            problems.push(format!("{service}: working_dir {dir}"));
        }
        let files = label(compose_labels::CONFIG_FILES);
        if files != expected_file {
            problems.push(format!("{service}: config_files {files}"));
        }
        match c.label(compose_labels::IMAGE) {
            Some(image) if image != c.image => problems.push(format!(
                "{service}: created from {} by Compose, runs {}",
                short(image),
                short(&c.image)
            )),
            None if compose_v2 => problems.push(format!(
                "{service}: no {} label (Compose v2 sets it)",
                compose_labels::IMAGE
            )),
            _ => {}
        }
    }
    checks.add(
        "compose-wiring",
        problems.is_empty(),
        format!(
            "project {}, working_dir {NODE_MOUNT}, config {expected_file}",
            stack::PROJECT
        ),
        observed_list(&problems, "as expected"),
        "the stack was started outside the golden path: `make clean && make demo`",
    );
}

/// The stack's images run only as the stack's own two containers: a container started by hand,
/// a one-off (`compose run`), or anything else running the api image, the database image or an
/// image prov built, is a bypass.
fn check_no_bypass(
    state: &NodeState,
    m: Option<&Manifest>,
    services: &[Option<&ContainerInspect>],
    checks: &mut Checks,
) {
    let mut stack_images: Vec<&str> = m
        .and_then(|m| m.image.as_ref())
        .map(|i| i.id.as_str())
        .into_iter()
        .collect();
    stack_images.extend(
        m.and_then(|m| m.compose.services.as_ref())
            .into_iter()
            .flat_map(|s| s.values())
            .filter_map(|s| s.image_id.as_deref()),
    );
    let own: Vec<&str> = services.iter().flatten().map(|c| c.id.as_str()).collect();
    let strays: Vec<String> = state
        .containers
        .iter()
        .filter(|c| c.state.running && !own.contains(&c.id.as_str()))
        .filter(|c| {
            c.label(labels::TREE).is_some()
                || stack_images.contains(&c.image.as_str())
                || c.label(compose_labels::PROJECT) == Some(stack::PROJECT)
        })
        .map(|c| format!("{} {}", short(&c.id), c.name.trim_start_matches('/')))
        .collect();
    checks.add(
        "no-bypass",
        strays.is_empty(),
        "the stack's images run only as its two compose services".into(),
        if strays.is_empty() {
            "none elsewhere".into()
        } else {
            format!("also running: {}", strays.join(", "))
        },
        "a container was started by hand or as a one-off; `make clean && make demo` removes it",
    );
}

/// The build ran every step: its log shows none taken from the cache. Where timestamps are set to
/// the source's date, layer times cannot tell a fresh build from a cached one; the log can.
fn check_log_fresh(cached_steps: &Result<Vec<String>, String>, checks: &mut Checks) {
    checks.add(
        "log-fresh",
        cached_steps.as_ref().is_ok_and(Vec::is_empty),
        "the build log shows every RUN, COPY and ADD step run, none from the cache".into(),
        match cached_steps {
            Ok(steps) if steps.is_empty() => "none from the cache".into(),
            Ok(steps) => format!("from the cache: {}", steps.join("; ")),
            Err(why) => why.clone(),
        },
        "the image was not built fresh: run `make demo`",
    );
}

/// The build's inputs came from the repository, and its arguments are what the policy in force
/// allows (a test-only feature built under a test policy fails here).
fn check_build_inputs(m: &Manifest, policy: &LoadedPolicy, checks: &mut Checks) {
    let inside = |p: &str| {
        !p.is_empty()
            && std::path::Path::new(p)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
    };
    let mut problems: Vec<String> = [("dockerfile", &m.dockerfile.path)]
        .into_iter()
        .filter(|(_, p)| !inside(p))
        .map(|(what, p)| format!("{what} {p} is not a path inside the repository"))
        .collect();
    match &m.context {
        None => problems.push("no build context recorded (made by an older prov)".into()),
        Some(c) if c.path != "." && !inside(&c.path) => {
            problems.push(format!("context {} is not inside the repository", c.path))
        }
        Some(_) => {}
    }
    if m.compose.path != stack::COMPOSE_FILE {
        problems.push(format!(
            "compose file {} is not {}",
            m.compose.path,
            stack::COMPOSE_FILE
        ));
    }
    checks.add(
        "build-inputs",
        problems.is_empty(),
        format!(
            "Dockerfile and context inside the repository, context recorded, Compose file {}",
            stack::COMPOSE_FILE
        ),
        if problems.is_empty() {
            format!("{}, {}", m.dockerfile.path, m.compose.path)
        } else {
            problems.join("; ")
        },
        "the build read inputs from outside /vagrant: run `make demo`",
    );
    let refused = policy.policy.refusals(&m.build_args);
    let recorded = m.policy.as_ref();
    let observed = match (recorded, refused.is_empty()) {
        (None, _) => "the record names no build policy (made by an older prov)".to_string(),
        (Some(p), true) => format!(
            "built under {} (sha256 {}); its arguments are allowed",
            p.path,
            short(&p.sha256)
        ),
        (Some(p), false) => format!(
            "built under {} (sha256 {}): {}",
            p.path,
            short(&p.sha256),
            refused.join("; ")
        ),
    };
    checks.add(
        "build-policy",
        recorded.is_some() && refused.is_empty(),
        format!(
            "build arguments allowed by {} (sha256 {})",
            policy.path,
            short(&policy.sha256)
        ),
        observed,
        "the running build was made with arguments the policy in force does not allow (a test \
         build?): run `make demo`",
    );
}

/// The host's source tree is the one the running image was built from.
fn check_source(tree_now: &Result<String, String>, m: &Manifest, checks: &mut Checks) {
    checks.add(
        "source-tree",
        tree_now.as_ref().is_ok_and(|t| *t == m.git.tree),
        format!("tree {} (built)", m.git.tree),
        match tree_now {
            Ok(tree) => format!("tree {tree} (now)"),
            Err(e) => format!("could not hash the host's tree: {e}"),
        },
        "the source changed since this build: the running image is stale, run `make demo`",
    );
}

/// One tree everywhere: the record, the image's label on the node and the running api agree.
fn check_one_tree(m: &Manifest, state: &NodeState, http: &HttpAnswers, checks: &mut Checks) {
    let label = m
        .image
        .as_ref()
        .and_then(|r| state.images.iter().find(|i| i.id == r.id))
        .and_then(|i| i.config.labels.as_ref()?.get(labels::TREE).cloned());
    let served = json_field(&http.version, "tree");
    let agree = label.as_deref() == Some(m.git.tree.as_str())
        && served.as_deref() == Some(m.git.tree.as_str());
    checks.add(
        "one-tree",
        agree,
        format!(
            "record, image label and /version all name tree {}",
            m.git.tree
        ),
        format!(
            "label {}, /version {}",
            label.as_deref().unwrap_or("(none)"),
            served.as_deref().unwrap_or("(none)")
        ),
        "the record, the image and the running api disagree on the source: run `make demo`",
    );
}

/// The latest build's envelope verifies with the project's key, names the running image, and
/// signs this very record: its digest and every material field.
fn check_attestation(
    key: &PublicKeyFile,
    envelope: &Result<Vec<u8>, String>,
    record: &Stored,
    api: Option<&ContainerInspect>,
    checks: &mut Checks,
) {
    let running = api.map_or("(no api container)", |c| c.image.as_str());
    let outcome = match envelope {
        Ok(bytes) => {
            attest::check_envelope(bytes, key, running, record).map_err(|e| format!("{e:#}"))
        }
        Err(e) => Err(e.clone()),
    };
    checks.add(
        "attestation",
        outcome.is_ok(),
        format!(
            "envelope signed by key {}, subject the running image",
            short(&key.keyid)
        ),
        match &outcome {
            Ok(subject) => format!("verified, subject sha256:{}", short(subject)),
            Err(e) => e.clone(),
        },
        "the attestation is missing, forged or for another image: run `make demo`",
    );
}

/// The latest record is the newest build the host attested, or one after it in the chain: an
/// older record and its envelope put back (a rollback) fail, even though both verify.
fn check_no_rollback(mark: &AttestedMark, chain: &[ChainEntry], m: &Manifest, checks: &mut Checks) {
    let at = |build_id: &str| chain.iter().position(|e| e.build_id == build_id);
    let remembered = chain.iter().position(|e| {
        e.build_id == mark.build_id
            && e.read
                .as_ref()
                .is_ok_and(|s| s.sha256 == mark.manifest_sha256)
    });
    let ok = match (remembered, at(&m.build_id)) {
        (Some(r), Some(l)) => l >= r,
        _ => false,
    };
    checks.add(
        "no-rollback",
        ok,
        format!(
            "latest is {} (the newest build the host attested, sha256 {}) or newer",
            mark.build_id,
            short(&mark.manifest_sha256)
        ),
        match remembered {
            None => format!(
                "the attested record {} is gone or changed; latest is {}",
                mark.build_id, m.build_id
            ),
            Some(_) => format!("latest is {}", m.build_id),
        },
        "an older record was put back, or an attested one edited: run `make demo`",
    );
}

/// What a check saw: `ok` when nothing was found wrong, else every problem found.
fn observed_list(problems: &[String], ok: &str) -> String {
    if problems.is_empty() {
        ok.to_string()
    } else {
        problems.join("; ")
    }
}

fn json_field(answer: &HttpAnswer, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(&answer.body).ok()?;
    v.get(key)?.as_str().map(str::to_string)
}

fn answer_text(answer: &HttpAnswer) -> String {
    match answer.status {
        Some(status) => format!("{status} {}", answer.body.trim()),
        None => format!("no answer: {}", answer.body),
    }
}

/// What the api answers through the forwarded port on the host.
fn check_http(m: Option<&Manifest>, http: &HttpAnswers, checks: &mut Checks) {
    for (path, answer, hint) in [
        (
            "/health",
            &http.health,
            "the api process does not serve: see `make up` output",
        ),
        (
            "/ready",
            &http.ready,
            "the api cannot reach its database (is db running?)",
        ),
    ] {
        checks.add(
            &format!("http{path}"),
            answer.status == Some(200),
            "200".into(),
            answer_text(answer),
            hint,
        );
    }
    if let Some(m) = m {
        // The api names its source, not its build: the image of the same source is the same.
        let expected = (m.git.commit.clone().unwrap_or_default(), m.git.tree.clone());
        let observed = (
            json_field(&http.version, "commit").unwrap_or_default(),
            json_field(&http.version, "tree").unwrap_or_default(),
        );
        checks.add(
            "http/version",
            http.version.status == Some(200) && observed == expected,
            format!("commit {} tree {}", expected.0, expected.1),
            if http.version.status.is_some() {
                format!("commit {} tree {}", observed.0, observed.1)
            } else {
                answer_text(&http.version)
            },
            "the api that answers is not built from the recorded source: run `make demo`",
        );
    }
}
