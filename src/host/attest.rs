//! Standard attestations: an in-toto Statement v1 carrying SLSA provenance v1, mapped from the
//! manifest, in a DSSE envelope signed with the project's ed25519 key.
//!
//! The manifest is prov's own record; this is the form the ecosystem's verifiers read. Our extra
//! data sits inside the predicate's parameters and byproducts, so strict parsers accept it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::SecondsFormat;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::Error;
use crate::host::state::HostState;
use crate::record::bounded;
use crate::record::digest::sha256_hex;
use crate::record::manifest::{labels, Manifest};
use crate::record::store::write_atomic;
use crate::record::store::{Store, Stored};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Documents how prov builds (README, "Attestations").
pub const BUILD_TYPE: &str = "https://prov.dev/build-types/vagrant-compose-node/v1";

/// The public key in the form securesystemslib reads (`SSlibKey.from_dict(keyid, ...)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicKeyFile {
    pub keyid: String,
    pub keytype: String,
    pub scheme: String,
    pub keyval: KeyVal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyVal {
    /// Hex of the 32-byte ed25519 public key.
    pub public: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    pub keyid: String,
    pub sig: String,
}

/// DSSE v1 pre-authentication encoding: what is signed, binding the payload to its type.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The key id: sha256 of the canonical (sorted, compact) JSON of the public key's fields.
fn keyid(public_hex: &str) -> String {
    let canonical =
        json!({"keytype": "ed25519", "keyval": {"public": public_hex}, "scheme": "ed25519"});
    sha256_hex(canonical.to_string().as_bytes())
}

pub fn public_key_file(key: &VerifyingKey) -> PublicKeyFile {
    let public = hex::encode(key.as_bytes());
    PublicKeyFile {
        keyid: keyid(&public),
        keytype: "ed25519".into(),
        scheme: "ed25519".into(),
        keyval: KeyVal { public },
    }
}

/// `prov key init`: makes the project's key once, in the host's state (never in the checkout,
/// which an older prov mounted into every node); refuses to replace an existing one.
/// Makes the project's key unless it has one (never replaced: earlier attestations would no
/// longer verify); returns the public half's path and whether it was made now.
pub fn init_key(state: &HostState) -> Result<(PathBuf, bool)> {
    let private = state.private_key();
    if private.exists() {
        return Ok((state.public_key(), false));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow!("no randomness for the key: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let dir = private.parent().expect("key path has a parent");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    write_atomic(&private, B64.encode(seed).as_bytes())?;
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600))?;
    let public = serde_json::to_vec_pretty(&public_key_file(&key.verifying_key()))?;
    write_atomic(&state.public_key(), &public)?;
    Ok((state.public_key(), true))
}

pub fn load_signing_key(state: &HostState) -> Result<Option<SigningKey>> {
    let path = state.private_key();
    let Some(bytes) =
        bounded::read(&path).with_context(|| format!("reading {}", path.display()))?
    else {
        return Ok(None);
    };
    let seed: [u8; 32] = B64
        .decode(bytes.trim_ascii())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("{} is not a prov key (32 bytes, base64)", path.display()))?;
    Ok(Some(SigningKey::from_bytes(&seed)))
}

/// The exported public key, when attestations are enabled for this project.
pub fn load_public_key(state: &HostState) -> Result<Option<PublicKeyFile>> {
    let path = state.public_key();
    match bounded::read(&path).with_context(|| format!("reading {}", path.display()))? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("parsing {}", path.display())),
    }
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Every material field of the record, as the signed statement carries it: verify requires the
/// statement and the record to agree on each.
pub fn materials(m: &Manifest) -> Value {
    let mut fields = json!({
        "buildId": m.build_id,
        "node": m.node,
        "status": m.status,
        "git": m.git,
        "dockerfile": m.dockerfile,
        "compose": {"path": m.compose.path, "configSha256": m.compose.config_sha256},
        "lockfile": m.cargo_lock,
        "bases": m.base_images,
        "buildArgs": m.build_args,
        "noCache": m.no_cache,
        "network": m.network,
        "log": {"sha256": m.build_log.sha256, "bytes": m.build_log.bytes},
        "image": m.image.as_ref().map(|i| &i.id),
        "policy": m.policy,
        "context": m.context,
        "previousManifestSha256": m.prev_manifest_sha256,
    });
    // Only where recorded: statements signed before prov wrote SBOMs stay valid.
    if let Some(sbom) = &m.sbom {
        fields["sbom"] = json!(sbom);
    }
    fields
}

