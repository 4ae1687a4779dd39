//! The git tree id of a working tree "as it is now".
//!
//! [`tree_state`] returns exactly the tree id that `git add -A && git
//! write-tree` would print in the checkout, computed in-process with libgit2,
//! without touching the repository's index and without writing anything into
//! the repository: no object, no index, no lock file.
//!
//! # How
//!
//! 1. HEAD is resolved on a normal handle (`real`).
//! 2. The index is loaded from `.git/index` into memory, once, through `real`
//!    (so it follows `core.filemode`, `core.symlinks`, `core.ignorecase`).
//! 3. `real` diffs that index against the working tree, with untracked files
//!    (recursing into untracked directories, without ignored ones) and type
//!    changes. That diff is git's stat shortcut: a tracked file whose mode,
//!    size, mtime (with nanoseconds), ctime (if `core.trustctime`), inode, uid
//!    and gid match its index entry keeps the recorded blob id without being
//!    read, unless the entry is "racily clean" (mtime not older than the index
//!    file), in which case it is re-hashed, as git does. Stat-dirty files are
//!    hashed through the checkin filters and dropped if unchanged. The diff
//!    is split by top-level name over two threads, each with its own handle
//!    and copy of the index, as git spreads its stat pass over threads.
//! 4. The in-memory index is handed to a second handle (`scratch`) whose
//!    object database is an in-memory mempack and nothing else. Each changed
//!    path is then applied as `git add -A` does: deleted paths are removed
//!    (which also resolves conflicts), changed and untracked files are added
//!    with `Index::add_path` (libgit2's `git add <path>`: filters such as CRLF
//!    normalisation and `ident`, executable bit, symlink targets), untracked
//!    nested repositories become gitlinks to their HEAD, and submodules get the
//!    commit checked out in them (git records it too; it does not look at
//!    their working trees). The blob created for each file goes to the
//!    mempack, which is emptied before the next file, so memory is bounded by
//!    the largest file.
//! 5. `write_tree` on that index: the root comes straight from git's cached
//!    tree ids when nothing changed; otherwise every tree is written into the
//!    mempack (see the comment at the end of `worktree_tree`). The mempack is
//!    dropped with `scratch`.
//!
//! The in-memory database does not hold the blobs and subtrees that are
//! already in the repository, so libgit2's process-global "strict object
//! creation" check (every id an index entry or a new tree refers to must
//! exist) is switched off while entries are added and the tree is written,
//! and back on afterwards; see [`LaxObjectCreation`]. The only reads the
//! checkin filters make from the object database (the index blob for the
//! CRLF "safer autocrlf" rule, `.gitattributes` read from the index) are
//! served by copying exactly those blobs into the mempack first.
//!
//! Known limits, shared with libgit2: external filter drivers (`filter=`
//! attributes such as git-lfs) are not run; split indexes and sha256
//! repositories cannot be read and give an error.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use git2::{
    AttrCheckFlags, Delta, DiffOptions, ErrorCode, Index, IndexEntry, IndexTime, ObjectType, Odb,
    Oid, Repository, RepositoryOpenFlags,
};
use serde::Serialize;

/// What the working tree hashes to, next to what HEAD says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeState {
    /// Full hex id of the commit HEAD points at; `None` when the branch has no
    /// commit yet.
    pub head_commit: Option<String>,
    /// Full hex id of that commit's tree.
    pub head_tree: Option<String>,
    /// That commit's time (the committer's), in seconds since the epoch.
    pub head_time: Option<i64>,
    /// Full hex id of the tree `git add -A && git write-tree` would print.
    pub tree: String,
    /// `tree` differs from `head_tree`, or there is no HEAD commit.
    pub dirty: bool,
}

