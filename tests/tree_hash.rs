//! `prov::record::tree_hash::tree_state` against the real thing.
//!
//! Each test builds a fixture repository with the `git` CLI in a temp dir,
//! then checks that
//! * `tree_state(dir).tree` equals what `git add -A && git write-tree` prints
//!   in a scratch copy of the repository (`cp -a`, so the original's index is
//!   never touched by git), and
//! * `tree_state` wrote nothing into the repository: every file under `.git`
//!   keeps its size and mtime, `.git/index` keeps its bytes, and no file
//!   appears or disappears (no objects, no lock files).
//!
//! Note on the scratch copy: `cp -a` keeps mtimes but gives every file a new
//! inode and ctime, so git in the copy re-hashes every tracked file and always
//! sees the true content. `tree_state` on the original relies on the stat
//! data recorded in the index instead; the tests below that play with stat
//! data say which answer is right and why.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use prov::record::tree_hash::{tree_state, TreeHashError, TreeState};
use tempfile::TempDir;

// ---------------------------------------------------------------- fixtures

/// git as prov's tree hash sees the repository: with no machine configuration (global, XDG or
/// system), only the repository's own.
fn git_command() -> Command {
    let mut cmd = Command::new("git");
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("XDG_CONFIG_HOME", "/nonexistent");
    cmd
}

/// Run git in `dir`, panic with its stderr on failure, return trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_command()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git must be installed to run these tests");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn configure(dir: &Path) {
    for (k, v) in [
        ("user.name", "Tree Hash Test"),
        ("user.email", "tree-hash@example.invalid"),
        ("commit.gpgsign", "false"),
        ("tag.gpgsign", "false"),
        ("core.autocrlf", "false"),
        ("protocol.file.allow", "always"),
    ] {
        git(dir, &["config", k, v]);
    }
}

/// A fresh repository on branch `main`, configured for tests.
fn init_in(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    configure(dir);
}

fn init() -> TempDir {
    let tmp = TempDir::new().unwrap();
    init_in(tmp.path());
    tmp
}

