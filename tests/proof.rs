//! What the host proves of a record before it keeps it (`src/proof.rs`), field by field, over
//! records real nodes of both flavours made (tests/fixtures/verify) and the host's description of
//! its bases at that time (tests/fixtures/verify/bases.json): each record passes against the
//! facts that made it, and each proven field, changed the way a node's operator would change
//! it, is refused by name.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Duration;

use prov::host::bases::HostBases;
use prov::host::proof::{disagreements, source_of, Facts, Source, CLAIMS};
use prov::host::sync::SyncStamp;
use prov::record::engine::ImageInspect;
use prov::record::manifest::{ImageStore, Manifest};
use prov::record::store::Store;

fn fixtures() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/verify"
    ))
}

fn record(node: &str) -> (Manifest, Option<String>) {
    let store = Store::new(
        &fixtures().join(node).join("provenance"),
        &node.parse().unwrap(),
    );
    let chain = store.chain().unwrap();
    let latest = store.latest().unwrap();
    let at = chain
        .iter()
        .position(|e| e.build_id == latest.manifest.build_id)
        .unwrap();
    let previous = at
        .checked_sub(1)
        .map(|i| chain[i].read.as_ref().unwrap().sha256.clone());
    (latest.manifest, previous)
}

fn bases() -> HostBases {
    let bytes = std::fs::read(fixtures().join("bases.json")).unwrap();
    HostBases(serde_json::from_slice(&bytes).unwrap())
}

/// The facts the host gathered when it imported the node's latest record: what it had synced,
/// its clock, and the engine's answers (the image from the captured state; each base as the
/// host describes it, under the ID the node's store gives it).
fn facts(node: &str) -> (Manifest, Facts) {
    let (m, previous) = record(node);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join(node).join("state.json")).unwrap())
            .unwrap();
    let image_of = |id: &str| -> Option<ImageInspect> {
        state["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["Id"] == id)
            .map(|i| serde_json::from_value(i.clone()).unwrap())
    };
    let bases = bases();
    let mut images = BTreeMap::new();
    let image = m.image.as_ref().unwrap();
    images.insert(image.id.clone(), image_of(&image.id));
    let db = m.compose.services.as_ref().unwrap()["db"]
        .image_id
        .clone()
        .unwrap();
    images.insert(db.clone(), image_of(&db));
    for b in &m.base_images {
        let name = prov::host::bases::base_of_arg(&b.arg).unwrap();
        let base = bases.get(name).unwrap();
        let mut inspect = image_of(&image.id).unwrap();
        inspect.id = b.id.clone();
        inspect.root_fs.layers = base.layers.clone();
        inspect.config = base.config.clone();
        images.insert(b.id.clone(), Some(inspect));
    }
    let history = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["image"] == image.id.as_str())
        .map(|h| serde_json::from_value(h["entries"].clone()).unwrap());
    // What the host had synced before the build, as it kept it.
    let synced: SyncStamp =
        serde_json::from_slice(&std::fs::read(fixtures().join(node).join("synced.json")).unwrap())
            .unwrap();
    let facts = Facts {
        node: node.parse().unwrap(),
        synced,
        imported_at: m.finished_at + Duration::seconds(5),
        previous,
        bases,
        prov_version: m.tool.versions["prov"].clone(),
        source_url: image.labels["org.opencontainers.image.source"].clone(),
        images,
        history,
        history_of: Some(image.id.clone()),
        engine_version: m.tool.versions["docker_engine"].clone(),
        store: image.store.unwrap_or(ImageStore::Classic),
        config_digest: image.config_digest.clone(),
        services: Ok(m.compose.services.clone().unwrap()),
        context: Ok(m.context.clone().unwrap()),
    };
    (m, facts)
}

const NODES: [&str; 2] = ["main", "worker1"];

#[test]
fn each_record_is_proven_by_the_facts_that_made_it() {
    for node in NODES {
        let (m, f) = facts(node);
        let wrong = disagreements(&m, &f);
        assert!(wrong.is_empty(), "{node}: {wrong:#?}");
    }
}