/// Why a working tree could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum TreeHashError {
    #[error(
        "not a git repository: {path} (expected the project checkout; run from the repository root)"
    )]
    NotARepository {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },

    #[error(
        "repository is owned by another user: {path} (expected a checkout owned by the current \
         user; run prov as the checkout's owner: prov reads no machine's git configuration, so \
         safe.directory does not apply)"
    )]
    DubiousOwnership {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },

    #[error(
        "bare repository has no working tree: {path} (expected a checkout with files; run from a \
         clone that has a working tree)"
    )]
    BareRepository { path: PathBuf },

    #[error(
        "cannot resolve HEAD in {path}: {source} (expected HEAD to name a commit or an unborn \
         branch; check the checkout with `git status`)"
    )]
    Head {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },

    #[error(
        "cannot read the index of {path}: {source} (expected a .git/index that libgit2 can read; \
         split indexes and sha256 repositories are not supported: try `git status`, or \
         `git update-index --no-split-index`)"
    )]
    Index {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },

    #[error(
        "cannot hash the working tree of {path}: {source} (expected every non-ignored file to be \
         readable and every nested repository to have a commit checked out; fix the permissions, \
         commit in the nested repository, or add the path to .gitignore)"
    )]
    WorkingTree {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },

    #[error(
        "cannot write the tree of {path} in memory: {source} (expected an index without \
         unresolved conflicts; resolve them or remove the conflicted files, then retry)"
    )]
    WriteTree {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },

    #[error(
        "cannot set up the in-memory object database for {path}: {source} (expected libgit2 to \
         allocate it; this is a bug or an out-of-memory condition, retry)"
    )]
    MemoryOdb {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
}

/// Hash the working tree of the checkout at `repo_dir` (its root, or its
/// `.git` directory) the way `git add -A && git write-tree` would, without
/// writing anything into the repository.
pub fn tree_state(repo_dir: &Path) -> Result<TreeState, TreeHashError> {
    tree_state_with(repo_dir, None)
}

/// One file of a hashed working tree, as the tree records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Relative to the checkout's root.
    pub path: PathBuf,
    /// Git's mode: 0o100644, 0o100755, 0o120000 (symbolic link) or 0o160000 (a repository).
    pub mode: u32,
    /// The blob id (or the commit id of a nested repository).
    pub id: Oid,
}

/// [`tree_state`], and every file of the tree it hashed: what a build context made from this
/// tree must hold, byte for byte.
pub fn tree_files(repo_dir: &Path) -> Result<(TreeState, Vec<TreeFile>), TreeHashError> {
    let mut files = Vec::new();
    let state = tree_state_with(repo_dir, Some(&mut files))?;
    Ok((state, files))
}

fn tree_state_with(
    repo_dir: &Path,
    files: Option<&mut Vec<TreeFile>>,
) -> Result<TreeState, TreeHashError> {
    let repo = open(repo_dir)?;
    let path =
        repo.workdir()
            .map(Path::to_path_buf)
            .ok_or_else(|| TreeHashError::BareRepository {
                path: repo_dir.to_path_buf(),
            })?;

    // HEAD first: it needs the real object database, which is swapped below.
    let (head_commit, head_tree, head_time) = head_ids(&repo, &path)?;
    let tree = worktree_tree(&repo, &path, files)?;

    let tree = tree.to_string();
    let head_commit = head_commit.map(|id| id.to_string());
    let head_tree = head_tree.map(|id| id.to_string());
    let dirty = head_tree.as_deref() != Some(tree.as_str());
    Ok(TreeState {
        head_commit,
        head_tree,
        head_time,
        tree,
        dirty,
    })
}

/// The hash must depend on the files alone, not on the machine computing it: the host and every
/// node must agree. So libgit2 reads no global, XDG or system configuration (no
/// `core.excludesFile`, no `core.autocrlf`, no `core.attributesFile`, no attributes or ignore
/// files outside the repository), only the repository's own. Process-wide, set once, before any
/// repository is opened.
pub fn ignore_machine_configuration() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for level in [
            git2::ConfigLevel::System,
            git2::ConfigLevel::XDG,
            git2::ConfigLevel::Global,
            git2::ConfigLevel::ProgramData,
        ] {
            // SAFETY: called once, before any other libgit2 call of this process reads the
            // search path (every `open` here calls this first).
            unsafe { git2::opts::set_search_path(level, "") }
                .expect("libgit2 accepts an empty search path");
        }
    });
}

fn open(repo_dir: &Path) -> Result<Repository, TreeHashError> {
    ignore_machine_configuration();
    Repository::open_ext(
        repo_dir,
        RepositoryOpenFlags::NO_SEARCH,
        std::iter::empty::<&OsStr>(),
    )
    .map_err(|source| {
        let path = repo_dir.to_path_buf();
        if source.code() == ErrorCode::Owner {
            TreeHashError::DubiousOwnership { path, source }
        } else {
            TreeHashError::NotARepository { path, source }
        }
    })
}

