//! An image's filesystem, file by file, read from a `docker save` stream: what `prov diff` uses
//! to tell whether two images hold the same bits even when their ids differ. Timestamps and
//! owners are ignored; type, permission bits and content (or link target) are compared.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, Read};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// One path of the flattened filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, sha256: String },
    Link { target: String },
}

pub type Listing = BTreeMap<String, Node>;

/// What one layer does, in archive order.
#[derive(Clone)]
enum Op {
    Put(String, Node),
    /// `.wh.<name>`: the path and everything under it is gone.
    Whiteout(String),
    /// `.wh..wh..opq`: the directory's earlier contents are gone.
    Opaque(String),
}

#[derive(Deserialize)]
struct SaveManifest {
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Reads a `docker save` archive (legacy or OCI layout) and flattens its layers in order.
pub fn listing_from_save(reader: impl Read) -> Result<Listing> {
    let mut listing = Listing::new();
    for layer in layers_in_order(reader)? {
        apply(&mut listing, layer.ops);
    }
    Ok(listing)
}

/// Like [`listing_from_save`], but only when the archive's layers are exactly `diff_ids`: each
/// layer's uncompressed bytes hash to the digest the image's configuration names for it. What
/// stored the image on the node (its layer folders, its snapshots) cannot then change the
/// listing, only make it refused.
pub fn proven_listing_from_save(reader: impl Read, diff_ids: &[String]) -> Result<Listing> {
    let layers = layers_in_order(reader)?;
    let found: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    if found != diff_ids.iter().map(String::as_str).collect::<Vec<_>>() {
        bail!(
            "the saved image's layers hash to {found:?}, not to the image's layer digests \
             {diff_ids:?}"
        );
    }
    let mut listing = Listing::new();
    for layer in layers {
        apply(&mut listing, layer.ops);
    }
    Ok(listing)
}

/// Reads a `docker save` archive and lists what each layer itself puts, bottom layer first
/// (what it removes from the layers below is left out).
pub fn layer_listings_from_save(reader: impl Read) -> Result<Vec<Listing>> {
    Ok(layers_in_order(reader)?
        .into_iter()
        .map(|layer| {
            layer
                .ops
                .into_iter()
                .filter_map(|op| match op {
                    Op::Put(path, node) => Some((path, node)),
                    Op::Whiteout(_) | Op::Opaque(_) => None,
                })
                .collect()
        })
        .collect())
}

/// One layer: the sha256 of its uncompressed archive (its diff ID) and what it does.
#[derive(Clone)]
struct Layer {
    diff_id: String,
    ops: Vec<Op>,
}

fn layers_in_order(reader: impl Read) -> Result<Vec<Layer>> {
    let mut archive = tar::Archive::new(reader);
    let mut layers: HashMap<String, Layer> = HashMap::new();
    let mut aliases: HashMap<String, String> = HashMap::new();
    let mut order: Option<Vec<String>> = None;
    for entry in archive
        .entries()
        .context("reading the docker save stream")?
    {
        let mut entry = entry.context("reading the docker save stream")?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if path == "manifest.json" {
            let mut manifests: Vec<SaveManifest> =
                serde_json::from_reader(&mut entry).context("parsing manifest.json")?;
            order = manifests.pop().map(|m| m.layers);
        } else if entry.header().entry_type() == tar::EntryType::Symlink {
            // The classic store saves a layer an image holds twice once, and links the second.
            if let Some(target) = entry.link_name()? {
                let target = resolve(&path, &target.to_string_lossy());
                aliases.insert(path, target);
            }
        } else if path.ends_with("layer.tar") || path.starts_with("blobs/") {
            // OCI blobs include the config JSON: only what reads as a tar is a layer. The
            // containerd store saves layers as BuildKit made them: gzip-compressed.
            let mut blob = io::BufReader::new(&mut entry);
            let gzip = blob
                .fill_buf()
                .is_ok_and(|head| head.starts_with(&[0x1f, 0x8b]));
            let layer = if gzip {
                read_layer(flate2::read::GzDecoder::new(blob))
            } else {
                read_layer(blob)
            };
            if let Ok(layer) = layer {
                layers.insert(path, layer);
            }
        }
    }
    let order = order.context("the docker save stream has no manifest.json")?;
    order
        .iter()
        .map(|layer| {
            let stored = aliases.get(layer).unwrap_or(layer);
            // An image may hold the same layer twice: the archive holds it once.
            layers
                .get(stored)
                .cloned()
                .with_context(|| format!("layer {layer} is missing from the docker save stream"))
        })
        .collect()
}

/// Where a link at `path` inside the archive leads, relative to the archive's top.
fn resolve(path: &str, target: &str) -> String {
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// Hashes what it reads.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A layer's operations and the digest of all its bytes (the tar reader stops at the archive's
/// end marker: the padding after it counts too).
fn read_layer(reader: impl Read) -> io::Result<Layer> {
    let mut hashing = Hashing {
        inner: reader,
        hasher: Sha256::new(),
    };
    let ops = layer_ops(&mut hashing)?;
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(Layer {
        diff_id: format!("sha256:{:x}", hashing.hasher.finalize()),
        ops,
    })
}

fn layer_ops(reader: impl Read) -> io::Result<Vec<Op>> {
    let mut ops = Vec::new();
    // A hard link is the file it links to, which comes earlier in the same archive.
    let mut files: HashMap<String, Node> = HashMap::new();
    for entry in tar::Archive::new(reader).entries()? {
        let mut entry = entry?;
        let path = normalize(&entry.path()?.to_string_lossy());
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (dir.to_string(), name.to_string()),
            None => (String::new(), path.clone()),
        };
        if name == ".wh..wh..opq" {
            ops.push(Op::Opaque(dir));
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            ops.push(Op::Whiteout(join(&dir, hidden)));
            continue;
        }
        let mode = entry.header().mode()? & 0o7777;
        let node = match entry.header().entry_type() {
            tar::EntryType::Directory => Node::Dir { mode },
            kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                let target = entry
                    .link_name()?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match files.get(&normalize(&target)) {
                    Some(file) if kind == tar::EntryType::Link => file.clone(),
                    _ => Node::Link { target },
                }
            }
            _ => {
                let mut hasher = Sha256::new();
                io::copy(&mut entry, &mut hasher)?;
                let file = Node::File {
                    mode,
                    sha256: format!("{:x}", hasher.finalize()),
                };
                files.insert(path.clone(), file.clone());
                file
            }
        };
        ops.push(Op::Put(path, node));
    }
    Ok(ops)
}

