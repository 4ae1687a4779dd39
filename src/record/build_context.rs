//! The build context, made by prov from the recorded tree: docker receives a tar stream, not a
//! folder, so nothing enters the build that the record does not name.
//!
//! The stream holds the files of the hashed tree under the policy's `from_tree` paths, each
//! checked against the blob the tree records for it (same bytes, same mode), and the declared
//! derived inputs (vendored crates), recorded by their own digest. A file on disk under a
//! `from_tree` path that the tree does not hold (ignored, excluded, inside a nested repository)
//! would have entered a build from the folder: the build is refused, naming it. Entries carry
//! fixed owners and times, in path order, so the same inputs give the same stream.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use git2::{ObjectType, Oid};

use crate::record::digest::{sha256_hex, HashingWriter};
use crate::record::manifest::{BuildContext, DerivedInput};
use crate::record::policy::{ContextSpec, DerivedSpec, Proof};
use crate::record::tree_hash::TreeFile;
use crate::record::vendor;

const MODE_FILE: u32 = 0o100644;
const MODE_EXEC: u32 = 0o100755;
const MODE_LINK: u32 = 0o120000;
const MODE_REPO: u32 = 0o160000;

/// The context folder as a prefix of repository paths (`.`, the root, is the empty prefix).
pub fn as_prefix(context_dir: &Path) -> &Path {
    if context_dir == Path::new(".") {
        Path::new("")
    } else {
        context_dir
    }
}

/// The context written to `tar`, and its record. The tar file goes when this does.
pub struct Made {
    pub record: BuildContext,
    pub tar: PathBuf,
}

impl Drop for Made {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.tar);
    }
}

/// Writes the context for `spec` (relative to `context_dir`, itself relative to the checkout
/// `root`) from the tree's `files` into the tar file `tar`.
pub fn make(
    root: &Path,
    context_dir: &Path,
    spec: &ContextSpec,
    files: &[TreeFile],
    tar: &Path,
) -> Result<Made> {
    let chosen = chosen_files(context_dir, spec, files)?;
    refuse_undeclared(root, context_dir, spec, &chosen)?;

    let base = root.join(context_dir);
    let out = File::create(tar).with_context(|| format!("creating {}", tar.display()))?;
    // The proofs of the derived inputs run beside the writing of the stream (each reads every
    // vendored file; side by side they take about the time of the longer). A failed proof
    // fails the build: the stream is then never handed to docker.
    let (written, proven) = std::thread::scope(|scope| {
        let proven = scope.spawn(|| {
            spec.derived
                .iter()
                .try_for_each(|input| prove(root, &base, input))
        });
        let written = write_stream(root, &base, spec, &chosen, BufWriter::new(out));
        (written, proven.join())
    });
    proven.map_err(|_| anyhow!("the proof of the derived inputs panicked"))??;
    let (record, file) = written?;
    // Flushed, not synced: docker reads the file at once, and it goes after the build.
    file.into_inner()
        .map_err(|e| anyhow!("writing {}: {}", tar.display(), e.error()))?;
    Ok(Made {
        record: BuildContext {
            path: context_dir.to_string_lossy().into_owned(),
            ..record
        },
        tar: tar.to_path_buf(),
    })
}

/// The record of the context `make` would write for these inputs, without writing it: the host
/// makes the same stream from its own files to prove a record's `context`. Undeclared files are
/// refused as `make` refuses them; the derived inputs are not proved again (the host's vendored
/// crates are its own).
pub fn record_of(
    root: &Path,
    context_dir: &Path,
    spec: &ContextSpec,
    files: &[TreeFile],
) -> Result<BuildContext> {
    let chosen = chosen_files(context_dir, spec, files)?;
    refuse_undeclared(root, context_dir, spec, &chosen)?;
    let (record, _) = write_stream(
        root,
        &root.join(context_dir),
        spec,
        &chosen,
        std::io::sink(),
    )?;
    Ok(BuildContext {
        path: context_dir.to_string_lossy().into_owned(),
        ..record
    })
}

/// The context's entries, written to `out`: the recorded files, then each derived input whole.
/// Returns its record (with no folder) and the writer.
fn write_stream<W: Write>(
    root: &Path,
    base: &Path,
    spec: &ContextSpec,
    chosen: &[(PathBuf, &TreeFile)],
    out: W,
) -> Result<(BuildContext, W)> {
    let mut builder = tar::Builder::new(HashingWriter::new(out));
    builder.mode(tar::HeaderMode::Deterministic);
    let mut count = 0u64;
    for (rel, file) in chosen {
        append_recorded(&mut builder, &root.join(&file.path), rel, file)?;
        count += 1;
    }
    let mut derived = Vec::new();
    for input in &spec.derived {
        let (input, added) = append_derived(&mut builder, base, &input.path)?;
        derived.push(input);
        count += added;
    }
    let (out, sha256, bytes) = builder
        .into_inner()
        .context("finishing the context")?
        .finish()?;
    let record = BuildContext {
        path: String::new(),
        from_tree: spec.from_tree.clone(),
        derived,
        files: count,
        bytes,
        sha256,
    };
    Ok((record, out))
}

/// The tree's files under the policy's `from_tree` paths, relative to the context folder, in
/// path order; a nested repository is refused.
fn chosen_files<'a>(
    context_dir: &Path,
    spec: &ContextSpec,
    files: &'a [TreeFile],
) -> Result<Vec<(PathBuf, &'a TreeFile)>> {
    let in_context = |p: &Path| -> Option<PathBuf> {
        let rel = p.strip_prefix(as_prefix(context_dir)).ok()?;
        spec.from_tree
            .iter()
            .any(|r| rel.starts_with(r))
            .then(|| rel.to_path_buf())
    };
    let mut chosen: Vec<(PathBuf, &TreeFile)> = files
        .iter()
        .filter_map(|f| in_context(&f.path).map(|rel| (rel, f)))
        .collect();
    chosen.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some((rel, _)) = chosen.iter().find(|(_, f)| f.mode == MODE_REPO) {
        bail!(
            "{} is a nested repository: its files are not in the recorded tree, and a build \
             context holds only recorded files; move it out of the context",
            rel.display()
        );
    }
    Ok(chosen)
}

