//! The api image's bill of materials, as CycloneDX 1.5 JSON.
//!
//! Scanners cannot list the crates inside a stripped Rust binary, so the build says what it
//! linked: `api/Dockerfile` writes into the image the crates of the binary (`cargo tree`, the
//! normal edges from the api without proc-macros, with the build's own lock, features and
//! target), the runtime base's Debian packages (`dpkg-query`) and its distribution. `prov build`
//! reads those files out of the image it just made (never running it) and writes the bill, with
//! Cargo.lock's checksum of every crate, beside the record, which pins it by digest.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Context, Result};
use packageurl::PackageUrl;

use crate::record::vendor::Lockfile;
use serde::{Deserialize, Serialize};

pub const SPEC_VERSION: &str = "1.5";
/// The in-toto predicate type of a CycloneDX bill.
pub const PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";
/// Where the api image keeps what its build listed (`api/Dockerfile` writes them).
pub const IMAGE_DIR: &str = "/usr/share/doc/prov-api";
pub const CRATES_FILE: &str = "crates.txt";
pub const PACKAGES_FILE: &str = "packages.tsv";
pub const DISTRO_FILE: &str = "distro";

/// What the build listed in the image.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// `cargo tree --format '{p}'` lines: `name vVERSION`, and ` (SOURCE)` for a local crate.
    pub crates: String,
    /// `dpkg-query` lines: package, version, architecture, tab-separated.
    pub packages: String,
    /// `<ID>-<VERSION_ID>` of the runtime base's os-release, e.g. `debian-12`.
    pub distro: String,
}

#[derive(Debug, Clone, PartialEq)]
struct Crate {
    name: String,
    version: String,
    /// A crate of this workspace (a path source), not a published one.
    local: bool,
}

fn parse_crates(text: &str) -> Result<Vec<Crate>> {
    let mut crates = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split(' ');
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            bail!("crate line {line:?} is not `name vVERSION`");
        };
        let version = version
            .strip_prefix('v')
            .filter(|v| !v.is_empty())
            .ok_or_else(|| anyhow!("crate line {line:?} has no `vVERSION`"))?;
        // `(*)` marks a repeat (without --no-dedupe); a path source is local.
        let rest: Vec<&str> = words.filter(|w| *w != "(*)").collect();
        let local = match rest.as_slice() {
            [] => false,
            [source] if source.starts_with("(/") && source.ends_with(')') => true,
            _ => bail!("crate line {line:?}: unexpected source {rest:?}"),
        };
        crates.insert(
            (name.to_string(), version.to_string()),
            Crate {
                name: name.to_string(),
                version: version.to_string(),
                local,
            },
        );
    }
    if crates.is_empty() {
        bail!("the image lists no crate: was it built from this project's api/Dockerfile?");
    }
    Ok(crates.into_values().collect())
}

fn parse_packages(text: &str) -> Result<Vec<(String, String, String)>> {
    let packages: Vec<_> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(
            |line| match line.split('\t').collect::<Vec<_>>().as_slice() {
                [name, version, arch] if !name.is_empty() && !version.is_empty() => {
                    Ok((name.to_string(), version.to_string(), arch.to_string()))
                }
                _ => bail!("package line {line:?} is not `name<TAB>version<TAB>arch`"),
            },
        )
        .collect::<Result<_>>()?;
    if packages.is_empty() {
        bail!("the image lists no Debian package");
    }
    Ok(packages)
}

fn purl(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    version: &str,
) -> Result<PackageUrl<'static>> {
    let mut p = PackageUrl::new(kind.to_string(), name.to_string())
        .map_err(|e| anyhow!("purl of {name}: {e}"))?;
    if let Some(ns) = namespace {
        p.with_namespace(ns.to_string())
            .map_err(|e| anyhow!("purl of {name}: {e}"))?;
    }
    p.with_version(version.to_string())
        .map_err(|e| anyhow!("purl of {name}: {e}"))?;
    Ok(p)
}

fn component(
    kind: &str,
    name: &str,
    version: &str,
    purl: String,
    sha256: Option<&str>,
) -> BomComponent {
    BomComponent {
        kind: kind.to_string(),
        bom_ref: Some(purl.clone()),
        name: name.to_string(),
        version: version.to_string(),
        purl: Some(purl),
        hashes: sha256
            .map(|content| BomHash {
                alg: "SHA-256".to_string(),
                content: content.to_string(),
            })
            .into_iter()
            .collect(),
    }
}

