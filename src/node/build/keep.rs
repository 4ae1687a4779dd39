//! What a build keeps beside its record: BuildKit's own provenance, the SBOM read out of the
//! image (never run), and the image as the engine holds it after the build.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};

use crate::node::docker;
use crate::record::digest::sha256_hex;
use crate::record::manifest::side_files;
use crate::record::manifest::{FileDigest, ImageRecord, ImageStore};
use crate::record::names;
use crate::record::sbom;
use crate::record::store::Store;

use super::materials::Materials;
use super::BuildRequest;

/// Writes BuildKit's provenance of the image beside the record.
pub(super) fn keep_buildkit_provenance(
    store: &Store,
    build_id: &str,
    statement: &serde_json::Value,
) -> Result<FileDigest> {
    let mut bytes = serde_json::to_vec_pretty(statement).expect("a statement serializes");
    bytes.push(b'\n');
    let path = store.side_path(build_id, side_files::BUILDKIT_PROVENANCE);
    crate::record::store::write_atomic(&path, &bytes)?;
    Ok(FileDigest {
        path: format!(
            "provenance/{}/{}",
            store.node(),
            names::side(build_id, side_files::BUILDKIT_PROVENANCE)
        ),
        sha256: sha256_hex(&bytes),
    })
}

/// Writes the image's SBOM beside the record, from what the build listed in the image and the
/// recorded Cargo.lock's checksums.
pub(super) fn keep_sbom(
    store: &Store,
    build_id: &str,
    image_id: &str,
    req: &BuildRequest,
    materials: &Materials,
) -> Result<FileDigest> {
    let mut files = docker::files_in_image(image_id, sbom::IMAGE_DIR, 4 << 20)?;
    let mut take = |name: &str| -> Result<String> {
        let bytes = files.remove(name).with_context(|| {
            format!(
                "the image has no {}/{name}: api/Dockerfile writes it",
                sbom::IMAGE_DIR
            )
        })?;
        String::from_utf8(bytes).with_context(|| format!("{name} in the image is not UTF-8"))
    };
    let listed = sbom::Listed {
        crates: take(sbom::CRATES_FILE)?,
        packages: take(sbom::PACKAGES_FILE)?,
        distro: take(sbom::DISTRO_FILE)?,
    };
    let lock_path = req.repo.join("Cargo.lock");
    let lock_bytes =
        std::fs::read(&lock_path).with_context(|| format!("reading {}", lock_path.display()))?;
    if sha256_hex(&lock_bytes) != materials.cargo_lock.sha256 {
        bail!("Cargo.lock changed during the build: build again");
    }
    let lock = crate::record::vendor::parse_lock(&String::from_utf8_lossy(&lock_bytes))
        .context("parsing Cargo.lock")?;
    let bytes = sbom::to_bytes(&sbom::bom(&listed, &lock, &materials.git.tree)?);
    let name = names::side(build_id, side_files::SBOM);
    crate::record::store::write_atomic(&store.dir().join(&name), &bytes)?;
    Ok(FileDigest {
        path: format!("provenance/{}/{name}", store.node()),
        sha256: sha256_hex(&bytes),
    })
}

pub(super) fn read_back(
    tag: &str,
    expected_labels: &BTreeMap<String, String>,
    store: ImageStore,
) -> Result<ImageRecord> {
    let image = docker::image_inspect(tag)?
        .ok_or_else(|| anyhow!("docker build succeeded but {tag} is not in the engine"))?;
    let labels = image.config.labels.unwrap_or_default();
    for (k, v) in expected_labels {
        if labels.get(k) != Some(v) {
            bail!("image {tag} lacks label {k}={v}: the engine did not apply the build's labels");
        }
    }
    let digests = docker::image_digests(store, &image.id)?;
    Ok(ImageRecord {
        config_digest: Some(digests.config),
        manifest_digest: digests.manifest,
        id_kind: Some(digests.id_kind),
        store: Some(store),
        id: image.id,
        tag: tag.to_string(),
        created: image.created,
        labels,
        layers: image.root_fs.layers,
    })
}
