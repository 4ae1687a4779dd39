//! `prov reproduce --node B --of A[:BUILD]`: an independent no-cache build, on node B, of the
//! inputs node A recorded (bases and arguments; the source is the checkout's, which should be
//! A's tree), compared with A's image: identical (the same image ID), or the first layer and
//! the first file in it that differ. The verdict names both sources, so a rebuild of changed
//! source is never taken for a reproduction. It is an in-toto statement of its own, signed by
//! the project's key and kept beside A's record. B's stack is not touched: the rebuild has a tag
//! of its own, removed afterwards.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use serde_json::{json, Value};

use crate::host::attest;
use crate::host::diff::read_saved_image;
use crate::host::state::HostState;
use crate::host::sync;
use crate::host::transport::Transport;
use crate::host::verdicts::PREDICATE_TYPE;
use crate::record::image_fs::{self, Listing};
use crate::record::manifest::Manifest;
use crate::record::nodes::NodeName;
use crate::record::reproduction::{FirstDifference, Rebuilt, Reproduction};
use crate::record::store::{write_atomic, Store, Stored};
use crate::record::tree_hash;

/// The repository part of a rebuild's tag; the tag is the reproduced build's id.
pub const IMAGE_NAME: &str = "prov-reproduce";
/// The most of a node's rebuild report the host reads (it is about 4 KiB).
const MAX_REPORT_BYTES: u64 = 1 << 20;
/// How long a rebuild may take, and the most of its output shown.
const REBUILD_TIME: std::time::Duration = std::time::Duration::from_secs(1800);
const MAX_SHOWN_BYTES: u64 = 256 << 20;

/// Rebuilds `of` on `node`, compares, signs and keeps the verdict; returns it and its path.
pub fn reproduce(
    repo: &Path,
    state: &HostState,
    node: &NodeName,
    of: &Stored,
) -> Result<(Reproduction, PathBuf)> {
    let m = &of.manifest;
    let image = m.image.as_ref().ok_or_else(|| {
        anyhow!(
            "build {} of {} has no image to reproduce",
            m.build_id,
            m.node
        )
    })?;
    if m.source_date.is_none() {
        bail!(
            "build {} of {} was not built reproducibly (the legacy builder stamps each build's \
             times into its image): only a BuildKit build (a trixie node) can be reproduced",
            m.build_id,
            m.node
        );
    }
    if *node == m.node {
        bail!(
            "reproduce {}'s build on another node: an independent rebuild",
            m.node
        );
    }
    let key = attest::load_signing_key(state)?.ok_or_else(|| {
        anyhow!("the project has no key to sign the verdict with: run `prov key init`")
    })?;
    let here = tree_hash::tree_state(repo).context("hashing the checkout")?;
    if here.tree != m.git.tree {
        eprintln!(
            "prov: the checkout is tree {}, build {} is of tree {}: node {node} rebuilds the \
             checkout, so this compares changed source, not a reproduction",
            here.tree, m.build_id, m.git.tree
        );
    }

    let transport = Transport::connect(repo, node)?;
    sync::sync(repo, state, &transport)?;
    let tag = format!("{IMAGE_NAME}:{}", m.build_id);
    let compared = rebuild_on(&transport, m, &tag, &here.tree).and_then(|reported| {
        let rebuilt = as_the_engine_holds_it(&transport, reported, &tag)?;
        check_inputs(m, &rebuilt)?;
        let first_difference = if rebuilt.image.id == image.id {
            None
        } else {
            Some(first_difference(repo, m, node, &rebuilt, &tag)?)
        };
        Ok((rebuilt, first_difference))
    });
    // Whatever happened, the rebuild's tag goes: the node keeps only what its own builds made.
    let removed = transport.output(&["docker".into(), "image".into(), "rm".into(), tag.clone()]);
    if !removed.as_ref().is_ok_and(|out| out.status.success()) {
        eprintln!("prov: could not remove {tag} from node {node}: remove it by hand");
    }
    let (rebuilt, first_difference) = compared?;
    let reproduction = Reproduction {
        of_node: m.node.clone(),
        of_build: m.build_id.clone(),
        of_image: image.id.clone(),
        of_record_sha256: of.sha256.clone(),
        of_source: m.git.clone(),
        node: node.clone(),
        same_source: rebuilt.git.tree == m.git.tree && rebuilt.git.commit == m.git.commit,
        identical: first_difference.is_none(),
        rebuilt,
        first_difference,
        at: Utc::now(),
    };
    let envelope = attest::sign(&statement(&reproduction), &key);
    let path = Store::new(&repo.join("provenance"), &m.node).verdict_path(&m.build_id, node);
    let mut bytes = serde_json::to_vec_pretty(&envelope)?;
    bytes.push(b'\n');
    write_atomic(&path, &bytes)?;
    Ok((reproduction, path))
}

