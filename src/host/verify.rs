//! `prov verify`: the authoritative, read-only check, run from the host.
//!
//! It gathers the evidence (the node's records, read from its export as data; the node's Docker
//! state over ssh with `probe`, GET requests only; the api's answers through the forwarded port;
//! the host's source tree hash; what the host imported and attested) and hands it to
//! `checks::judge`, which decides. It changes nothing anywhere, and answers within its bound.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use crate::host::attest;
use crate::host::bases::{HostBases, DATABASE};
use crate::host::checks::{self, Evidence, InImage};
use crate::host::held::Held;
use crate::host::image_files::{self, ImageFiles};
use crate::host::import;
use crate::host::pool::{self, Ended};
use crate::host::probe::{self, ImageQuery};
use crate::host::proven_files::{NamedContainer, ProvenFiles};
use crate::host::report::{HttpAnswer, HttpAnswers, NodeReport, Subject};
use crate::host::state::HostState;
use crate::host::transport::Transport;
use crate::record::engine::{Executed, NodeState};
use crate::record::manifest::Manifest;
use crate::record::nodes::{NodeName, NodeSpec};
use crate::record::policy::{self, LoadedPolicy};
use crate::record::stack;
use crate::record::store::{ChainEntry, ChainLink, Store, StoreError, Stored};
use crate::record::tree_hash::{self, TreeState};

/// How long verify waits for a container whose healthcheck is still `starting` (an api that was
/// just restarted) to settle, within the node's `--timeout`.
const SETTLE: Duration = Duration::from_secs(15);

/// What the host's source tree hashes to now, computed once per `prov verify` and shared by
/// every node's `source-tree` check.
type SourceTree = OnceLock<Result<TreeState, String>>;

/// Verifies one node. An `Err` means the node could not be checked at all.
fn verify_node(
    repo: &Path,
    node: &NodeSpec,
    source: &SourceTree,
    policy: LoadedPolicy,
    deadline: Instant,
    capture: Option<&Path>,
) -> Result<NodeReport> {
    // Host-only state: read, never changed (nothing is migrated by a read-only check).
    let host = HostState::for_checkout(repo)?;
    let transport = Transport::connect(repo, &node.name)?.until(deadline);
    let imported = Store::new(&repo.join("provenance"), &node.name);
    // What the node claims, read from its export as data, and its Docker state, asked at the
    // same time (one round trip's wait, not two): the state for the images the host's imported
    // latest record names, which are the node's own unless it built since the last import.
    let imported_latest = imported.latest().ok();
    let expected = imported_latest
        .as_ref()
        .map(|stored| images_of(&stored.manifest))
        .unwrap_or_default();
    let held = Held::load(&host, &imported)?;
    let proven = ProvenFiles::load(&host, &node.name);
    let bases = HostBases::load(repo).map_err(|e| format!("{e:#}"));
    // Meanwhile the host reads its listings of the images the stack should run.
    let (since, observed, listings) = std::thread::scope(|scope| {
        let observed = scope.spawn(|| observe(&transport, node, &expected, &proven, deadline));
        let listings = scope.spawn(|| expected_listings(&host, &bases, imported_latest.as_ref()));
        (
            import::fetch_since(&host, &transport, held.boundary()),
            observed.join(),
            listings.join().unwrap_or_default(),
        )
    });
    let (chain, from_host, latest) = node_records(&host, &transport, &imported, &held, since?)?;
    let manifest = checks::usable_manifest(&latest);
    let needed = manifest.map(images_of).unwrap_or_default();
    let (state, http) = if expected.covers(&needed) {
        observed.map_err(|_| anyhow!("observing node {} panicked", node.name))??
    } else {
        observe(&transport, node, &needed, &proven, deadline)?
    };
    let in_images = in_images(&host, &state, listings);
    let proven_now = proven_now(&node.name, &state, &in_images);
    if let Some(dir) = capture {
        write_capture(
            &dir.join(&node.name),
            &host,
            &imported,
            &state,
            &in_images,
            &http,
        )?;
    }
    let tree_now = source_tree(repo, source)
        .as_ref()
        .map(|t| t.tree.clone())
        .map_err(Clone::clone);
    let public_key = attest::load_public_key(&host)?;
    let attested = host.attested(&node.name)?;
    if let (Some(mark), None) = (&attested, &public_key) {
        anyhow::bail!(
            "node {} has attested builds (the newest: {}), but the project's public key is \
             missing from {}: restore it; without it no attestation can be checked",
            node.name,
            mark.build_id,
            host.public_key().display()
        );
    }
    let verdicts = manifest
        .and_then(|m| imported.read(&m.build_id).ok())
        .map(|stored| crate::host::verdicts::verdicts(&imported, &stored, public_key.as_ref()))
        .unwrap_or_default();
    let reproduced: Vec<String> = verdicts
        .iter()
        .map(|(node, verdict)| crate::host::verdicts::summary(node, verdict))
        .collect();
    let attestation = match (public_key, manifest) {
        (Some(key), Some(m)) => {
            let path = imported.envelope_path(&m.build_id);
            let envelope = match crate::record::bounded::read(&path) {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => Err(format!("no attestation at {}", path.display())),
                Err(e) => Err(format!("reading {}: {e}", path.display())),
            };
            Ok((key, envelope))
        }
        (None, _) => Err(format!(
            "the project has no key ({} is missing)",
            host.public_key().display()
        )),
        (Some(_), None) => Err("no usable record to hold an attestation to".into()),
    };
    let imported_sha = manifest.and_then(|m| imported.read(&m.build_id).ok().map(|s| s.sha256));
    let cached_steps = manifest.map_or(Ok(Vec::new()), |m| {
        cached_steps_in(&imported.log_path(&m.build_id))
    });
    let subject = Subject {
        running_image: running_api(&state).map(|c| c.image.clone()),
        build_id: manifest.map(|m| m.build_id.clone()),
        recorded_image: manifest
            .and_then(|m| m.image.as_ref())
            .map(|i| i.id.clone()),
        manifest_sha256: latest.as_ref().ok().map(|s| s.sha256.clone()),
        attestation_sha256: attestation
            .as_ref()
            .ok()
            .and_then(|(_, envelope)| envelope.as_ref().ok())
            .map(|bytes| crate::record::digest::sha256_hex(bytes)),
        reproduced: verdicts
            .iter()
            .any(|(_, v)| v.as_ref().is_ok_and(|v| v.identical && v.same_source)),
    };
    let checks = checks::judge(&Evidence {
        node: node.name.clone(),
        chain,
        held: from_host,
        latest,
        state,
        in_images,
        http,
        tree_now,
        attestation,
        policy,
        attested,
        imported: imported_sha,
        cached_steps,
        bases,
    });
    Ok(NodeReport {
        node: node.name.clone(),
        ok: checks.iter().all(|c| c.ok),
        error: None,
        checks,
        reproduced,
        subject,
        proven: proven_now,
    })
}

