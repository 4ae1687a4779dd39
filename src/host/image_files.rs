//! What an image's files hold, as the host proved them. A node's engine names an image's layers
//! by digest (their diff IDs), but runs a container on the files it stored for them: a root that
//! edits those files on the node's disk keeps the image's ID, layers and configuration, and the
//! next container runs other bytes. So the host lists every file of each image a stack
//! container runs, from a `docker save` of it streamed out of the node, taken only when each
//! layer of the stream hashes to its digest: whatever the node's store saves (the classic
//! store rebuilds the stream from its stored files, the containerd store saves its blobs), a
//! stream that is not the image's layers is refused. The listing is made once per image, when a
//! build is imported, and kept in the host's state by the image's chain ID; verify holds the
//! bytes each stack container executes to it (`runs:<service>`).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::host::diff::read_saved_image;
use crate::host::state::HostState;
use crate::host::transport::Transport;
use crate::record::digest::sha256_hex;
use crate::record::image_fs::{self, Node};

/// A path of the image's flattened filesystem that a lookup needs: a file's bytes, or where a
/// link leads. Folders are implied by their entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entry {
    File(String),
    Link(String),
}

/// An image's files, by path without the leading `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFiles(BTreeMap<String, Entry>);

/// The OCI chain ID of an image's layers: one name for the whole stack of them.
pub fn chain_id(layers: &[String]) -> String {
    layers.iter().skip(1).fold(
        layers.first().cloned().unwrap_or_default(),
        |chain, layer| {
            format!(
                "sha256:{}",
                sha256_hex(format!("{chain} {layer}").as_bytes())
            )
        },
    )
}

fn path(state: &HostState, layers: &[String]) -> PathBuf {
    let chain = chain_id(layers);
    state
        .dir()
        .join("image-files")
        .join(format!("{}.json", chain.trim_start_matches("sha256:")))
}

impl ImageFiles {
    /// The host's listing of the image with these layers, if it made one.
    pub fn load(state: &HostState, layers: &[String]) -> Result<Option<ImageFiles>> {
        let path = path(state, layers);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Lists the node's image `image`, whose layers are `layers`, unless the host did already;
    /// within the transport's deadline.
    pub fn ensure(
        transport: &Transport,
        state: &HostState,
        image: &str,
        layers: &[String],
    ) -> Result<()> {
        let path = path(state, layers);
        if path.exists() {
            return Ok(());
        }
        let node = transport.node();
        let listing = read_saved_image(transport, image, |stream| {
            image_fs::proven_listing_from_save(stream, layers)
        })
        .with_context(|| {
            format!(
                "listing the files of image {image} on node {node} (when its stored files are \
                 not its layers', remove the image on the node, `docker image rm {image}`, and \
                 run `make demo NODE={node}`, which loads or rebuilds it)"
            )
        })?;
        let files = ImageFiles::from_listing(listing);
        std::fs::create_dir_all(path.parent().expect("has a parent"))
            .with_context(|| format!("creating {}", path.display()))?;
        crate::record::store::write_atomic(&path, &serde_json::to_vec(&files)?)?;
        Ok(())
    }

    fn from_listing(listing: image_fs::Listing) -> ImageFiles {
        ImageFiles(
            listing
                .into_iter()
                .filter_map(|(path, node)| match node {
                    Node::File { sha256, .. } => Some((path, Entry::File(sha256))),
                    Node::Link { target } => Some((path, Entry::Link(target))),
                    Node::Dir { .. } => None,
                })
                .collect(),
        )
    }

    /// The sha256 of the regular file at `path` (absolute, as the container sees it), following
    /// the image's links as the kernel would; `None` when the image holds no file there.
    pub fn sha256_at(&self, path: &str) -> Option<&str> {
        let split = |p: &str| -> VecDeque<String> {
            p.split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .map(String::from)
                .collect()
        };
        let mut rest = split(path);
        let mut at: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = rest.pop_front() {
            if part == ".." {
                at.pop();
                continue;
            }
            at.push(part);
            match self.0.get(&at.join("/")) {
                Some(Entry::File(sha256)) => return rest.is_empty().then_some(sha256.as_str()),
                Some(Entry::Link(target)) => {
                    // The kernel gives up after 40 links; so does this.
                    links += 1;
                    if links > 40 {
                        return None;
                    }
                    at.pop();
                    if target.starts_with('/') {
                        at.clear();
                    }
                    let mut next = split(target);
                    next.extend(rest);
                    rest = next;
                }
                None => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, Entry)]) -> ImageFiles {
        ImageFiles(
            entries
                .iter()
                .map(|(p, e)| (p.to_string(), e.clone()))
                .collect(),
        )
    }

    #[test]
    fn a_path_is_found_through_the_images_links() {
        let image = files(&[
            ("bin", Entry::Link("usr/bin".into())),
            ("lib64", Entry::Link("/usr/lib64".into())),
            ("usr/bin/sh", Entry::Link("dash".into())),
            ("usr/bin/dash", Entry::File("d".into())),
            ("usr/lib64/ld.so", Entry::Link("../lib/ld-2.so".into())),
            ("usr/lib/ld-2.so", Entry::File("l".into())),
            ("loop", Entry::Link("loop".into())),
        ]);
        assert_eq!(image.sha256_at("/bin/sh"), Some("d"));
        assert_eq!(image.sha256_at("/usr/bin/dash"), Some("d"));
        assert_eq!(image.sha256_at("/lib64/ld.so"), Some("l"));
        assert_eq!(image.sha256_at("/usr/bin/../lib/ld-2.so"), Some("l"));
        assert_eq!(image.sha256_at("/usr/bin/dash/x"), None);
        assert_eq!(image.sha256_at("/tmp/evil.so"), None);
        assert_eq!(image.sha256_at("/usr/bin"), None);
        assert_eq!(image.sha256_at("/loop"), None);
    }

    #[test]
    fn the_chain_id_names_the_layers_in_order() {
        let (a, b) = ("sha256:aa".to_string(), "sha256:bb".to_string());
        assert_eq!(chain_id(std::slice::from_ref(&a)), a);
        let ab = chain_id(&[a.clone(), b.clone()]);
        assert_eq!(ab, format!("sha256:{}", sha256_hex(b"sha256:aa sha256:bb")));
        assert_ne!(ab, chain_id(&[b, a]));
    }
}
