//! What `prov reproduce` records: what the rebuilding node made (`Rebuilt`, the node's word,
//! checked by the host), and the host's signed verdict.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::record::manifest::{BaseImage, BuildLog, GitSource, ImageRecord, SourceDate};
use crate::record::nodes::NodeName;

/// What a node rebuilt for `prov reproduce` (written by the node: the host checks it against the
/// record it reproduces and the node's engine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rebuilt {
    pub node: NodeName,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub git: GitSource,
    pub source_date: SourceDate,
    pub base_images: Vec<BaseImage>,
    pub build_args: BTreeMap<String, String>,
    pub image: ImageRecord,
    /// The builder's output (sent to the host's terminal): its digest and size.
    pub build_log: BuildLog,
}

/// The verdict of `prov reproduce`: the predicate of its signed statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reproduction {
    /// The build reproduced: its node, id, image and record (sha256 of its bytes).
    pub of_node: NodeName,
    pub of_build: String,
    pub of_image: String,
    pub of_record_sha256: String,
    pub of_source: GitSource,
    /// The node that rebuilt it, and what it made.
    pub node: NodeName,
    pub rebuilt: Rebuilt,
    /// The rebuild was of the same commit and tree: a reproduction, not a comparison.
    pub same_source: bool,
    /// The same image ID: the same bytes.
    pub identical: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_difference: Option<FirstDifference>,
    pub at: DateTime<Utc>,
}

/// Where two images of the same inputs first part: the first layer (bottom first) whose files
/// differ and the first path in it that does (no path when every differing layer differs only
/// in what it removes or in metadata: then the first differing layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstDifference {
    pub layer: usize,
    /// The layer's diff id on each side (none where one image has fewer layers).
    pub layer_a: Option<String>,
    pub layer_b: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}
