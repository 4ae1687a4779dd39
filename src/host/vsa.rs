//! Verification summaries: what one `prov verify` found on a node, as an in-toto Statement v1
//! with a SLSA Verification Summary (VSA v1) predicate, DSSE-signed with the project's key and
//! kept in the host's state (never in the synced folder).
//!
//! The predicate holds only the fields the VSA specification defines, so strict parsers accept
//! it. What prov adds (the node, the checks that failed, why a node could not be checked) sits in
//! the subject's `annotations`, which in-toto's resource descriptor leaves free.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::host::attest::{self, PublicKeyFile};
use crate::host::report::NodeReport;
use crate::host::state::HostState;
use crate::record::digest::sha256_hex;
use crate::record::nodes::NodeName;
use crate::record::policy::LoadedPolicy;
use crate::record::stack;
use crate::record::store::write_atomic;

pub const PREDICATE_TYPE: &str = "https://slsa.dev/verification_summary/v1";
/// Documents what verify checks (README, "Verification summaries").
pub const VERIFIER_ID: &str = "https://prov.dev/verifier/prov-verify/v1";
pub const POLICY_SCHEMA: &str = "prov.verify-policy/v1";
pub const PASSED: &str = "PASSED";
pub const FAILED: &str = "FAILED";
/// The SLSA build level prov can honestly claim: provenance exists, signed. Not level 2: a
/// node is the operator's machine, not a hosted build platform, and writes the record it builds.
pub const SLSA_BUILD_LEVEL: &str = "SLSA_BUILD_LEVEL_1";
/// prov's own levels (the specification reserves the `SLSA_` prefix for its tracks).
pub const PROV_RUNTIME_VERIFIED: &str = "PROV_RUNTIME_VERIFIED";
pub const PROV_REPRODUCED: &str = "PROV_REPRODUCED";

/// Where a node's summaries live, under the host's state.
const DIR: &str = "vsa";
const POLICIES: &str = "policies";

/// What the summary's `policy` names by digest: the checks verify ran, in order, and the build
/// policy they held the record against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyPolicy {
    pub schema: String,
    pub checks: Vec<String>,
    pub build_policy: BuildPolicyRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildPolicyRef {
    pub path: String,
    /// `None` when the policy could not be read (then nothing was judged, and the summary fails).
    pub sha256: Option<String>,
}

impl VerifyPolicy {
    pub fn of(report: &NodeReport, path: &str, build_policy: Option<&LoadedPolicy>) -> Self {
        VerifyPolicy {
            schema: POLICY_SCHEMA.to_string(),
            checks: report.checks.iter().map(|c| c.name.clone()).collect(),
            build_policy: BuildPolicyRef {
                path: path.to_string(),
                sha256: build_policy.map(|p| p.sha256.clone()),
            },
        }
    }

    /// The exact bytes the summary's digest covers.
    pub fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the policy serializes")
    }
}

/// The VSA's `resourceUri`: `prov://<node>/<compose project>/<service>`, the running service
/// the summary speaks of.
pub fn resource_uri(node: &NodeName) -> String {
    format!("prov://{node}/{}/{}", stack::PROJECT, stack::API_SERVICE)
}

/// PASSED only when the node was checked, every check ran and every one passed.
pub fn passed(report: &NodeReport) -> bool {
    report.error.is_none() && !report.checks.is_empty() && report.checks.iter().all(|c| c.ok)
}

