//! What the host already proved of a node's records: the chain it imported, kept as ids and
//! digests in the host's state (`imported/<node>.json`), so that verify asks the node only for
//! what is newer and a node's long history costs nothing per check.
//!
//! It is derived from the host's own copy (`provenance/<node>/`), written by each import, and
//! recomputed from that copy when it is missing or unreadable: the copy stays the truth.

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::host::state::HostState;
use crate::record::bounded;
use crate::record::nodes::NodeName;
use crate::record::store::{records_digest, write_atomic, ChainLink, Store};

/// The host's proven chain of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// Every imported record, in chain order.
    pub links: Vec<ChainLink>,
    /// `records_digest` of them: what the node's copies of the same records must hash to.
    pub digest: String,
}

impl Held {
    /// Computed from the host's copy of the node's records, which an import left intact.
    pub fn of_store(store: &Store) -> Result<Held> {
        let links: Vec<ChainLink> = store.chain()?.iter().map(ChainLink::from).collect();
        if let Some(problem) = links.iter().find_map(|l| l.problem.as_ref()) {
            bail!(
                "the host's copy of node {}'s records in {} is not an intact chain ({problem}): \
                 restore it from version control",
                store.node(),
                store.dir().display()
            );
        }
        Ok(Held::from_links(links))
    }

    fn from_links(links: Vec<ChainLink>) -> Held {
        let digest = records_digest(
            links
                .iter()
                .filter_map(|l| Some((l.build_id.as_str(), l.sha256.as_deref()?))),
        );
        Held { links, digest }
    }

    /// The host's proven chain of the node: kept in the host's state, or recomputed from its copy
    /// when the kept one is missing, unreadable, or not the copy's (never written here: verify
    /// changes nothing).
    pub fn load(state: &HostState, store: &Store) -> Result<Held> {
        let kept = bounded::read(&path(state, store.node()))
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<Held>(&bytes).ok())
            .filter(|held| held.is_of(store));
        match kept {
            Some(held) => Ok(held),
            None => Held::of_store(store),
        }
    }

    /// A kept chain is the copy's when it names the same records (their names only: listing a
    /// folder reads no record) and the copy's `latest` is one of them with the same digest. An
    /// import writes all three; a copy changed since (restored, pruned) makes verify recompute.
    fn is_of(&self, store: &Store) -> bool {
        let mut ids: Vec<&str> = self.links.iter().map(|l| l.build_id.as_str()).collect();
        ids.sort_unstable();
        let same_records = store.build_ids().is_ok_and(|held| held == ids);
        same_records
            && match store.latest_pointer() {
                Ok(Some(pointer)) => self.links.iter().any(|l| {
                    l.build_id == pointer.build_id
                        && l.sha256.as_deref() == Some(pointer.manifest_sha256.as_str())
                }),
                Ok(None) => self.links.is_empty(),
                Err(_) => false,
            }
    }

    /// Written by the import, after it wrote the records.
    pub fn save(&self, state: &HostState, node: &NodeName) -> Result<()> {
        let path = path(state, node);
        let dir = path.parent().expect("has a parent");
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut bytes = serde_json::to_vec(self)?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes)?;
        Ok(())
    }

    /// The newest build id the host holds: the node's records named up to it are the held ones,
    /// those after it are new.
    pub fn boundary(&self) -> Option<&str> {
        self.links.iter().map(|l| l.build_id.as_str()).max()
    }

    /// The sha256 of the last record in chain order, which the node's next record chains onto.
    pub fn tip(&self) -> Option<&str> {
        self.links.last().and_then(|l| l.sha256.as_deref())
    }
}

fn path(state: &HostState, node: &NodeName) -> PathBuf {
    state.dir().join("imported").join(format!("{node}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: &str, sha: char) -> ChainLink {
        ChainLink {
            build_id: id.into(),
            sha256: Some(sha.to_string().repeat(64)),
            success: true,
            problem: None,
        }
    }

    #[test]
    fn the_boundary_is_the_newest_name_and_the_tip_the_last_link() {
        // A node's clock stepped back: chain order and name order differ.
        let held = Held::from_links(vec![
            link("20261206-100000-000-aaaa", 'a'),
            link("20261206-090000-000-bbbb", 'b'),
        ]);
        assert_eq!(held.boundary(), Some("20261206-100000-000-aaaa"));
        assert_eq!(held.tip(), Some("b".repeat(64).as_str()));
        assert_eq!(Held::from_links(Vec::new()).boundary(), None);
    }

    #[test]
    fn a_kept_chain_is_used_only_while_it_names_the_copys_records_and_latest() {
        let tmp = tempfile::tempdir().unwrap();
        let state = HostState::at(&tmp.path().join("state"));
        let store = Store::new(&tmp.path().join("provenance"), &"main".parse().unwrap());
        fs::create_dir_all(store.dir()).unwrap();
        // Two records chained as a build chains them, from a captured one.
        let fixtures = Store::new(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/verify/main/provenance"),
            store.node(),
        );
        let captured = fixtures.latest().unwrap().manifest;
        let mut prev = None;
        for id in ["20261206-090000-000-aaaa", "20261206-100000-000-bbbb"] {
            let mut m = captured.clone();
            m.build_id = id.into();
            m.prev_manifest_sha256 = prev.clone();
            let sha = store.write_manifest(&m).unwrap();
            store
                .set_latest(&crate::record::manifest::LatestPointer {
                    build_id: id.into(),
                    manifest_sha256: sha.clone(),
                })
                .unwrap();
            prev = Some(sha);
        }
        let held = Held::of_store(&store).unwrap();
        held.save(&state, store.node()).unwrap();
        assert_eq!(Held::load(&state, &store).unwrap(), held);
        // A kept chain that is not the copy's is not used: here it names the copy's latest, but
        // not the record before it.
        let stale = Held::from_links(held.links[1..].to_vec());
        stale.save(&state, store.node()).unwrap();
        assert_eq!(Held::load(&state, &store).unwrap(), held);
    }

    #[test]
    fn the_digest_is_what_sha256sum_prints_for_the_records_hashed_in_name_order() {
        let held = Held::from_links(vec![
            link("20261206-100000-000-aaaa", 'a'),
            link("20261206-090000-000-bbbb", 'b'),
        ]);
        let lines = format!(
            "{}  20261206-090000-000-bbbb.json\n{}  20261206-100000-000-aaaa.json\n",
            "b".repeat(64),
            "a".repeat(64)
        );
        assert_eq!(
            held.digest,
            crate::record::digest::sha256_hex(lines.as_bytes())
        );
    }
}
