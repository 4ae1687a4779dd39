//! BuildKit's own provenance of a build (`--provenance=mode=max`), as the containerd image store
//! keeps it: an attestation manifest beside the image manifest, in the image's index. prov reads
//! it from a `docker save` stream (no registry is needed) and keeps it beside its own record, so
//! that the two accounts of the same build can be put side by side.

use std::collections::HashMap;
use std::io::Read;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

/// Blobs larger than this are layers, never the JSON this reads.
const MAX_JSON_BLOB: u64 = 4 << 20;

const ATTESTATION_MANIFEST: &str = "attestation-manifest";
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";

/// The in-toto statement of BuildKit's SLSA provenance in a `docker save` stream of one image,
/// or `None` when the image carries none (the classic store keeps no attestations).
pub fn provenance_from_save(reader: impl Read) -> Result<Option<Value>> {
    let mut blobs: HashMap<String, Vec<u8>> = HashMap::new();
    let mut index: Option<Value> = None;
    let mut archive = tar::Archive::new(reader);
    for entry in archive
        .entries()
        .context("reading the docker save stream")?
    {
        let mut entry = entry.context("reading the docker save stream")?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if entry.size() > MAX_JSON_BLOB {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        if path == "index.json" {
            index = Some(serde_json::from_slice(&bytes).context("parsing index.json")?);
        } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            blobs.insert(format!("sha256:{hex}"), bytes);
        }
    }
    let Some(index) = index else {
        return Ok(None);
    };
    let blob = |digest: &str| -> Result<Value> {
        let bytes = blobs
            .get(digest)
            .ok_or_else(|| anyhow!("blob {digest} is missing from the docker save stream"))?;
        serde_json::from_slice(bytes).with_context(|| format!("parsing blob {digest}"))
    };
    // index.json names the saved image; with attestations that is itself an index.
    let mut candidates: Vec<Value> = children(&index);
    let mut seen = 0;
    while let Some(descriptor) = candidates.pop() {
        seen += 1;
        if seen > 64 {
            break;
        }
        let Some(digest) = descriptor.get("digest").and_then(Value::as_str) else {
            continue;
        };
        let annotated = descriptor
            .pointer(&format!(
                "/annotations/{}",
                REFERENCE_TYPE.replace('/', "~1")
            ))
            .and_then(Value::as_str);
        let Ok(document) = blob(digest) else {
            continue;
        };
        if annotated == Some(ATTESTATION_MANIFEST) {
            return slsa_statement(&document, &blob).map(Some);
        }
        candidates.extend(children(&document));
    }
    Ok(None)
}

fn children(document: &Value) -> Vec<Value> {
    document
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The SLSA statement among an attestation manifest's layers.
fn slsa_statement(manifest: &Value, blob: &dyn Fn(&str) -> Result<Value>) -> Result<Value> {
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("the attestation manifest has no layers"))?;
    let layer = layers
        .iter()
        .find(|l| {
            l.pointer(&format!(
                "/annotations/{}",
                PREDICATE_TYPE.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .is_some_and(|t| t.starts_with("https://slsa.dev/provenance/"))
        })
        .ok_or_else(|| anyhow!("the attestation manifest holds no SLSA provenance"))?;
    let digest = layer
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("the provenance layer names no digest"))?;
    blob(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, bytes).unwrap();
    }

    fn digest(bytes: &[u8]) -> String {
        format!("sha256:{}", crate::digest::sha256_hex(bytes))
    }

    /// A save stream shaped like the containerd store's: index.json -> image index -> (image
    /// manifest, attestation manifest -> provenance layer).
    fn saved(with_attestation: bool) -> Vec<u8> {
        let statement = serde_json::to_vec(&json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "predicate": {"builder": {"id": ""}, "materials": []}
        }))
        .unwrap();
        let image = br#"{"schemaVersion":2,"layers":[]}"#.to_vec();
        let attestation = serde_json::to_vec(&json!({"layers": [{
            "digest": digest(&statement),
            "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}
        }]}))
        .unwrap();
        let mut manifests = vec![json!({"digest": digest(&image)})];
        if with_attestation {
            manifests.push(json!({"digest": digest(&attestation),
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}));
        }
        let image_index = serde_json::to_vec(&json!({ "manifests": manifests })).unwrap();
        let index =
            serde_json::to_vec(&json!({"manifests": [{"digest": digest(&image_index)}]})).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        for blob in [&statement, &image, &attestation, &image_index] {
            let name = format!("blobs/sha256/{}", &digest(blob)["sha256:".len()..]);
            append(&mut builder, &name, blob);
        }
        append(&mut builder, "index.json", &index);
        builder.into_inner().unwrap()
    }

    #[test]
    fn the_slsa_statement_is_found_through_the_image_index() {
        let statement = provenance_from_save(saved(true).as_slice())
            .unwrap()
            .expect("a statement");
        assert_eq!(
            statement["predicateType"],
            "https://slsa.dev/provenance/v0.2"
        );
    }

    #[test]
    fn an_image_without_attestations_has_none() {
        assert!(provenance_from_save(saved(false).as_slice())
            .unwrap()
            .is_none());
    }
}