/// What the host may keep as proven: the executed files whose bytes are their image's, by
/// identity, and the stack's running containers as the engine named them.
fn proven_now(
    node: &NodeName,
    state: &NodeState,
    in_images: &BTreeMap<String, Result<InImage, String>>,
) -> ProvenFiles {
    let mut proven = Vec::new();
    for (id, executed) in &state.executed {
        let Some(Ok(image)) = in_images.get(id) else {
            continue;
        };
        for e in executed {
            if let (Some(identity), Some(sha)) = (&e.identity, &e.sha256) {
                if image.get(e.path_in_root()).cloned().flatten().as_ref() == Some(sha) {
                    proven.push((identity.clone(), sha.clone()));
                }
            }
        }
    }
    let named = state
        .containers
        .iter()
        .filter(|c| c.state.running && state.executed.contains_key(&c.id))
        .map(NamedContainer::of)
        .collect();
    ProvenFiles::new(node, proven, named)
}

/// The node's chain and what its `latest` resolves to. When the node's records up to the newest
/// one the host imported hash to what the host imported, the host's proven links stand for them
/// and only the newer records were read; otherwise every record is fetched and judged as the
/// node holds it (naming what differs). A record that is not a plain file of sane size, or no
/// record at all, means the node cannot be checked.
/// The number returned is how many links are the host's.
fn node_records(
    host: &HostState,
    transport: &Transport,
    imported: &Store,
    held: &Held,
    since: import::Since,
) -> Result<(Vec<ChainLink>, usize, Result<Stored, StoreError>)> {
    let chain = import::node_chain(host, transport, imported, held, since)?;
    refuse_unreadable(&chain.read)?;
    let latest = match chain.latest {
        Err(e @ StoreError::NoLatest { .. }) if chain.links.is_empty() => return Err(e.into()),
        Err(e @ StoreError::Refused { .. }) => return Err(e.into()),
        other => other,
    };
    Ok((chain.links, chain.from_host, latest))
}