/// HEAD's commit, its tree and its time; none of them on an unborn branch.
type HeadIds = (Option<Oid>, Option<Oid>, Option<i64>);

fn head_ids(repo: &Repository, path: &Path) -> Result<HeadIds, TreeHashError> {
    let err = |source| TreeHashError::Head {
        path: path.to_path_buf(),
        source,
    };
    let head = match repo.head() {
        Ok(head) => head,
        // No commit yet on the current branch.
        Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => {
            return Ok((None, None, None))
        }
        Err(e) => return Err(err(e)),
    };
    let commit = head.peel_to_commit().map_err(err)?;
    Ok((
        Some(commit.id()),
        Some(commit.tree_id()),
        Some(commit.time().seconds()),
    ))
}

/// `git add -A && git write-tree`, in memory.
///
/// `real` is a normal handle on the repository: it only reads (HEAD, the
/// diff of the index against the working tree, old blobs). `scratch` is a
/// second handle on the same repository whose object database is replaced by
/// an in-memory one before anything else is done with it; it owns the index
/// we update and receives the blobs and trees we create.
fn worktree_tree(
    real: &Repository,
    path: &Path,
    files: Option<&mut Vec<TreeFile>>,
) -> Result<Oid, TreeHashError> {
    let mem_err = |source| TreeHashError::MemoryOdb {
        path: path.to_path_buf(),
        source,
    };
    let wt_err = |source| TreeHashError::WorkingTree {
        path: path.to_path_buf(),
        source,
    };

    // The repository's index, read from .git/index into memory (once) and
    // only changed there: nothing here calls `Index::write`. Loaded through
    // the repository so that it follows core.filemode / core.symlinks /
    // core.ignorecase, and so that the diff finds it loaded. Then what
    // `git add -A` would touch: tracked files that changed (libgit2 reuses
    // the recorded id when the stat data matches and the entry is not racily
    // clean relative to the index file, and re-hashes otherwise), deleted
    // ones, and untracked files that are not ignored. Submodules are handled
    // below, from their HEAD, as git does (it does not look at their working
    // trees). The diff runs on the real handle, which can read the recorded
    // blobs when its filters need them; it only reads.
    let (mut index, changes) = index_and_changes(real, path)?;
    let (filters, gitlinks) = scan_index(real, path, &index).map_err(wt_err)?;

    // Hand the index over to a second handle on the repository whose object
    // database is in memory only: blobs created while adding files, and the
    // trees written at the end, go to that handle's database (its index owner)
    // and never reach .git/objects. `real` keeps a reference to the same
    // in-memory index and must outlive this function's use of it.
    let scratch = open(path)?;
    let odb = Odb::new().map_err(mem_err)?;
    let mempack = odb.add_new_mempack_backend(1).map_err(mem_err)?;
    scratch.set_odb(&odb).map_err(mem_err)?;
    scratch.set_index(&mut index).map_err(mem_err)?;

    // From here on, entries and trees refer to blobs and subtrees that are in
    // the repository but not in the in-memory database.
    let _lax = LaxObjectCreation::begin();

    let scratch_odb = scratch.odb().map_err(mem_err)?;
    // Git updates tracked paths first, then adds untracked ones; the order
    // matters when a deleted .gitattributes is still read from the index.
    let (tracked, untracked): (Vec<Change>, Vec<Change>) = changes
        .into_iter()
        .partition(|c| !matches!(c, Change::Embedded(_) | Change::AddUntracked(_)));
    for change in tracked.into_iter().chain(untracked) {
        match change {
            Change::Remove(rel) => index.remove_path(&rel).map_err(wt_err)?,
            Change::Embedded(rel) => {
                let entry = embedded_repo_entry(path, &rel).map_err(wt_err)?;
                index.add(&entry).map_err(wt_err)?;
            }
            Change::Add(rel) | Change::AddUntracked(rel) => {
                // Keep at most one file's blob in memory at a time.
                mempack.reset().map_err(mem_err)?;
                filters
                    .seed(real, &scratch_odb, &index, &rel)
                    .map_err(wt_err)?;
                index.add_path(&rel).map_err(wt_err)?;
            }
        }
    }
    mempack.reset().map_err(mem_err)?;

    // Submodules: the commit checked out in them now. (A submodule that was
    // deleted or replaced above is no longer a repository or no longer a
    // gitlink entry, and is skipped.)
    for (entry_path, recorded) in gitlinks {
        let rel = bytes_to_path(&entry_path);
        let Some(head) = submodule_head(&path.join(rel)) else {
            continue;
        };
        if head == recorded {
            continue;
        }
        if let Some(mut entry) = index.get_path(rel, 0) {
            if entry.mode == GITLINK_MODE {
                entry.id = head;
                index.add(&entry).map_err(wt_err)?;
            }
        }
    }

    // The index keeps the tree ids git cached for directories (the TREE
    // extension; updating entries above invalidated the changed paths), and
    // git's write-tree reuses them, so we do too: for an unchanged checkout
    // the root id comes straight from that cache. But after writing a new
    // root, libgit2 re-reads the whole tree to rebuild its cache, and the
    // subtrees it took from the cache are in the repository, not in the
    // in-memory database, so that fails. libgit2 has dropped the cache by
    // then (it does so before the re-read), so the second write builds every
    // tree from the entries into memory, where the re-read finds them.
    let tree = index
        .write_tree()
        .or_else(|_| index.write_tree())
        .map_err(|source| TreeHashError::WriteTree {
            path: path.to_path_buf(),
            source,
        })?;
    if let Some(files) = files {
        files.extend(index.iter().map(|e| TreeFile {
            path: bytes_to_path(&e.path).to_path_buf(),
            mode: e.mode,
            id: e.id,
        }));
    }
    Ok(tree)
}

