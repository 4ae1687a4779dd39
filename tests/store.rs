//! The manifest store on a real filesystem: atomic writes, the hash chain, the latest pointer.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::process::Command;

use chrono::{TimeZone, Utc};
use prov::record::compose::ComposeConfig;
use prov::record::digest::{sha256_file, HashingWriter};
use prov::record::manifest::*;
use prov::record::store::{records_digest, write_atomic, Link, Store, StoreError};

fn manifest(build_id: &str, prev: Option<String>, status: BuildStatus) -> Manifest {
    let t = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
    Manifest {
        schema: MANIFEST_SCHEMA.into(),
        build_id: build_id.into(),
        node: "main".parse().unwrap(),
        started_at: t,
        finished_at: t,
        status,
        error: None,
        git: GitSource {
            commit: Some("c0ffee".into()),
            tree: "7ree".into(),
            dirty: false,
        },
        dockerfile: FileDigest {
            path: "api/Dockerfile".into(),
            sha256: "d0".repeat(32),
        },
        compose: ComposeConfig {
            path: "compose.yaml".into(),
            config_sha256: "c0".repeat(32),
            services: None,
        },
        cargo_lock: FileDigest {
            path: "Cargo.lock".into(),
            sha256: "10".repeat(32),
        },
        base_images: vec![],
        build_log: BuildLog {
            path: format!("provenance/main/{build_id}.log"),
            sha256: "00".repeat(32),
            bytes: 0,
        },
        // A successful build names its image (the store refuses one that does not).
        image: (status == BuildStatus::Success).then(|| ImageRecord {
            id: format!("sha256:{}", "1d".repeat(32)),
            tag: format!("prov-api:{build_id}"),
            created: t,
            labels: BTreeMap::new(),
            layers: vec![],
            store: None,
            config_digest: None,
            manifest_digest: None,
            id_kind: None,
        }),
        no_cache: true,
        network: "none".into(),
        build_args: BTreeMap::new(),
        policy: None,
        context: None,
        prev_manifest_sha256: prev,
        tool: ToolInfo {
            versions: BTreeMap::new(),
        },
        buildkit_provenance: None,
        source_date: None,
        sbom: None,
    }
}

/// Writes a chain of successful builds the way `prov build` does; returns the store.
fn chain_of(dir: &std::path::Path, ids: &[&str]) -> Store {
    let store = Store::new(dir, &"main".parse().unwrap());
    fs::create_dir_all(store.dir()).unwrap();
    let mut prev = None;
    for id in ids {
        let sha = store
            .write_manifest(&manifest(id, prev.clone(), BuildStatus::Success))
            .unwrap();
        store
            .set_latest(&LatestPointer {
                build_id: id.to_string(),
                manifest_sha256: sha.clone(),
            })
            .unwrap();
        prev = Some(sha);
    }
    store
}

const IDS: [&str; 3] = [
    "20261129-120000-000-aaaa",
    "20261129-120100-000-bbbb",
    "20261129-120200-000-cccc",
];

#[test]
fn an_unbroken_chain_is_intact_and_latest_is_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = chain_of(tmp.path(), &IDS);
    let chain = store.chain().unwrap();
    assert_eq!(chain.len(), 3);
    assert!(chain.iter().all(|e| e.is_intact()));
    assert_eq!(store.latest().unwrap().manifest.build_id, IDS[2]);
    assert_eq!(
        Store::newest_success(&chain).unwrap().manifest.build_id,
        IDS[2]
    );
}

#[test]
fn a_clock_stepping_back_between_builds_is_no_false_alarm() {
    // The third build's node clock had stepped back: its id sorts first, its link says last.
    let ids = [
        "20261129-120000-000-aaaa",
        "20261129-120100-000-bbbb",
        "20261129-115900-000-cccc",
    ];
    let tmp = tempfile::tempdir().unwrap();
    let store = chain_of(tmp.path(), &ids);
    let chain = store.chain().unwrap();
    let order: Vec<&str> = chain.iter().map(|e| e.build_id.as_str()).collect();
    assert_eq!(order, ids);
    assert!(chain.iter().all(|e| e.is_intact()));
    assert_eq!(
        Store::newest_success(&chain).unwrap().manifest.build_id,
        ids[2]
    );
    assert_eq!(store.head().unwrap().unwrap().manifest.build_id, ids[2]);
    assert_eq!(store.latest().unwrap().manifest.build_id, ids[2]);
}

#[test]
fn a_deleted_manifest_breaks_the_link_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = chain_of(tmp.path(), &IDS);
    fs::remove_file(store.manifest_path(IDS[1])).unwrap();
    let chain = store.chain().unwrap();
    assert_eq!(chain.len(), 2);
    assert!(matches!(chain[1].link, Link::Broken { .. }));
}

#[test]
fn an_edited_manifest_breaks_the_chain_and_an_edited_latest_breaks_the_pin() {
    let tmp = tempfile::tempdir().unwrap();
    let store = chain_of(tmp.path(), &IDS);
    for id in [IDS[0], IDS[2]] {
        let path = store.manifest_path(id);
        let text = fs::read_to_string(&path).unwrap().replace("c0ffee", "bad");
        fs::write(&path, text).unwrap();
    }
    let chain = store.chain().unwrap();
    assert!(matches!(chain[1].link, Link::Broken { .. }));
    let err = store.latest().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("edited"), "{err}");
}

