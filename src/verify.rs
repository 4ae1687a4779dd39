//! `prov verify`: the authoritative, read-only check, run from the host.
//!
//! It reads the node's manifests from the synced `provenance/` folder, reads the node's Docker
//! state over ssh (`probe`, GET requests only) while it asks the api through the forwarded port
//! and hashes the host's source tree, and reports every check. It changes nothing anywhere.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use chrono::{Duration as Span, DurationRound};

use crate::attest;
use crate::build::COMPOSE_PROJECT;
use crate::context::NODE_MOUNT;
use crate::docker::{ContainerInspect, NodeState};
use crate::manifest::{Link, Store, StoreError};
use crate::model::{labels, BuildStatus, Check, Manifest, NodeReport, NodeSpec};
use crate::probe;
use crate::text::short_id as short;
use crate::transport::Transport;
use crate::tree_hash::{self, TreeState};

const SERVICES: [&str; 2] = ["api", "db"];
const DB_DATA_DIR: &str = "/var/lib/postgresql/data";
const DB_VOLUME: &str = "dbdata";

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

/// What the host's source tree hashes to now, computed once per `prov verify` and shared by
/// every node's `source-tree` check.
type SourceTree = OnceLock<Result<TreeState, String>>;

/// Verifies one node. An `Err` means the node could not be checked at all.
fn verify_node(
    repo: &Path,
    node: &NodeSpec,
    source: &SourceTree,
    deadline: Instant,
) -> Result<NodeReport> {
    let store = Store::new(&repo.join("provenance"), &node.name);
    let mut checks = Checks::default();
    let manifest = check_manifests(&store, &node.name, &mut checks)?;

    let mut images: Vec<String> = Vec::new();
    if let Some(m) = &manifest {
        images.extend(m.image.iter().map(|i| i.id.clone()));
    }
    // The api is asked over HTTP while the node's Docker state comes back over ssh.
    let (state, http) = std::thread::scope(|scope| {
        let http = scope.spawn(|| {
            let mut http = Checks::default();
            check_http(node, manifest.as_ref(), deadline, &mut http);
            http
        });
        let state = probe(repo, &node.name, &images, deadline);
        (state, http.join())
    });
    let state = state?;
    let http = http.map_err(|_| anyhow!("the HTTP checks of node {} panicked", node.name))?;

    let services = check_services(&state, &mut checks);
    if let Some(m) = &manifest {
        check_image(m, &state, services.first().copied().flatten(), &mut checks);
    }
    check_wiring(&services, &mut checks);
    check_no_bypass(&state, manifest.as_ref(), &mut checks);
    if let Some(m) = &manifest {
        check_source(repo, source, m, &mut checks)?;
        check_attestation(repo, &store, m, services[0], &mut checks)?;
    }
    checks.0.extend(http.0);

    let ok = checks.0.iter().all(|c| c.ok);
    Ok(NodeReport {
        node: node.name.clone(),
        ok,
        error: None,
        checks: checks.0,
    })
}

/// The node's Docker state, read by the read-only probe.
fn probe(repo: &Path, node: &str, images: &[String], deadline: Instant) -> Result<NodeState> {
    probe::node_state(&Transport::connect(repo, node)?.until(deadline), images)
        .with_context(|| format!("could not read node {node}'s Docker state"))
}