/// The repository's index and the changes `git add -A` would apply to it,
/// in path order. The diff is mostly `lstat` calls, so it is spread over two
/// threads, as git spreads its stat pass (`core.preloadIndex`): a helper
/// opens its own handle and loads its own copy of the index while this thread
/// loads `real`'s; the top-level names are then split in two halves of about
/// as many index entries each, and each thread diffs one half.
fn index_and_changes(
    real: &Repository,
    path: &Path,
) -> Result<(Index, Vec<Change>), TreeHashError> {
    let wt_err = |source| TreeHashError::WorkingTree {
        path: path.to_path_buf(),
        source,
    };
    std::thread::scope(|scope| {
        let (second_half, names) = std::sync::mpsc::channel::<TopLevelNames>();
        let helper = scope.spawn(move || -> Result<Vec<Change>, git2::Error> {
            ignore_machine_configuration();
            let repo = Repository::open_ext(
                path,
                RepositoryOpenFlags::NO_SEARCH,
                std::iter::empty::<&OsStr>(),
            )?;
            let index = repo.index()?;
            // No names: this thread has nothing to do (dropped sender).
            match names.recv() {
                Ok(names) => diff_changes(&repo, &index, &names),
                Err(_) => Ok(Vec::new()),
            }
        });
        let index = real.index().map_err(|source| TreeHashError::Index {
            path: path.to_path_buf(),
            source,
        })?;
        let (first, second) = split_top_level(&index, path).map_err(wt_err)?;
        let mut changes = if first.is_empty() || second.is_empty() {
            drop(second_half);
            diff_changes(real, &index, &[])
        } else {
            // A send error means the helper has already failed: join says why.
            let _ = second_half.send(second);
            diff_changes(real, &index, &first)
        }
        .map_err(wt_err)?;
        let rest = helper
            .join()
            .map_err(|_| wt_err(git2::Error::from_str("the diff helper thread panicked")))?
            .map_err(wt_err)?;
        changes.extend(rest);
        Ok((index, changes))
    })
}

/// Diff `index` against the working tree, limited to the literal top-level
/// names in `only` (everything when empty).
fn diff_changes(
    repo: &Repository,
    index: &Index,
    only: &[Vec<u8>],
) -> Result<Vec<Change>, git2::Error> {
    let mut opts = DiffOptions::new();
    opts.include_typechange(true)
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .ignore_submodules(true)
        .disable_pathspec_match(true);
    for name in only {
        opts.pathspec(name.clone());
    }
    let diff = repo.diff_index_to_workdir(Some(index), Some(&mut opts))?;
    let mut changes = Vec::new();
    for delta in diff.deltas() {
        changes.extend(Change::from_delta(delta)?);
    }
    Ok(changes)
}

/// Names of top-level entries of the working tree, as bytes.
type TopLevelNames = Vec<Vec<u8>>;

