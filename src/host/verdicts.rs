//! The signed verdicts of `prov reproduce`, read back: each kept beside the record it is about,
//! and believed only once its signature verifies with the project's key and it names that very
//! record and image. `prov show` and `prov verify` read them; nothing here rebuilds.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::host::attest::{verified_statement, PublicKeyFile};
use crate::record::nodes::NodeName;
use crate::record::reproduction::Reproduction;
use crate::record::store::{Store, Stored};

/// The predicate type of a verdict's in-toto statement.
pub const PREDICATE_TYPE: &str = "https://prov.dev/reproduce/v1";

/// The verdicts kept for a record, each by the node that rebuilt it: the verdict once its
/// signature verifies and it names this very record and image, else why not.
pub fn verdicts(
    store: &Store,
    of: &Stored,
    key: Option<&PublicKeyFile>,
) -> Vec<(NodeName, Result<Reproduction, String>)> {
    store
        .verdicts(&of.manifest.build_id)
        .into_iter()
        .map(|(node, path)| {
            let verdict = read_verdict(&path, of, key).map_err(|e| format!("{e:#}"));
            (node, verdict)
        })
        .collect()
}

fn read_verdict(path: &Path, of: &Stored, key: Option<&PublicKeyFile>) -> Result<Reproduction> {
    let key = key.ok_or_else(|| anyhow!("the project's public key is missing"))?;
    let bytes = crate::record::bounded::read(path)?.ok_or_else(|| anyhow!("it vanished"))?;
    let statement = verified_statement(&bytes, key)?;
    if statement["predicateType"] != PREDICATE_TYPE {
        bail!("its statement is not a verdict of prov reproduce");
    }
    let verdict: Reproduction = serde_json::from_value(statement["predicate"].clone())
        .context("its verdict is not what prov writes")?;
    let image = of.manifest.image.as_ref().map(|i| i.id.as_str());
    if verdict.of_record_sha256 != of.sha256 || Some(verdict.of_image.as_str()) != image {
        bail!("it is the verdict on another record or image");
    }
    Ok(verdict)
}

/// One line per verdict, for `prov show` and `prov verify`.
pub fn summary(node: &NodeName, verdict: &Result<Reproduction, String>) -> String {
    match verdict {
        Ok(v) if !v.same_source => format!(
            "rebuilt on {node} from other source (tree {}): {}, signed",
            crate::record::text::short_id(&v.rebuilt.git.tree),
            if v.identical {
                "identical"
            } else {
                "different"
            }
        ),
        Ok(v) if v.identical => format!(
            "rebuilt on {node} ({}): identical, signed",
            v.at.format("%Y-%m-%d %H:%M UTC")
        ),
        Ok(v) => format!(
            "rebuilt on {node} ({}): DIFFERENT from layer #{}{}, signed",
            v.at.format("%Y-%m-%d %H:%M UTC"),
            v.first_difference.as_ref().map_or(0, |d| d.layer + 1),
            v.first_difference
                .as_ref()
                .and_then(|d| d.path.as_deref())
                .map_or(String::new(), |p| format!(", /{p}"))
        ),
        Err(why) => format!("a verdict of a rebuild on {node} does not hold: {why}"),
    }
}
