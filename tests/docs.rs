//! The README and docs/ say what `prov --help` says: the README's synopsis names every
//! subcommand with every flag it has and no other, and every `prov ...` command written in
//! backquotes in the README or docs/ names a subcommand and flags that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_prov"))
        .args(args)
        .arg("--help")
        .output()
        .expect("prov runs");
    assert!(out.status.success(), "prov {args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands a help text lists (under `Commands:`), `help` aside.
fn subcommands(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The long flags a help text lists, `--help` and the global `--repo` aside.
fn flags(text: &str) -> BTreeSet<String> {
    text.lines()
        .skip_while(|l| !l.starts_with("Options:"))
        .flat_map(|l| {
            l.split_whitespace()
                .take(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|w| w.strip_suffix(',').map(str::to_string).or(Some(w)))
        .filter(|w| w.starts_with("--") && w != "--help" && w != "--repo")
        .collect()
}

/// Every subcommand (as `key init` for nested ones) and its flags.
fn cli() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for sub in subcommands(&help(&[])) {
        let text = help(&[&sub]);
        let nested = subcommands(&text);
        if nested.is_empty() {
            out.insert(sub.clone(), flags(&text));
        } else {
            for inner in nested {
                out.insert(format!("{sub} {inner}"), flags(&help(&[&sub, &inner])));
            }
        }
    }
    out
}

/// The flags written in a command line (`--name`, up to `=` or the end of the word).
fn written_flags(line: &str) -> BTreeSet<String> {
    line.split(|c: char| c.is_whitespace() || "[]|()`".contains(c))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.split('=').next().unwrap().to_string())
        .collect()
}

/// The subcommand a written `prov` command names: `key init` for nested ones.
fn named(cli: &BTreeMap<String, BTreeSet<String>>, words: &[&str]) -> Option<String> {
    let two = words.get(..2).map(|w| w.join(" "));
    if let Some(two) = two.filter(|t| cli.contains_key(t)) {
        return Some(two);
    }
    let one = *words.first()?;
    cli.contains_key(one).then(|| one.to_string())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_readmes_synopsis_names_every_subcommand_with_every_flag() {
    let cli = cli();
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let block = readme
        .split("\n## prov\n")
        .nth(1)
        .and_then(|s| s.split("```").nth(1))
        .expect("the README has a synopsis block under ## prov");
    // Each `prov SUB` line, with the indented lines that continue it.
    let mut written: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in block.lines() {
        if let Some(rest) = line.strip_prefix("prov ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let sub = named(&cli, &words)
                .unwrap_or_else(|| panic!("the synopsis names no subcommand prov has: {line}"));
            written
                .entry(sub.clone())
                .or_default()
                .extend(written_flags(rest));
            current = Some(sub);
        } else if line.starts_with(' ') {
            let sub = current
                .clone()
                .expect("a continuation line follows a prov line");
            // Only the flags before the description (which starts after a wide gap).
            let synopsis = line.trim_start().split("   ").next().unwrap_or_default();
            written
                .get_mut(&sub)
                .unwrap()
                .extend(written_flags(synopsis));
        }
    }
    for (sub, flags) in &cli {
        let documented = written
            .get(sub)
            .unwrap_or_else(|| panic!("the README's synopsis lacks `prov {sub}`"));
        assert_eq!(
            documented, flags,
            "the flags of `prov {sub}` in the README's synopsis"
        );
    }
}

/// The README and every document under docs/.
fn doc_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![root.join("README.md")];
    files.extend(
        std::fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    files
}

#[test]
fn every_prov_command_the_docs_write_exists() {
    let cli = cli();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in doc_files(root) {
        let text = read(&file);
        // Backquoted spans: `prov SUB ...`.
        for span in text.split('`').skip(1).step_by(2) {
            let Some(rest) = span.strip_prefix("prov ") else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            let Some(sub) = named(&cli, &words) else {
                panic!(
                    "{}: `prov {rest}` names no subcommand of prov",
                    file.display()
                );
            };
            for flag in written_flags(rest) {
                assert!(
                    cli[&sub].contains(&flag) || flag == "--repo",
                    "{}: `prov {rest}`: prov {sub} has no {flag}",
                    file.display()
                );
            }
        }
    }
}

/// The README's table of exit codes is the one `prov --help` prints, which `Outcome` makes: the
/// same codes, in the same order, with the same meanings.
#[test]
fn the_readmes_exit_codes_are_the_ones_prov_decides() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table: Vec<(String, String)> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| code | meaning |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            (cells[0].to_string(), cells[1].to_string())
        })
        .collect();
    let decided: Vec<(String, String)> = prov::error::Outcome::ALL
        .iter()
        .map(|o| (o.code().to_string(), o.meaning().to_string()))
        .collect();
    assert_eq!(
        table, decided,
        "the README's exit codes, against src/error.rs"
    );
    let help = help(&[]);
    for (code, meaning) in &decided {
        assert!(
            help.contains(&format!("  {code}  {meaning}")),
            "prov --help does not end with exit code {code}: {help}"
        );
    }
}

/// The files docs/ARCHITECTURE.md's map names under `src/`: a line at the left margin names a
/// folder, the indented lines below it name its files (one or more per line, before the
/// description).
fn mapped_sources(map: &str) -> BTreeSet<String> {
    let block = map
        .split("## Where things live")
        .nth(1)
        .and_then(|rest| rest.split("```").nth(1))
        .expect("docs/ARCHITECTURE.md has a map in a code block under `## Where things live`");
    let mut folder = String::new();
    let mut named = BTreeSet::new();
    for line in block.lines() {
        if !line.starts_with(' ') {
            folder = line.split_whitespace().next().unwrap_or("").to_string();
            continue;
        }
        // Names come first; the description starts at the first word that is not a file name.
        for word in line.split_whitespace().take_while(|w| w.ends_with(".rs")) {
            named.insert(format!("{folder}{word}"));
        }
    }
    named.retain(|n| n.starts_with("src/"));
    named
}

/// The map of the code names every source file, and only files that exist: it cannot go stale.
#[test]
fn the_architecture_map_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mapped = mapped_sources(&read(&root.join("docs/ARCHITECTURE.md")));
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap();
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut present = BTreeSet::new();
    walk(root, &root.join("src"), &mut present);
    let missing: Vec<_> = present.difference(&mapped).collect();
    let stale: Vec<_> = mapped.difference(&present).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/ARCHITECTURE.md's map: add {missing:?}, remove {stale:?}"
    );
}

/// Every path under src/, tests/ or scripts/ the docs write in backquotes exists.
#[test]
fn every_path_the_docs_write_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in doc_files(root) {
        let text = read(&file);
        for span in text.split('`').skip(1).step_by(2) {
            let is_path = ["src/", "tests/", "scripts/"]
                .iter()
                .any(|p| span.starts_with(p))
                && !span.contains(char::is_whitespace)
                && !span.contains('*');
            if is_path {
                assert!(
                    root.join(span).exists(),
                    "{}: `{span}` does not exist",
                    file.display()
                );
            }
        }
    }
}
