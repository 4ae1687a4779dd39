//! `prov show`: a build manifest, readable by a reviewer.

use std::fmt::Write;

use crate::manifest::Stored;

pub fn render(stored: &Stored) -> String {
    let m = &stored.manifest;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "build     {} on {} ({:?})",
        m.build_id, m.node, m.status
    );
    let _ = writeln!(
        out,
        "source    commit {} tree {}{}",
        m.git.commit.as_deref().unwrap_or("(none)"),
        m.git.tree,
        if m.git.dirty { " (dirty)" } else { "" }
    );
    let _ = writeln!(
        out,
        "dockerfile {} sha256:{}",
        m.dockerfile.path, m.dockerfile.sha256
    );
    if let Some(image) = &m.image {
        let _ = writeln!(out, "image     {} {}", image.id, image.tag);
    }
    let _ = writeln!(
        out,
        "log       {} ({} bytes, sha256:{})",
        m.build_log.path, m.build_log.bytes, m.build_log.sha256
    );
    let _ = writeln!(out, "manifest  sha256:{}", stored.sha256);
    out
}
