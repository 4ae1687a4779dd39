//! Every string and byte a node, a record or a key file can supply is untrusted: driven with
//! arbitrary input (proptest, a bounded number of cases), prov's parsers and renderers never
//! panic, never let a build id leave a node's folder, and never pass a control character to
//! the terminal.

use std::path::Path;

use proptest::prelude::*;
use serde_json::Value;

use prov::cli::paint::Paint;
use prov::cli::show;
use prov::cli::show::Running;
use prov::host::report::{Check, NodeReport};
use prov::record::names::is_build_id;
use prov::record::sbom::{Bom, BomComponent, BomHash, BomMetadata, BomTools};
use prov::record::store::{parse_manifest, Store, StoreError, Stored};

const FIXTURE: &str = "tests/fixtures/repo/provenance/main/20261129-100000-000-aaaa.json";

/// Fields that must be well-formed identifiers; every other string is free text.
const IDENTIFIERS: [&str; 12] = [
    "schema",
    "build_id",
    "node",
    "status",
    "started_at",
    "finished_at",
    "created",
    "sha256",
    "config_sha256",
    "id",
    "prev_manifest_sha256",
    "layers",
];

fn fixture() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(root.join(FIXTURE)).unwrap()).unwrap()
}

/// Replaces every free-text string of the manifest with the next of `texts` (cycling).
fn fill(value: &mut Value, texts: &[String], next: &mut usize) {
    match value {
        Value::String(s) => {
            *s = texts[*next % texts.len()].clone();
            *next += 1;
        }
        Value::Array(items) => items.iter_mut().for_each(|v| fill(v, texts, next)),
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if !IDENTIFIERS.contains(&key.as_str()) {
                    fill(v, texts, next);
                }
            }
        }
        _ => {}
    }
}

/// Text with multi-byte characters, control characters and escape sequences.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\u{1b}\r\n\u{7}a-zé€😀\\[0-9;]{0,40}",
        Just("\u{1b}]0;owned\u{7}\u{1b}[2J".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_manifest_parser_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse_manifest(Path::new("x.json"), &bytes);
    }

    #[test]
    fn any_text_in_a_manifest_renders_without_panic_or_control_characters(
        texts in proptest::collection::vec(hostile_text(), 1..8),
    ) {
        let mut value = fixture();
        fill(&mut value, &texts, &mut 0);
        let bytes = serde_json::to_vec(&value).unwrap();
        let manifest = parse_manifest(Path::new("x.json"), &bytes).unwrap();
        let stored = Stored { manifest, sha256: "0".repeat(64) };
        for running in [
            Running::Unknown(texts[0].clone()),
            Running::No(Some(texts[0].clone())),
        ] {
            let out = show::render(&stored, &texts[0], &running, Paint(false));
            prop_assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        }
    }

    #[test]
    fn a_verify_report_escapes_what_the_node_said(
        texts in proptest::collection::vec(hostile_text(), 4),
    ) {
        let report = NodeReport {
            // A node name is checked where it comes in: it cannot carry a control character.
            node: "main".parse().unwrap(),
            ok: false,
            error: Some(texts[1].clone()),
            checks: vec![Check {
                name: texts[2].clone(),
                ok: false,
                expected: texts[3].clone(),
                observed: texts[1].clone(),
                hint: texts[0].clone(),
            }],
            reproduced: vec![texts[2].clone()],
            proven: Default::default(),
            subject: Default::default(),
        };
        let out = prov::cli::verify::human(&[report]);
        prop_assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
    }

    #[test]
    fn an_sbom_is_shown_escaped_and_within_80_columns(
        texts in proptest::collection::vec(hostile_text(), 4),
    ) {
        let component = |name: &str, version: &str| BomComponent {
            kind: texts[3].clone(),
            bom_ref: None,
            name: name.to_string(),
            version: version.to_string(),
            purl: Some(texts[2].clone()),
            hashes: vec![BomHash { alg: "SHA-256".into(), content: texts[1].clone() }],
        };
        let bom = Bom {
            bom_format: "CycloneDX".into(),
            spec_version: texts[0].clone(),
            version: 1,
            metadata: BomMetadata {
                tools: BomTools { components: Vec::new() },
                component: component(&texts[1], &texts[2]),
            },
            components: vec![component(&texts[0], &texts[1]), component(&texts[2], &texts[3])],
        };
        let out = prov::cli::show::render_sbom(&bom);
        prop_assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        prop_assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
    }

    #[test]
    fn a_build_reference_never_leaves_the_node_folder(build in any::<String>()) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), &"main".parse().unwrap());
        match store.resolve(&build) {
            Err(StoreError::BadBuildId { .. }) => prop_assert!(!is_build_id(&build)),
            Err(StoreError::NoSuchBuild { .. }) | Err(StoreError::NoLatest { .. }) => {}
            other => prop_assert!(false, "unexpected {other:?}"),
        }
        if let Ok(side) = build.parse::<prov::host::diff::Side>() {
            prop_assert!(side.build == "latest" || is_build_id(&side.build));
        }
    }

    #[test]
    fn the_latest_pointer_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("main")).unwrap();
        std::fs::write(dir.path().join("main/latest"), &bytes).unwrap();
        let _ = Store::new(dir.path(), &"main".parse().unwrap()).latest();
    }

    #[test]
    fn envelopes_and_key_files_take_any_bytes(
        envelope in proptest::collection::vec(any::<u8>(), 0..1024),
        key in proptest::collection::vec(any::<u8>(), 0..256),
        keyid in any::<String>(),
    ) {
        let repo = tempfile::tempdir().unwrap();
        let state = prov::host::state::HostState::at(repo.path());
        std::fs::create_dir_all(state.private_key().parent().unwrap()).unwrap();
        std::fs::write(state.public_key(), &key).unwrap();
        std::fs::write(state.private_key(), &key).unwrap();
        let _ = prov::host::attest::load_signing_key(&state);
        let loaded = prov::host::attest::load_public_key(&state);
        let public = match loaded {
            Ok(Some(public)) => public,
            _ => prov::host::attest::PublicKeyFile {
                keyid,
                keytype: "ed25519".into(),
                scheme: "ed25519".into(),
                keyval: prov::host::attest::KeyVal { public: "00".repeat(32) },
            },
        };
        let record = Store::new(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo/provenance"), &"main".parse().unwrap())
            .latest()
            .unwrap();
        let _ = prov::host::attest::check_envelope(&envelope, &public, "sha256:é", &record);
    }
}