fn refuse_unreadable(chain: &[ChainEntry]) -> Result<()> {
    match chain.iter().find_map(|e| match &e.read {
        Err(refused @ StoreError::Refused { .. }) => Some(refused),
        _ => None,
    }) {
        Some(refused) => Err(anyhow!("{refused}")),
        None => Ok(()),
    }
}

/// What the checks of a build read from the engine: the configuration of the built image and of
/// every service's image; the history of the built image (layers-fresh tells its own layers
/// from its base's by the host's history of that base).
fn images_of(manifest: &Manifest) -> ImageQuery {
    let built = manifest.image.iter().map(|i| i.id.clone());
    let services = manifest
        .compose
        .services
        .iter()
        .flat_map(|s| s.values())
        .filter_map(|s| s.image_id.clone());
    let inspect: BTreeSet<String> = built.clone().chain(services).collect();
    ImageQuery {
        inspect: inspect.into_iter().collect(),
        history: built.collect(),
    }
}

/// The node's Docker state and the api's answers, asked at the same time. While a stack
/// container's healthcheck says `starting` (a restart in progress, not a bypass), or what one
/// runs is caught changing (`NodeState::in_passing`), both are asked again, until it settles or
/// the time runs out.
fn observe(
    transport: &Transport,
    node: &NodeSpec,
    images: &ImageQuery,
    proven: &ProvenFiles,
    deadline: Instant,
) -> Result<(NodeState, HttpAnswers)> {
    let settle_by = deadline.min(Instant::now() + SETTLE);
    loop {
        let (mut state, (http, answered)) = std::thread::scope(|scope| {
            let http = scope.spawn(|| ask_api(node, deadline));
            // Once the api answered (while the node still lists the containers' files): the
            // containers beyond the stack's. The api's log, which must show verify's requests,
            // comes last with the listing.
            probe::node_state_and(transport, images, proven, |state| {
                let http = http
                    .join()
                    .map_err(|_| anyhow!("the HTTP checks of node {} panicked", node.name))?;
                let answered = [&http.health, &http.ready, &http.version]
                    .iter()
                    .filter(|a| a.status.is_some())
                    .count();
                probe::after_http(transport, state)?;
                Ok((http, answered))
            })
            .with_context(|| format!("could not read node {}'s Docker state", node.name))
        })?;
        probe::settle_api_log(transport, &mut state, http.nonce.as_deref(), answered);
        let starting = state.containers.iter().any(|c| {
            stack::container_of(c.label(stack::compose_labels::SERVICE).unwrap_or("")).is_some()
                && c.state
                    .health
                    .as_ref()
                    .is_some_and(|h| h.status == "starting")
        });
        let passing = state.in_passing();
        if !(starting || passing) || Instant::now() + Duration::from_secs(1) > settle_by {
            return Ok((state, http));
        }
        std::thread::sleep(Duration::from_millis(if starting { 500 } else { 100 }));
    }
}

/// The api's answers on /health, /ready and /version through the node's forwarded port. Each
/// request carries a fresh random nonce, which the api notes in its log with what it answered
/// (`answered-by-api`).
fn ask_api(node: &NodeSpec, deadline: Instant) -> HttpAnswers {
    let nonce = new_nonce();
    let left = deadline.saturating_duration_since(Instant::now());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(left.min(Duration::from_secs(3))))
        .build()
        .into();
    let get = |path: &str| -> HttpAnswer {
        let url = format!("http://127.0.0.1:{}{path}", node.api_port);
        let request = agent.get(&url);
        let request = match &nonce {
            Some(nonce) => request.header(NONCE_HEADER, nonce),
            None => request,
        };
        let answer = request.call().and_then(|mut response| {
            let status = response.status().as_u16();
            // A body larger than any answer of the api is not read whole.
            let body = response
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_string()?;
            Ok((status, body))
        });
        match answer {
            Ok((status, body)) => HttpAnswer {
                status: Some(status),
                body,
            },
            Err(e) => HttpAnswer {
                status: None,
                body: e.to_string(),
            },
        }
    };
    HttpAnswers {
        health: get("/health"),
        ready: get("/ready"),
        version: get("/version"),
        nonce,
    }
}

