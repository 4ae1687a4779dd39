//! The source tree draws the trust line, and this test holds it there.
//!
//! `src/record/` is the data and its rules, `src/node/` what runs inside a node, `src/host/`
//! what runs on the host, `src/cli/` the subcommands. Arrows go one way: cli → host or node →
//! record, and `error.rs` is below them all. Host code never depends on node code (the host
//! never runs what a node runs), and no two modules depend on each other, directly or through
//! others. Every path a source file names (`use` items and paths in code alike) is read with a
//! Rust parser, so a dependency cannot hide in a function body.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The layers, and the layers each may depend on (besides itself and the crate root's
/// `error`).
const ALLOWED: &[(&str, &[&str])] = &[
    ("record", &[]),
    ("node", &["record"]),
    ("host", &["record"]),
    ("cli", &["record", "node", "host"]),
];

/// A module: its path from the crate root, e.g. `["host", "verify", "checks"]`.
type Module = Vec<String>;

/// Every path a file names, resolved to the crate's modules it reaches (`crate::`, `super::`,
/// `self::`, and `prov::` from the binary).
#[derive(Default)]
struct Paths {
    named: Vec<Vec<String>>,
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.named
            .push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut prefix = Vec::new();
        use_paths(&item.tree, &mut prefix, &mut self.named);
    }
}

fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => out.push([prefix.clone(), vec![n.ident.to_string()]].concat()),
        syn::UseTree::Rename(r) => out.push([prefix.clone(), vec![r.ident.to_string()]].concat()),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| use_paths(t, prefix, out)),
    }
}

/// The module a source file is, from its place under `src/`.
fn module_of(rel: &Path) -> Module {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The crate module a path starts in, seen from `module` (None for an outside crate or a
/// local name).
fn resolve(module: &Module, path: &[String]) -> Option<Module> {
    let mut base: Module = match path.first()?.as_str() {
        "crate" | "prov" => Vec::new(),
        "self" => module.clone(),
        "super" => module.clone(),
        _ => return None,
    };
    let mut rest = &path[1..];
    if path[0] == "super" {
        base.pop();
        while rest.first().map(String::as_str) == Some("super") {
            base.pop();
            rest = &rest[1..];
        }
    }
    Some(base.into_iter().chain(rest.iter().cloned()).collect())
}

/// The module (a file) a resolved path lands in: the longest prefix that is a known module.
fn owner(known: &BTreeSet<Module>, target: &Module) -> Option<Module> {
    (1..=target.len())
        .rev()
        .map(|n| target[..n].to_vec())
        .find(|m| known.contains(m))
}

/// Module → the other modules it names, for every file under `src`.
fn graph(sources: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    let known: BTreeSet<Module> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(module, text)| {
            let file = syn::parse_file(text).unwrap_or_else(|e| panic!("{module:?}: {e}"));
            let mut paths = Paths::default();
            paths.visit_file(&file);
            let deps = paths
                .named
                .iter()
                .filter_map(|p| resolve(module, p))
                .filter_map(|t| owner(&known, &t))
                // A module's own children (its `mod` items) and itself are not dependencies.
                .filter(|t| !t.starts_with(module) && !module.is_empty())
                .collect();
            (module.clone(), deps)
        })
        .collect()
}

/// Every dependency that breaks the layering, as "from → to" lines.
fn violations(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let layer_of = |m: &Module| m.first().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (from, deps) in graph {
        let Some((_, allowed)) = ALLOWED.iter().find(|(l, _)| *l == layer_of(from)) else {
            // The crate root (lib.rs) only declares the layers; `error` sits below them all.
            let root_or_error = from.is_empty() || from == &vec!["error".to_string()];
            if !root_or_error || !deps.is_empty() {
                out.push(format!(
                    "{} is outside the layers (or depends on them)",
                    from.join("::")
                ));
            }
            continue;
        };
        for to in deps {
            let layer = layer_of(to);
            if layer != layer_of(from) && layer != "error" && !allowed.contains(&layer.as_str()) {
                out.push(format!("{} → {}", from.join("::"), to.join("::")));
            }
        }
    }
    out
}

/// Every cycle of modules, each as its modules in order.
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    // A module is in a cycle when it reaches itself; one cycle per strongly connected group.
    let reach = |from: &Module| {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&Module> = graph[from].iter().collect();
        while let Some(m) = todo.pop() {
            if seen.insert(m.clone()) {
                todo.extend(graph.get(m).into_iter().flatten());
            }
        }
        seen
    };
    let reaches: BTreeMap<&Module, BTreeSet<Module>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut found: Vec<Vec<Module>> = Vec::new();
    for (m, r) in &reaches {
        if r.contains(*m) && !found.iter().any(|c| c.contains(m)) {
            let group = reaches
                .iter()
                .filter(|(o, ro)| r.contains(**o) && ro.contains(*m))
                .map(|(o, _)| (*o).clone())
                .collect();
            found.push(group);
        }
    }
    found
}

