//! What BuildKit writes of a build: its OCI archive (`--output type=oci`), where its own
//! provenance (`--provenance=mode=max`) is an attestation manifest beside the image manifest, in
//! the image's index. prov keeps the provenance beside its own record, so that the two accounts
//! of the same build can be put side by side, and loads the image alone (no registry is needed).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{Read, Write};

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::record::build_inputs::{self, Builder};
use crate::record::manifest::Manifest;

/// Blobs larger than this are layers, never the JSON this reads.
const MAX_JSON_BLOB: u64 = 4 << 20;

const ATTESTATION_MANIFEST: &str = "attestation-manifest";
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// How BuildKit names the context a client sent it.
const SESSION: &str = "http://buildkit-session/";
/// BuildKit's own keys in the provenance's metadata.
const HERMETIC: &str = "https://mobyproject.org/buildkit@v1#hermetic";
const METADATA: &str = "https://mobyproject.org/buildkit@v1#metadata";

/// BuildKit's OCI archive of one image (`--output type=oci`), read twice: once for its JSON
/// (what the image is, and BuildKit's provenance), once to copy the image alone for `docker load`.
pub struct ImageArchive {
    /// The image manifest's descriptor, carrying the archive's name annotations.
    image: Value,
    /// The digests of the blobs the image is made of: its manifest, configuration and layers.
    blobs: HashSet<String>,
    /// BuildKit's SLSA provenance statement, when the build attached one.
    pub statement: Option<Value>,
}

impl ImageArchive {
    /// The image manifest's digest: the image's ID once loaded into the containerd store.
    pub fn manifest_digest(&self) -> &str {
        self.image
            .get("digest")
            .and_then(Value::as_str)
            .expect("checked when read")
    }

    /// Reads the archive's index, the image's manifest and BuildKit's provenance.
    pub fn read(reader: impl Read) -> Result<ImageArchive> {
        let (index, blobs) = read_json_blobs(reader)?;
        let index = index.ok_or_else(|| anyhow!("the OCI archive has no index.json"))?;
        let blob = |digest: &str| json_blob(&blobs, digest);
        let top = children(&index)
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("the OCI archive's index names no image"))?;
        let top_digest = descriptor_digest(&top)?;
        let document = blob(top_digest)?;
        // With BuildKit's provenance attached, the image is an index of the image manifest and
        // the attestation manifest.
        let (mut image, statement) = if document.get("manifests").is_some() {
            let (attestations, images): (Vec<Value>, Vec<Value>) = children(&document)
                .into_iter()
                .partition(|c| reference_type(c) == Some(ATTESTATION_MANIFEST));
            let image = images
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("image index {top_digest} holds no image manifest"))?;
            let statement = match attestations.first() {
                Some(a) => Some(slsa_statement(&blob(descriptor_digest(a)?)?, &blob)?),
                None => None,
            };
            (image, statement)
        } else {
            (top.clone(), None)
        };
        if let (Some(names), Some(image)) = (top.get("annotations"), image.as_object_mut()) {
            image.insert("annotations".into(), names.clone());
        }
        let manifest = blob(descriptor_digest(&image)?)?;
        let mut image_blobs: HashSet<String> = [descriptor_digest(&image)?.to_string()].into();
        for part in manifest.pointer("/config").into_iter().chain(
            manifest
                .get("layers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        ) {
            image_blobs.insert(descriptor_digest(part)?.to_string());
        }
        Ok(ImageArchive {
            image,
            blobs: image_blobs,
            statement,
        })
    }

    /// Copies the archive to `out` with the image alone: its blobs, and an index that names its
    /// manifest. Loaded, the image's ID is then its manifest's digest, which the same inputs
    /// reproduce; an index holding BuildKit's provenance (which names the build's times) would
    /// not be.
    pub fn write_image_only(&self, reader: impl Read, out: impl Write) -> Result<()> {
        let mut archive = tar::Archive::new(reader);
        let mut copy = tar::Builder::new(out);
        for entry in archive.entries().context("reading the OCI archive")? {
            let mut entry = entry.context("reading the OCI archive")?;
            let path = entry.path()?.to_string_lossy().into_owned();
            let wanted = match path.strip_prefix("blobs/sha256/") {
                Some(hex) if !hex.is_empty() => self.blobs.contains(&format!("sha256:{hex}")),
                _ => {
                    path == "oci-layout"
                        || path.trim_end_matches('/') == "blobs/sha256"
                        || path.trim_end_matches('/') == "blobs"
                }
            };
            if wanted {
                let header = entry.header().clone();
                copy.append(&header, &mut entry)?;
            }
        }
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [self.image],
        }))
        .expect("an index serializes");
        let mut header = tar::Header::new_gnu();
        header.set_size(index.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        copy.append_data(&mut header, "index.json", index.as_slice())?;
        copy.into_inner()?.flush()?;
        Ok(())
    }
}

