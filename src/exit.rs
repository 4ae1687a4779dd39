//! Exit codes, the contract scripts and CI rely on.

use std::process::ExitCode;

/// Everything held.
pub const EXIT_OK: u8 = 0;
/// A check ran and failed (or a build failed, or the execution context was refused).
pub const EXIT_FAILED: u8 = 1;
/// Something could not be checked or run: bad input, unreachable node, missing manifest.
pub const EXIT_COULD_NOT_CHECK: u8 = 2;

/// An error that means "checked, and it does not hold" rather than "could not check".
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(EXIT_FAILED)
    }
}
