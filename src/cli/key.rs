//! `prov key init` (on the host): the project's attestation key, made once.

use std::path::Path;

use crate::error::{Outcome, Result};
use crate::host::attest;
use crate::host::state::HostState;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Generate the project's ed25519 key, once (a project that has one keeps it), and export
    /// its public half, in the host's state folder (never in the checkout). The golden path
    /// runs it before every step that signs.
    Init,
}

/// Makes the key, once: a project that has one keeps it. A key an older prov kept in the
/// checkout (where nodes can read it) is moved to the state folder first; this is the one
/// command that moves it, so that reading commands never write.
pub fn run(repo: &Path, command: Command) -> Result<Outcome> {
    let Command::Init = command;
    let state = HostState::for_checkout(repo)?;
    if let Some(line) = state.migrate(repo)? {
        eprintln!("{line}");
    }
    let (public, made) = attest::init_key(&state)?;
    println!(
        "prov: key {}; private half {} (mode 0600, outside the checkout), public half {}",
        if made {
            "made"
        } else {
            "kept (the project has one)"
        },
        state.private_key().display(),
        public.display()
    );
    Ok(Outcome::Held)
}