/// The in-toto Statement for a successful build, binding the record file by its digest.
pub fn statement(stored: &Stored) -> Result<Value> {
    let m = &stored.manifest;
    let image = m
        .image
        .as_ref()
        .ok_or_else(|| anyhow!("build {} failed: there is no image to attest", m.build_id))?;
    let source_url = image
        .labels
        .get(labels::OCI_SOURCE)
        .map_or("", String::as_str);
    let image_hex = image.id.strip_prefix("sha256:").unwrap_or(&image.id);
    let mut dependencies = vec![json!({
        "uri": format!("git+{source_url}"),
        "digest": match &m.git.commit {
            Some(commit) => json!({"gitCommit": commit, "gitTree": m.git.tree}),
            None => json!({"gitTree": m.git.tree}),
        },
        "annotations": {"dirty": m.git.dirty},
    })];
    for base in &m.base_images {
        dependencies.push(json!({
            "name": base.reference,
            "digest": {"sha256": base.id.strip_prefix("sha256:").unwrap_or(&base.id)},
            "annotations": {"buildArg": base.arg},
        }));
    }
    for file in [&m.dockerfile, &m.cargo_lock] {
        dependencies.push(json!({"name": file.path, "digest": {"sha256": file.sha256}}));
    }
    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": image.tag, "digest": {"sha256": image_hex}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "node": m.node,
                    "dockerfile": m.dockerfile.path,
                    "composeFile": m.compose.path,
                    "buildArgs": m.build_args,
                },
                "internalParameters": {
                    "noCache": m.no_cache,
                    "network": m.network,
                    "composeConfigSha256": m.compose.config_sha256,
                    "toolVersions": m.tool.versions,
                    "manifestSchema": m.schema,
                    "manifestSha256": stored.sha256,
                    "record": materials(m),
                    // What the host signs as proven is everything else of the record: these
                    // fields are the node's word (src/proof.rs says why for each).
                    "nodeClaims": crate::host::proof::node_claims(m),
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": format!("https://prov.dev/builders/vagrant-node/{}", m.node)},
                "metadata": {
                    "invocationId": m.build_id,
                    "startedOn": time(m.started_at),
                    "finishedOn": time(m.finished_at),
                },
                "byproducts": [{
                    "name": m.build_log.path,
                    "digest": {"sha256": m.build_log.sha256},
                    "annotations": {"bytes": m.build_log.bytes},
                }],
            },
        },
    }))
}

pub fn sign(statement: &Value, key: &SigningKey) -> Envelope {
    let payload = serde_json::to_vec(statement).expect("statement serializes");
    let signature = key.sign(&pae(PAYLOAD_TYPE, &payload));
    Envelope {
        payload: B64.encode(&payload),
        payload_type: PAYLOAD_TYPE.to_string(),
        signatures: vec![EnvelopeSignature {
            keyid: public_key_file(&key.verifying_key()).keyid,
            sig: B64.encode(signature.to_bytes()),
        }],
    }
}

/// The in-toto Statement of a build's SBOM: the image is its subject, the bill its predicate.
pub fn sbom_statement(stored: &Stored, bom: &[u8]) -> Result<Value> {
    let m = &stored.manifest;
    let image = m
        .image
        .as_ref()
        .ok_or_else(|| anyhow!("build {} failed: there is no image to attest", m.build_id))?;
    let bom: Value = serde_json::from_slice(bom).context("the SBOM is not JSON")?;
    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": image.tag,
            "digest": {"sha256": image.id.strip_prefix("sha256:").unwrap_or(&image.id)},
        }],
        "predicateType": crate::record::sbom::PREDICATE_TYPE,
        "predicate": bom,
    }))
}

/// Attests one recorded build with the project's key, and its SBOM when it has one (checked
/// against the record's digest); returns the build attestation's path.
pub fn attest(
    store: &crate::record::store::Store,
    stored: &Stored,
    key: &SigningKey,
) -> Result<PathBuf> {
    let id = &stored.manifest.build_id;
    if let Some(bom) = stored.pinned(store.dir(), crate::record::manifest::side_files::SBOM)? {
        let mut bytes = serde_json::to_vec_pretty(&sign(&sbom_statement(stored, &bom)?, key))?;
        bytes.push(b'\n');
        write_atomic(&store.sbom_envelope_path(id), &bytes)?;
    }
    write_envelope(store, id, &sign(&statement(stored)?, key))
}

