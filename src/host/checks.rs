//! The verdict: every check of `prov verify` as a pure function of what was gathered (the
//! node's records, its Docker state, the api's HTTP answers, the host's source tree and the
//! attestation). Nothing here reads a file or the network, so every case has a unit test
//! (tests/verify_checks.rs) that runs in milliseconds.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration as Span, DurationRound};

use crate::host::attest::{self, PublicKeyFile};
use crate::host::bases::{self, BaseHistoryEntry, HostBases};
use crate::host::container_config::{self, Expected};
use crate::host::report::{Check, HttpAnswer, HttpAnswers};
use crate::record::engine::{
    ContainerInspect, HistoryEntry, ImageInspect, LogLine, NodeState, Top,
};
use crate::record::manifest::{labels, AttestedMark, BuildStatus, ImageStore, Manifest};
use crate::record::nodes::{NodeName, NODE_MOUNT};
use crate::record::policy::LoadedPolicy;
use crate::record::stack::{self, compose_labels};
use crate::record::store::{ChainLink, StoreError, Stored};
use crate::record::text::{self, short_id as short};

/// Everything one node's verdict is judged from.
pub struct Evidence {
    pub node: NodeName,
    /// Every manifest in chain order (the host's proven copy of what it imported, then what the
    /// node holds beyond it), and what `latest` resolved to.
    pub chain: Vec<ChainLink>,
    /// How many of the chain's first links are the host's proven copy (not read from the node).
    pub held: usize,
    pub latest: Result<Stored, StoreError>,
    pub state: NodeState,
    /// For each stack container whose executed files the node listed (by container ID): what
    /// the host's listing of its image holds at each of those paths, or why it cannot tell.
    pub in_images: BTreeMap<String, Result<InImage, String>>,
    pub http: HttpAnswers,
    /// The host's source tree hash now, or why it could not be computed.
    pub tree_now: Result<String, String>,
    /// The project's public key and the latest build's envelope (bytes, or why not); or why
    /// there is no key.
    pub attestation: Result<(PublicKeyFile, Result<Vec<u8>, String>), String>,
    /// The build policy in force on the host.
    pub policy: LoadedPolicy,
    /// The newest build of this node the host attested (host-only state), if any.
    pub attested: Option<AttestedMark>,
    /// The sha256 of the host's imported copy of the latest build's record, if it has one.
    pub imported: Option<String>,
    /// The steps the latest build's log (the host's imported copy) shows taken from the cache,
    /// or why the log could not be read.
    pub cached_steps: Result<Vec<String>, String>,
    /// The base images the host made (`make bases`), or why they could not be read.
    pub bases: Result<HostBases, String>,
}

