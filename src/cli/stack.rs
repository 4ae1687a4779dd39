//! `prov stack`: the stack's names (Compose project, services, containers, labels) as shell
//! assignments, for the scripts.

use crate::error::{Outcome, Result};
use crate::record::stack;

pub fn run() -> Result<Outcome> {
    print!("{}", stack::shell_assignments());
    Ok(Outcome::Held)
}