/// Every top-level name, in the index or in the working tree (but `.git`),
/// sorted and split where about half of the index entries lie on each side.
fn split_top_level(
    index: &Index,
    workdir: &Path,
) -> Result<(TopLevelNames, TopLevelNames), git2::Error> {
    let mut weights = std::collections::BTreeMap::<Vec<u8>, usize>::new();
    for entry in index.iter() {
        let top = entry.path.split(|&b| b == b'/').next().unwrap_or_default();
        *weights.entry(top.to_vec()).or_default() += 1;
    }
    let dir = std::fs::read_dir(workdir)
        .map_err(|e| git2::Error::from_str(&format!("cannot list {}: {e}", workdir.display())))?;
    for entry in dir {
        let name = entry
            .map_err(|e| git2::Error::from_str(&format!("cannot list {}: {e}", workdir.display())))?
            .file_name()
            .as_encoded_bytes()
            .to_vec();
        if name != b".git" {
            weights.entry(name).or_insert(1);
        }
    }
    let half = weights.values().sum::<usize>() / 2;
    let mut seen = 0;
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for (name, weight) in weights {
        if seen < half {
            first.push(name);
        } else {
            second.push(name);
        }
        seen += weight;
    }
    Ok((first, second))
}

/// What one diff delta asks of `git add -A`.
enum Change {
    /// Gone from the working tree: drop it (and any conflict stages).
    Remove(PathBuf),
    /// Update a tracked path from the working tree (also resolves
    /// conflicts).
    Add(PathBuf),
    /// Add an untracked file.
    AddUntracked(PathBuf),
    /// An untracked directory the diff did not descend into because it is a
    /// nested repository: `git add` records it as a gitlink to its HEAD.
    Embedded(Vec<u8>),
}

impl Change {
    fn from_delta(delta: git2::DiffDelta<'_>) -> Result<Option<Change>, git2::Error> {
        let new = delta.new_file();
        let new_path = new.path_bytes().unwrap_or_default();
        match delta.status() {
            Delta::Unmodified | Delta::Ignored => return Ok(None),
            Delta::Unreadable => {
                return Err(git2::Error::from_str(&format!(
                    "cannot read '{}'",
                    String::from_utf8_lossy(new_path)
                )))
            }
            _ => {}
        }
        if !new.exists() {
            let old = delta.old_file();
            let old_path = old.path_bytes().unwrap_or(new_path);
            return Ok(Some(Change::Remove(bytes_to_path(old_path).to_path_buf())));
        }
        let rel = bytes_to_path(new_path).to_path_buf();
        Ok(Some(match new_path.strip_suffix(b"/") {
            Some(dir) => Change::Embedded(dir.to_vec()),
            None if delta.status() == Delta::Untracked => Change::AddUntracked(rel),
            None => Change::Add(rel),
        }))
    }
}