/// The sha256 of the file an image holds at each path (`None`: no file there), as the host
/// listed the image.
pub type InImage = BTreeMap<String, Option<String>>;

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
        check_image(m, &e.state, &e.bases, services[0], &mut checks);
    }
    check_configuration(manifest, &e.state, &services, &mut checks);
    check_db_image(&e.bases, &e.state, services[1], &mut checks);
    check_filesystem(manifest, &e.state, &services, &mut checks);
    check_runs(&e.state, &e.in_images, &services, &mut checks);
    check_processes(&e.state, &services, &mut checks);
    check_reach(&e.state, &services, &mut checks);
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
        // Every build is attested (the golden path makes the key on first use), so these two
        // always apply.
        match (&e.attestation, &e.latest) {
            (Ok((key, envelope)), Ok(stored)) => {
                check_attestation(key, envelope, stored, services[0], &mut checks)
            }
            (Err(why), _) => checks.add(
                "attestation",
                false,
                "the build's attestation, signed by the project's key".into(),
                why.clone(),
                "the golden path makes the key and attests every build: run `make demo`",
            ),
            (Ok(_), Err(_)) => {}
        }
        match &e.attested {
            Some(mark) => check_no_rollback(mark, &e.chain, m, &mut checks),
            None => checks.add(
                "no-rollback",
                false,
                "latest is the newest build the host attested, or newer".into(),
                format!("the host attested no build of node {}", e.node),
                "the golden path attests every build: run `make demo`",
            ),
        }
    }
    check_http(manifest, &e.http, &mut checks);
    check_answered(&e.http, e.state.api_log.as_ref(), &mut checks);
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

    let broken: Vec<String> = chain.iter().filter_map(|l| l.problem.clone()).collect();
    checks.add(
        "hash-chain",
        broken.is_empty(),
        format!(
            "{} manifest(s), each chained to the one before ({} as the host imported them, the \
             node's copies of the same digest; {} read from the node)",
            chain.len(),
            e.held,
            chain.len() - e.held
        ),
        observed_list(&broken, "intact"),
        "a manifest was deleted or edited after it was written; prov log shows where",
    );
    if let Some(m) = &manifest {
        let newest = chain
            .iter()
            .rev()
            .find(|l| l.success)
            .map(|l| l.build_id.clone());
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
    bases: &Result<HostBases, String>,
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
    check_layers_fresh(m, state, bases, image, checks);
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
/// layer taken from a cache would carry an older time.
fn check_layers_fresh(
    m: &Manifest,
    state: &NodeState,
    bases: &Result<HostBases, String>,
    image: &ImageInspect,
    checks: &mut Checks,
) {
    let own = state
        .history
        .iter()
        .find(|h| h.image == image.id)
        .and_then(|h| own_history(m, bases.as_ref().ok(), &h.entries));
    let Some(own) = own else {
        checks.add(
            "layers-fresh",
            false,
            "the image's history, down to a recorded base image".into(),
            match bases {
                Ok(_) => "no recorded base in the image's history".into(),
                Err(why) => format!("no recorded base in the image's history ({why})"),
            },
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
/// so there the host's history of the recorded base (by its configuration's digest: a node's
/// containerd store may give the same base another ID each time it loads it) must be the bottom
/// of the image's, entry for entry (by time too, unless the build set every time to the source's
/// date).
fn own_history<'a>(
    m: &Manifest,
    bases: Option<&HostBases>,
    entries: &'a [HistoryEntry],
) -> Option<&'a [HistoryEntry]> {
    if let Some(at) = entries
        .iter()
        .position(|e| m.base_images.iter().any(|b| b.id == e.id))
    {
        return Some(&entries[..at]);
    }
    m.base_images.iter().find_map(|base| {
        let digest = base.config_digest.as_deref()?;
        let below = &bases?.0.iter().find(|b| b.id == digest)?.history;
        let at = entries.len().checked_sub(below.len())?;
        let same = |a: &HistoryEntry, b: &BaseHistoryEntry| {
            a.created_by == b.created_by && (m.source_date.is_some() || a.created == b.created)
        };
        (at > 0 && entries[at..].iter().zip(below).all(|(a, b)| same(a, b))).then(|| &entries[..at])
    })
}

/// Each service's container is exactly what the recorded Compose configuration makes of it, field
/// by field of everything the engine reports (`container_config.rs`). Labels can be copied by
/// hand; this cannot be faked without running what Compose would have run.
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
        let (image_id, image_ref) = if *service == stack::API_SERVICE {
            let image = m.image.as_ref();
            (
                image.map(|i| i.id.clone()),
                image.map(|i| i.tag.clone()).unwrap_or_default(),
            )
        } else {
            (spec.image_id.clone(), spec.image.clone())
        };
        let image = state
            .images
            .iter()
            .find(|i| Some(&i.id) == image_id.as_ref())
            .map(|i| i.config.clone())
            .unwrap_or_default();
        let differences = container_config::differences(
            &Expected {
                service,
                spec,
                image_id: image_id.as_deref().unwrap_or("(not recorded)"),
                image_ref: &image_ref,
                image: &image,
                container_id: &container.id,
                compose_version: m.tool.versions.get("compose").map_or("", String::as_str),
            },
            &container.raw,
        );
        checks.add(
            &name,
            differences.is_empty(),
            expected.into(),
            observed_list(&differences, "as recorded"),
            hint,
        );
    }
}