/// Every file on disk under a `from_tree` path must be one of the tree's.
fn refuse_undeclared(
    root: &Path,
    context_dir: &Path,
    spec: &ContextSpec,
    chosen: &[(PathBuf, &TreeFile)],
) -> Result<()> {
    let recorded: BTreeSet<&Path> = chosen.iter().map(|(rel, _)| rel.as_path()).collect();
    let mut extra = Vec::new();
    for start in &spec.from_tree {
        let base = root.join(context_dir);
        walk(&base, Path::new(start), &mut |rel, _| {
            if !recorded.contains(rel) {
                extra.push(rel.display().to_string());
            }
            Ok(())
        })?;
    }
    if !extra.is_empty() {
        let shown: Vec<&str> = extra.iter().take(10).map(String::as_str).collect();
        bail!(
            "{} file(s) in the build context are not in the recorded tree (ignored, excluded by \
             .git/info/exclude or a global excludes file, or inside a nested repository): {}{}. \
             They would have entered a build from the folder. Remove them, or add them to the \
             repository",
            extra.len(),
            shown.join(", "),
            if extra.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Calls `visit` with every file and symbolic link under `base/start` (relative to `base`),
/// in path order; a missing `start` is no error (the tree then holds nothing there either).
fn walk(
    base: &Path,
    start: &Path,
    visit: &mut dyn FnMut(&Path, &fs::Metadata) -> Result<()>,
) -> Result<()> {
    let full = base.join(start);
    let meta = match fs::symlink_metadata(&full) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", full.display())),
    };
    if meta.is_dir() {
        let mut names: Vec<_> = fs::read_dir(&full)
            .with_context(|| format!("listing {}", full.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            walk(base, &start.join(name), visit)?;
        }
        Ok(())
    } else {
        visit(start, &meta)
    }
}

/// One recorded file, after checking that its bytes and mode are the recorded blob's.
fn append_recorded<W: Write>(
    builder: &mut tar::Builder<W>,
    full: &Path,
    rel: &Path,
    file: &TreeFile,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    let changed = || {
        anyhow!(
            "{} changed after the tree was hashed (or a git filter changes its bytes): it is not \
             what the record names; build again",
            rel.display()
        )
    };
    match file.mode {
        MODE_LINK => {
            let target =
                fs::read_link(full).with_context(|| format!("reading {}", full.display()))?;
            let bytes = target.as_os_str().as_encoded_bytes();
            if Oid::hash_object(ObjectType::Blob, bytes)? != file.id {
                return Err(changed());
            }
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, rel, &target)?;
        }
        MODE_FILE | MODE_EXEC => {
            let bytes = fs::read(full).with_context(|| format!("reading {}", full.display()))?;
            let exec = fs::metadata(full)?.permissions().mode() & 0o111 != 0;
            if Oid::hash_object(ObjectType::Blob, &bytes)? != file.id
                || exec != (file.mode == MODE_EXEC)
            {
                return Err(changed());
            }
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if exec { 0o755 } else { 0o644 });
            header.set_size(bytes.len() as u64);
            builder.append_data(&mut header, rel, bytes.as_slice())?;
        }
        other => bail!(
            "{} has git mode {other:o}, which a build context cannot hold",
            rel.display()
        ),
    }
    Ok(())
}

/// A derived input is what its proof says it must be, before it enters the stream.
fn prove(root: &Path, base: &Path, input: &DerivedSpec) -> Result<()> {
    match input.proof {
        Proof::CargoVendor => {
            vendor::check(
                &base.join("Cargo.lock"),
                &base.join(&input.path),
                &root.join(vendor::ARCHIVES),
            )
            .with_context(|| format!("proving {} against Cargo.lock", input.path))?;
        }
    }
    Ok(())
}

/// A derived input, whole; its digest covers every file's path, mode and content.
fn append_derived<W: Write>(
    builder: &mut tar::Builder<W>,
    base: &Path,
    name: &str,
) -> Result<(DerivedInput, u64)> {
    let mut listing = String::new();
    let mut count = 0u64;
    walk(base, Path::new(name), &mut |rel, meta| {
        let full = base.join(rel);
        let mut header = tar::Header::new_gnu();
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&full)?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, rel, &target)?;
            listing.push_str(&format!("link {} {}\n", rel.display(), target.display()));
        } else if meta.is_file() {
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            let bytes = fs::read(&full).with_context(|| format!("reading {}", full.display()))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(mode);
            header.set_size(bytes.len() as u64);
            builder.append_data(&mut header, rel, bytes.as_slice())?;
            listing.push_str(&format!(
                "{mode:o} {} {}\n",
                sha256_hex(&bytes),
                rel.display()
            ));
        } else {
            bail!("{} is neither a file nor a link", full.display());
        }
        count += 1;
        Ok(())
    })?;
    if count == 0 {
        bail!(
            "the derived input {name} is missing or empty in {}: make it first (the host's \
             `make demo` vendors the crates)",
            base.display()
        );
    }
    Ok((
        DerivedInput {
            path: name.to_string(),
            sha256: sha256_hex(listing.as_bytes()),
            files: count,
        },
        count,
    ))
}