/// The bill of the image built from `tree`: every listed crate with Cargo.lock's checksum (a
/// published crate the lock does not pin is an error), the api itself as the application, and
/// every Debian package of the runtime base. Sorted, with no time in it: the same inputs give
/// the same bytes on every node.
pub fn bom(listed: &Listed, lock: &Lockfile, tree: &str) -> Result<Bom> {
    let checksums: BTreeMap<(&str, &str), Option<&str>> = lock
        .package
        .iter()
        .map(|p| ((p.name.as_str(), p.version.as_str()), p.checksum.as_deref()))
        .collect();
    let mut components = Vec::new();
    for c in parse_crates(&listed.crates)? {
        let purl = purl("cargo", None, &c.name, &c.version)?.to_string();
        if c.local {
            components.push(component("application", &c.name, &c.version, purl, None));
            continue;
        }
        let sha = checksums
            .get(&(c.name.as_str(), c.version.as_str()))
            .copied()
            .flatten()
            .ok_or_else(|| {
                anyhow!(
                    "the image links {} {}, which Cargo.lock does not pin with a checksum",
                    c.name,
                    c.version
                )
            })?;
        components.push(component("library", &c.name, &c.version, purl, Some(sha)));
    }
    let distro = listed.distro.trim();
    let (vendor, _) = distro
        .split_once('-')
        .ok_or_else(|| anyhow!("the image's distribution {distro:?} is not ID-VERSION_ID"))?;
    for (name, version, arch) in parse_packages(&listed.packages)? {
        let mut p = purl("deb", Some(vendor), &name, &version)?;
        p.add_qualifier("arch".to_string(), arch)
            .and_then(|p| p.add_qualifier("distro".to_string(), distro.to_string()))
            .map_err(|e| anyhow!("purl of {name}: {e}"))?;
        components.push(component("library", &name, &version, p.to_string(), None));
    }
    components.sort_by(|a, b| a.purl.cmp(&b.purl));
    Ok(Bom {
        bom_format: "CycloneDX".to_string(),
        spec_version: SPEC_VERSION.to_string(),
        version: 1,
        metadata: BomMetadata {
            tools: BomTools {
                components: vec![BomComponent {
                    kind: "application".to_string(),
                    bom_ref: None,
                    name: "prov".to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    purl: None,
                    hashes: Vec::new(),
                }],
            },
            component: BomComponent {
                kind: "container".to_string(),
                bom_ref: Some(crate::record::stack::API_IMAGE_NAME.to_string()),
                name: crate::record::stack::API_IMAGE_NAME.to_string(),
                version: tree.to_string(),
                purl: None,
                hashes: Vec::new(),
            },
        },
        components,
    })
}

/// The bill's exact bytes, as written beside the record.
pub fn to_bytes(bom: &Bom) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(bom).expect("a bill serializes");
    bytes.push(b'\n');
    bytes
}

pub fn parse(bytes: &[u8]) -> Result<Bom> {
    let bom: Bom = serde_json::from_slice(bytes).context("not a CycloneDX JSON bill")?;
    if bom.bom_format != "CycloneDX" {
        bail!("bomFormat is {:?}, not CycloneDX", bom.bom_format);
    }
    Ok(bom)
}

/// A component's package: its purl without version (nor qualifiers), e.g. `pkg:cargo/axum`.
pub fn package_of(c: &BomComponent) -> String {
    match c.purl.as_deref().and_then(|p| p.parse::<PackageUrl>().ok()) {
        Some(p) => match p.namespace() {
            Some(ns) => format!("pkg:{}/{ns}/{}", p.ty(), p.name()),
            None => format!("pkg:{}/{}", p.ty(), p.name()),
        },
        None => c.name.clone(),
    }
}

fn versions(bom: &Bom) -> BTreeMap<String, BTreeSet<String>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in &bom.components {
        map.entry(package_of(c))
            .or_default()
            .insert(c.version.clone());
    }
    map
}

/// Packages added, removed, or at other versions, from `a` to `b`.
pub fn compare(a: &Bom, b: &Bom) -> SbomComparison {
    let (va, vb) = (versions(a), versions(b));
    let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
    let mut out = SbomComparison {
        a_count: va.len(),
        b_count: vb.len(),
        ..Default::default()
    };
    for (package, from) in &va {
        match vb.get(package) {
            None => out.removed.push(PackageVersions {
                package: package.clone(),
                versions: list(from),
            }),
            Some(to) if to != from => out.changed.push(PackageChange {
                package: package.clone(),
                a: list(from),
                b: list(to),
            }),
            Some(_) => {}
        }
    }
    for (package, to) in &vb {
        if !va.contains_key(package) {
            out.added.push(PackageVersions {
                package: package.clone(),
                versions: list(to),
            });
        }
    }
    out
}

