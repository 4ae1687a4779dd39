//! `prov diff` (on the host): two builds side by side (across nodes): what must match, what may
//! differ, and the images, file by file.

use std::fmt::Write;
use std::path::Path;

use crate::error::{Outcome, Result};
use crate::host::diff::{self, DiffReport, FieldComparison, Side};
use crate::record::text::{clip, short_id as short};

#[derive(clap::Args)]
pub struct Args {
    /// NODE or NODE:BUILD (a build id or `latest`).
    pub a: Side,
    /// NODE or NODE:BUILD.
    pub b: Side,
    #[arg(long)]
    pub json: bool,
    /// Skip the file-by-file comparison of the two images (no node is contacted).
    #[arg(long)]
    pub no_files: bool,
}

pub fn run(repo: &Path, args: Args) -> Result<Outcome> {
    let report = diff::diff(repo, &args.a, &args.b, !args.no_files)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.ok {
        Outcome::Held
    } else {
        Outcome::Failed
    })
}

/// The report for people, within 80 columns.
pub fn render(r: &DiffReport) -> String {
    let r = &crate::record::text::printable_all(r);
    let mut out = String::new();
    let _ = writeln!(out, "a: {}\nb: {}\n", r.a, r.b);
    render_fields(&mut out, "must match", &r.must_match, true);
    render_fields(&mut out, "expected to differ", &r.expected_to_differ, false);
    render_fields(&mut out, "environment (not judged)", &r.environment, false);
    if let Some(i) = &r.image {
        let _ = writeln!(out, "image");
        let _ = writeln!(
            out,
            "  id      {}",
            if i.same_id {
                format!("identical: the same ID ({})", short(&i.a_id))
            } else {
                format!("differs (a {}, b {})", short(&i.a_id), short(&i.b_id))
            }
        );
        let _ = writeln!(
            out,
            "  layers  {} diff ids shared from the bottom (a has {}, b has {})",
            i.shared_layers, i.layers_a, i.layers_b
        );
        match (&i.files, &i.files_error) {
            (Some(f), _) if f.same => {
                let _ = writeln!(out, "  files   same content in all {} paths", f.compared);
            }
            (Some(f), _) => {
                let _ = writeln!(
                    out,
                    "  files   {} differ, {} only in a, {} only in b (of {})",
                    f.differing.len(),
                    f.only_a.len(),
                    f.only_b.len(),
                    f.compared
                );
                for (label, paths) in [
                    ("differs", &f.differing),
                    ("only a", &f.only_a),
                    ("only b", &f.only_b),
                ] {
                    for p in paths.iter().take(20) {
                        let _ = writeln!(out, "    {label:<8} /{}", clip(p, 64));
                    }
                    if paths.len() > 20 {
                        let _ = writeln!(out, "    ... and {} more (see --json)", paths.len() - 20);
                    }
                }
            }
            (None, Some(e)) => {
                let _ = writeln!(out, "  files   not compared: {}", clip(e, 60));
            }
            (None, None) if i.same_id => {
                let _ = writeln!(out, "  files   the same image: nothing to compare");
            }
            (None, None) => {
                let _ = writeln!(out, "  files   not compared (--no-files)");
            }
        }
    }
    render_sbom(&mut out, r);
    let differing = r.must_match.iter().filter(|f| !f.same).count();
    let _ = writeln!(
        out,
        "\n{}",
        if r.ok {
            "verdict: every must-match field agrees".to_string()
        } else {
            format!("verdict: {differing} must-match field(s) differ")
        }
    );
    out
}

fn render_fields(out: &mut String, title: &str, fields: &[FieldComparison], judged: bool) {
    let _ = writeln!(out, "{title}");
    for f in fields {
        let mark = match (judged, f.same) {
            (_, true) => "same   ",
            (true, false) => "DIFFERS",
            (false, false) => "differs",
        };
        if f.same {
            let _ = writeln!(out, "  {mark} {:<22} {}", f.field, clip(&f.a, 44));
        } else {
            let _ = writeln!(out, "  {mark} {:<22} a: {}", f.field, clip(&f.a, 41));
            let _ = writeln!(out, "  {:<30} b: {}", "", clip(&f.b, 41));
        }
    }
}

fn render_sbom(out: &mut String, r: &DiffReport) {
    let c = match (&r.sbom, &r.sbom_error) {
        (Some(c), _) => c,
        (None, Some(e)) => {
            let _ = writeln!(out, "sbom      not compared: {}", clip(e, 56));
            return;
        }
        (None, None) => return,
    };
    if c.added.is_empty() && c.removed.is_empty() && c.changed.is_empty() {
        let _ = writeln!(
            out,
            "sbom      the same packages at the same versions ({})",
            c.a_count
        );
        return;
    }
    let _ = writeln!(
        out,
        "sbom      {} changed, {} added, {} removed (a lists {}, b {})",
        c.changed.len(),
        c.added.len(),
        c.removed.len(),
        c.a_count,
        c.b_count
    );
    for p in &c.changed {
        let change = format!("{} -> {}", p.a.join(","), p.b.join(","));
        let _ = writeln!(
            out,
            "  changed {:<30} {}",
            clip(&p.package, 30),
            clip(&change, 36)
        );
    }
    for (label, list) in [("added", &c.added), ("removed", &c.removed)] {
        for p in list {
            let _ = writeln!(
                out,
                "  {label:<7} {:<30} {}",
                clip(&p.package, 30),
                clip(&p.versions.join(","), 36)
            );
        }
    }
}
