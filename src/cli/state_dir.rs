//! `prov state-dir` (on the host): the checkout's host-only state folder, outside the checkout.

use std::path::Path;

use crate::error::{Outcome, Result};
use crate::host::state::HostState;

pub fn run(repo: &Path) -> Result<Outcome> {
    println!("{}", HostState::for_checkout(repo)?.dir().display());
    Ok(Outcome::Held)
}
