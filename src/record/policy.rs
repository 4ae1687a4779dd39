//! The build policy: which build arguments a build may set, and to what. It lives in the
//! repository (`build-policy.json`), every manifest records the digest of the policy it was
//! built under, `prov build` refuses what it does not allow, and `prov verify` judges the
//! running build against the policy in force.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::record::bounded;
use crate::record::digest::sha256_hex;

pub const POLICY_SCHEMA: &str = "prov.build-policy/v1";
/// The policy in force, relative to the repository root.
pub const DEFAULT_POLICY: &str = "build-policy.json";
/// Names another policy file (relative to the repository) for build and verify alike.
pub const POLICY_ENV: &str = "PROV_POLICY";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub schema: String,
    /// What the policy is for, in a sentence.
    #[serde(default)]
    pub description: String,
    /// What the build context holds.
    pub context: ContextSpec,
    /// Build argument -> the values it may take. An argument not listed may not be set.
    pub build_args: BTreeMap<String, Vec<String>>,
}

/// The build context: files of the recorded tree under `from_tree`, and derived inputs (made
/// from the tree, such as vendored crates, and not in it), each recorded with its own digest.
/// Paths are relative to the context folder; nothing else can enter the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextSpec {
    pub from_tree: Vec<String>,
    #[serde(default)]
    pub derived: Vec<DerivedSpec>,
}

/// A derived input and how prov proves it is what the tree says it must be: nothing unproven
/// enters the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedSpec {
    pub path: String,
    pub proof: Proof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proof {
    /// Crates vendored from Cargo.lock (at the context's root): each is compared file by file
    /// with its archive, whose sha256 Cargo.lock pins (`vendor.rs`).
    #[serde(rename = "cargo-vendor")]
    CargoVendor,
}

/// A policy file read from disk, with the digest of its exact bytes.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// Relative to the repository root.
    pub path: String,
    pub sha256: String,
    pub policy: Policy,
}

/// Parses policy bytes; a wrong schema, an unknown field or a malformed file is an error.
pub fn parse(bytes: &[u8]) -> Result<Policy> {
    let policy: Policy = serde_json::from_slice(bytes).context("not a build policy")?;
    if policy.schema != POLICY_SCHEMA {
        bail!(
            "schema {:?}, this prov reads {POLICY_SCHEMA:?}",
            policy.schema
        );
    }
    let spec = &policy.context;
    if let Some(bad) = spec
        .from_tree
        .iter()
        .chain(spec.derived.iter().map(|d| &d.path))
        .find(|p| !is_plain_relative(p))
    {
        bail!(
            "context path {bad:?} is not a plain path inside the context (no `..`, not absolute)"
        );
    }
    Ok(policy)
}

/// The policy path in force: `PROV_POLICY` when set, else the default.
pub fn path_in_force() -> String {
    std::env::var(POLICY_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_POLICY.to_string())
}

/// A relative path with no `.`, `..` or root: it cannot leave the folder it is relative to.
pub fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Reads a policy file of the repository; the path must stay inside it.
pub fn load(repo: &Path, rel: &str) -> Result<LoadedPolicy> {
    if !is_plain_relative(rel) {
        bail!(
            "the build policy {rel:?} must be a path inside the repository, like {DEFAULT_POLICY}"
        );
    }
    let path = repo.join(rel);
    let bytes = bounded::read(&path)
        .with_context(|| format!("reading the build policy {}", path.display()))?
        .with_context(|| {
            format!(
                "no build policy at {}: the repository must have one ({DEFAULT_POLICY})",
                path.display()
            )
        })?;
    let policy = parse(&bytes).with_context(|| format!("reading {}", path.display()))?;
    Ok(LoadedPolicy {
        path: rel.to_string(),
        sha256: sha256_hex(&bytes),
        policy,
    })
}

impl Policy {
    /// The build arguments the policy does not allow, each with the reason.
    pub fn refusals<'a>(
        &self,
        args: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Vec<String> {
        args.into_iter()
            .filter_map(|(arg, value)| match self.build_args.get(arg) {
                None => Some(format!("{arg} may not be set")),
                Some(allowed) if !allowed.contains(value) => Some(format!(
                    "{arg}={value:?} is not allowed (allowed: {allowed:?})"
                )),
                Some(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"{
        "schema": "prov.build-policy/v1",
        "description": "real builds",
        "context": {
            "from_tree": ["src"],
            "derived": [{ "path": "vendor", "proof": "cargo-vendor" }]
        },
        "build_args": { "API_FEATURES": [""] }
    }"#;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn allows_only_listed_arguments_and_values() {
        let policy = parse(POLICY.as_bytes()).unwrap();
        assert!(policy.refusals(&args(&[])).is_empty());
        assert!(policy.refusals(&args(&[("API_FEATURES", "")])).is_empty());
        let refused = policy.refusals(&args(&[
            ("API_FEATURES", "dishonest-ready"),
            ("OTHER", "1"),
        ]));
        assert_eq!(refused.len(), 2);
        assert!(refused[0].contains("API_FEATURES=\"dishonest-ready\" is not allowed"));
        assert!(refused[1].contains("OTHER may not be set"));
    }

    #[test]
    fn malformed_policies_are_refused() {
        for bad in [
            "",
            "{}",
            r#"{"schema": "prov.build-policy/v9", "context": {"from_tree": []}, "build_args": {}}"#,
            r#"{"schema": "prov.build-policy/v1", "context": {"from_tree": []}, "build_args": {"A": "x"}}"#,
            r#"{"schema": "prov.build-policy/v1", "context": {"from_tree": []}, "build_args": {}, "allow_all": true}"#,
            r#"{"schema": "prov.build-policy/v1", "build_args": {}}"#,
            r#"{"schema": "prov.build-policy/v1", "context": {"from_tree": ["../x"]}, "build_args": {}}"#,
            r#"{"schema": "prov.build-policy/v1", "context": {"from_tree": ["/etc"]}, "build_args": {}}"#,
            r#"{"schema": "prov.build-policy/v1", "context": {"from_tree": [], "derived": ["vendor"]}, "build_args": {}}"#,
            r#"{"schema": "prov.build-policy/v1", "context": {"from_tree": [], "derived": [{"path": "v", "proof": "trust-me"}]}, "build_args": {}}"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_repository_policy_parses_and_allows_a_plain_build() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let loaded = load(repo, DEFAULT_POLICY).unwrap();
        assert!(loaded.policy.refusals(&args(&[])).is_empty());
        assert!(!loaded
            .policy
            .refusals(&args(&[("API_FEATURES", "dishonest-ready")]))
            .is_empty());
        assert!(load(repo, "../etc/passwd").is_err());
        assert!(load(repo, "/etc/passwd").is_err());
    }
}
