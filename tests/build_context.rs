//! The build context prov makes from the recorded tree, against what a real `docker build`
//! receives from the same fixture repository's folder (with a .dockerignore naming the same
//! paths): the same files, modes and link targets. And what the folder would have let in, but
//! the tree does not record, is refused by name. The comparison with docker needs a Docker
//! engine: it is left out of `cargo test` and run by the end-to-end stage of `make test`
//! (`cargo test --test build_context -- --ignored`), which has one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

mod support;

use prov::record::build_context;
use prov::record::image_fs::{self, Listing};
use prov::record::manifest::BuildContext;
use prov::record::policy::{ContextSpec, DerivedSpec, Proof};
use prov::record::tree_hash::{tree_files, TreeFile};
use tempfile::TempDir;

fn run(dir: &Path, program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .unwrap();
    assert!(status.success(), "{program} {args:?}");
}

/// `git add -A && git commit` in `dir`.
fn commit_all(dir: &Path) {
    run(dir, "git", &["add", "-A"]);
    let who = ["-c", "user.name=t", "-c", "user.email=t@t"];
    run(
        dir,
        "git",
        &[&who[..], &["commit", "-qm", "fixture"]].concat(),
    );
}

fn write(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// A repository with files in and out of the context: committed, untracked (but not ignored:
/// `git add -A` takes it), executable, a symbolic link, and vendored crates (ignored by git)
/// with the archives they are proven against.
fn fixture() -> TempDir {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    run(d, "git", &["init", "-q", "-b", "main"]);
    write(d, "app/Dockerfile", "FROM scratch\nCOPY . /ctx/\n");
    write(d, "app/main.txt", "main\n");
    write(d, "src/lib/lib.txt", "lib\n");
    write(d, "src/run.sh", "#!/bin/sh\n");
    fs::set_permissions(d.join("src/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("lib/lib.txt", d.join("src/link")).unwrap();
    write(d, "README.md", "not in the context\n");
    write(d, ".gitignore", "/vendor/\n/.cache/\n");
    support::vendor_tiny_crate(d);
    commit_all(d);
    write(d, "src/new.txt", "untracked, not ignored\n");
    tmp
}

fn spec() -> ContextSpec {
    ContextSpec {
        from_tree: vec!["Cargo.lock".into(), "app".into(), "src".into()],
        derived: vec![DerivedSpec {
            path: "vendor".into(),
            proof: Proof::CargoVendor,
        }],
    }
}

/// The context of the fixture's tree `files`, streamed into the file `tar`.
fn make(d: &Path, files: &[TreeFile], tar: &Path) -> anyhow::Result<BuildContext> {
    build_context::plan(d, Path::new("."), &spec(), files)?.stream(fs::File::create(tar)?, || {})
}

/// Streams the context into `tar` as `make` does, for a check that fails; returns the error,
/// whether the builder was withdrawn, and what it received.
fn refused_stream(d: &Path, files: &[TreeFile], tar: &Path) -> (String, bool, Vec<u8>) {
    let withdrawn = std::cell::Cell::new(false);
    let err = build_context::plan(d, Path::new("."), &spec(), files)
        .unwrap()
        .stream(fs::File::create(tar).unwrap(), || withdrawn.set(true))
        .expect_err("refused");
    (format!("{err:#}"), withdrawn.get(), fs::read(tar).unwrap())
}

/// A tar reader given `bytes` fails on them: they are no whole archive, not even a shorter one.
fn no_reader_takes(bytes: &[u8]) -> bool {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .map(|entries| entries.into_iter().any(|e| e.is_err()))
        .unwrap_or(true)
}

/// Builds `FROM scratch` + `COPY . /ctx/` with the given context (a folder, or `-` with the
/// tar on stdin) and lists the image's files.
fn docker_listing(context: &str, dir: &Path, stdin: Option<&Path>) -> Listing {
    let tag = format!("prov-context-test:{}", std::process::id());
    let mut build = Command::new("docker");
    build
        .args([
            "build",
            "-q",
            "--no-cache",
            "-f",
            "app/Dockerfile",
            "-t",
            &tag,
            context,
        ])
        .current_dir(dir)
        .env("DOCKER_BUILDKIT", "0");
    if let Some(tar) = stdin {
        build.stdin(fs::File::open(tar).unwrap());
    }
    let out = build.output().expect("docker runs");
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut save = Command::new("docker")
        .args(["save", &tag])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let listing = image_fs::listing_from_save(save.stdout.take().unwrap()).unwrap();
    assert!(save.wait().unwrap().success());
    let _ = Command::new("docker").args(["image", "rm", &tag]).output();
    listing
}

#[test]
#[ignore = "needs a Docker engine: the end-to-end stage of make test runs it"]
fn the_context_is_what_docker_receives_from_the_folder() {
    let repo = fixture();
    // The streams go beside the repository, never into it, and are removed with the test.
    let out = TempDir::new().unwrap();
    let d = repo.path();
    let (_, files) = tree_files(d).unwrap();
    let tar = out.path().join("context.tar");
    let made = make(d, &files, &tar).unwrap();
    // Cargo.lock; app: 2; src: lib.txt, run.sh, link, new.txt; vendor/tiny: 3.
    assert_eq!(made.files, 10);
    assert_eq!(made.derived[0].files, 3);

    let from_prov = docker_listing("-", d, Some(&tar));
    write(d, ".dockerignore", "*\n!Cargo.lock\n!app\n!src\n!vendor\n");
    let from_folder = docker_listing(".", d, None);
    let comparison = image_fs::compare(&from_prov, &from_folder);
    assert!(
        comparison.differing.is_empty()
            && comparison.only_a.is_empty()
            && comparison.only_b.is_empty(),
        "{comparison:?}"
    );
    assert!(from_prov.keys().any(|p| p.ends_with("ctx/src/new.txt")));
    assert!(!from_prov.keys().any(|p| p.ends_with("README.md")));
}

#[test]
fn the_same_inputs_give_the_same_stream() {
    let repo = fixture();
    // The streams go beside the repository, never into it, and are removed with the test.
    let out = TempDir::new().unwrap();
    let d = repo.path();
    let (_, files) = tree_files(d).unwrap();
    let first = make(d, &files, &out.path().join("a.tar")).unwrap();
    let second = make(d, &files, &out.path().join("b.tar")).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        fs::read(out.path().join("a.tar")).unwrap(),
        fs::read(out.path().join("b.tar")).unwrap()
    );
    // The host's record of the same inputs, made without writing them, is the stream's.
    assert_eq!(
        build_context::record_of(d, Path::new("."), &spec(), &files).unwrap(),
        first
    );
    // A whole archive, its end included.
    assert!(!no_reader_takes(
        &fs::read(out.path().join("a.tar")).unwrap()
    ));
}

#[test]
fn a_file_the_tree_does_not_record_is_refused_by_name() {
    let repo = fixture();
    // The streams go beside the repository, never into it, and are removed with the test.
    let out = TempDir::new().unwrap();
    let d = repo.path();
    // Hidden from git by the repository's own exclude file, which a build from the folder
    // would not know about: cargo would pick up a build.rs by itself.
    write(d, ".git/info/exclude", "app/build.rs\n");
    write(d, "app/build.rs", "fn main() {}\n");
    let (_, files) = tree_files(d).unwrap();
    let err = make(d, &files, &out.path().join("c.tar")).expect_err("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("app/build.rs") && text.contains("not in the recorded tree"),
        "{text}"
    );
}

#[test]
fn a_nested_repository_in_the_context_is_refused() {
    let repo = fixture();
    // The streams go beside the repository, never into it, and are removed with the test.
    let out = TempDir::new().unwrap();
    let d = repo.path();
    run(&d.join("src"), "git", &["init", "-q", "nested"]);
    write(d, "src/nested/file.txt", "inside a nested repository\n");
    commit_all(&d.join("src/nested"));
    let (_, files) = tree_files(d).unwrap();
    let err = make(d, &files, &out.path().join("n.tar")).expect_err("refused");
    assert!(format!("{err:#}").contains("src/nested"), "{err:#}");
}

#[test]
fn a_file_changed_after_hashing_withdraws_the_context_before_its_end() {
    let repo = fixture();
    // The streams go beside the repository, never into it, and are removed with the test.
    let out = TempDir::new().unwrap();
    let d = repo.path();
    let (_, files) = tree_files(d).unwrap();
    write(d, "app/main.txt", "changed after the hash\n");
    let (err, withdrawn, sent) = refused_stream(d, &files, &out.path().join("x.tar"));
    assert!(err.contains("app/main.txt changed"), "{err}");
    // The builder is stopped, and what it was sent so far ends in no archive a reader takes:
    // the entries before the changed file are not a context.
    assert!(withdrawn);
    assert!(
        !sent.is_empty() && no_reader_takes(&sent),
        "{} bytes",
        sent.len()
    );
}

#[test]
fn an_edited_vendored_crate_withdraws_the_context_before_its_end() {
    let repo = fixture();
    // The streams go beside the repository, never into it, and are removed with the test.
    let out = TempDir::new().unwrap();
    let d = repo.path();
    write(d, "vendor/tiny/src/lib.rs", "pub fn tiny() -> u8 { 7 }\n");
    let (_, files) = tree_files(d).unwrap();
    // Every entry was written (the proof runs beside the writing); the end never is.
    let (err, withdrawn, sent) = refused_stream(d, &files, &out.path().join("v.tar"));
    assert!(err.contains("vendor/tiny/src/lib.rs differs"), "{err}");
    assert!(withdrawn);
    assert!(no_reader_takes(&sent), "{} bytes", sent.len());
}
