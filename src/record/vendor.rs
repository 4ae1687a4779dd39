//! Proof that the vendored crates are exactly what Cargo.lock names, file by file.
//!
//! Cargo checks a vendored crate against its `.cargo-checksum.json`, which sits beside it and can
//! be rewritten together with an edited file. Cargo.lock pins each crate's archive by sha256, and
//! Cargo.lock is part of the recorded tree. So each vendored crate is compared with its archive
//! (`.crate`, copied next to the checkout by the host from its cargo cache): the archive's
//! digest must be Cargo.lock's, and every file in the crate's folder must be the archive's, with
//! nothing added and nothing missing (but the files `cargo vendor` leaves out).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use crate::record::digest::sha256_hex;

/// Where the host puts the crate archives Cargo.lock names, relative to the repository.
pub const ARCHIVES: &str = ".cache/crates";

/// Files `cargo vendor` does not copy out of an archive.
const NOT_VENDORED: [&str; 4] = [".gitattributes", ".gitignore", ".git", ".cargo-ok"];
/// The file `cargo vendor` adds to each crate.
const CHECKSUM_FILE: &str = ".cargo-checksum.json";

#[derive(Deserialize)]
pub struct Lockfile {
    #[serde(default)]
    pub package: Vec<LockedPackage>,
}

#[derive(Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    /// Registry packages only: the sha256 of their `.crate` archive.
    pub checksum: Option<String>,
}

#[derive(Deserialize)]
struct CargoChecksum {
    package: Option<String>,
}

fn locked(lockfile: &Path) -> Result<Lockfile> {
    let text =
        fs::read_to_string(lockfile).with_context(|| format!("reading {}", lockfile.display()))?;
    parse_lock(&text).with_context(|| format!("parsing {}", lockfile.display()))
}

pub fn parse_lock(text: &str) -> Result<Lockfile> {
    Ok(toml::from_str(text)?)
}

/// Copies the archive of every crate Cargo.lock pins from cargo's cache (`<cargo
/// home>/registry/cache`) into `dest`, checking each against its pinned sha256. The host does
/// this when it vendors; returns how many were copied.
pub fn collect_archives(lockfile: &Path, cache: &Path, dest: &Path) -> Result<usize> {
    let lock = locked(lockfile)?;
    let registries: Vec<PathBuf> = fs::read_dir(cache)
        .with_context(|| format!("listing cargo's archive cache {}", cache.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut copied = 0;
    for package in &lock.package {
        let Some(checksum) = &package.checksum else {
            continue;
        };
        let file = format!("{}-{}.crate", package.name, package.version);
        let bytes = registries
            .iter()
            .find_map(|r| fs::read(r.join(&file)).ok())
            .with_context(|| {
                format!(
                    "{file} is not in {}: run `cargo fetch` first",
                    cache.display()
                )
            })?;
        if sha256_hex(&bytes) != *checksum {
            bail!("{file} in cargo's cache is not the archive Cargo.lock pins ({checksum})");
        }
        crate::record::store::write_atomic(&dest.join(&file), &bytes)?;
        copied += 1;
    }
    Ok(copied)
}

/// Checks `vendor_dir` against the archives in `archives_dir` and `lockfile`; returns how many
/// crates were checked. Any difference is an error naming the file.
pub fn check(lockfile: &Path, vendor_dir: &Path, archives_dir: &Path) -> Result<usize> {
    let lock = locked(lockfile)?;
    let by_checksum: BTreeMap<&str, &LockedPackage> = lock
        .package
        .iter()
        .filter_map(|p| Some((p.checksum.as_deref()?, p)))
        .collect();

    let mut seen = BTreeSet::new();
    let mut dirs: Vec<PathBuf> = fs::read_dir(vendor_dir)
        .with_context(|| format!("listing {}", vendor_dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    dirs.sort();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let claimed: CargoChecksum = serde_json::from_slice(
            &fs::read(dir.join(CHECKSUM_FILE))
                .with_context(|| format!("vendor/{name} has no {CHECKSUM_FILE}"))?,
        )
        .with_context(|| format!("reading vendor/{name}/{CHECKSUM_FILE}"))?;
        let package = claimed
            .package
            .as_deref()
            .and_then(|sum| by_checksum.get(sum))
            .ok_or_else(|| {
                anyhow!("vendor/{name} is not a crate Cargo.lock names (by its archive's checksum)")
            })?;
        let checksum = package.checksum.as_deref().expect("indexed by checksum");
        if !seen.insert(checksum) {
            bail!("vendor/{name} repeats a crate vendored elsewhere");
        }
        compare(dir, &name, package, checksum, archives_dir)?;
    }
    if let Some(missing) = by_checksum.iter().find(|(sum, _)| !seen.contains(*sum)) {
        bail!(
            "Cargo.lock names {} {} but vendor/ does not hold it: vendor the crates again \
             (`make demo` on the host does)",
            missing.1.name,
            missing.1.version
        );
    }
    Ok(seen.len())
}

/// One crate's folder against its archive.
fn compare(
    dir: &Path,
    name: &str,
    package: &LockedPackage,
    checksum: &str,
    archives_dir: &Path,
) -> Result<()> {
    let file = format!("{}-{}.crate", package.name, package.version);
    let archive = fs::read(archives_dir.join(&file)).with_context(|| {
        format!(
            "no archive {file} in {}: the host copies them from its cargo cache when it vendors \
             (`make demo`)",
            archives_dir.display()
        )
    })?;
    if sha256_hex(&archive) != checksum {
        bail!("{file} is not the archive Cargo.lock pins (sha256 {checksum})");
    }
    let prefix = format!("{}-{}/", package.name, package.version);
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut entries = tar::Archive::new(flate2::read::GzDecoder::new(archive.as_slice()));
    for entry in entries
        .entries()
        .with_context(|| format!("reading {file}"))?
    {
        let mut entry = entry.with_context(|| format!("reading {file}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let Some(rel) = path.strip_prefix(&prefix) else {
            bail!("{file} holds {path}, outside {prefix}");
        };
        if rel.split('/').any(|part| NOT_VENDORED.contains(&part)) {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        expected.insert(rel.to_string(), bytes);
    }
    let mut found = BTreeSet::new();
    visit(dir, dir, &mut |rel, bytes| {
        if rel == CHECKSUM_FILE {
            return Ok(());
        }
        match expected.get(rel) {
            None => bail!("vendor/{name}/{rel} is not in {file}, the archive Cargo.lock pins"),
            Some(want) if want != bytes => bail!(
                "vendor/{name}/{rel} differs from {file}, the archive Cargo.lock pins (an edited \
                 vendored file; its {CHECKSUM_FILE} entry proves nothing): vendor the crates again"
            ),
            Some(_) => {
                found.insert(rel.to_string());
                Ok(())
            }
        }
    })?;
    if let Some(missing) = expected.keys().find(|k| !found.contains(*k)) {
        bail!("vendor/{name}/{missing} is missing (it is in {file})");
    }
    Ok(())
}

fn visit(root: &Path, dir: &Path, f: &mut dyn FnMut(&str, &[u8]) -> Result<()>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            visit(root, &path, f)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            if !meta.is_file() {
                bail!("{} is not a regular file", path.display());
            }
            f(&rel, &fs::read(&path)?)?;
        }
    }
    Ok(())
}