/// A CycloneDX (1.5) bill of materials: what prov writes for each image, and all it reads back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    pub bom_format: String,
    pub spec_version: String,
    pub version: u32,
    pub metadata: BomMetadata,
    pub components: Vec<BomComponent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BomMetadata {
    pub tools: BomTools,
    /// The image the bill is of.
    pub component: BomComponent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BomTools {
    pub components: Vec<BomComponent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BomComponent {
    /// `container`, `application` or `library`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "bom-ref", default, skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<BomHash>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BomHash {
    /// `SHA-256`.
    pub alg: String,
    pub content: String,
}

/// How two bills differ, by package (its purl without the version): added, removed, changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SbomComparison {
    /// Packages listed by each side.
    pub a_count: usize,
    pub b_count: usize,
    pub added: Vec<PackageVersions>,
    pub removed: Vec<PackageVersions>,
    pub changed: Vec<PackageChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageVersions {
    /// The package's purl without its version, e.g. `pkg:cargo/axum`.
    pub package: String,
    pub versions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageChange {
    pub package: String,
    pub a: Vec<String>,
    pub b: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::vendor::LockedPackage;

    fn lock() -> Lockfile {
        Lockfile {
            package: vec![
                LockedPackage {
                    name: "axum".into(),
                    version: "0.8.9".into(),
                    checksum: Some("a".repeat(64)),
                },
                LockedPackage {
                    name: "itoa".into(),
                    version: "1.0.19".into(),
                    checksum: Some("b".repeat(64)),
                },
                LockedPackage {
                    name: "api".into(),
                    version: "0.1.0".into(),
                    checksum: None,
                },
            ],
        }
    }

    fn listed(crates: &str) -> Listed {
        Listed {
            crates: crates.into(),
            packages: "libc6\t2.36-9+deb12u4\tamd64\nbase-files\t12.4+deb12u5\tamd64\n".into(),
            distro: "debian-12\n".into(),
        }
    }

    #[test]
    fn crates_carry_the_lock_checksum_and_packages_their_deb_purl() {
        let bom = bom(
            &listed("api v0.1.0 (/src/api)\naxum v0.8.9\nitoa v1.0.19\nitoa v1.0.19 (*)\n"),
            &lock(),
            "f00d",
        )
        .unwrap();
        let by_purl = |p: &str| {
            bom.components
                .iter()
                .find(|c| c.purl.as_deref() == Some(p))
                .unwrap_or_else(|| panic!("{p} missing"))
        };
        assert_eq!(
            by_purl("pkg:cargo/axum@0.8.9").hashes[0].content,
            "a".repeat(64)
        );
        assert_eq!(by_purl("pkg:cargo/api@0.1.0").kind, "application");
        assert!(by_purl("pkg:cargo/api@0.1.0").hashes.is_empty());
        let libc = by_purl("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12");
        assert_eq!(libc.version, "2.36-9+deb12u4");
        assert_eq!(bom.components.len(), 5, "itoa once");
        assert_eq!(bom.metadata.component.version, "f00d");
    }

    #[test]
    fn a_published_crate_the_lock_does_not_pin_is_refused() {
        let e = bom(&listed("serde v1.0.0\n"), &lock(), "t").unwrap_err();
        assert!(e.to_string().contains("serde 1.0.0"), "{e}");
    }

    #[test]
    fn malformed_listings_are_refused() {
        for crates in [
            "",
            "axum\n",
            "axum 0.8.9\n",
            "axum v0.8.9 (git+https://x)\n",
        ] {
            assert!(bom(&listed(crates), &lock(), "t").is_err(), "{crates:?}");
        }
        let mut l = listed("axum v0.8.9\n");
        l.packages = "libc6 2.36\n".into();
        assert!(bom(&l, &lock(), "t").is_err());
    }

    #[test]
    fn the_bill_is_the_same_bytes_for_the_same_inputs_and_reads_back() {
        let a = to_bytes(&bom(&listed("itoa v1.0.19\naxum v0.8.9\n"), &lock(), "t").unwrap());
        let b = to_bytes(&bom(&listed("axum v0.8.9\nitoa v1.0.19\n"), &lock(), "t").unwrap());
        assert_eq!(a, b);
        assert_eq!(to_bytes(&parse(&a).unwrap()), a);
    }

    #[test]
    fn compare_names_added_removed_and_changed_packages() {
        let mut lock2 = lock();
        lock2.package[1].version = "1.0.18".into();
        let a = bom(&listed("axum v0.8.9\nitoa v1.0.19\n"), &lock(), "t").unwrap();
        let mut l = listed("itoa v1.0.18\n");
        l.packages.push_str("tzdata\t2024a-0+deb12u1\tall\n");
        let b = bom(&l, &lock2, "t").unwrap();
        let c = compare(&a, &b);
        assert_eq!(c.changed.len(), 1);
        assert_eq!(c.changed[0].package, "pkg:cargo/itoa");
        assert_eq!(
            (c.changed[0].a.clone(), c.changed[0].b.clone()),
            (vec!["1.0.19".into()], vec!["1.0.18".into()])
        );
        assert_eq!(c.removed[0].package, "pkg:cargo/axum");
        assert_eq!(c.added[0].package, "pkg:deb/debian/tzdata");
        assert_eq!(
            compare(&a, &a),
            SbomComparison {
                a_count: 4,
                b_count: 4,
                ..Default::default()
            }
        );
    }
}