/// The database runs the host's postgres base: the image the host made, by its layers and
/// configuration (a node's store may name it otherwise), whatever its tag.
fn check_db_image(
    host: &Result<HostBases, String>,
    state: &NodeState,
    db: Option<&ContainerInspect>,
    checks: &mut Checks,
) {
    let base = host
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|b| b.get(bases::DATABASE).map_err(|e| format!("{e:#}")));
    let outcome = match (&base, db) {
        (Err(why), _) => Err(why.clone()),
        (_, None) => Err("no single database container".into()),
        (Ok(base), Some(db)) => match state.images.iter().find(|i| i.id == db.image) {
            None => Err(format!(
                "its image {} is not the recorded one",
                short(&db.image)
            )),
            Some(image) => bases::differs(base, image).map_or(Ok(()), Err),
        },
    };
    checks.add(
        "db-image",
        outcome.is_ok(),
        match &base {
            Ok(base) => format!("the host's {} (its layers and configuration)", base.tag),
            Err(_) => "the host's postgres base".into(),
        },
        match outcome {
            Ok(()) => "the host's".into(),
            Err(why) => why,
        },
        "the database does not run the image the host made: `make demo` loads the host's bases \
         and starts the stack again",
    );
}

/// Each stack container's files are its image's, but where its configuration lets it write (its
/// volumes and tmpfs mounts): a binary swapped or a file changed inside a running container
/// shows in its writable layer, and survives a restart.
fn check_filesystem(
    m: Option<&Manifest>,
    state: &NodeState,
    containers: &[Option<&ContainerInspect>],
    checks: &mut Checks,
) {
    let specs = m.and_then(|m| m.compose.services.as_ref());
    for (service, container) in stack::SERVICES.iter().zip(containers) {
        let Some(c) = container else { continue };
        let writable: Vec<&str> = specs
            .and_then(|s| s.get(*service))
            .map(|spec| {
                let volumes = spec.volumes.iter().map(|v| v.target.as_str());
                volumes
                    .chain(spec.tmpfs.keys().map(String::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let inside = |path: &str| {
            writable
                .iter()
                .any(|w| path == *w || path.strip_prefix(w).is_some_and(|r| r.starts_with('/')))
        };
        let changed: Vec<String> = state
            .changes
            .get(&c.id)
            .into_iter()
            .flatten()
            .filter(|change| !inside(&change.path))
            .map(|change| change.describe())
            .collect();
        checks.add(
            &format!("filesystem:{service}"),
            changed.is_empty(),
            format!(
                "the image's files; writes only under {}",
                if writable.is_empty() {
                    "nothing".to_string()
                } else {
                    writable.join(", ")
                }
            ),
            observed_list(&changed, "unchanged"),
            "a file of the image was changed inside the running container: `make clean && make \
             demo` starts a fresh one",
        );
    }
}

/// What a stack container executes is its image's: every file its processes map executable,
/// and its entrypoint's file, hold the bytes the host listed for its image.
fn check_runs(
    state: &NodeState,
    in_images: &BTreeMap<String, Result<InImage, String>>,
    containers: &[Option<&ContainerInspect>],
    checks: &mut Checks,
) {
    for (service, container) in stack::SERVICES.iter().zip(containers) {
        let Some(c) = container else { continue };
        let judged = match (state.executed.get(&c.id), in_images.get(&c.id)) {
            (None, _) => Err(
                "not listed: the node could not tell what the container executes (no `sudo`, or \
                 no process)"
                    .to_string(),
            ),
            (Some(_), None) => Err("the host did not look the files up in the image".into()),
            (Some(_), Some(Err(why))) => Err(why.clone()),
            (Some(executed), Some(Ok(image))) => Ok(executed
                .iter()
                .filter_map(|e| {
                    let path = text::printable(&e.path);
                    let held = image.get(e.path_in_root()).cloned().flatten();
                    match (&e.sha256, held) {
                        (None, _) if e.entrypoint => {
                            Some(format!("entrypoint {path}: not in the container's files"))
                        }
                        (None, _) => Some(format!(
                            "{path}: mapped, but the file at that path is no longer the one \
                             mapped (replaced or deleted since)"
                        )),
                        (Some(found), None) => Some(format!(
                            "{path}: sha256 {}, a file the image does not hold",
                            text::abbrev(found, 12)
                        )),
                        (Some(found), Some(held)) if *found != held => Some(format!(
                            "{path}: sha256 {}, the image holds {}",
                            text::abbrev(found, 12),
                            text::abbrev(&held, 12)
                        )),
                        _ => None,
                    }
                })
                .chain(
                    (!executed.iter().any(|e| !e.entrypoint))
                        .then(|| "no process of the container executes any file".to_string()),
                )
                .collect::<Vec<_>>())
            .map(|problems| {
                let proven = executed.iter().filter(|e| e.proven_before).count();
                (problems, executed.len(), proven)
            }),
        };
        let (ok, observed) = match judged {
            Ok((mut problems, n, proven)) => {
                // The api's executable is its entrypoint too: one finding, said once.
                let mut said = BTreeSet::new();
                problems.retain(|p| said.insert(p.clone()));
                let each = match proven {
                    0 => format!("{n} files, each the image's"),
                    _ => format!(
                        "{n} files, each the image's ({proven} unchanged since the host proved \
                         them, not hashed again)"
                    ),
                };
                let observed = observed_list(&problems, &each);
                (problems.is_empty(), observed)
            }
            Err(why) => (false, why),
        };
        checks.add(
            &format!("runs:{service}"),
            ok,
            "every file its processes execute (their executables and libraries) and its \
             entrypoint's file hold the image's bytes, as the host listed the image"
                .into(),
            observed,
            "the image's stored files were changed on the node's disk (its ID and layers do not \
             show it): remove the image on the node (`docker image rm`) and run `make demo`, \
             which rebuilds the api and loads the host's bases again",
        );
    }
}

/// Only the entrypoint's processes run in a stack container, and no exec session was opened in
/// it since it started, as far as the engine remembers (its last 256 events); its healthcheck's
/// own exec sessions excepted.
fn check_processes(
    state: &NodeState,
    containers: &[Option<&ContainerInspect>],
    checks: &mut Checks,
) {
    for (service, container) in stack::SERVICES.iter().zip(containers) {
        let Some(c) = container else { continue };
        let health = c.healthcheck_command();
        let mut problems: Vec<String> = match state.processes.get(&c.id) {
            Some(top) => foreign_processes(top, c.state.pid, health.as_deref()),
            None if c.state.running => vec!["the engine listed no processes".into()],
            None => Vec::new(),
        };
        let started = DateTime::parse_from_rfc3339(&c.state.started_at)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .unwrap_or(i64::MIN);
        let mine = || state.events.iter().filter(|e| e.actor.id == c.id);
        problems.extend(
            mine()
                .filter(|e| e.time_nano >= started)
                .filter_map(|e| Some(e.action.strip_prefix("exec_create:")?.trim()))
                .filter(|command| Some(*command) != health.as_deref())
                .map(|command| {
                    format!(
                        "exec session `{}` since it started",
                        text::abbrev(command, 60)
                    )
                }),
        );
        let since = match mine()
            .filter(|e| e.action == "start")
            .map(|e| e.time_nano)
            .max()
        {
            Some(at) if at >= started - 1_000_000_000 => "it started".to_string(),
            _ => match mine().map(|e| e.time_nano).min() {
                Some(oldest) => format!(
                    "{} (the engine's oldest event of it; it keeps its last 256)",
                    nanos_text(oldest)
                ),
                None => "the engine's oldest event (it keeps its last 256)".into(),
            },
        };
        checks.add(
            &format!("processes:{service}"),
            problems.is_empty(),
            "only the entrypoint's processes, no exec session (the healthcheck's aside)".into(),
            if problems.is_empty() {
                format!("entrypoint only; no exec session since {since}")
            } else {
                problems.join("; ")
            },
            "something was run inside the container by hand (docker exec): `make clean && make \
             demo` starts a fresh one",
        );
    }
}

fn nanos_text(nanos: i64) -> String {
    DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The processes that neither descend from the container's main process nor are its healthcheck
/// (with what that started): an exec session's. A healthcheck that just ended and is not yet
/// reaped shows as `[program] <defunct>` (`ps` names a zombie by the first 15 bytes of its
/// program's name): it is the healthcheck's too; any other zombie is not excused.
fn foreign_processes(top: &Top, main: i64, health: Option<&str>) -> Vec<String> {
    let column = |title: &str| top.titles.iter().position(|t| t == title);
    let (Some(pid), Some(ppid), Some(args)) = (column("PID"), column("PPID"), column("COMMAND"))
    else {
        return vec![format!("the engine listed processes as {:?}", top.titles)];
    };
    let rows: Vec<(&str, &str, &str)> = top
        .processes
        .iter()
        .flatten()
        .filter_map(|r| {
            Some((
                r.get(pid)?.as_str(),
                r.get(ppid)?.as_str(),
                r.get(args)?.as_str(),
            ))
        })
        .collect();
    let main = main.to_string();
    let health_ended = health.and_then(|h| {
        let program = h.split_whitespace().next()?.rsplit('/').next()?;
        let comm: String = program.chars().take(15).collect();
        Some(format!("[{comm}] <defunct>"))
    });
    let mut known: BTreeSet<&str> = BTreeSet::new();
    for (p, _, command) in &rows {
        if *p == main || Some(*command) == health || Some(*command) == health_ended.as_deref() {
            known.insert(p);
        }
    }
    // Children of what is known are known: every process's parent comes before it in no order,
    // so this repeats until nothing is added.
    loop {
        let before = known.len();
        for (p, parent, _) in &rows {
            if known.contains(parent) {
                known.insert(p);
            }
        }
        if known.len() == before {
            break;
        }
    }
    rows.iter()
        .filter(|(p, _, _)| !known.contains(p))
        .map(|(p, _, command)| format!("process {p} `{}`", text::abbrev(command, 60)))
        .collect()
}

/// No other container reaches into the stack: none shares a namespace with a stack container,
/// mounts its volumes, its files or the engine's, runs privileged or in the node's process
/// namespace, or is attached to the stack's networks, whatever its image or labels.
fn check_reach(state: &NodeState, containers: &[Option<&ContainerInspect>], checks: &mut Checks) {
    let stack: Vec<&ContainerInspect> = containers.iter().flatten().copied().collect();
    let volumes: BTreeSet<&str> = stack
        .iter()
        .flat_map(|c| c.mounts.iter())
        .filter(|m| m.kind == "volume")
        .filter_map(|m| m.name.as_deref())
        .collect();
    let networks: BTreeSet<&String> = stack
        .iter()
        .flat_map(|c| c.network_settings.networks.keys())
        .collect();
    // The stack container a reference (`container:<name or id>`) names, by its name.
    let stack_name = |reference: &str| {
        let reference = reference.trim_start_matches('/');
        stack
            .iter()
            .find(|c| {
                c.name.trim_start_matches('/') == reference
                    || (reference.len() >= 12 && c.id.starts_with(reference))
            })
            .map(|c| c.name.trim_start_matches('/').to_string())
    };
    let mut reaching = Vec::new();
    for c in &state.containers {
        if stack.iter().any(|s| s.id == c.id) || !(c.state.running || c.state.restarting) {
            continue;
        }
        let h = &c.host_config;
        let mut why = Vec::new();
        for (kind, mode) in [
            ("process", &h.pid_mode),
            ("IPC", &h.ipc_mode),
            ("network", &h.network_mode),
            ("UTS", &h.uts_mode),
        ] {
            if let Some(name) = mode.strip_prefix("container:").and_then(stack_name) {
                why.push(format!("shares the {kind} namespace of {name}"));
            }
        }
        if h.pid_mode == "host" {
            why.push(
                "runs in the node's process namespace, where the stack's processes are".into(),
            );
        }
        if h.privileged {
            why.push("is privileged, which reaches every container of the node".into());
        }
        for from in h.volumes_from.iter().flatten() {
            if let Some(name) = stack_name(from.split(':').next().unwrap_or_default()) {
                why.push(format!("mounts the volumes of {name}"));
            }
        }
        for m in &c.mounts {
            let reaches = match m.kind.as_str() {
                "volume" => m.name.as_deref().is_some_and(|n| volumes.contains(n)),
                _ => engine_path(&m.source),
            };
            if reaches {
                let what = m.name.clone().unwrap_or_else(|| m.source.clone());
                why.push(format!("mounts {what} at {}", m.destination));
            }
        }
        for network in c.network_settings.networks.keys() {
            if networks.contains(network) {
                why.push(format!("is attached to the stack's network {network}"));
            }
        }
        if !why.is_empty() {
            reaching.push(format!(
                "{} {}: {}",
                short(&c.id),
                c.name.trim_start_matches('/'),
                why.join(", ")
            ));
        }
    }
    checks.add(
        "reach",
        reaching.is_empty(),
        "no other container shares a namespace, volume, files or network with the stack".into(),
        observed_list(&reaching, "none"),
        "another container can reach into the stack: remove it (docker rm -f NAME), then `make \
         verify`",
    );
}

/// Whether a bind mount's source gives its container the node's files that hold the stack: the
/// node's root, the engine's data (every container's files and volumes) or its socket.
fn engine_path(source: &str) -> bool {
    let source = source.trim_end_matches('/');
    source.is_empty()
        || [
            "/var/lib/docker",
            "/var/lib/containerd",
            "/run",
            "/var/run",
            "/proc",
        ]
        .iter()
        .any(|p| source == *p || source.starts_with(&format!("{p}/")))
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
fn check_no_rollback(mark: &AttestedMark, chain: &[ChainLink], m: &Manifest, checks: &mut Checks) {
    let at = |build_id: &str| chain.iter().position(|l| l.build_id == build_id);
    let remembered = chain.iter().position(|l| {
        l.build_id == mark.build_id && l.sha256.as_deref() == Some(mark.manifest_sha256.as_str())
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

/// The HTTP answers came from the api container verify inspected: it notes in its log each
/// request that carries verify's nonce, with the status and the digest of the body it sent. A
/// port diverted on the node to anything else (a replaying listener, another api) gets answers
/// the container's log does not show.
fn check_answered(
    http: &HttpAnswers,
    log: Option<&Result<Vec<LogLine>, String>>,
    checks: &mut Checks,
) {
    let answered = [
        ("/health", &http.health),
        ("/ready", &http.ready),
        ("/version", &http.version),
    ];
    let problems: Vec<String> = match (log, &http.nonce) {
        (None, _) => vec!["no api container to read the log of".into()],
        (Some(Err(why)), _) => vec![why.clone()],
        (_, None) => vec!["the requests carried no nonce".into()],
        (Some(Ok(lines)), Some(nonce)) => answered
            .iter()
            .filter_map(|(path, answer)| {
                let status = answer.status?;
                let noted = format!("{path} {status} ");
                let digest = format!(
                    "body-sha256={}",
                    crate::record::digest::sha256_hex(answer.body.as_bytes())
                );
                let seen = lines.iter().any(|l| {
                    l.log.contains(&noted)
                        && l.log.contains(&format!("nonce={nonce}"))
                        && l.log.contains(&digest)
                });
                (!seen)
                    .then(|| format!("{path} answered {status}, which the api's log does not show"))
            })
            .chain(
                answered
                    .iter()
                    .filter(|(_, a)| a.status.is_none())
                    .map(|(path, _)| format!("{path}: no answer to trace")),
            )
            .collect(),
    };
    checks.add(
        "answered-by-api",
        problems.is_empty(),
        "the api container's log shows each of verify's requests, with the status and body it got"
            .into(),
        observed_list(&problems, "all three, nonce and body digest matching"),
        "the port the host asks is not answered by the api container (a rule on the node diverts \
         it?): find what listens on the node's port, remove it, `make verify`",
    );
}