/// The statement for one node's report. `fallback_image` names the subject when the node could
/// not say what it runs (the host's imported latest record); with neither there is nothing to
/// summarise.
pub fn statement(
    report: &NodeReport,
    policy: &VerifyPolicy,
    fallback_image: Option<&str>,
    verified_at: DateTime<Utc>,
) -> Result<Value> {
    let j = &report.subject;
    let (image, running) = match (&j.running_image, &j.recorded_image) {
        (Some(running), _) => (running.as_str(), true),
        (None, Some(recorded)) => (recorded.as_str(), false),
        (None, None) => (
            fallback_image.ok_or_else(|| {
                anyhow!(
                    "node {} runs no api and has no recorded image: a summary needs an image to \
                     name; run make demo NODE={}",
                    report.node,
                    report.node
                )
            })?,
            false,
        ),
    };
    let hex = image
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64)
        .ok_or_else(|| anyhow!("image id {image:?} is not a sha256 digest"))?;
    let passed = passed(report);
    let mut annotations = json!({ "node": report.node, "running": running });
    if let Some(build) = &j.build_id {
        annotations["build"] = json!(build);
    }
    if !passed {
        annotations["failedChecks"] = json!(report.failed_checks());
        if let Some(error) = &report.error {
            annotations["couldNotCheck"] = json!(error);
        }
    }
    let store = format!("provenance/{}", report.node);
    let mut inputs = Vec::new();
    if let (Some(build), Some(sha)) = (&j.build_id, &j.attestation_sha256) {
        inputs.push(json!({"uri": format!("{store}/{}", crate::record::names::envelope(build)), "digest": {"sha256": sha}}));
    }
    if let (Some(build), Some(sha)) = (&j.build_id, &j.manifest_sha256) {
        inputs.push(json!({"uri": format!("{store}/{build}.json"), "digest": {"sha256": sha}}));
    }
    let levels: Vec<&str> = if !passed {
        vec![FAILED]
    } else if j.reproduced {
        vec![SLSA_BUILD_LEVEL, PROV_RUNTIME_VERIFIED, PROV_REPRODUCED]
    } else {
        vec![SLSA_BUILD_LEVEL, PROV_RUNTIME_VERIFIED]
    };
    let policy_sha = sha256_hex(&policy.bytes());
    Ok(json!({
        "_type": attest::STATEMENT_TYPE,
        "subject": [{
            "name": stack::API_IMAGE_NAME,
            "digest": {"sha256": hex},
            "annotations": annotations,
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "verifier": {"id": VERIFIER_ID},
            "timeVerified": verified_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "resourceUri": resource_uri(&report.node),
            "policy": {
                "uri": format!("{POLICIES}/{policy_sha}.json"),
                "digest": {"sha256": policy_sha},
            },
            "inputAttestations": inputs,
            "verificationResult": if passed { PASSED } else { FAILED },
            "verifiedLevels": levels,
        },
    }))
}

fn node_dir(state: &HostState, node: &NodeName) -> PathBuf {
    state.dir().join(DIR).join(node)
}

/// Signs and keeps one summary (and the policy it names, by digest); returns the summary's path.
pub fn write(
    state: &HostState,
    node: &NodeName,
    statement: &Value,
    policy: &VerifyPolicy,
    key: &SigningKey,
    verified_at: DateTime<Utc>,
) -> Result<PathBuf> {
    let policy_bytes = policy.bytes();
    let policies = state.dir().join(DIR).join(POLICIES);
    fs::create_dir_all(&policies).with_context(|| format!("creating {}", policies.display()))?;
    write_atomic(
        &policies.join(format!("{}.json", sha256_hex(&policy_bytes))),
        &policy_bytes,
    )?;
    let dir = node_dir(state, node);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Sortable by name: the newest is the last.
    let path = dir.join(format!(
        "{}.dsse.json",
        verified_at.format("%Y%m%dT%H%M%S%.3fZ")
    ));
    let envelope = serde_json::to_vec_pretty(&attest::sign(statement, key))?;
    write_atomic(&path, &envelope)?;
    Ok(path)
}

/// The newest summary of a node, read back and its signature checked.
pub struct Summary {
    pub path: PathBuf,
    pub count: usize,
    pub read: Result<Value, String>,
}

