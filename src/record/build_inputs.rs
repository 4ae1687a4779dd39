//! How a build's recorded inputs become what `docker build` is given: the builder, the build
//! arguments (the bases' IDs or named contexts, the source's commit, tree and date), and the
//! source URL the labels name. The node builds with them; the host computes them again from the
//! record to prove it, and to put BuildKit's own account beside prov's.

use std::path::Path;

use crate::record::manifest::{BaseImage, GitSource, SourceDate};

/// The builder the node's engine offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// Engine 20.10 (bookworm nodes): the only one that takes `FROM <image id>`.
    Legacy,
    /// BuildKit through buildx (trixie nodes): bases arrive as named build contexts.
    BuildKit,
}

/// The source the image's labels name: the checkout's `origin`, else the folder it is built in
/// (on a node, `/vagrant`; the export carries the host's git configuration, so the host knows
/// which).
pub fn source_url(repo: &Path, built_in: &Path) -> String {
    git2::Repository::open(repo)
        .ok()
        .and_then(|r| {
            r.find_remote("origin")
                .ok()
                .and_then(|o| o.url().map(str::to_string))
        })
        .unwrap_or_else(|| format!("file://{}", built_in.display()))
}

/// The named build context that carries a base to BuildKit.
pub fn base_context_name(arg: &str) -> String {
    format!("prov-base-{}", arg.to_lowercase().replace('_', "-"))
}

/// The build arguments a build passes, in order: each base (its ID to the legacy builder, its
/// named context to BuildKit), the source's commit and tree, the source's date (BuildKit's
/// `SOURCE_DATE_EPOCH`), then the caller's. None names the build: the same inputs give the same
/// image.
pub fn passed_build_args(
    builder: Builder,
    bases: &[BaseImage],
    git: &GitSource,
    source_date: Option<&SourceDate>,
    callers: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    bases
        .iter()
        .map(|base| {
            let value = match builder {
                Builder::Legacy => base.id.clone(),
                Builder::BuildKit => base_context_name(&base.arg),
            };
            (base.arg.clone(), value)
        })
        .chain([
            (
                "PROV_GIT_COMMIT".to_string(),
                git.commit.clone().unwrap_or_default(),
            ),
            ("PROV_GIT_TREE".to_string(), git.tree.clone()),
        ])
        .chain(
            source_date
                .filter(|_| builder == Builder::BuildKit)
                .map(|d| ("SOURCE_DATE_EPOCH".to_string(), d.epoch.to_string())),
        )
        .chain(callers)
        .collect()
}