fn write(dir: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn commit_all(dir: &Path, msg: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", msg]);
}

/// A repository with a few committed files in nested directories.
fn base_repo() -> TempDir {
    let tmp = init();
    let d = tmp.path();
    write(d, "README.md", "# fixture\n");
    write(d, "src/main.c", "int main(void) { return 0; }\n");
    write(d, "src/lib/util.c", "int util(void) { return 1; }\n");
    write(d, "docs/guide.txt", "guide\n");
    write(d, ".gitignore", "*.log\nbuild/\n");
    commit_all(d, "base");
    tmp
}

fn set_mtime(path: &Path, epoch_secs: i64) {
    let status = Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg(format!("@{epoch_secs}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A scratch copy of a fixture in which git ran `add -A` and `write-tree`.
struct Scratch {
    _tmp: TempDir,
    copy: PathBuf,
    tree: String,
}

impl Scratch {
    /// `git ls-tree <tree> -- <path>` in the copy (which has the objects).
    fn ls(&self, path: &str) -> String {
        git(&self.copy, &["ls-tree", &self.tree, "--", path])
    }

    /// Content of the blob at `path` in the tree (trailing newline trimmed).
    fn cat(&self, path: &str) -> String {
        let spec = format!("{}:{path}", self.tree);
        git(&self.copy, &["cat-file", "-p", &spec])
    }
}

/// What `git add -A && git write-tree` prints in a scratch copy of `dir`.
fn git_write_tree_in_copy(dir: &Path) -> String {
    scratch_copy(dir).tree
}

fn scratch_copy(dir: &Path) -> Scratch {
    let scratch = TempDir::new().unwrap();
    let copy = scratch.path().join("copy");
    let status = Command::new("cp")
        .arg("-a")
        .arg(dir)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a failed");
    git(&copy, &["add", "-A"]);
    let tree = git(&copy, &["write-tree"]);
    Scratch {
        _tmp: scratch,
        copy,
        tree,
    }
}

/// Everything under `.git` that `tree_state` could have written: for each
/// file its size and mtime, plus the exact bytes of the index.
#[derive(Debug, PartialEq)]
struct GitDirSnapshot {
    files: BTreeMap<PathBuf, (u64, SystemTime)>,
    index: Option<Vec<u8>>,
}

fn snapshot(dir: &Path) -> GitDirSnapshot {
    fn walk(root: &Path, p: &Path, out: &mut BTreeMap<PathBuf, (u64, SystemTime)>) {
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let md = fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                walk(root, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, (md.len(), md.modified().unwrap()));
            }
        }
    }
    let git_dir = dir.join(".git");
    let mut files = BTreeMap::new();
    walk(&git_dir, &git_dir, &mut files);
    GitDirSnapshot {
        files,
        index: fs::read(git_dir.join("index")).ok(),
    }
}

/// `tree_state(dir)`, asserting that it left `.git` untouched.
fn state_untouched(dir: &Path) -> TreeState {
    let before = snapshot(dir);
    let state = tree_state(dir).unwrap_or_else(|e| panic!("tree_state failed: {e}"));
    let after = snapshot(dir);
    assert_eq!(before, after, "tree_state modified {}/.git", dir.display());
    assert_eq!(state.tree.len(), 40, "full hex id expected: {state:?}");
    state
}

/// The main check: same tree as git in a scratch copy, nothing written, and
/// `dirty` consistent with HEAD.
fn check(dir: &Path) -> TreeState {
    check_with_copy(dir).0
}

fn check_with_copy(dir: &Path) -> (TreeState, Scratch) {
    let state = state_untouched(dir);
    let scratch = scratch_copy(dir);
    assert_eq!(
        state.tree, scratch.tree,
        "tree_state disagrees with `git add -A && git write-tree`"
    );
    assert_eq!(
        state.dirty,
        state.head_tree.as_deref() != Some(state.tree.as_str()),
        "dirty flag inconsistent: {state:?}"
    );
    (state, scratch)
}

fn head(dir: &Path) -> (String, String) {
    (
        git(dir, &["rev-parse", "HEAD"]),
        git(dir, &["rev-parse", "HEAD^{tree}"]),
    )
}

// ------------------------------------------------------------------- tests

#[test]
fn clean_repo_matches_head_and_is_not_dirty() {
    let tmp = base_repo();
    let d = tmp.path();
    let state = check(d);
    let (commit, tree) = head(d);
    assert_eq!(state.head_commit.as_deref(), Some(commit.as_str()));
    assert_eq!(state.head_tree.as_deref(), Some(tree.as_str()));
    assert_eq!(state.tree, tree);
    assert!(!state.dirty);
}

#[test]
fn modified_tracked_file() {
    let tmp = base_repo();
    let d = tmp.path();
    write(d, "src/main.c", "int main(void) { return 42; }\n");
    assert!(check(d).dirty);
}

#[test]
fn modified_tracked_file_same_size() {
    let tmp = base_repo();
    let d = tmp.path();
    write(d, "src/main.c", "int main(void) { return 9; }\n");
    assert!(check(d).dirty);
}

#[test]
fn untracked_file_is_included() {
    let tmp = base_repo();
    let d = tmp.path();
    write(d, "NEW.txt", "new\n");
    let (state, copy) = check_with_copy(d);
    assert!(state.dirty);
    assert!(copy.ls("NEW.txt").starts_with("100644 blob "));
}

#[test]
fn ignored_files_are_excluded() {
    let tmp = base_repo();
    let d = tmp.path();
    write(d, "debug.log", "noise\n");
    write(d, "src/deep/trace.log", "noise\n");
    write(d, "build/out.o", "binary\n");
    let state = check(d);
    assert!(!state.dirty, "only ignored files were added: {state:?}");
}

#[test]
fn tracked_file_matching_gitignore_is_included() {
    let tmp = base_repo();
    let d = tmp.path();
    // Force-add a file that matches an ignore rule, then change it.
    write(d, "keep.log", "tracked despite *.log\n");
    git(d, &["add", "-f", "keep.log"]);
    git(d, &["commit", "-q", "-m", "tracked log"]);
    assert!(!check(d).dirty);
    write(d, "keep.log", "tracked despite *.log, changed\n");
    let state = check(d);
    assert!(state.dirty);
    // And a tracked file that becomes ignored later stays in the tree.
    write(d, ".gitignore", "*.log\nbuild/\nREADME.md\n");
    write(d, "README.md", "# fixture, edited\n");
    check(d);
}

#[test]
fn deleted_tracked_file_is_gone() {
    let tmp = base_repo();
    let d = tmp.path();
    fs::remove_file(d.join("docs/guide.txt")).unwrap();
    let (state, copy) = check_with_copy(d);
    assert!(state.dirty);
    assert_eq!(copy.ls("docs"), "", "docs/ held only the deleted file");
}

#[test]
fn staged_but_deleted_file_is_gone() {
    let tmp = base_repo();
    let d = tmp.path();
    write(d, "staged.txt", "staged\n");
    git(d, &["add", "staged.txt"]);
    fs::remove_file(d.join("staged.txt")).unwrap();
    assert!(!check(d).dirty);
}

#[test]
fn staged_content_is_superseded_by_working_tree() {
    let tmp = base_repo();
    let d = tmp.path();
    write(d, "README.md", "staged version\n");
    git(d, &["add", "README.md"]);
    write(d, "README.md", "working tree version\n");
    check(d);
    // Staging then reverting the working tree back to HEAD's content: clean.
    write(d, "README.md", "# fixture\n");
    assert!(!check(d).dirty);
}

#[test]
fn executable_bit_added() {
    let tmp = base_repo();
    let d = tmp.path();
    chmod(&d.join("src/main.c"), 0o755);
    let (state, copy) = check_with_copy(d);
    assert!(state.dirty);
    assert!(copy.ls("src/main.c").starts_with("100755 "));
}

#[test]
fn executable_bit_removed() {
    let tmp = init();
    let d = tmp.path();
    write(d, "run.sh", "#!/bin/sh\necho hi\n");
    chmod(&d.join("run.sh"), 0o755);
    commit_all(d, "exec");
    assert!(!check(d).dirty);
    chmod(&d.join("run.sh"), 0o644);
    assert!(check(d).dirty);
}

#[test]
fn executable_bit_ignored_when_core_filemode_is_false() {
    let tmp = base_repo();
    let d = tmp.path();
    git(d, &["config", "core.filemode", "false"]);
    chmod(&d.join("src/main.c"), 0o755);
    // A new executable file gets 100644 too.
    write(d, "tool.sh", "#!/bin/sh\n");
    chmod(&d.join("tool.sh"), 0o755);
    let (_, copy) = check_with_copy(d);
    assert!(copy.ls("src/main.c").starts_with("100644 "));
    assert!(copy.ls("tool.sh").starts_with("100644 "));
}

#[test]
fn symlinks_are_hashed_as_links() {
    let tmp = base_repo();
    let d = tmp.path();
    symlink("src/main.c", d.join("link-to-file")).unwrap();
    symlink("src", d.join("link-to-dir")).unwrap();
    symlink("does/not/exist", d.join("dangling")).unwrap();
    let (_, copy) = check_with_copy(d);
    for name in ["link-to-file", "link-to-dir", "dangling"] {
        assert!(
            copy.ls(name).starts_with("120000 "),
            "{name} should be a symlink entry"
        );
    }
    commit_all(d, "links");
    assert!(!check(d).dirty);
    // Retarget a tracked link.
    fs::remove_file(d.join("link-to-file")).unwrap();
    symlink("README.md", d.join("link-to-file")).unwrap();
    assert!(check(d).dirty);
}

#[test]
fn type_changes_file_to_symlink_and_dir_to_file() {
    let tmp = base_repo();
    let d = tmp.path();
    fs::remove_file(d.join("README.md")).unwrap();
    symlink("docs/guide.txt", d.join("README.md")).unwrap();
    fs::remove_dir_all(d.join("docs")).unwrap();
    write(d, "docs", "now a file\n");
    assert!(check(d).dirty);
}

#[test]
fn nested_untracked_directory_is_recursed() {
    let tmp = base_repo();
    let d = tmp.path();
    write(d, "new/a/b/c/deep.txt", "deep\n");
    write(d, "new/a/side.txt", "side\n");
    write(d, "new/a/b/skip.log", "ignored inside untracked dir\n");
    let (state, copy) = check_with_copy(d);
    assert!(state.dirty);
    assert!(copy.ls("new/a/b/c/deep.txt").starts_with("100644 "));
    assert_eq!(copy.ls("new/a/b/skip.log"), "");
}

#[test]
fn empty_directories_are_absent() {
    let tmp = base_repo();
    let d = tmp.path();
    fs::create_dir_all(d.join("empty/nested/deeper")).unwrap();
    fs::create_dir_all(d.join("src/also-empty")).unwrap();
    // A directory holding only ignored files is as good as empty.
    write(d, "only-ignored/x.log", "x\n");
    let state = check(d);
    assert!(!state.dirty, "empty directories must not change the tree");
}

#[test]
fn names_with_spaces_unicode_and_leading_dots() {
    let tmp = base_repo();
    let d = tmp.path();
    write(d, "with space/file name.txt", "a\n");
    write(d, "ünïcødé/ファイル.txt", "b\n");
    write(d, ".hidden/.dotfile", "c\n");
    write(d, "a-b/x", "sorts after a/ but before a.b\n");
    write(d, "a.b", "d\n");
    write(d, "a/x", "e\n");
    check(d);
}

/// Content changed in place, size kept, mtime put back with `touch -d`.
///
/// Right answer: the new content. Git (and libgit2) compare ctime too when
/// `core.trustctime` is on (the default), and ctime cannot be put back, so
/// the stale stat data is detected and the file re-hashed. The scratch copy
/// re-hashes everything, so it yields the true content as well.
#[test]
fn same_size_same_mtime_change_is_detected_through_ctime() {
    let tmp = init();
    let d = tmp.path();
    let f = d.join("data.txt");
    write(d, "data.txt", "AAAA\n");
    // An mtime well before the index is written: not racily clean.
    set_mtime(&f, 1_000_000_000);
    commit_all(d, "data");
    let ino = fs::metadata(&f).unwrap().ino();
    std::thread::sleep(std::time::Duration::from_millis(1100));

    fs::write(&f, "BBBB\n").unwrap(); // same length, same inode
    set_mtime(&f, 1_000_000_000);
    let md = fs::metadata(&f).unwrap();
    assert_eq!((md.len(), md.mtime(), md.ino()), (5, 1_000_000_000, ino));

    let state = check(d);
    assert!(
        state.dirty,
        "changed content must not hide behind stat data"
    );
}

/// Same, but with `core.trustctime=false`: now size, mtime, inode, uid and
/// gid all match the index entry, and the entry is not racily clean (its
/// mtime is far older than the index file). Git itself is fooled and keeps
/// the recorded blob; `tree_state` must give exactly git's answer, so it is
/// fooled the same way. We compare with git run *in place* (after taking our
/// answer), because a scratch copy has new inodes and would re-hash.
#[test]
fn same_stat_change_without_trustctime_matches_git_in_place() {
    let tmp = init();
    let d = tmp.path();
    git(d, &["config", "core.trustctime", "false"]);
    let f = d.join("data.txt");
    write(d, "data.txt", "AAAA\n");
    set_mtime(&f, 1_000_000_000);
    commit_all(d, "data");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::write(&f, "BBBB\n").unwrap();
    set_mtime(&f, 1_000_000_000);

    let state = state_untouched(d);
    git(d, &["add", "-A"]);
    let in_place = git(d, &["write-tree"]);
    assert_eq!(state.tree, in_place, "must match git run in place");
    // Documented consequence: both report HEAD's tree, i.e. not dirty.
    assert!(!state.dirty);
    // Whereas git with fresh stat data sees the change.
    assert_ne!(git_write_tree_in_copy(d), state.tree);
}

/// A "racily clean" entry: the file's mtime is not older than the index
/// file's, so matching stat data proves nothing and the file must be
/// re-hashed even with `core.trustctime=false`.
#[test]
fn racily_clean_entry_is_rehashed() {
    let tmp = init();
    let d = tmp.path();
    git(d, &["config", "core.trustctime", "false"]);
    let f = d.join("data.txt");
    let future = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 3600;
    write(d, "data.txt", "AAAA\n");
    set_mtime(&f, future);
    commit_all(d, "data");
    let index_mtime = fs::metadata(d.join(".git/index")).unwrap().mtime();
    assert!(index_mtime <= future, "entry must be racy for this test");

    fs::write(&f, "BBBB\n").unwrap();
    set_mtime(&f, future);
    let state = check(d);
    assert!(state.dirty, "racily clean entry must be re-hashed");
}

#[test]
fn repo_without_commits() {
    let tmp = init();
    let d = tmp.path();
    // Nothing at all: the empty tree.
    let state = check(d);
    assert_eq!(state.tree, "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
    assert_eq!(state.head_commit, None);
    assert_eq!(state.head_tree, None);
    assert!(state.dirty, "no HEAD means dirty");

    // Untracked files only (no index file yet).
    write(d, "a.txt", "a\n");
    write(d, "dir/b.txt", "b\n");
    write(d, "x.log", "ignored\n");
    write(d, ".gitignore", "*.log\n");
    assert!(!d.join(".git/index").exists());
    let state = check(d);
    assert!(state.dirty && state.head_commit.is_none());

    // Some staged, some not, one staged then deleted.
    git(d, &["add", "a.txt", "dir/b.txt"]);
    write(d, "c.txt", "c\n");
    fs::remove_file(d.join("dir/b.txt")).unwrap();
    let state = check(d);
    assert!(state.dirty && state.head_commit.is_none());
}

#[test]
fn crlf_is_normalised_per_gitattributes() {
    let tmp = base_repo();
    let d = tmp.path();
    write(d, ".gitattributes", "*.txt text\n*.bin -text\n");
    write(d, "windows.txt", "line one\r\nline two\r\n");
    write(d, "raw.bin", "keep\r\nas is\r\n");
    let (_, copy) = check_with_copy(d);
    // Stored with LF line endings, as git does; the -text file untouched.
    assert_eq!(copy.cat("windows.txt"), "line one\nline two");
    assert!(copy.cat("raw.bin").contains('\r'));
}

/// With `text=auto`, git leaves a file's CRLFs alone when the blob recorded
/// in the index already has a CR ("safer autocrlf"); without that rule the
/// same content would be normalised to LF.
#[test]
fn text_auto_keeps_crlf_already_in_the_index() {
    let tmp = base_repo();
    let d = tmp.path();
    write(d, "legacy.txt", "old\r\nwindows\r\n");
    write(d, "fresh.txt", "new\nunix\n");
    commit_all(d, "crlf committed before attributes");
    write(d, ".gitattributes", "*.txt text=auto\n");
    // Modified, still CRLF: stays CRLF in the blob.
    write(d, "legacy.txt", "old\r\nwindows\r\nchanged\r\n");
    // A tracked LF file that gains CRLFs is normalised.
    write(d, "fresh.txt", "new\r\nunix\r\nchanged\r\n");
    // An untracked CRLF file is normalised.
    write(d, "untracked.txt", "a\r\nb\r\n");
    let (_, copy) = check_with_copy(d);
    assert!(copy.cat("legacy.txt").contains('\r'));
    assert!(!copy.cat("fresh.txt").contains('\r'));

    // Same with core.autocrlf=input and no attributes at all.
    fs::remove_file(d.join(".gitattributes")).unwrap();
    git(d, &["config", "core.autocrlf", "input"]);
    check(d);
}

#[test]
fn ident_filter_is_applied() {
    let tmp = base_repo();
    let d = tmp.path();
    write(d, ".gitattributes", "*.c ident\n");
    write(d, "src/id.c", "/* $Id: expanded-in-working-tree $ */\n");
    check(d);
}

/// A `.gitattributes` that is tracked but deleted from the working tree is
/// still read from the index by git while it updates tracked files that come
/// before it in index order (`-x.txt` sorts before `.gitattributes`).
/// Untracked files are added after the deletion was applied, without it.
/// (When both happen in one directory git's attribute cache carries the
/// first lookup over to the untracked file; that quirk is not reproduced.)
#[test]
fn deleted_gitattributes_is_read_from_the_index() {
    let tmp = base_repo();
    let d = tmp.path();
    write(d, "sub/.gitattributes", "*.txt text\n");
    write(d, "sub/-x.txt", "before\n");
    commit_all(d, "attributes");
    fs::remove_file(d.join("sub/.gitattributes")).unwrap();
    write(d, "sub/-x.txt", "x\r\ny\r\n");
    let (_, copy) = check_with_copy(d);
    assert!(
        !copy.cat("sub/-x.txt").contains('\r'),
        "converted per the index's attributes"
    );

    let tmp = base_repo();
    let d = tmp.path();
    write(d, "sub/.gitattributes", "*.txt text\n");
    commit_all(d, "attributes");
    fs::remove_file(d.join("sub/.gitattributes")).unwrap();
    write(d, "sub/crlf.txt", "x\r\ny\r\n");
    check(d);
}

#[test]
fn merge_conflict_takes_working_tree_files() {
    let tmp = base_repo();
    let d = tmp.path();
    git(d, &["checkout", "-q", "-b", "other"]);
    write(d, "README.md", "# other side\n");
    write(d, "docs/guide.txt", "other guide\n");
    commit_all(d, "other");
    git(d, &["checkout", "-q", "main"]);
    write(d, "README.md", "# main side\n");
    write(d, "docs/guide.txt", "main guide\n");
    commit_all(d, "main");
    let out = git_command()
        .args(["merge", "-q", "other"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!out.status.success(), "expected a conflict");
    assert!(!git(d, &["ls-files", "-u"]).is_empty());
    // One conflicted file is left with markers, the other one deleted.
    fs::remove_file(d.join("docs/guide.txt")).unwrap();
    assert!(check(d).dirty);
}

#[test]
fn embedded_repository_and_submodule_are_gitlinks() {
    let tmp = base_repo();
    let d = tmp.path();

    // A library repository that will be a submodule.
    let lib = TempDir::new().unwrap();
    init_in(lib.path());
    write(lib.path(), "lib.c", "lib v1\n");
    commit_all(lib.path(), "v1");
    git(
        d,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            lib.path().to_str().unwrap(),
            "vendor/lib",
        ],
    );
    configure(&d.join("vendor/lib"));
    commit_all(d, "submodule");
    let state = check(d);
    assert!(!state.dirty);

    // Dirty files inside the submodule do not change the gitlink.
    write(&d.join("vendor/lib"), "lib.c", "lib v1, edited\n");
    assert!(!check(d).dirty);

    // A new commit checked out in the submodule: `git add -A` records it.
    commit_all(&d.join("vendor/lib"), "v2");
    let (state, copy) = check_with_copy(d);
    assert!(state.dirty);
    let sub_head = git(&d.join("vendor/lib"), &["rev-parse", "HEAD"]);
    assert!(copy.ls("vendor/lib").contains(&sub_head));

    // A submodule left uninitialised (empty directory) keeps its gitlink.
    let recorded = git(d, &["rev-parse", "HEAD:vendor/lib"]);
    commit_all(d, "record v2");
    let aside = TempDir::new().unwrap();
    let moved = aside.path().join("lib");
    fs::rename(d.join("vendor/lib"), &moved).unwrap();
    fs::create_dir(d.join("vendor/lib")).unwrap();
    assert!(!check(d).dirty);
    // A submodule directory removed altogether is a deletion.
    fs::remove_dir(d.join("vendor/lib")).unwrap();
    let (state, copy) = check_with_copy(d);
    assert!(state.dirty);
    assert_eq!(copy.ls("vendor/lib"), "");
    fs::rename(&moved, d.join("vendor/lib")).unwrap();
    assert_ne!(recorded, "");

    // An untracked embedded repository (not a submodule) becomes a gitlink.
    let emb = d.join("embedded");
    init_in(&emb);
    write(&emb, "e.txt", "e\n");
    commit_all(&emb, "e");
    let (_, copy) = check_with_copy(d);
    assert!(copy.ls("embedded").starts_with("160000 "));
}

#[test]
fn many_files_at_scale() {
    let tmp = init();
    let d = tmp.path();
    write(d, ".gitignore", "*.tmp\nignored-dir/\n");
    for i in 0..2000 {
        write(
            d,
            &format!("d{:02}/s{:02}/f{i:04}.txt", i % 20, i % 7),
            format!("file {i}\n"),
        );
    }
    commit_all(d, "many");
    // Old mtimes, then rewrite the index so entries are not racy and the stat
    // shortcut is actually exercised for the unchanged files.
    for i in 0..2000 {
        set_mtime(
            &d.join(format!("d{:02}/s{:02}/f{i:04}.txt", i % 20, i % 7)),
            1_000_000_000 + i,
        );
    }
    git(d, &["update-index", "--refresh", "-q"]);
    assert!(!check(d).dirty);

    for i in (0..2000).step_by(97) {
        write(
            d,
            &format!("d{:02}/s{:02}/f{i:04}.txt", i % 20, i % 7),
            format!("changed {i}\n"),
        );
    }
    for i in (5..2000).step_by(131) {
        fs::remove_file(d.join(format!("d{:02}/s{:02}/f{i:04}.txt", i % 20, i % 7))).unwrap();
    }
    for i in (3..2000).step_by(89) {
        chmod(
            &d.join(format!("d{:02}/s{:02}/f{i:04}.txt", i % 20, i % 7)),
            0o755,
        );
    }
    for i in 0..300 {
        write(
            d,
            &format!("new/n{:02}/u{i:03}.txt", i % 13),
            format!("new {i}\n"),
        );
        write(d, &format!("d00/junk{i:03}.tmp"), "ignored\n");
        write(d, &format!("ignored-dir/x{i:03}"), "ignored\n");
    }
    assert!(check(d).dirty);
}

#[test]
fn not_a_repository_is_a_clear_error() {
    let tmp = TempDir::new().unwrap();
    let err = tree_state(tmp.path()).unwrap_err();
    assert!(
        matches!(err, TreeHashError::NotARepository { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("not a git repository"), "{msg}");
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
    assert!(msg.contains("run from the repository root"), "{msg}");

    // A subdirectory of a checkout is not accepted either.
    let repo = base_repo();
    let err = tree_state(&repo.path().join("src")).unwrap_err();
    assert!(
        matches!(err, TreeHashError::NotARepository { .. }),
        "{err:?}"
    );
}

#[test]
fn bare_repository_is_a_clear_error() {
    let tmp = TempDir::new().unwrap();
    git(tmp.path(), &["init", "-q", "--bare"]);
    let err = tree_state(tmp.path()).unwrap_err();
    assert!(
        matches!(err, TreeHashError::BareRepository { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("working tree"), "{err}");
}

#[test]
fn state_serialises_to_json() {
    let tmp = base_repo();
    let state = check(tmp.path());
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(json["tree"], state.tree);
    assert_eq!(json["dirty"], false);
    assert!(json["head_commit"].is_string());
}

#[test]
fn changes_on_both_sides_of_the_parallel_split() {
    // Many top-level names, so the diff is split in two halves; every kind of change lands on
    // both sides, including names only the index knows (a deleted directory) and names only the
    // working tree knows (untracked files and directories, an ignored directory).
    let tmp = init();
    let d = tmp.path();
    write(d, ".gitignore", "out/\n");
    for i in 0..40 {
        for f in 0..5 {
            write(d, &format!("d{i:02}/f{f}.txt"), format!("{i} {f}\n"));
        }
        write(d, &format!("top{i:02}.txt"), format!("top {i}\n"));
    }
    commit_all(d, "many names");
    for i in [1, 38] {
        write(d, &format!("d{i:02}/f0.txt"), "modified\n");
        fs::remove_dir_all(d.join(format!("d{:02}", i + 1))).unwrap();
        fs::remove_file(d.join(format!("top{i:02}.txt"))).unwrap();
        write(d, &format!("new{i:02}/inner/file.txt"), "untracked\n");
        write(
            d,
            &format!("d{:02}/new.txt", i - 1),
            "untracked in a tracked dir\n",
        );
    }
    write(d, "out/ignored.txt", "ignored\n");
    write(d, "zz-last.txt", "untracked, sorts last\n");
    assert!(check(d).dirty);
}

/// The host and a node must hash the same files alike whatever their users' git configuration:
/// a hostile global configuration (an excludes file hiding a file, autocrlf) changes nothing.
#[test]
fn machine_git_configuration_does_not_change_the_hash() {
    let repo = base_repo();
    let d = repo.path();
    write(
        d,
        "notes.secret",
        "untracked, not ignored by the repository\n",
    );
    write(d, "dos.txt", "line one\r\nline two\r\n");
    let home = TempDir::new().unwrap();
    write(home.path(), "excludes", "*.secret\n");
    write(
        home.path(),
        ".gitconfig",
        format!(
            "[core]\n\texcludesFile = {}\n\tautocrlf = true\n",
            home.path().join("excludes").display()
        ),
    );
    let prov_tree = |home: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_prov"))
            .args(["tree"])
            .arg(d)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let clean_home = TempDir::new().unwrap();
    let hostile = prov_tree(home.path());
    assert_eq!(hostile, prov_tree(clean_home.path()));
    // And it is what git prints with no machine configuration at all.
    assert!(hostile.starts_with(&git_write_tree_in_copy(d)), "{hostile}");
}