/// The host attests a node's record only after checking it against what it describes: the
/// record is pinned, successful and chained; its build log has the recorded digest and size;
/// and the node's engine holds the image with the recorded id, labels and layers. Then it signs,
/// and remembers the newest attested build of the node (in the host's state).
pub fn attest_checked(
    state: &HostState,
    store: &crate::record::store::Store,
    stored: &Stored,
    key: &SigningKey,
    transport: &crate::host::transport::Transport,
) -> crate::error::Result<PathBuf> {
    let m = &stored.manifest;
    // The record is not as the node's engine and log hold it: a failed check.
    let refuse =
        |why: String| Error::failed(anyhow!("refusing to sign build {}: {why}", m.build_id));
    if m.image.is_none() {
        return Err(refuse("it has no image (a failed build)".into()));
    }
    let chain = store.chain()?;
    let position = chain
        .iter()
        .position(|e| e.build_id == m.build_id)
        .ok_or_else(|| refuse("it is not in the node's chain".into()))?;
    if !chain[..=position].iter().all(|e| e.is_intact()) {
        return Err(refuse(
            "the hash chain is broken up to it (`prov log` shows where)".into(),
        ));
    }
    crate::host::import::check_log(stored, &store.log_path(&m.build_id)).map_err(refuse)?;
    crate::host::import::check_against_engine(stored, transport)
        .map_err(|e| e.context(format!("refusing to sign build {}", m.build_id)))?;
    let path = attest(store, stored, key)?;
    // Only forward: attesting an older build again does not move the memory back.
    let newer = match state.attested(&m.node)? {
        None => true,
        Some(mark) => chain
            .iter()
            .position(|e| e.build_id == mark.build_id)
            .is_none_or(|at| at <= position),
    };
    if newer {
        state.remember_attested(
            &m.node,
            &crate::record::manifest::AttestedMark {
                build_id: m.build_id.clone(),
                manifest_sha256: stored.sha256.clone(),
            },
        )?;
    }
    Ok(path)
}

/// Keeps a build's envelope beside its record.
pub fn write_envelope(store: &Store, build_id: &str, envelope: &Envelope) -> Result<PathBuf> {
    let path = store.envelope_path(build_id);
    let mut bytes = serde_json::to_vec_pretty(envelope)?;
    bytes.push(b'\n');
    write_atomic(&path, &bytes)?;
    Ok(path)
}

/// Checks an envelope's bytes against the public key, the image that must be its subject and
/// the record it must sign (its digest and every material field); returns the subject digest,
/// or why the envelope does not hold.
pub fn check_envelope(
    bytes: &[u8],
    key: &PublicKeyFile,
    image_id: &str,
    record: &Stored,
) -> Result<String> {
    let statement = verified_statement(bytes, key)?;
    if statement["_type"] != STATEMENT_TYPE || statement["predicateType"] != PREDICATE_TYPE {
        bail!("the payload is not an in-toto v1 Statement with SLSA v1 provenance");
    }
    let want = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    let subject = statement["subject"][0]["digest"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if subject != want {
        bail!("its subject is sha256:{subject}, but the image is sha256:{want}");
    }
    let signed = &statement["predicate"]["buildDefinition"]["internalParameters"];
    let signed_record = &signed["record"];
    let recorded = materials(&record.manifest);
    let differing: Vec<&String> = recorded
        .as_object()
        .expect("materials are an object")
        .iter()
        .filter(|(field, value)| signed_record.get(field.as_str()) != Some(value))
        .map(|(field, _)| field)
        .collect();
    if !differing.is_empty() {
        bail!(
            "the signed statement and the record disagree on: {} (the record was edited after \
             it was signed, or the envelope is another build's)",
            differing
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if signed["manifestSha256"] != record.sha256.as_str() {
        bail!(
            "the statement signs record sha256 {}, but the record's is {}",
            signed["manifestSha256"],
            record.sha256
        );
    }
    Ok(subject)
}

/// The statement a DSSE envelope carries, once a signature by the key verifies over it.
pub fn verified_statement(bytes: &[u8], key: &PublicKeyFile) -> Result<Value> {
    let envelope: Envelope =
        serde_json::from_slice(bytes).context("the envelope is not DSSE JSON")?;
    if envelope.payload_type != PAYLOAD_TYPE {
        bail!(
            "payloadType is {:?}, expected {PAYLOAD_TYPE:?}",
            envelope.payload_type
        );
    }
    let payload = B64
        .decode(&envelope.payload)
        .context("the payload is not base64")?;
    let public: [u8; 32] = hex::decode(&key.keyval.public)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| anyhow!("the public key file holds no ed25519 key"))?;
    let verifying = VerifyingKey::from_bytes(&public).context("the public key is invalid")?;
    let message = pae(&envelope.payload_type, &payload);
    let signed = envelope.signatures.iter().any(|s| {
        s.keyid == key.keyid
            && B64
                .decode(&s.sig)
                .ok()
                .and_then(|sig| Signature::from_slice(&sig).ok())
                .is_some_and(|sig| verifying.verify(&message, &sig).is_ok())
    });
    if !signed {
        bail!(
            "no signature by key {} verifies ({} signature(s) present)",
            crate::record::text::short_id(&key.keyid),
            envelope.signatures.len()
        );
    }
    serde_json::from_slice(&payload).context("the payload is not JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DSSE specification's test vector for the pre-authentication encoding.
    #[test]
    fn pae_matches_the_dsse_spec_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }
}