fn sources(root: &Path) -> BTreeMap<Module, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    files
        .into_iter()
        // main.rs is the binary: a crate of its own over the library, like the cli layer.
        .map(|f| {
            let rel = f.strip_prefix(root).unwrap();
            let module = if rel == Path::new("main.rs") {
                vec!["cli".to_string(), "main".to_string()]
            } else {
                module_of(rel)
            };
            (module, fs::read_to_string(&f).unwrap())
        })
        .collect()
}

#[test]
fn dependencies_go_one_way_across_the_trust_line() {
    let g = graph(&sources(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src").as_path(),
    ));
    for layer in ["record", "node", "host", "cli"] {
        assert!(
            g.keys()
                .any(|m| m.first().map(String::as_str) == Some(layer)),
            "no module found in src/{layer}/: the test would pass on nothing"
        );
    }
    let bad = violations(&g);
    assert!(
        bad.is_empty(),
        "dependencies against the layering (record ← node, host ← cli; host never uses node):\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let g = graph(&sources(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src").as_path(),
    ));
    let found = cycles(&g);
    let text: Vec<String> = found
        .iter()
        .map(|c| {
            c.iter()
                .map(|m| m.join("::"))
                .collect::<Vec<_>>()
                .join(" ↔ ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "modules that depend on each other:\n{}",
        text.join("\n")
    );
}

/// The checks above, on made-up sources: each bypass is caught, whatever way it is spelled.
#[test]
fn host_code_naming_node_code_is_caught() {
    let tree = |files: &[(&str, &str)]| -> BTreeMap<Module, String> {
        files
            .iter()
            .map(|(path, text)| (module_of(Path::new(path)), text.to_string()))
            .collect()
    };
    let base = [
        ("node/docker.rs", "pub fn run() {}"),
        ("node/mod.rs", "pub mod docker;"),
        ("record/digest.rs", "pub fn sha() {}"),
        ("record/mod.rs", "pub mod digest;"),
        ("host/mod.rs", "pub mod verify;"),
    ];
    for (how, text) in [
        ("a use item", "use crate::node::docker;"),
        (
            "a grouped use",
            "use crate::{record::digest, node::docker::run};",
        ),
        ("a path in a body", "fn f() { crate::node::docker::run() }"),
        (
            "a relative path",
            "fn f() { super::super::node::docker::run() }",
        ),
    ] {
        let mut files = base.to_vec();
        files.push(("host/verify.rs", text));
        let bad = violations(&graph(&tree(&files)));
        assert_eq!(bad, ["host::verify → node::docker"], "{how}: {text}");
    }
    let mut fine = base.to_vec();
    fine.push((
        "host/verify.rs",
        "use crate::record::digest::sha; fn f() { sha() }",
    ));
    assert!(violations(&graph(&tree(&fine))).is_empty());

    let mut looped = base.to_vec();
    looped[0] = ("node/docker.rs", "use super::build::x; pub fn run() {}");
    looped.push(("node/build.rs", "pub fn x() { super::docker::run() }"));
    let found = cycles(&graph(&tree(&looped)));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].len(), 2, "{found:?}");
}