#[test]
fn records_after_the_hosts_copy_chain_onto_its_tip_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let all = chain_of(&tmp.path().join("all"), &IDS);
    // What a node sends beyond the host's copy of its first record.
    let newer = Store::new(&tmp.path().join("newer"), &"main".parse().unwrap());
    fs::create_dir_all(newer.dir()).unwrap();
    for id in &IDS[1..] {
        fs::copy(all.manifest_path(id), newer.manifest_path(id)).unwrap();
    }
    let tip = all.read(IDS[0]).unwrap().sha256;
    let chained = newer.chain_from(Some(&tip)).unwrap();
    let order: Vec<&str> = chained.iter().map(|e| e.build_id.as_str()).collect();
    assert_eq!(order, IDS[1..]);
    assert!(chained.iter().all(|e| e.is_intact()));
    // Onto another tip, or as a chain of their own, the first link is broken.
    for other in [None, Some("0".repeat(64))] {
        let chained = newer.chain_from(other.as_deref()).unwrap();
        assert!(matches!(chained[0].link, Link::Broken { .. }));
    }
}

#[test]
fn the_records_digest_is_the_one_coreutils_computes_over_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = chain_of(tmp.path(), &IDS);
    let listed = Command::new("sh")
        .args([
            "-c",
            "LC_ALL=C sha256sum -- *.json | sha256sum | cut -c1-64",
        ])
        .current_dir(store.dir())
        .output()
        .unwrap();
    assert!(listed.status.success());
    let ours: Vec<(String, String)> = IDS
        .iter()
        .rev()
        .map(|id| (id.to_string(), store.read(id).unwrap().sha256))
        .collect();
    assert_eq!(
        records_digest(ours.iter().map(|(id, sha)| (id.as_str(), sha.as_str()))),
        String::from_utf8(listed.stdout).unwrap().trim()
    );
}

#[test]
fn an_interrupted_write_leaves_the_old_state_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let store = chain_of(tmp.path(), &IDS[..2]);
    let before_latest = fs::read(store.dir().join("latest")).unwrap();
    // What a build killed between write and rename leaves behind: a temporary file.
    let next = manifest(IDS[2], None, BuildStatus::Success);
    fs::write(
        store.dir().join(format!(".{}.json.tmp-4242", IDS[2])),
        &serde_json::to_vec(&next).unwrap()[..40],
    )
    .unwrap();
    // An attestation next to a manifest is not a manifest either.
    fs::write(store.dir().join(format!("{}.dsse.json", IDS[1])), b"{}").unwrap();
    assert_eq!(store.build_ids().unwrap(), IDS[..2].to_vec());
    assert_eq!(store.head().unwrap().unwrap().manifest.build_id, IDS[1]);
    assert_eq!(fs::read(store.dir().join("latest")).unwrap(), before_latest);
    assert!(store.chain().unwrap().iter().all(|e| e.is_intact()));
}

#[test]
fn a_failed_atomic_write_keeps_the_target_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    // rename(2) onto a non-empty directory fails after the temporary file was written.
    let target = tmp.path().join("target.json");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep"), b"old").unwrap();
    assert!(write_atomic(&target, b"new").is_err());
    assert_eq!(fs::read(target.join("keep")).unwrap(), b"old");
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_corrupt_head_manifest_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = chain_of(tmp.path(), &IDS[..1]);
    fs::write(store.manifest_path(IDS[0]), b"{ not json").unwrap();
    let err = store.head().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }));
    assert!(err.to_string().contains("not a valid manifest"), "{err}");
}

#[test]
fn an_unknown_schema_is_named_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let store = chain_of(tmp.path(), &IDS[..1]);
    let path = store.manifest_path(IDS[0]);
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace(MANIFEST_SCHEMA, "prov.build-manifest/v9");
    fs::write(&path, text).unwrap();
    let err = store.read(IDS[0]).unwrap_err();
    assert!(matches!(err, StoreError::UnknownSchema { .. }), "{err}");
    assert!(err.to_string().contains("v9"));
}

#[test]
fn no_latest_names_make_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Store::new(tmp.path(), &"main".parse().unwrap())
        .latest()
        .unwrap_err();
    assert!(err.to_string().contains("make demo NODE=main"), "{err}");
}

#[test]
fn the_build_lock_admits_one_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path(), &"main".parse().unwrap());
    let held = store.lock().unwrap();
    assert!(matches!(store.lock(), Err(StoreError::Locked { .. })));
    drop(held);
    store.lock().unwrap();
}

#[test]
fn the_streamed_log_digest_equals_sha256sum() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("build.log");
    let mut log = HashingWriter::new(fs::File::create(&path).unwrap());
    for i in 0..200_000u32 {
        writeln!(log, "Step {i}: some build output, with bytes \u{2713}").unwrap();
    }
    let (_, streamed, bytes) = log.finish().unwrap();
    let out = Command::new("sha256sum").arg(&path).output().unwrap();
    let sha256sum = String::from_utf8(out.stdout).unwrap();
    assert_eq!(streamed, sha256sum.split_whitespace().next().unwrap());
    assert_eq!(streamed, sha256_file(&path).unwrap());
    assert_eq!(bytes, fs::metadata(&path).unwrap().len());
}