/// Whiteouts hide what lower layers hold, never what this layer adds: delete first, then put.
fn apply(listing: &mut Listing, ops: Vec<Op>) {
    for op in &ops {
        match op {
            Op::Whiteout(path) => {
                let prefix = format!("{path}/");
                listing.retain(|p, _| p != path && !p.starts_with(&prefix));
            }
            Op::Opaque(dir) => {
                let prefix = format!("{dir}/");
                listing.retain(|p, _| !p.starts_with(&prefix));
            }
            Op::Put(..) => {}
        }
    }
    for op in ops {
        if let Op::Put(path, node) = op {
            listing.insert(path, node);
        }
    }
}

fn normalize(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_end_matches('/')
        .to_string()
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Paths whose entries differ, and paths present on one side only.
#[derive(Debug, Default, PartialEq)]
pub struct Comparison {
    pub compared: usize,
    pub differing: Vec<String>,
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
}

pub fn compare(a: &Listing, b: &Listing) -> Comparison {
    let mut result = Comparison {
        compared: a.len().max(b.len()),
        ..Comparison::default()
    };
    for (path, node) in a {
        match b.get(path) {
            Some(other) if other == node => {}
            Some(_) => result.differing.push(path.clone()),
            None => result.only_a.push(path.clone()),
        }
    }
    result.only_b = b.keys().filter(|p| !a.contains_key(*p)).cloned().collect();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(rand_mtime(path));
            header.set_cksum();
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    // Timestamps must not matter: give every file a different one.
    fn rand_mtime(path: &str) -> u64 {
        path.len() as u64 * 7919
    }

    fn save(layers: &[Vec<u8>]) -> Vec<u8> {
        let names: Vec<String> = (0..layers.len())
            .map(|i| format!("l{i}/layer.tar"))
            .collect();
        let blobs: Vec<(&str, &[u8])> = names
            .iter()
            .map(String::as_str)
            .zip(layers.iter().map(Vec::as_slice))
            .collect();
        let order: Vec<&str> = names.iter().map(String::as_str).collect();
        archive(&blobs, &[], &order)
    }

    /// A `docker save` archive: its blobs, its links (path, target) and its manifest's layer
    /// order.
    fn archive(blobs: &[(&str, &[u8])], links: &[(&str, &str)], order: &[&str]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in blobs {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        for (path, target) in links {
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_size(0);
            link.set_mode(0o777);
            builder.append_link(&mut link, path, target).unwrap();
        }
        let manifest = serde_json::json!([{ "Layers": order }]).to_string();
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest.len() as u64);
        header.set_cksum();
        builder
            .append_data(&mut header, "manifest.json", manifest.as_bytes())
            .unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn later_layers_override_and_whiteouts_delete() {
        let base = layer(&[("etc/a", b"1"), ("etc/b", b"2"), ("opt/x/y", b"3")]);
        let top = layer(&[
            ("opt/x/new", b"4"),
            ("etc/a", b"changed"),
            ("etc/.wh.b", b""),
            ("opt/x/.wh..wh..opq", b""),
        ]);
        let listing = listing_from_save(save(&[base, top]).as_slice()).unwrap();
        assert_eq!(
            listing.keys().cloned().collect::<Vec<_>>(),
            vec!["etc/a".to_string(), "opt/x/new".to_string()]
        );
        let Node::File { sha256, .. } = &listing["etc/a"] else {
            panic!("etc/a is a file")
        };
        assert_eq!(*sha256, crate::record::digest::sha256_hex(b"changed"));
    }

    #[test]
    fn gzip_compressed_layers_read_as_their_tar() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &layer(&[("bin/app", b"v1")])).unwrap();
        let plain = listing_from_save(save(&[layer(&[("bin/app", b"v1")])]).as_slice()).unwrap();
        let compressed = listing_from_save(save(&[gz.finish().unwrap()]).as_slice()).unwrap();
        assert_eq!(plain, compressed);
    }

    #[test]
    fn a_proven_listing_needs_every_layer_to_hash_to_its_digest_in_order() {
        let base = layer(&[("bin/app", b"v1")]);
        let top = layer(&[("etc/conf", b"x")]);
        let digest = |l: &[u8]| format!("sha256:{}", crate::record::digest::sha256_hex(l));
        let ids = [digest(&base), digest(&top)];
        let saved = save(&[base.clone(), top.clone()]);
        assert_eq!(
            proven_listing_from_save(saved.as_slice(), &ids).unwrap(),
            listing_from_save(saved.as_slice()).unwrap()
        );
        let swapped = [ids[1].clone(), ids[0].clone()];
        let err = proven_listing_from_save(saved.as_slice(), &swapped).unwrap_err();
        assert!(
            err.to_string().contains("not to the image's layer digests"),
            "{err}"
        );
        // A layer's bytes changed after the image was made (its stored files edited, say).
        let edited = layer(&[("bin/app", b"v2")]);
        let err = proven_listing_from_save(save(&[edited, top]).as_slice(), &ids).unwrap_err();
        assert!(err.to_string().contains(&ids[1]), "{err}");
    }

    #[test]
    fn a_layer_held_twice_is_read_twice_whether_saved_once_or_linked() {
        let base = layer(&[("bin/app", b"v1")]);
        let top = layer(&[("etc/conf", b"x")]);
        let digest = |l: &[u8]| format!("sha256:{}", crate::record::digest::sha256_hex(l));
        let ids = [digest(&base), digest(&top), digest(&base)];
        // OCI: the manifest names the one blob twice.
        let oci = archive(
            &[("blobs/sha256/b", &base), ("blobs/sha256/t", &top)],
            &[],
            &["blobs/sha256/b", "blobs/sha256/t", "blobs/sha256/b"],
        );
        assert!(proven_listing_from_save(oci.as_slice(), &ids).is_ok());
        // Classic: the second copy is a link to the first.
        let classic = archive(
            &[("l0/layer.tar", &base), ("l1/layer.tar", &top)],
            &[("l2/layer.tar", "../l0/layer.tar")],
            &["l0/layer.tar", "l1/layer.tar", "l2/layer.tar"],
        );
        assert!(proven_listing_from_save(classic.as_slice(), &ids).is_ok());
    }

    #[test]
    fn a_hard_link_is_the_file_it_links_to() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o755);
        header.set_cksum();
        builder
            .append_data(&mut header, "usr/bin/perl", b"v1".as_slice())
            .unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Link);
        link.set_mode(0o755);
        link.set_size(0);
        builder
            .append_link(&mut link, "usr/bin/perl5.36", "usr/bin/perl")
            .unwrap();
        let listing = listing_from_save(save(&[builder.into_inner().unwrap()]).as_slice()).unwrap();
        assert_eq!(listing["usr/bin/perl5.36"], listing["usr/bin/perl"]);
    }

    #[test]
    fn comparison_names_the_changed_and_one_sided_files() {
        let a =
            listing_from_save(save(&[layer(&[("bin/app", b"v1"), ("etc/x", b"same")])]).as_slice())
                .unwrap();
        let b = listing_from_save(
            save(&[layer(&[
                ("bin/app", b"v2"),
                ("etc/x", b"same"),
                ("new", b""),
            ])])
            .as_slice(),
        )
        .unwrap();
        let c = compare(&a, &b);
        assert_eq!(c.differing, vec!["bin/app"]);
        assert!(c.only_a.is_empty());
        assert_eq!(c.only_b, vec!["new"]);
        assert_eq!(
            compare(&a, &a),
            Comparison {
                compared: 2,
                ..Comparison::default()
            }
        );
    }
}
