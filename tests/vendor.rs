//! The proof that vendored crates are what Cargo.lock names (src/vendor.rs), on a small vendored
//! tree made here the way `cargo vendor` lays one out: a crate archive pinned by Cargo.lock, its
//! files in vendor/<crate>/, and the `.cargo-checksum.json` cargo trusts. An edit that rewrites
//! that checksum file too is still caught, by name.

use std::fs;
use std::path::Path;

use prov::record::vendor;
use tempfile::TempDir;

mod support;

use support::{vendor_tiny_crate, write_checksums};

fn vendored() -> TempDir {
    let tmp = TempDir::new().unwrap();
    vendor_tiny_crate(tmp.path());
    tmp
}

fn check(d: &Path) -> Result<usize, String> {
    vendor::check(
        &d.join("Cargo.lock"),
        &d.join("vendor"),
        &d.join(vendor::ARCHIVES),
    )
    .map_err(|e| format!("{e:#}"))
}

fn package_checksum(d: &Path) -> String {
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("vendor/tiny/.cargo-checksum.json")).unwrap())
            .unwrap();
    json["package"].as_str().unwrap().to_string()
}

#[test]
fn crates_as_vendored_from_their_archives_pass() {
    let repo = vendored();
    assert_eq!(check(repo.path()), Ok(1));
}

#[test]
fn an_edited_file_with_its_checksum_rewritten_is_refused_by_name() {
    let repo = vendored();
    let d = repo.path();
    fs::write(
        d.join("vendor/tiny/src/lib.rs"),
        "pub fn tiny() -> u8 { 2 }\n",
    )
    .unwrap();
    write_checksums(d, &package_checksum(d));
    let err = check(d).unwrap_err();
    assert!(
        err.contains("vendor/tiny/src/lib.rs differs from tiny-0.1.0.crate"),
        "{err}"
    );
}

#[test]
fn an_added_or_a_missing_file_is_refused() {
    let repo = vendored();
    let d = repo.path();
    fs::write(d.join("vendor/tiny/build.rs"), "fn main() {}\n").unwrap();
    assert!(check(d)
        .unwrap_err()
        .contains("vendor/tiny/build.rs is not in"));
    fs::remove_file(d.join("vendor/tiny/build.rs")).unwrap();
    fs::remove_file(d.join("vendor/tiny/Cargo.toml")).unwrap();
    assert!(check(d)
        .unwrap_err()
        .contains("vendor/tiny/Cargo.toml is missing"));
}

#[test]
fn an_archive_that_is_not_the_one_cargo_lock_pins_is_refused() {
    let repo = vendored();
    let d = repo.path();
    let path = d.join(".cache/crates/tiny-0.1.0.crate");
    let mut bytes = fs::read(&path).unwrap();
    bytes.push(0);
    fs::write(&path, bytes).unwrap();
    assert!(check(d)
        .unwrap_err()
        .contains("is not the archive Cargo.lock pins"));
}

#[test]
fn a_crate_cargo_lock_does_not_name_or_one_missing_from_vendor_is_refused() {
    let repo = vendored();
    let d = repo.path();
    write_checksums(d, &"0".repeat(64));
    assert!(check(d)
        .unwrap_err()
        .contains("vendor/tiny is not a crate Cargo.lock names"));
    fs::remove_dir_all(d.join("vendor/tiny")).unwrap();
    assert!(check(d)
        .unwrap_err()
        .contains("Cargo.lock names tiny 0.1.0 but vendor/ does not hold it"));
}

/// The project's own vendored crates, as the host vendors them (`make test` vendors before the
/// cargo tests run): every file of every crate is its archive's.
#[test]
fn the_projects_own_vendored_crates_are_proven() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("vendor").is_dir() && root.join(vendor::ARCHIVES).is_dir(),
        "no vendor/ or {}: run `make test`, which vendors first",
        vendor::ARCHIVES
    );
    let checked = check(root).unwrap();
    assert!(checked > 100, "only {checked} crates");
}