pub fn newest(state: &HostState, node: &NodeName, key: Option<&PublicKeyFile>) -> Option<Summary> {
    let mut paths: Vec<PathBuf> = fs::read_dir(node_dir(state, node))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".dsse.json"))
        .collect();
    paths.sort();
    let path = paths.last()?.clone();
    let read = read_summary(&path, key).map_err(|e| format!("{e:#}"));
    Some(Summary {
        count: paths.len(),
        path,
        read,
    })
}

fn read_summary(path: &Path, key: Option<&PublicKeyFile>) -> Result<Value> {
    let key = key.ok_or_else(|| anyhow!("the project's public key is missing"))?;
    let bytes = crate::record::bounded::read(path)?.ok_or_else(|| anyhow!("it vanished"))?;
    let statement = attest::verified_statement(&bytes, key)?;
    if statement["predicateType"] != PREDICATE_TYPE {
        bail!("it is not a verification summary");
    }
    Ok(statement)
}

/// One line for `prov log`: when, the result, the levels or the failed checks, the image.
pub fn summary_line(summary: &Summary) -> String {
    let statement = match &summary.read {
        Ok(s) => s,
        Err(e) => return format!("{}: refused: {e}", summary.path.display()),
    };
    let p = &statement["predicate"];
    let subject = &statement["subject"][0];
    let list = |v: &Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let detail = if p["verificationResult"] == PASSED {
        list(&p["verifiedLevels"])
    } else {
        let failed = list(&subject["annotations"]["failedChecks"]);
        match subject["annotations"]["couldNotCheck"].as_str() {
            Some(why) => format!("could not check: {why}"),
            None => format!("failed: {failed}"),
        }
    };
    format!(
        "{} {} ({detail}) image sha256:{}",
        p["timeVerified"].as_str().unwrap_or("?"),
        p["verificationResult"].as_str().unwrap_or("?"),
        crate::record::text::short_id(subject["digest"]["sha256"].as_str().unwrap_or("?")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::report::{Check, Subject};

    fn check(name: &str, ok: bool) -> Check {
        Check {
            name: name.into(),
            ok,
            expected: String::new(),
            observed: String::new(),
            hint: String::new(),
        }
    }

    fn report(checks: Vec<Check>, error: Option<&str>) -> NodeReport {
        NodeReport {
            node: "main".parse().unwrap(),
            ok: error.is_none() && checks.iter().all(|c| c.ok),
            error: error.map(Into::into),
            checks,
            reproduced: Vec::new(),
            proven: Default::default(),
            subject: Subject {
                running_image: Some(format!("sha256:{}", "a".repeat(64))),
                build_id: Some("20261130-120000-000-abcd".into()),
                recorded_image: Some(format!("sha256:{}", "a".repeat(64))),
                manifest_sha256: Some("b".repeat(64)),
                attestation_sha256: Some("c".repeat(64)),
                reproduced: false,
            },
        }
    }

    fn policy(r: &NodeReport) -> VerifyPolicy {
        VerifyPolicy::of(
            r,
            "build-policy.json",
            Some(&LoadedPolicy {
                path: "build-policy.json".into(),
                sha256: "d".repeat(64),
                policy: crate::record::policy::parse(include_bytes!("../../build-policy.json"))
                    .unwrap(),
            }),
        )
    }

    fn at() -> DateTime<Utc> {
        "2026-11-30T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn every_check_passing_is_passed_at_level_one_and_prov_runtime() {
        let r = report(vec![check("manifest", true), check("ready", true)], None);
        let s = statement(&r, &policy(&r), None, at()).unwrap();
        let p = &s["predicate"];
        assert_eq!(p["verificationResult"], PASSED);
        assert_eq!(
            p["verifiedLevels"],
            json!([SLSA_BUILD_LEVEL, PROV_RUNTIME_VERIFIED])
        );
        assert_eq!(p["resourceUri"], "prov://main/prov/api");
        assert_eq!(p["timeVerified"], "2026-11-30T12:00:00Z");
        assert_eq!(s["subject"][0]["digest"]["sha256"], "a".repeat(64));
        assert_eq!(p["inputAttestations"].as_array().unwrap().len(), 2);
        assert!(s["subject"][0]["annotations"].get("failedChecks").is_none());
    }

    #[test]
    fn one_failed_check_is_failed_and_named() {
        let r = report(vec![check("manifest", true), check("ready", false)], None);
        let s = statement(&r, &policy(&r), None, at()).unwrap();
        assert_eq!(s["predicate"]["verificationResult"], FAILED);
        assert_eq!(s["predicate"]["verifiedLevels"], json!([FAILED]));
        assert_eq!(
            s["subject"][0]["annotations"]["failedChecks"],
            json!(["ready"])
        );
    }

    #[test]
    fn a_node_that_could_not_be_checked_is_failed_never_passed() {
        let mut r = report(Vec::new(), Some("ssh: connection refused"));
        r.subject = Subject::default();
        let image = format!("sha256:{}", "e".repeat(64));
        let s = statement(&r, &policy(&r), Some(&image), at()).unwrap();
        assert_eq!(s["predicate"]["verificationResult"], FAILED);
        assert_eq!(
            s["subject"][0]["annotations"]["couldNotCheck"],
            "ssh: connection refused"
        );
        assert_eq!(s["subject"][0]["annotations"]["running"], false);
        assert!(statement(&r, &policy(&r), None, at()).is_err());
    }

    #[test]
    fn no_checks_at_all_is_not_a_pass() {
        let r = report(Vec::new(), None);
        assert!(!passed(&r));
    }

    #[test]
    fn a_reproduced_build_earns_prov_reproduced_and_no_level_claims_the_slsa_prefix_falsely() {
        let mut r = report(vec![check("manifest", true)], None);
        r.subject.reproduced = true;
        let s = statement(&r, &policy(&r), None, at()).unwrap();
        let levels: Vec<&str> = s["predicate"]["verifiedLevels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(levels.contains(&PROV_REPRODUCED));
        assert_eq!(
            levels.iter().filter(|l| l.starts_with("SLSA_")).count(),
            1,
            "only the SLSA build track carries the prefix"
        );
    }

    #[test]
    fn the_policy_digest_names_the_checks_run() {
        let a = report(vec![check("manifest", true)], None);
        let b = report(vec![check("manifest", true), check("ready", true)], None);
        let (pa, pb) = (policy(&a), policy(&b));
        assert_ne!(sha256_hex(&pa.bytes()), sha256_hex(&pb.bytes()));
        let s = statement(&a, &pa, None, at()).unwrap();
        assert_eq!(
            s["predicate"]["policy"]["digest"]["sha256"],
            sha256_hex(&pa.bytes())
        );
    }

    #[test]
    fn a_written_summary_reads_back_and_a_changed_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = HostState::at(dir.path());
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = attest::public_key_file(&key.verifying_key());
        let r = report(vec![check("ready", false)], None);
        let p = policy(&r);
        let s = statement(&r, &p, None, at()).unwrap();
        let path = write(&state, &"main".parse().unwrap(), &s, &p, &key, at()).unwrap();
        let newest = newest(&state, &"main".parse().unwrap(), Some(&public)).unwrap();
        assert_eq!(newest.path, path);
        assert!(summary_line(&newest).contains("FAILED (failed: ready)"));
        let mut envelope: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let forged = serde_json::to_vec(&json!({"predicateType": PREDICATE_TYPE})).unwrap();
        use base64::Engine;
        envelope["payload"] = json!(base64::engine::general_purpose::STANDARD.encode(forged));
        fs::write(&path, serde_json::to_vec(&envelope).unwrap()).unwrap();
        let refused = super::newest(&state, &"main".parse().unwrap(), Some(&public)).unwrap();
        assert!(summary_line(&refused).contains("refused: no signature"));
    }
}