/// The header that carries verify's nonce; the api notes its value in its log.
pub const NONCE_HEADER: &str = "x-prov-nonce";

/// 16 random bytes, as hex; `None` when the system gives no randomness (answered-by-api then
/// fails, naming it).
fn new_nonce() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

/// Verifies several nodes in parallel, at most `jobs` at once; a node that could not be checked
/// carries the reason. The host's source tree is hashed once, while the nodes are being asked.
///
/// Every node answers within `timeout` of its own check's start: its ssh commands and HTTP
/// requests are bounded by it, and a node whose check is still running past it (a stall nothing
/// else caught) is reported as unchecked, its thread abandoned. A panic is reported the same
/// way, never as a verdict.
pub fn verify_nodes(
    repo: &Path,
    nodes: &[NodeSpec],
    policy_path: &str,
    jobs: usize,
    timeout: Duration,
    capture: Option<&Path>,
) -> Vec<NodeReport> {
    // Without the policy in force nothing can be judged.
    let policy = match policy::load(repo, policy_path) {
        Ok(policy) => policy,
        Err(e) => {
            return nodes
                .iter()
                .map(|n| unchecked(&n.name, format!("{e:#}")))
                .collect()
        }
    };
    let source = Arc::new(SourceTree::new());
    {
        let (repo, source) = (repo.to_path_buf(), source.clone());
        std::thread::spawn(move || {
            source_tree(&repo, &source);
        });
    }
    let (repo, capture) = (repo.to_path_buf(), capture.map(Path::to_path_buf));
    let ended = pool::each_bounded(nodes.to_vec(), jobs, timeout, move |node, deadline| {
        verify_node(
            &repo,
            node,
            &source,
            policy.clone(),
            deadline,
            capture.as_deref(),
        )
    });
    ended
        .into_iter()
        .zip(nodes)
        .map(|(ended, node)| match ended {
            Ended::Done(Ok(report)) => report,
            Ended::Done(Err(e)) => unchecked(&node.name, format!("{e:#}")),
            Ended::Panicked => unchecked(&node.name, "the check panicked (a bug in prov)".into()),
            Ended::Overdue => unchecked(
                &node.name,
                format!(
                    "node {} was not checked within {} s (--timeout): something it waited for \
                     did not answer",
                    node.name,
                    timeout.as_secs_f64()
                ),
            ),
        })
        .collect()
}

/// The shared hash of the host's source tree, computed by whichever thread asks first (the
/// others wait for it).
fn source_tree<'a>(repo: &Path, source: &'a SourceTree) -> &'a Result<TreeState, String> {
    source.get_or_init(|| tree_hash::tree_state(repo).map_err(|e| e.to_string()))
}

/// Writes what verify gathered from a node (`--capture DIR` writes `DIR/<node>/`), the fixtures
/// of tests/verify_checks.rs: `state.json`, `http.json`, the host's copy of the node's records
/// (the chain, without their side files), `latest` and the latest's attestation in
/// `provenance/<node>/`, and the project's public key and the newest attested build.
fn write_capture(
    dir: &Path,
    host: &HostState,
    imported: &Store,
    state: &NodeState,
    in_images: &BTreeMap<String, Result<InImage, String>>,
    http: &HttpAnswers,
) -> Result<()> {
    let records = dir.join("provenance").join(imported.node());
    std::fs::create_dir_all(&records).with_context(|| format!("creating {}", records.display()))?;
    for (name, json) in [
        ("state.json", serde_json::to_vec_pretty(state)?),
        ("in-images.json", serde_json::to_vec_pretty(in_images)?),
        ("http.json", serde_json::to_vec_pretty(http)?),
    ] {
        crate::record::store::write_atomic(&dir.join(name), &json)?;
    }
    let latest = imported.latest()?.manifest.build_id;
    let records_held = imported
        .build_ids()?
        .into_iter()
        .map(|id| format!("{id}.json"));
    let envelope = crate::record::names::envelope(&latest);
    for name in records_held.chain(["latest".to_string(), envelope]) {
        let bytes = crate::record::bounded::read(&imported.dir().join(&name))?
            .with_context(|| format!("no {name} in {}", imported.dir().display()))?;
        crate::record::store::write_atomic(&records.join(&name), &bytes)?;
    }
    // What the host last sent to the node (the sync before the build, once the build was
    // imported), the project's public key and the host's memory of the newest attested build.
    let synced = crate::record::bounded::read(&host.synced_path(imported.node()))?
        .context("the host has no record of what it synced")?;
    crate::record::store::write_atomic(&dir.join("synced.json"), &synced)?;
    let mark = host
        .attested(imported.node())?
        .context("the host attested no build")?;
    crate::record::store::write_atomic(
        &dir.join("attested.json"),
        &serde_json::to_vec_pretty(&mark)?,
    )?;
    let key =
        crate::record::bounded::read(&host.public_key())?.context("the project has no key")?;
    crate::record::store::write_atomic(&dir.join("attest.pub.json"), &key)?;
    Ok(())
}