/// Verifies several nodes in parallel; a node that could not be checked carries the reason.
/// The host's source tree is hashed once, while the nodes are being asked.
///
/// Every node answers within `timeout`: its ssh command and HTTP requests are bounded by it,
/// and a node whose check is still running past it (a stall nothing else caught) is reported as
/// unchecked, its thread abandoned. A panic is reported the same way, never as a verdict.
pub fn verify_nodes(repo: &Path, nodes: &[NodeSpec], timeout: Duration) -> Vec<NodeReport> {
    let deadline = Instant::now() + timeout;
    let source = Arc::new(SourceTree::new());
    {
        let (repo, source) = (repo.to_path_buf(), source.clone());
        std::thread::spawn(move || {
            source_tree(&repo, &source);
        });
    }
    let (done, finished) = mpsc::channel();
    for (index, node) in nodes.iter().enumerate() {
        let (repo, node, source, done) =
            (repo.to_path_buf(), node.clone(), source.clone(), done.clone());
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                verify_node(&repo, &node, &source, deadline)
            }));
            let _ = done.send((index, outcome));
        });
    }
    drop(done);
    let mut reports: Vec<Option<NodeReport>> = vec![None; nodes.len()];
    // A moment's grace past the deadline for a node that is writing its report.
    let backstop = deadline + Duration::from_millis(500);
    while reports.iter().any(Option::is_none) {
        let left = backstop.saturating_duration_since(Instant::now());
        let Ok((index, outcome)) = finished.recv_timeout(left) else {
            break;
        };
        let name = &nodes[index].name;
        reports[index] = Some(match outcome {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => unchecked(name, format!("{e:#}")),
            Err(_) => unchecked(name, "the check panicked (a bug in prov)".to_string()),
        });
    }
    reports
        .into_iter()
        .zip(nodes)
        .map(|(report, node)| {
            report.unwrap_or_else(|| {
                unchecked(
                    &node.name,
                    format!(
                        "node {} was not checked within {} s (--timeout): something it waited \
                         for did not answer",
                        node.name,
                        timeout.as_secs_f64()
                    ),
                )
            })
        })
        .collect()
}

/// The shared hash of the host's source tree, computed by whichever thread asks first (the
/// others wait for it).
fn source_tree<'a>(repo: &Path, source: &'a SourceTree) -> &'a Result<TreeState, String> {
    source.get_or_init(|| tree_hash::tree_state(repo).map_err(|e| e.to_string()))
}

