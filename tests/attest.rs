//! Attestations over the fixture manifests: a good envelope verifies; every kind of bad one is
//! refused with its reason.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use prov::host::attest::{self, Envelope, PublicKeyFile};
use prov::host::state::HostState;
use prov::record::store::{Store, Stored};

/// The host-only state of a scratch project (its own folder, outside the project).
fn state(dir: &Path) -> HostState {
    HostState::at(&dir.join(".host-state"))
}

/// The latest record of the scratch project's node `main`.
fn record(dir: &Path) -> Stored {
    Store::new(&dir.join("provenance"), &"main".parse().unwrap())
        .latest()
        .unwrap()
}

/// A scratch copy of the fixture project with a fresh key; returns (dir, image id, envelope).
fn attested() -> (tempfile::TempDir, String, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo");
    let status = Command::new("cp")
        .arg("-a")
        .arg(fixtures.join("."))
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    attest::init_key(&state(tmp.path())).unwrap();
    let store = Store::new(&tmp.path().join("provenance"), &"main".parse().unwrap());
    let stored = store.latest().unwrap();
    let key = attest::load_signing_key(&state(tmp.path()))
        .unwrap()
        .unwrap();
    let path = attest::attest(&store, &stored, &key).unwrap();
    let image = stored.manifest.image.unwrap().id;
    (tmp, image, fs::read(path).unwrap())
}

fn public(dir: &Path) -> PublicKeyFile {
    attest::load_public_key(&state(dir)).unwrap().unwrap()
}

/// The envelope is refused, for `reason`, when checked against the project's fixture record.
fn refused(bytes: &[u8], key: &PublicKeyFile, image: &str, reason: &str) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo");
    let err = attest::check_envelope(bytes, key, image, &record(&repo)).unwrap_err();
    assert!(format!("{err:#}").contains(reason), "{err:#}");
}

#[test]
fn a_good_envelope_verifies_and_names_the_image() {
    let (dir, image, bytes) = attested();
    let subject =
        attest::check_envelope(&bytes, &public(dir.path()), &image, &record(dir.path())).unwrap();
    assert_eq!(format!("sha256:{subject}"), image);
}

#[test]
fn the_key_is_private_and_made_once() {
    let (dir, _, _) = attested();
    let mode = fs::metadata(state(dir.path()).private_key())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Made once: a project that has its key keeps it, byte for byte.
    let before = fs::read(state(dir.path()).private_key()).unwrap();
    let (_, made) = attest::init_key(&state(dir.path())).unwrap();
    assert!(!made);
    assert_eq!(fs::read(state(dir.path()).private_key()).unwrap(), before);
}

#[test]
fn a_wrong_key_is_refused() {
    let (dir, image, bytes) = attested();
    let other = tempfile::tempdir().unwrap();
    attest::init_key(&state(other.path())).unwrap();
    refused(&bytes, &public(other.path()), &image, "no signature by key");
    // Same key id, other key material: still refused.
    let mut forged = public(other.path());
    forged.keyid = public(dir.path()).keyid;
    refused(&bytes, &forged, &image, "no signature by key");
}

#[test]
fn a_tampered_payload_is_refused() {
    let (dir, image, bytes) = attested();
    let mut envelope: Envelope = serde_json::from_slice(&bytes).unwrap();
    let payload = String::from_utf8(B64.decode(&envelope.payload).unwrap()).unwrap();
    envelope.payload = B64.encode(payload.replace("\"noCache\":true", "\"noCache\":false"));
    let tampered = serde_json::to_vec(&envelope).unwrap();
    refused(
        &tampered,
        &public(dir.path()),
        &image,
        "no signature by key",
    );
}

#[test]
fn a_subject_that_is_not_the_running_image_is_refused() {
    let (dir, _, bytes) = attested();
    let other = format!("sha256:{}", "ab".repeat(32));
    refused(&bytes, &public(dir.path()), &other, "its subject is");
}

#[test]
fn a_missing_signature_is_refused() {
    let (dir, image, bytes) = attested();
    let mut envelope: Envelope = serde_json::from_slice(&bytes).unwrap();
    envelope.signatures.clear();
    let unsigned = serde_json::to_vec(&envelope).unwrap();
    refused(
        &unsigned,
        &public(dir.path()),
        &image,
        "0 signature(s) present",
    );
}

#[test]
fn an_envelope_that_is_not_json_is_refused() {
    let (dir, image, _) = attested();
    refused(b"not json {", &public(dir.path()), &image, "not DSSE JSON");
}

#[test]
fn a_record_edited_after_signing_is_refused_naming_the_field() {
    let (dir, image, bytes) = attested();
    let mut edited = record(dir.path());
    edited.manifest.git.tree = "0".repeat(40);
    let err = attest::check_envelope(&bytes, &public(dir.path()), &image, &edited).unwrap_err();
    assert!(format!("{err:#}").contains("disagree on: git"), "{err:#}");
    // The same fields, another file (re-serialised, say): the record's digest is signed too.
    let mut other_bytes = record(dir.path());
    other_bytes.sha256 = "f".repeat(64);
    let err =
        attest::check_envelope(&bytes, &public(dir.path()), &image, &other_bytes).unwrap_err();
    assert!(
        format!("{err:#}").contains("signs record sha256"),
        "{err:#}"
    );
}

#[test]
fn the_key_never_lives_in_the_checkout_and_old_keys_move_out() {
    let repo = tempfile::tempdir().unwrap();
    let old = repo.path().join(".cache/keys");
    fs::create_dir_all(&old).unwrap();
    fs::write(old.join("attest.key"), b"old key").unwrap();
    fs::write(old.join("attest.pub.json"), b"{}").unwrap();
    let state = state(repo.path());
    let said = state.migrate(repo.path()).unwrap().unwrap();
    assert!(said.contains("moved the attestation key"), "{said}");
    assert!(!old.join("attest.key").exists());
    assert_eq!(fs::read(state.private_key()).unwrap(), b"old key");
    let mode = fs::metadata(state.private_key())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(state.migrate(repo.path()).unwrap().is_none());
}
