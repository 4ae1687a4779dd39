//! The build context, made by prov from the recorded tree: docker receives a tar stream, not a
//! folder, so nothing enters the build that the record does not name.
//!
//! The stream holds the files of the hashed tree under the policy's `from_tree` paths, each
//! checked against the blob the tree records for it (same bytes, same mode), and the declared
//! derived inputs (vendored crates), recorded by their own digest. A file on disk under a
//! `from_tree` path that the tree does not hold (ignored, excluded, inside a nested repository)
//! would have entered a build from the folder: the build is refused, naming it. Entries carry
//! fixed owners and times, in path order, so the same inputs give the same stream.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs;
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

/// A context ready to be sent: the tree's files it holds, in path order, once nothing on disk
/// under its paths was found that the tree does not record.
pub struct Plan {
    root: PathBuf,
    context_dir: PathBuf,
    spec: ContextSpec,
    chosen: Vec<(PathBuf, TreeFile)>,
}

/// The context for `spec` (relative to `context_dir`, itself relative to the checkout `root`)
/// from the tree's `files`; undeclared files and nested repositories are refused here.
pub fn plan(
    root: &Path,
    context_dir: &Path,
    spec: &ContextSpec,
    files: &[TreeFile],
) -> Result<Plan> {
    let chosen = chosen_files(context_dir, spec, files)?;
    refuse_undeclared(root, context_dir, spec, &chosen)?;
    Ok(Plan {
        root: root.to_path_buf(),
        context_dir: context_dir.to_path_buf(),
        spec: spec.clone(),
        chosen: chosen
            .into_iter()
            .map(|(rel, file)| (rel, file.clone()))
            .collect(),
    })
}

impl Plan {
    /// Writes the context into `out` (the builder's standard input) while the builder reads
    /// it, and returns its record. The derived inputs are proven beside the writing (each
    /// reads every vendored file). The archive's end, its last 1,024 bytes, is written only
    /// once every file was checked against the tree and every proof passed: until then the
    /// builder cannot have the whole context, and so runs no step. On a failure `withdraw`
    /// is called first (it stops the builder: a stream cut at an entry's boundary would read
    /// as a whole, smaller context), the end is never written, and the stream ends with a
    /// block no tar reader takes.
    pub fn stream<W: Write>(&self, out: W, withdraw: impl FnOnce()) -> Result<BuildContext> {
        let base = self.root.join(&self.context_dir);
        let shut = Cell::new(false);
        // The archive (and the pipe under it) outlives the scope whatever happens: dropped, it
        // would write its end, and a closed pipe ends the stream.
        let (builder, appended, proven) = std::thread::scope(|scope| {
            let proven = scope.spawn(|| {
                self.spec
                    .derived
                    .iter()
                    .try_for_each(|input| prove(&self.root, &base, input))
            });
            let mut builder = new_builder(Gate {
                out: BufWriter::new(out),
                shut: &shut,
            });
            let appended = append_all(&mut builder, &self.root, &base, &self.spec, &self.chosen);
            (builder, appended, proven.join())
        });
        let proven =
            proven.unwrap_or_else(|_| Err(anyhow!("the proof of the derived inputs panicked")));
        match (appended, proven) {
            (Ok((files, derived)), Ok(())) => {
                let (record, mut gate) = finish(builder, &self.spec, files, derived)?;
                gate.flush().context("sending the build context")?;
                Ok(BuildContext {
                    path: self.context_dir.to_string_lossy().into_owned(),
                    ..record
                })
            }
            (appended, proven) => {
                withdraw();
                shut.set(true);
                drop(builder);
                let error = match appended {
                    Err(e) => e,
                    Ok(_) => proven.expect_err("one of the two failed"),
                };
                Err(error.context("the build context was withdrawn before its end"))
            }
        }
    }
}

/// The writer under the context's archive: shut, it takes no more bytes, and when it goes it
/// ends the stream with a block no tar reader takes for a header or for the archive's end, so
/// that a builder still reading fails on it.
struct Gate<'a, W: Write> {
    out: W,
    shut: &'a Cell<bool>,
}

impl<W: Write> Drop for Gate<'_, W> {
    fn drop(&mut self) {
        if self.shut.get() {
            let _ = self.out.write_all(&[0xff; 512]);
        }
    }
}

impl<W: Write> Write for Gate<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.shut.get() {
            return Err(std::io::Error::other("the build context was withdrawn"));
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.shut.get() {
            return Ok(());
        }
        self.out.flush()
    }
}

/// The record of the context `Plan::stream` would write for these inputs, without writing it:
/// the host makes the same stream from its own files to prove a record's `context`. Undeclared
/// files are refused as `plan` refuses them; the derived inputs are not proved again (the
/// host's vendored crates are its own).
pub fn record_of(
    root: &Path,
    context_dir: &Path,
    spec: &ContextSpec,
    files: &[TreeFile],
) -> Result<BuildContext> {
    let plan = plan(root, context_dir, spec, files)?;
    let mut builder = new_builder(std::io::sink());
    let (files, derived) = append_all(
        &mut builder,
        root,
        &root.join(context_dir),
        spec,
        &plan.chosen,
    )?;
    let (record, _) = finish(builder, spec, files, derived)?;
    Ok(BuildContext {
        path: context_dir.to_string_lossy().into_owned(),
        ..record
    })
}

/// A context archive over `out`, hashed as written, its entries with fixed owners and times.
fn new_builder<W: Write>(out: W) -> tar::Builder<HashingWriter<W>> {
    let mut builder = tar::Builder::new(HashingWriter::new(out));
    builder.mode(tar::HeaderMode::Deterministic);
    builder
}

/// The context's entries: the recorded files, then each derived input whole. Returns how many
/// entries, and the derived inputs' records.
fn append_all<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    base: &Path,
    spec: &ContextSpec,
    chosen: &[(PathBuf, TreeFile)],
) -> Result<(u64, Vec<DerivedInput>)> {
    let mut count = 0u64;
    for (rel, file) in chosen {
        append_recorded(builder, &root.join(&file.path), rel, file)?;
        count += 1;
    }
    let mut derived = Vec::new();
    for input in &spec.derived {
        let (input, added) = append_derived(builder, base, &input.path)?;
        derived.push(input);
        count += added;
    }
    Ok((count, derived))
}

/// Writes the archive's end; returns the context's record (with no folder) and the writer.
fn finish<W: Write>(
    builder: tar::Builder<HashingWriter<W>>,
    spec: &ContextSpec,
    files: u64,
    derived: Vec<DerivedInput>,
) -> Result<(BuildContext, W)> {
    let (out, sha256, bytes) = builder
        .into_inner()
        .context("finishing the context")?
        .finish()?;
    let record = BuildContext {
        path: String::new(),
        from_tree: spec.from_tree.clone(),
        derived,
        files,
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
