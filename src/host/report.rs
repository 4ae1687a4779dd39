//! What `prov verify` found on a node: each check with what was expected and what was observed,
//! the facts it judged, and the outcome that decides the exit code.

use crate::host::proven_files::ProvenFiles;
use serde::{Deserialize, Serialize};

use crate::error::Outcome;
use crate::record::nodes::NodeName;

/// Could not check when any node went unchecked, else failed when any check failed.
pub fn outcome(reports: &[NodeReport]) -> Outcome {
    Outcome::worst(reports.iter().map(|r| match (&r.error, r.ok) {
        (Some(_), _) => Outcome::Unchecked,
        (None, false) => Outcome::Failed,
        (None, true) => Outcome::Held,
    }))
}

/// One verification check, as printed by `prov verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub expected: String,
    pub observed: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hint: String,
}

/// One answer of the api over HTTP: the status, and the body (or, with no status, why there
/// was no answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpAnswer {
    pub status: Option<u16>,
    pub body: String,
}

/// What the api answered on its three paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpAnswers {
    pub health: HttpAnswer,
    pub ready: HttpAnswer,
    pub version: HttpAnswer,
    /// The random value the requests carried (`X-Prov-Nonce`), which the api notes in its log.
    #[serde(default)]
    pub nonce: Option<String>,
}

/// A node's verification result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    pub node: NodeName,
    pub ok: bool,
    /// Set when the node could not be checked (unreachable, nothing recorded): never ok then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub checks: Vec<Check>,
    /// Independent rebuilds of the running build (`prov reproduce`), one line each: not judged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reproduced: Vec<String>,
    /// What the checks were about: the verification summary names it.
    #[serde(default)]
    pub subject: Subject,
    /// What this check proved of the node's stack, which `verify --attest` keeps.
    #[serde(skip)]
    pub proven: ProvenFiles,
}

impl NodeReport {
    /// The names of the checks that failed, in order.
    pub fn failed_checks(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// What verify judged on a node: the image the api runs, and the record and attestation it
/// was held against. Empty where the node could not be asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// The image of the running api container.
    pub running_image: Option<String>,
    pub build_id: Option<String>,
    pub recorded_image: Option<String>,
    /// The sha256 of the latest record's file: the head of the node's chain.
    pub manifest_sha256: Option<String>,
    /// The sha256 of the build's attestation envelope on the host.
    pub attestation_sha256: Option<String>,
    /// A signed `prov reproduce` verdict says another node rebuilt the build identically.
    pub reproduced: bool,
}