/// Blobs by digest (`sha256:...`).
type Blobs = HashMap<String, Vec<u8>>;

/// index.json, and every blob small enough to be JSON, by digest.
fn read_json_blobs(reader: impl Read) -> Result<(Option<Value>, Blobs)> {
    let mut blobs = HashMap::new();
    let mut index = None;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().context("reading the OCI archive")? {
        let mut entry = entry.context("reading the OCI archive")?;
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
    Ok((index, blobs))
}

fn json_blob(blobs: &Blobs, digest: &str) -> Result<Value> {
    let bytes = blobs
        .get(digest)
        .ok_or_else(|| anyhow!("blob {digest} is missing from the OCI archive"))?;
    serde_json::from_slice(bytes).with_context(|| format!("parsing blob {digest}"))
}

fn descriptor_digest(descriptor: &Value) -> Result<&str> {
    descriptor
        .get("digest")
        .and_then(Value::as_str)
        .filter(|d| crate::record::store::is_image_id(d))
        .ok_or_else(|| anyhow!("a descriptor in the OCI archive names no sha256 digest"))
}

fn reference_type(descriptor: &Value) -> Option<&str> {
    descriptor
        .pointer(&format!(
            "/annotations/{}",
            REFERENCE_TYPE.replace('/', "~1")
        ))
        .and_then(Value::as_str)
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

/// prov's record and BuildKit's provenance of the same build, side by side.
#[derive(Debug, Default, PartialEq)]
pub struct SideBySide {
    /// (what, prov's account, BuildKit's account)
    pub rows: Vec<(String, String, String)>,
    /// Recorded by BuildKit, not by prov.
    pub only_buildkit: Vec<String>,
    /// Recorded by prov, not by BuildKit.
    pub only_prov: Vec<String>,
}

/// Puts a record and BuildKit's SLSA v0.2 statement of the same build side by side: the image,
/// the materials (bases, context), every build argument, the labels, the cache and network
/// settings, the build's times and the builder; then what each records that the other does not.
pub fn side_by_side(m: &Manifest, statement: &Value) -> SideBySide {
    let predicate = statement.get("predicate").cloned().unwrap_or(Value::Null);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let materials: Vec<(String, String)> = predicate
        .get("materials")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            let digest = m
                .pointer("/digest/sha256")
                .and_then(Value::as_str)
                .map_or("no digest".to_string(), |d| format!("sha256:{d}"));
            (text(m.get("uri")), digest)
        })
        .collect();
    let parameters: BTreeMap<String, String> = predicate
        .pointer("/invocation/parameters/args")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), text(Some(v))))
        .collect();
    let prefixed = |prefix: &str| -> BTreeMap<String, String> {
        parameters
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
            .collect()
    };
    let mut rows = Vec::new();
    let subject = statement
        .pointer("/subject/0/digest/sha256")
        .and_then(Value::as_str)
        .map_or("(no subject)".to_string(), |d| format!("sha256:{d}"));
    let manifest = m.image.as_ref().and_then(|i| i.manifest_digest.clone());
    rows.push((
        "image manifest".into(),
        manifest.unwrap_or_else(|| "(not recorded)".into()),
        subject,
    ));
    for base in &m.base_images {
        let theirs = materials
            .iter()
            .find(|(uri, _)| {
                let name = base.reference.split(':').next().unwrap_or(&base.reference);
                uri.contains(&format!("/{name}@"))
            })
            .map_or("(not named)".to_string(), |(uri, d)| format!("{uri} {d}"));
        let ours = format!(
            "{} {}",
            base.reference,
            base.config_digest.as_deref().unwrap_or(&base.id)
        );
        rows.push((format!("base {}", base.arg), ours, theirs));
    }
    // BuildKit digests the context it received (a session material): the stream prov made.
    if let Some(context) = &m.context {
        let theirs = materials
            .iter()
            .find(|(uri, _)| uri.starts_with(SESSION))
            .map_or("(not named)".to_string(), |(_, d)| d.clone());
        rows.push((
            "build context".into(),
            format!("sha256:{}", context.sha256),
            theirs,
        ));
    }
    let passed: BTreeMap<String, String> = build_inputs::passed_build_args(
        Builder::BuildKit,
        &m.base_images,
        &m.git,
        m.source_date.as_ref(),
        m.build_args.clone(),
    )
    .into_iter()
    .collect();
    let theirs_args = prefixed("build-arg:");
    for name in passed
        .keys()
        .chain(theirs_args.keys())
        .collect::<BTreeSet<_>>()
    {
        rows.push((
            format!("build argument {name}"),
            passed.get(name).cloned().unwrap_or("(not passed)".into()),
            theirs_args.get(name).cloned().unwrap_or("(absent)".into()),
        ));
    }
    let labels = m
        .image
        .as_ref()
        .map(|i| i.labels.clone())
        .unwrap_or_default();
    let theirs_labels = prefixed("label:");
    // The image also carries its base's labels, which the build did not pass.
    let differing: Vec<&String> = theirs_labels
        .iter()
        .filter(|(k, v)| labels.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    rows.push((
        "labels".into(),
        format!("{} on the image", labels.len()),
        if differing.is_empty() {
            format!(
                "{} passed, each on the image as passed",
                theirs_labels.len()
            )
        } else {
            format!(
                "{} passed, not on the image so: {differing:?}",
                theirs_labels.len()
            )
        },
    ));
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    rows.push((
        "no cache".into(),
        yes_no(m.no_cache),
        yes_no(parameters.contains_key("no-cache")),
    ));
    rows.push((
        "network".into(),
        m.network.clone(),
        parameters
            .get("force-network-mode")
            .cloned()
            .unwrap_or("(default)".into()),
    ));
    let seconds = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let metadata = predicate.get("metadata").cloned().unwrap_or(Value::Null);
    let their_time = |key: &str| {
        metadata
            .get(key)
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or("?".into(), |t| seconds(&t.with_timezone(&Utc)))
    };
    rows.push((
        "build window".into(),
        format!("{} .. {}", seconds(&m.started_at), seconds(&m.finished_at)),
        format!(
            "{} .. {}",
            their_time("buildStartedOn"),
            their_time("buildFinishedOn")
        ),
    ));
    rows.push((
        "builder".into(),
        format!("prov build on node {}", m.node),
        match text(predicate.pointer("/builder/id")) {
            id if id.is_empty() => "(empty)".to_string(),
            id => id,
        },
    ));
    let mut only_buildkit: Vec<String> = materials
        .iter()
        .filter(|(uri, _)| !uri.starts_with("pkg:docker/") && !uri.starts_with(SESSION))
        .map(|(uri, d)| format!("material {uri} {d}"))
        .collect();
    only_buildkit.extend(
        predicate
            .pointer("/invocation/configSource/entryPoint")
            .and_then(Value::as_str)
            .map(|e| format!("frontend entry point {e}")),
    );
    if let Some(hermetic) = metadata.get(HERMETIC).and_then(Value::as_bool) {
        only_buildkit.push(format!("its own hermeticity claim: {hermetic}"));
    }
    if let Some(steps) = metadata
        .pointer(&format!("/{}/layers", METADATA.replace('/', "~1")))
        .and_then(Value::as_object)
    {
        only_buildkit.push(format!("the layers each of {} steps made", steps.len()));
    }
    let mut only_prov = vec![
        format!("source tree {}", m.git.tree),
        format!("Cargo.lock sha256 {}", m.cargo_lock.sha256),
        format!("Compose configuration sha256 {}", m.compose.config_sha256),
        format!("build log sha256 {}", m.build_log.sha256),
        "the bases' configuration digests".to_string(),
    ];
    if let Some(context) = &m.context {
        only_prov.push(format!(
            "build context: {} files from the tree, vendored crates proved",
            context.files
        ));
    }
    if let Some(policy) = &m.policy {
        only_prov.push(format!("build policy sha256 {}", policy.sha256));
    }
    only_prov.push("the hash chain to the previous record".to_string());
    SideBySide {
        rows,
        only_buildkit,
        only_prov,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, bytes).unwrap();
    }

    fn digest(bytes: &[u8]) -> String {
        format!("sha256:{}", crate::record::digest::sha256_hex(bytes))
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
        let (config, layer) = (br#"{"rootfs":{}}"#.to_vec(), b"layer bytes".to_vec());
        let image = serde_json::to_vec(&json!({"schemaVersion": 2,
            "config": {"digest": digest(&config)}, "layers": [{"digest": digest(&layer)}]}))
        .unwrap();
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
        let index = serde_json::to_vec(&json!({"manifests": [{"digest": digest(&image_index),
            "annotations": {"io.containerd.image.name": "docker.io/library/prov-api:1"}}]}))
        .unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        for blob in [
            &statement,
            &config,
            &layer,
            &image,
            &attestation,
            &image_index,
        ] {
            let name = format!("blobs/sha256/{}", &digest(blob)["sha256:".len()..]);
            append(&mut builder, &name, blob);
        }
        append(&mut builder, "index.json", &index);
        builder.into_inner().unwrap()
    }

    #[test]
    fn the_slsa_statement_is_found_through_the_image_index() {
        let archive = ImageArchive::read(saved(true).as_slice()).unwrap();
        let statement = archive.statement.expect("a statement");
        assert_eq!(
            statement["predicateType"],
            "https://slsa.dev/provenance/v0.2"
        );
    }

    #[test]
    fn the_image_alone_is_copied_for_loading_under_the_archives_name() {
        let bytes = saved(true);
        let archive = ImageArchive::read(bytes.as_slice()).unwrap();
        let mut copy = Vec::new();
        archive
            .write_image_only(bytes.as_slice(), &mut copy)
            .unwrap();
        let mut names = Vec::new();
        let mut index = Value::Null;
        for entry in tar::Archive::new(copy.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name == "index.json" {
                index = serde_json::from_reader(&mut entry).unwrap();
            }
            names.push(name);
        }
        let manifest: Value = serde_json::from_slice(
            &read_json_blobs(bytes.as_slice()).unwrap().1[archive.manifest_digest()],
        )
        .unwrap();
        let blob = |d: &Value| format!("blobs/sha256/{}", &d.as_str().unwrap()["sha256:".len()..]);
        let expected = [
            blob(&manifest["config"]["digest"]),
            blob(&manifest["layers"][0]["digest"]),
            blob(&json!(archive.manifest_digest())),
            "index.json".to_string(),
        ];
        assert_eq!(names, expected);
        assert_eq!(index["manifests"][0]["digest"], archive.manifest_digest());
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            "docker.io/library/prov-api:1"
        );
    }

    #[test]
    fn the_record_and_buildkit_agree_on_the_context_and_name_what_only_each_records() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/verify/worker1");
        let records = crate::record::store::Store::new(
            &Path::new(fixture).join("provenance"),
            &"worker1".parse().unwrap(),
        );
        let mut m: Manifest = records.latest().unwrap().manifest;
        m.context.as_mut().unwrap().sha256 = "ab".repeat(32);
        let statement = json!({"predicate": {
            "builder": {"id": ""},
            "materials": [
                {"uri": "pkg:docker/prov-runtime@t?platform=linux%2Famd64",
                 "digest": {"sha256": "cd".repeat(32)}},
                {"uri": "http://buildkit-session/x", "digest": {"sha256": "ab".repeat(32)}}
            ],
            "invocation": {"parameters": {"args": {"build-arg:API_FEATURES": ""}}}
        }});
        let cmp = side_by_side(&m, &statement);
        let context = cmp.rows.iter().find(|r| r.0 == "build context").unwrap();
        assert_eq!(context.1, context.2);
        assert!(cmp.only_buildkit.is_empty(), "{:?}", cmp.only_buildkit);
        assert!(cmp.only_prov.iter().any(|l| l.starts_with("Cargo.lock")));
    }

    #[test]
    fn an_image_without_attestations_is_its_own_manifest() {
        let archive = ImageArchive::read(saved(false).as_slice()).unwrap();
        assert!(archive.statement.is_none());
        let image_index = ImageArchive::read(saved(true).as_slice()).unwrap();
        assert_eq!(archive.manifest_digest(), image_index.manifest_digest());
    }
}