/// The in-toto statement of a verdict: its subject is the reproduced image.
pub fn statement(r: &Reproduction) -> Value {
    json!({
        "_type": attest::STATEMENT_TYPE,
        "subject": [{
            "name": format!("{}:{}", r.of_node, r.of_build),
            "digest": {"sha256": r.of_image.trim_start_matches("sha256:")},
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": r,
    })
}

/// Runs the node's side (`scripts/node/rebuild.sh`, which runs `prov rebuild`) from /vagrant, as
/// the golden path runs node scripts: the build's output streams to this terminal, the report
/// comes back on stdout.
fn rebuild_on(transport: &Transport, m: &Manifest, tag: &str, tree: &str) -> Result<Rebuilt> {
    let mut argv: Vec<String> = [
        "sudo",
        "-n",
        "env",
        "-C",
        crate::record::nodes::NODE_MOUNT,
        "scripts/node/rebuild.sh",
        "--tag",
        tag,
        "--expect-tree",
        tree,
        "--dockerfile",
        &m.dockerfile.path,
    ]
    .map(String::from)
    .to_vec();
    for base in &m.base_images {
        argv.extend(["--base".into(), format!("{}={}", base.arg, base.reference)]);
    }
    for (arg, value) in &m.build_args {
        argv.extend(["--build-arg".into(), format!("{arg}={value}")]);
    }
    if let Some(policy) = &m.policy {
        argv.extend(["--policy".into(), policy.path.clone()]);
    }
    if let Some(context) = &m.context {
        argv.extend(["--context".into(), context.path.clone()]);
    }
    // The build's output (on stderr) is shown here as it comes, escaped; the report comes on
    // stdout; a rebuild takes minutes.
    let out = transport.bounded(REBUILD_TIME).output_showing_stderr(
        &argv,
        MAX_REPORT_BYTES,
        MAX_SHOWN_BYTES,
    )?;
    if !out.status.success() {
        bail!(
            "the rebuild on node {} failed ({}; its output is above)",
            transport.node(),
            out.status
        );
    }
    let report = out.stdout;
    serde_json::from_slice(&report).with_context(|| {
        format!(
            "node {}'s rebuild report is not what prov writes",
            transport.node()
        )
    })
}

/// The rebuild's image as the rebuilding node's engine holds it under the rebuild's tag, asked the
/// way verify asks: the node's script reports what it made, and a report that names another
/// image than the engine holds is refused. What the verdict compares is the engine's.
fn as_the_engine_holds_it(transport: &Transport, reported: Rebuilt, tag: &str) -> Result<Rebuilt> {
    let held = crate::host::probe::images_by_reference(transport, &[tag.to_string()])?
        .pop()
        .flatten()
        .ok_or_else(|| {
            anyhow!(
                "node {}'s engine holds no image {tag} after the rebuild",
                transport.node()
            )
        })?;
    let image = &reported.image;
    if image.id != held.id || image.layers != held.root_fs.layers {
        bail!(
            "node {}'s rebuild reports image {} under {tag}, but its engine holds {} there: the \
             report is refused (the verdict is the engine's, never the node script's)",
            transport.node(),
            image.id,
            held.id
        );
    }
    let image = crate::record::manifest::ImageRecord {
        id: held.id,
        tag: tag.to_string(),
        created: held.created,
        labels: held.config.labels.unwrap_or_default(),
        layers: held.root_fs.layers,
        ..reported.image.clone()
    };
    Ok(Rebuilt { image, ..reported })
}

/// The node rebuilt with the recorded bases (of the same configuration) and arguments; the
/// source (and the date taken from it) the verdict compares.
fn check_inputs(m: &Manifest, rebuilt: &Rebuilt) -> Result<()> {
    let mut differ = Vec::new();
    let bases = |b: &[crate::record::manifest::BaseImage]| -> Vec<(String, Option<String>)> {
        b.iter()
            .map(|b| (b.arg.clone(), b.config_digest.clone()))
            .collect()
    };
    if bases(&rebuilt.base_images) != bases(&m.base_images) {
        differ.push("base images");
    }
    if rebuilt.build_args != m.build_args {
        differ.push("build arguments");
    }
    if !differ.is_empty() {
        bail!(
            "node {} rebuilt other inputs than build {} recorded ({}): nothing to compare; on \
             that node, `make bases` makes the same base images",
            rebuilt.node,
            m.build_id,
            differ.join(", ")
        );
    }
    Ok(())
}

/// Where the images first part: the first layer (bottom first) whose files differ, and the first
/// path in it that does; when every differing layer differs only in metadata or removals (a
/// timestamp, a folder's mode), the first differing layer. Both images are streamed out of their
/// nodes.
fn first_difference(
    repo: &Path,
    m: &Manifest,
    node: &NodeName,
    rebuilt: &Rebuilt,
    tag: &str,
) -> Result<FirstDifference> {
    let ours = &m.image.as_ref().expect("checked by the caller").layers;
    let theirs = &rebuilt.image.layers;
    let differing: Vec<usize> = (0..ours.len().max(theirs.len()))
        .filter(|&i| ours.get(i) != theirs.get(i))
        .collect();
    let at = |layer: usize, path: Option<String>| FirstDifference {
        layer,
        layer_a: ours.get(layer).cloned(),
        layer_b: theirs.get(layer).cloned(),
        path,
    };
    let Some(&first) = differing.first() else {
        return Ok(at(ours.len(), None));
    };
    let image = &m.image.as_ref().expect("checked by the caller").id;
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            let from = Transport::connect(repo, &m.node)?;
            read_saved_image(&from, image, image_fs::layer_listings_from_save)
        });
        let b = scope.spawn(|| {
            let on = Transport::connect(repo, node)?;
            read_saved_image(&on, tag, image_fs::layer_listings_from_save)
        });
        (
            a.join().expect("listing thread"),
            b.join().expect("listing thread"),
        )
    });
    let (a, b) = (a?, b?);
    let empty = Listing::new();
    Ok(differing
        .iter()
        .find_map(|&layer| {
            first_differing_path(
                a.get(layer).unwrap_or(&empty),
                b.get(layer).unwrap_or(&empty),
            )
            .map(|path| at(layer, Some(path)))
        })
        .unwrap_or_else(|| at(first, None)))
}

/// The first path, in order, that one listing has and the other has not, or has otherwise.
pub fn first_differing_path(a: &Listing, b: &Listing) -> Option<String> {
    a.keys()
        .chain(b.keys())
        .filter(|path| a.get(*path) != b.get(*path))
        .min()
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::image_fs::Node;

    fn file(sha: &str) -> Node {
        Node::File {
            mode: 0o755,
            sha256: sha.into(),
        }
    }

    #[test]
    fn the_first_differing_path_is_the_least_one_either_side_disagrees_on() {
        let a: Listing = [
            ("usr/local/bin/api".into(), file("aa")),
            ("usr/x".into(), file("1")),
        ]
        .into();
        let mut b = a.clone();
        assert_eq!(first_differing_path(&a, &b), None);
        b.insert("usr/local/bin/api".into(), file("bb"));
        b.insert("zz/only-b".into(), file("2"));
        assert_eq!(
            first_differing_path(&a, &b).as_deref(),
            Some("usr/local/bin/api")
        );
        b.insert("etc/only-b".into(), file("3"));
        assert_eq!(first_differing_path(&a, &b).as_deref(), Some("etc/only-b"));
    }
}