#[cfg(unix)]
fn bytes_to_path(bytes: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn bytes_to_path(bytes: &[u8]) -> &Path {
    Path::new(std::str::from_utf8(bytes).unwrap_or_default())
}

const GITLINK_MODE: u32 = 0o160000;
const REGULAR_MODES: [u32; 2] = [0o100644, 0o100755];

fn stage(e: &IndexEntry) -> u16 {
    (e.flags >> 12) & 0x3
}

/// The commit a submodule has checked out, as `git add` sees it: `None`
/// (keep the recorded commit) when the directory is not a repository or has
/// no commit yet.
fn submodule_head(dir: &Path) -> Option<Oid> {
    ignore_machine_configuration();
    let sub = Repository::open_ext(
        dir,
        RepositoryOpenFlags::NO_SEARCH,
        std::iter::empty::<&OsStr>(),
    )
    .ok()?;
    let head = sub.head().ok()?;
    let id = head.resolve().ok()?.target();
    id
}

/// Gitlink index entry for an untracked nested repository.
fn embedded_repo_entry(workdir: &Path, rel: &[u8]) -> Result<IndexEntry, git2::Error> {
    let rel_path = bytes_to_path(rel);
    let head = submodule_head(&workdir.join(rel_path)).ok_or_else(|| {
        git2::Error::from_str(&format!(
            "nested repository '{}' has no commit checked out",
            rel_path.display()
        ))
    })?;
    let zero = IndexTime::new(0, 0);
    Ok(IndexEntry {
        ctime: zero,
        mtime: zero,
        dev: 0,
        ino: 0,
        mode: GITLINK_MODE,
        uid: 0,
        gid: 0,
        file_size: 0,
        id: head,
        flags: 0,
        flags_extended: 0,
        path: rel.to_vec(),
    })
}

/// What libgit2's checkin filters may look up in the object database while a
/// file is added, so that the in-memory database can be given exactly that:
///
/// * with `core.autocrlf` true/input or `text=auto` / `crlf=auto`, the CRLF
///   filter leaves a file alone when the blob recorded in the index already
///   contains a CR (git's "safer autocrlf"), so it reads that blob;
/// * `.gitattributes` files that are tracked but missing from the working
///   tree are read from the index, i.e. from their blobs.
///
/// Built in the same pass over the index that lists the submodules.
struct FilterInputs {
    autocrlf: bool,
    attribute_blobs: Vec<Oid>,
}

/// `(path, recorded commit)` of a stage-0 gitlink (submodule) index entry.
type Gitlink = (Vec<u8>, Oid);

/// One pass over the index: filter inputs and every gitlink entry.
fn scan_index(
    real: &Repository,
    workdir: &Path,
    index: &Index,
) -> Result<(FilterInputs, Vec<Gitlink>), git2::Error> {
    let config = real.config()?;
    let autocrlf = match config.get_bool("core.autocrlf") {
        Ok(on) => on,
        Err(_) => config
            .get_string("core.autocrlf")
            .map(|v| v.eq_ignore_ascii_case("input"))
            .unwrap_or(false),
    };
    let mut attribute_blobs = Vec::new();
    let mut gitlinks = Vec::new();
    for e in index.iter() {
        if e.mode == GITLINK_MODE && stage(&e) == 0 {
            gitlinks.push((e.path, e.id));
        } else if (e.path == b".gitattributes" || e.path.ends_with(b"/.gitattributes"))
            && REGULAR_MODES.contains(&e.mode)
            && std::fs::symlink_metadata(workdir.join(bytes_to_path(&e.path))).is_err()
        {
            attribute_blobs.push(e.id);
        }
    }
    let filters = FilterInputs {
        autocrlf,
        attribute_blobs,
    };
    Ok((filters, gitlinks))
}

impl FilterInputs {
    /// Copy into `scratch_odb` the blobs the filters may read for `rel`.
    /// Called after each mempack reset, right before adding `rel`.
    fn seed(
        &self,
        real: &Repository,
        scratch_odb: &Odb<'_>,
        index: &Index,
        rel: &Path,
    ) -> Result<(), git2::Error> {
        let copy = |id: Oid| -> Result<(), git2::Error> {
            let blob = real.find_blob(id)?;
            scratch_odb.write(ObjectType::Blob, blob.content())?;
            Ok(())
        };
        for id in &self.attribute_blobs {
            copy(*id)?;
        }
        let Some(entry) = index.get_path(rel, 0).or_else(|| index.get_path(rel, 1)) else {
            return Ok(());
        };
        if !REGULAR_MODES.contains(&entry.mode) {
            return Ok(());
        }
        let auto = |name: &str| -> Result<bool, git2::Error> {
            Ok(real.get_attr(rel, name, AttrCheckFlags::FILE_THEN_INDEX)? == Some("auto"))
        };
        if self.autocrlf || auto("text")? || auto("crlf")? {
            copy(entry.id)?;
        }
        Ok(())
    }
}

/// Serialises the windows in which libgit2's process-global "strict object
/// creation" check is off.
static LAX_OBJECT_CREATION: Mutex<()> = Mutex::new(());

/// While alive, libgit2 does not check that the objects an index entry or a
/// new tree refers to exist in the object database (they are in the
/// repository, not in our in-memory database). The check is turned back on —
/// libgit2's default — on drop, also on error or panic. Calls from this module
/// are serialised by a mutex; other code in the process creating objects
/// during that window (a few milliseconds, plus the time to hash the changed
/// files) would merely skip the existence check.
struct LaxObjectCreation {
    _guard: std::sync::MutexGuard<'static, ()>,
}

impl LaxObjectCreation {
    fn begin() -> Self {
        let guard = LAX_OBJECT_CREATION
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        git2::opts::strict_object_creation(false);
        LaxObjectCreation { _guard: guard }
    }
}

impl Drop for LaxObjectCreation {
    fn drop(&mut self) {
        git2::opts::strict_object_creation(true);
    }
}