/// The image id the node's api container runs, if any (the probe's one read-only round trip).
pub fn running_api_image(repo: &Path, node: &NodeName) -> Result<Option<String>> {
    let state = probe::node_state(&Transport::connect(repo, node)?, &ImageQuery::default())?;
    Ok(running_api(&state).map(|c| c.image.clone()))
}

/// The host's listings of the images the imported latest build's stack runs (its own image, the
/// database's base), by chain ID: those verify expects to hold what runs to.
fn expected_listings(
    host: &HostState,
    bases: &Result<HostBases, String>,
    latest: Option<&Stored>,
) -> BTreeMap<String, ImageFiles> {
    let built = latest
        .and_then(|s| s.manifest.image.as_ref())
        .map(|i| i.layers.clone());
    let db = bases
        .as_ref()
        .ok()
        .and_then(|b| b.get(DATABASE).ok().map(|d| d.layers.clone()));
    [built, db]
        .into_iter()
        .flatten()
        .filter_map(|layers| {
            let files = ImageFiles::load(host, &layers).ok().flatten()?;
            Some((image_files::chain_id(&layers), files))
        })
        .collect()
}

/// For each stack container the node listed what it executes of: what the host's listing of
/// the container's image holds at each of those paths (`runs:<service>`). `listings` holds those
/// read beforehand; others are read here.
fn in_images(
    host: &HostState,
    state: &NodeState,
    mut listings: BTreeMap<String, ImageFiles>,
) -> BTreeMap<String, Result<InImage, String>> {
    let mut in_image = |id: &str, executed: &[Executed]| -> Result<InImage, String> {
        let c = state
            .containers
            .iter()
            .find(|c| c.id == id)
            .ok_or("the node's engine did not describe the container")?;
        let image = state
            .images
            .iter()
            .find(|i| i.id == c.image)
            .ok_or_else(|| format!("the node's engine did not describe image {}", c.image))?;
        let files = match listings.entry(image_files::chain_id(&image.root_fs.layers)) {
            Entry::Occupied(read) => read.into_mut(),
            Entry::Vacant(unread) => unread.insert(
                ImageFiles::load(host, &image.root_fs.layers)
                    .map_err(|e| format!("{e:#}"))?
                    .ok_or_else(|| {
                        format!(
                            "the host has not listed the files of image {} (it does when it \
                             imports a build that runs it): run `make demo`",
                            c.image
                        )
                    })?,
            ),
        };
        Ok(executed
            .iter()
            .map(|e| {
                let path = e.path_in_root();
                (path.to_string(), files.sha256_at(path).map(String::from))
            })
            .collect())
    };
    state
        .executed
        .iter()
        .map(|(id, executed)| (id.clone(), in_image(id, executed)))
        .collect()
}

/// The api container, when it runs.
fn running_api(state: &NodeState) -> Option<&crate::record::engine::ContainerInspect> {
    let api = format!("/{}", stack::API_CONTAINER);
    state
        .containers
        .iter()
        .find(|c| c.name == api && c.state.running)
}

pub fn unchecked(node: &NodeName, reason: String) -> NodeReport {
    NodeReport {
        node: node.clone(),
        ok: false,
        error: Some(reason),
        checks: Vec::new(),
        reproduced: Vec::new(),
        subject: Subject::default(),
        proven: Default::default(),
    }
}

/// The steps a build log shows taken from the cache (the host's imported copy, whose digest the
/// import checked), or why it could not be read.
fn cached_steps_in(log: &std::path::Path) -> Result<Vec<String>, String> {
    let file = crate::record::bounded::open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?
        .ok_or_else(|| format!("no build log at {}", log.display()))?;
    crate::record::build_log::cached_steps(std::io::BufReader::new(file))
        .map_err(|e| format!("reading {}: {e}", log.display()))
}