#[test]
fn every_field_of_a_record_says_where_its_claim_comes_from() {
    for node in NODES {
        let (m, _) = facts(node);
        let value = serde_json::to_value(&m).unwrap();
        for (key, field) in value.as_object().unwrap() {
            let paths: Vec<String> = match (key.as_str(), field) {
                ("compose" | "build_log" | "tool", serde_json::Value::Object(inner)) => inner
                    .iter()
                    .flat_map(|(k, v)| match (key.as_str(), v) {
                        ("tool", serde_json::Value::Object(versions)) => versions
                            .keys()
                            .map(|tool| format!("tool.{k}.{tool}"))
                            .collect(),
                        _ => vec![format!("{key}.{k}")],
                    })
                    .collect(),
                _ => vec![key.clone()],
            };
            for path in paths {
                assert!(source_of(&path).is_some(), "{node}: {path} is unclassified");
            }
        }
    }
    // The log's content is always the node's word; the proven ones say against what.
    assert!(matches!(
        source_of("build_log.content"),
        Some(Source::Node(_))
    ));
    assert!(CLAIMS.iter().all(|(_, s)| match s {
        Source::Host(what) | Source::Node(what) => !what.is_empty(),
    }));
}

/// A change to the record (as the node's operator would make it) and the field it must be
/// refused for.
type Edit = (&'static str, Box<dyn Fn(&mut Manifest)>);

fn edits() -> Vec<Edit> {
    vec![
        ("schema", Box::new(|m| m.schema = "other/v9".into())),
        ("node", Box::new(|m| m.node = "elsewhere".parse().unwrap())),
        (
            "build_id",
            Box::new(|m| m.build_id = "20010101-000000-000-abcd".into()),
        ),
        (
            "started_at",
            Box::new(|m| m.started_at -= Duration::hours(1)),
        ),
        (
            "finished_at",
            Box::new(|m| m.finished_at += Duration::hours(1)),
        ),
        ("git", Box::new(|m| m.git.tree = "0".repeat(40))),
        ("git", Box::new(|m| m.git.dirty = !m.git.dirty)),
        (
            "dockerfile",
            Box::new(|m| m.dockerfile.sha256 = "ab".repeat(32)),
        ),
        (
            "cargo_lock",
            Box::new(|m| m.cargo_lock.sha256 = "ab".repeat(32)),
        ),
        (
            "policy",
            Box::new(|m| m.policy.as_mut().unwrap().sha256 = "ab".repeat(32)),
        ),
        (
            "compose.path",
            Box::new(|m| m.compose.path = "other.yaml".into()),
        ),
        (
            "compose.services",
            Box::new(|m| {
                let api = m.compose.services.as_mut().unwrap().get_mut("api").unwrap();
                api.privileged = true;
            }),
        ),
        (
            "compose.services.db",
            Box::new(|m| {
                let db = m.compose.services.as_mut().unwrap().get_mut("db").unwrap();
                db.image_id = Some(format!("sha256:{}", "cd".repeat(32)));
            }),
        ),
        (
            "compose.config_sha256",
            Box::new(|m| m.compose.config_sha256 = "ab".repeat(32)),
        ),
        (
            "base_images.RUNTIME_IMAGE",
            Box::new(|m| {
                m.base_images[1].config_digest = Some(format!("sha256:{}", "ab".repeat(32)))
            }),
        ),
        (
            "base_images.BUILDER_IMAGE",
            Box::new(|m| m.base_images[0].reference = "prov-builder:other".into()),
        ),
        (
            "base_images",
            Box::new(|m| {
                m.base_images.pop();
            }),
        ),
        (
            "build_log.path",
            Box::new(|m| m.build_log.path = "/tmp/log".into()),
        ),
        (
            "image",
            Box::new(|m| m.image.as_mut().unwrap().id = format!("sha256:{}", "ab".repeat(32))),
        ),
        (
            "image.tag",
            Box::new(|m| m.image.as_mut().unwrap().tag = "prov-api:other".into()),
        ),
        (
            "image.created",
            Box::new(|m| m.image.as_mut().unwrap().created += Duration::seconds(1)),
        ),
        (
            "image.labels",
            Box::new(|m| {
                m.image
                    .as_mut()
                    .unwrap()
                    .labels
                    .insert("x".into(), "y".into());
            }),
        ),
        (
            "image.layers",
            Box::new(|m| m.image.as_mut().unwrap().layers.pop().map(drop).unwrap()),
        ),
        (
            "image.config_digest",
            Box::new(|m| m.image.as_mut().unwrap().config_digest = Some("sha256:00".into())),
        ),
        (
            "image.store",
            Box::new(|m| {
                let image = m.image.as_mut().unwrap();
                image.store = Some(match image.store {
                    Some(ImageStore::Containerd) => ImageStore::Classic,
                    _ => ImageStore::Containerd,
                });
            }),
        ),
        (
            "context",
            Box::new(|m| m.context.as_mut().unwrap().sha256 = "ab".repeat(32)),
        ),
        ("context", Box::new(|m| m.context = None)),
        (
            "prev_manifest_sha256",
            Box::new(|m| m.prev_manifest_sha256 = Some("ab".repeat(32))),
        ),
        (
            "tool.versions.prov",
            Box::new(|m| {
                m.tool.versions.insert("prov".into(), "9.9.9".into());
            }),
        ),
        (
            "tool.versions.docker_engine",
            Box::new(|m| {
                m.tool.versions.insert("docker_engine".into(), "1.0".into());
            }),
        ),
    ]
}

#[test]
fn each_proven_field_changed_is_refused_by_name() {
    for node in NODES {
        for (field, edit) in edits() {
            let (mut m, f) = facts(node);
            edit(&mut m);
            let wrong = disagreements(&m, &f);
            assert!(
                wrong
                    .iter()
                    .any(|w| w.starts_with(&format!("{field}:"))
                        || w.starts_with(&format!("{field}."))),
                "{node}: changing {field} went unseen: {wrong:#?}"
            );
        }
    }
}

#[test]
fn the_source_date_of_a_buildkit_build_is_the_synced_sources() {
    let (mut m, f) = facts("worker1");
    m.source_date.as_mut().unwrap().epoch -= 1;
    let wrong = disagreements(&m, &f);
    assert!(
        wrong.iter().any(|w| w.starts_with("source_date:")),
        "{wrong:#?}"
    );
}

#[test]
fn a_legacy_build_with_a_layer_made_before_it_started_is_refused_as_cached() {
    let (m, mut f) = facts("main");
    let entries = f.history.as_mut().unwrap();
    entries[0].created = m.started_at - Duration::hours(1);
    let wrong = disagreements(&m, &f);
    assert!(
        wrong.iter().any(|w| w.starts_with("no_cache:")),
        "{wrong:#?}"
    );
}

#[test]
fn a_base_the_node_holds_with_other_layers_or_configuration_is_refused() {
    for node in NODES {
        let (m, mut f) = facts(node);
        let runtime = m.base_images[1].id.clone();
        f.images
            .get_mut(&runtime)
            .unwrap()
            .as_mut()
            .unwrap()
            .root_fs
            .layers
            .push("sha256:00".into());
        let wrong = disagreements(&m, &f);
        assert!(
            wrong
                .iter()
                .any(|w| w.starts_with("base_images.RUNTIME_IMAGE:") && w.contains("layers")),
            "{wrong:#?}"
        );
        let (m, mut f) = facts(node);
        let db = m.compose.services.as_ref().unwrap()["db"]
            .image_id
            .clone()
            .unwrap();
        f.images.get_mut(&db).unwrap().as_mut().unwrap().config.user = "root".into();
        let wrong = disagreements(&m, &f);
        assert!(
            wrong
                .iter()
                .any(|w| w.starts_with("compose.services.db:") && w.contains("configuration")),
            "{wrong:#?}"
        );
    }
}

#[test]
fn what_compose_makes_of_the_hosts_file_is_the_recorded_configuration() {
    let (m, mut f) = facts("main");
    f.services
        .as_mut()
        .unwrap()
        .get_mut("api")
        .unwrap()
        .read_only = false;
    let wrong = disagreements(&m, &f);
    assert!(
        wrong.iter().any(|w| w.starts_with("compose.services:")),
        "{wrong:#?}"
    );
    f.services = Err("docker-compose: not found".into());
    let wrong = disagreements(&m, &f);
    assert!(
        wrong
            .iter()
            .any(|w| w.contains("docker-compose: not found")),
        "{wrong:#?}"
    );
}

#[test]
fn an_image_not_on_the_hosts_runtime_base_layers_unchanged_is_refused() {
    // Both builders: on BuildKit too, a base whose layers were rewritten (their file times,
    // say) is another base.
    for node in NODES {
        let (mut m, mut f) = facts(node);
        assert!(disagreements(&m, &f).is_empty());
        let image = m.image.as_mut().unwrap();
        image.layers[0] = format!("sha256:{}", "3".repeat(64));
        let found = f.images.get_mut(&image.id).unwrap().as_mut().unwrap();
        found.root_fs.layers = image.layers.clone();
        let wrong = disagreements(&m, &f);
        assert!(
            wrong
                .iter()
                .any(|w| w.starts_with("image.layers:") && w.contains("runtime base")),
            "{node}: {wrong:#?}"
        );
    }
}