/// The image id the node's api container runs, if any (one light, read-only round trip).
pub fn running_api_image(repo: &Path, node: &str) -> Result<Option<String>> {
    let script = format!(
        "docker ps --quiet --filter label=com.docker.compose.project={COMPOSE_PROJECT} \
         --filter label=com.docker.compose.service=api | head -n 1 | \
         xargs -r docker inspect --format '{{{{.Image}}}}'"
    );
    let out = Transport::connect(repo, node)?.run_script(&script, &[])?;
    if !out.status.success() {
        anyhow::bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((!id.is_empty()).then_some(id))
}

fn unchecked(node: &str, reason: String) -> NodeReport {
    NodeReport {
        node: node.to_string(),
        ok: false,
        error: Some(reason),
        checks: Vec::new(),
    }
}

/// The latest manifest, its pinned digest and the hash chain. Returns the manifest when it can be
/// trusted enough to check the node against; `Err` when there is nothing to check against.
fn check_manifests(store: &Store, node: &str, checks: &mut Checks) -> Result<Option<Manifest>> {
    let chain = store.chain()?;
    // A record that is not a plain file of sane size cannot be judged: could not check.
    if let Some(refused) = chain.iter().find_map(|e| match &e.read {
        Err(refused @ StoreError::Refused { .. }) => Some(refused),
        _ => None,
    }) {
        return Err(anyhow!("{refused}"));
    }
    let latest = match store.latest() {
        Err(e @ StoreError::NoLatest { .. }) if chain.is_empty() => return Err(e.into()),
        Err(e @ StoreError::Refused { .. }) => return Err(e.into()),
        other => other,
    };
    let manifest = match latest {
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
            Some(stored.manifest)
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
        if broken.is_empty() {
            "intact".into()
        } else {
            broken.join("; ")
        },
        "a manifest was deleted or edited after it was written; prov log shows where",
    );
    if let Some(m) = &manifest {
        let newest = Store::newest_success(&chain).map(|s| s.manifest.build_id.clone());
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
    Ok(manifest)
}

/// Exactly one running, healthy container per service; returns them in `SERVICES` order.
fn check_services<'a>(
    state: &'a NodeState,
    checks: &mut Checks,
) -> Vec<Option<&'a ContainerInspect>> {
    SERVICES
        .iter()
        .map(|service| {
            let found: Vec<&ContainerInspect> = state
                .containers
                .iter()
                .filter(|c| {
                    c.label("com.docker.compose.project") == Some(COMPOSE_PROJECT)
                        && c.label("com.docker.compose.service") == Some(service)
                        && c.label("com.docker.compose.oneoff") != Some("True")
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
    let Some(recorded) = &m.image else { return };
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
    checks.add(
        "image-local",
        image.repo_digests.is_empty() && !floating && image.repo_tags.contains(&recorded.tag),
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
fn check_layers_fresh(
    m: &Manifest,
    state: &NodeState,
    image: &crate::docker::ImageInspect,
    checks: &mut Checks,
) {
    let is_base = |id: &str| m.base_images.iter().any(|b| b.id == id);
    let own = state
        .history
        .iter()
        .find(|h| h.image == image.id)
        .and_then(|h| {
            let base_at = h.entries.iter().position(|e| is_base(&e.id))?;
            Some(&h.entries[..base_at])
        });
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
    // History times have one-second resolution.
    let from = m
        .started_at
        .duration_trunc(Span::seconds(1))
        .unwrap_or(m.started_at);
    let to = m.finished_at + Span::seconds(1);
    let stale: Vec<String> = own
        .iter()
        .filter(|e| e.created < from || e.created > to)
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
        format!(
            "{} layer(s) above the base, all created {from} .. {to}",
            own.len()
        ),
        if stale.is_empty() {
            "all inside the window".into()
        } else {
            format!("outside: {}", stale.join("; "))
        },
        "a layer was reused from a cache or the image was made elsewhere: run `make demo`",
    );
}

/// Compose put the stack together from /vagrant: project, directory, file, network, volume.
fn check_wiring(services: &[Option<&ContainerInspect>], checks: &mut Checks) {
    let expected_file = format!("{NODE_MOUNT}/compose.yaml");
    let mut problems = Vec::new();
    for (service, container) in SERVICES.iter().zip(services) {
        let Some(c) = container else {
            problems.push(format!("{service}: no single container"));
            continue;
        };
        let label = |k: &str| c.label(k).unwrap_or("(none)").to_string();
        let dir = label("com.docker.compose.project.working_dir");
        if dir != NODE_MOUNT {
            problems.push(format!("{service}: working_dir {dir}"));
        }
        let files = label("com.docker.compose.project.config_files");
        if files != expected_file {
            problems.push(format!("{service}: config_files {files}"));
        }
        let network = format!("{COMPOSE_PROJECT}_default");
        if !c.network_settings.networks.contains_key(&network) {
            let on: Vec<&String> = c.network_settings.networks.keys().collect();
            problems.push(format!("{service}: not on {network} (on {on:?})"));
        }
    }
    if let Some(db) = services.get(1).copied().flatten() {
        let volume = format!("{COMPOSE_PROJECT}_{DB_VOLUME}");
        let on_volume = db.mounts.iter().any(|mnt| {
            mnt.destination == DB_DATA_DIR
                && mnt.kind == "volume"
                && mnt.name.as_deref() == Some(&volume)
        });
        if !on_volume {
            problems.push(format!("db: {DB_DATA_DIR} is not on volume {volume}"));
        }
    }
    checks.add(
        "compose-wiring",
        problems.is_empty(),
        format!(
            "project {COMPOSE_PROJECT}, working_dir {NODE_MOUNT}, config {expected_file}, shared network, db data on its volume"
        ),
        if problems.is_empty() {
            "as expected".into()
        } else {
            problems.join("; ")
        },
        "the stack was started outside the golden path: `make clean && make demo`",
    );
}

/// No container runs an api image outside the compose project (a hand-made `docker run`).
fn check_no_bypass(state: &NodeState, m: Option<&Manifest>, checks: &mut Checks) {
    let recorded = m.and_then(|m| m.image.as_ref()).map(|i| i.id.as_str());
    let strays: Vec<String> = state
        .containers
        .iter()
        .filter(|c| c.state.running)
        .filter(|c| c.label(labels::BUILD_ID).is_some() || Some(c.image.as_str()) == recorded)
        .filter(|c| {
            c.label("com.docker.compose.project") != Some(COMPOSE_PROJECT)
                || c.label("com.docker.compose.service") != Some("api")
        })
        .map(|c| format!("{} {}", short(&c.id), c.name.trim_start_matches('/')))
        .collect();
    checks.add(
        "no-bypass",
        strays.is_empty(),
        "api images run only as the compose project's api service".into(),
        if strays.is_empty() {
            "none elsewhere".into()
        } else {
            format!("also running: {}", strays.join(", "))
        },
        "a container was started by hand; `make clean && make demo` removes it",
    );
}

/// The host's source tree is the one the running image was built from.
fn check_source(repo: &Path, source: &SourceTree, m: &Manifest, checks: &mut Checks) -> Result<()> {
    let now = source_tree(repo, source)
        .as_ref()
        .map_err(|e| anyhow!("hashing the host's source tree: {e}"))?;
    checks.add(
        "source-tree",
        now.tree == m.git.tree,
        format!("tree {} (built)", m.git.tree),
        format!("tree {} (now)", now.tree),
        "the source changed since this build: the running image is stale, run `make demo`",
    );
    Ok(())
}

/// When the project has a key, the latest build's envelope verifies with it and names the
/// running image as its subject.
fn check_attestation(
    repo: &Path,
    store: &Store,
    m: &Manifest,
    api: Option<&ContainerInspect>,
    checks: &mut Checks,
) -> Result<()> {
    let Some(key) = attest::load_public_key(repo)? else {
        return Ok(());
    };
    let path = attest::envelope_path(store.dir(), &m.build_id);
    let running = api.map_or("(no api container)", |c| c.image.as_str());
    let outcome = crate::bounded::read(&path)
        .with_context(|| format!("reading {}", path.display()))
        .and_then(|bytes| bytes.with_context(|| format!("no attestation at {}", path.display())))
        .and_then(|bytes| attest::check_envelope(&bytes, &key, running));
    checks.add(
        "attestation",
        outcome.is_ok(),
        format!(
            "envelope signed by key {}, subject the running image",
            short(&key.keyid)
        ),
        match &outcome {
            Ok(subject) => format!("verified, subject sha256:{}", short(subject)),
            Err(e) => format!("{e:#}"),
        },
        "the attestation is missing, forged or for another image: run `make demo`",
    );
    Ok(())
}

/// What the api answers through the forwarded port on the host.
fn check_http(node: &NodeSpec, m: Option<&Manifest>, deadline: Instant, checks: &mut Checks) {
    let left = deadline.saturating_duration_since(Instant::now());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(left.min(Duration::from_secs(3))))
        .build()
        .into();
    let base = format!("http://127.0.0.1:{}", node.api_port);
    let get = |path: &str| -> Result<(u16, String)> {
        let mut response = agent.get(&format!("{base}{path}")).call()?;
        let body = response.body_mut().read_to_string()?;
        Ok((response.status().as_u16(), body))
    };
    for (path, hint) in [
        (
            "/health",
            "the api process does not serve: see `make up` output",
        ),
        (
            "/ready",
            "the api cannot reach its database (is db running?)",
        ),
    ] {
        let observed = get(path);
        checks.add(
            &format!("http{path}"),
            matches!(observed, Ok((200, _))),
            "200".into(),
            match observed {
                Ok((status, body)) => format!("{status} {}", body.trim()),
                Err(e) => format!("no answer: {e}"),
            },
            hint,
        );
    }
    if let Some(m) = m {
        let expected = (m.build_id.clone(), m.git.commit.clone().unwrap_or_default());
        let observed = get("/version").and_then(|(_, body)| {
            let v: serde_json::Value = serde_json::from_str(&body)?;
            let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            Ok((field("build_id"), field("commit")))
        });
        checks.add(
            "http/version",
            observed.as_ref().is_ok_and(|o| *o == expected),
            format!("build_id {} commit {}", expected.0, expected.1),
            match &observed {
                Ok((b, c)) => format!("build_id {b} commit {c}"),
                Err(e) => format!("no answer: {e}"),
            },
            "the api that answers is not the recorded build: run `make demo`",
        );
    }
}
