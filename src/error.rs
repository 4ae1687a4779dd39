//! The one error type, and the exit code it decides: the contract scripts and CI rely on.
//!
//! Every error is one of two things to whoever ran prov: a check ran and found something not as
//! it must be (exit 1), or something could not be checked or run at all (exit 2). Code that can
//! reach a verdict says which by making an [`Error`] with [`Error::failed`]; every other error
//! (an unreachable node, bad input, a file that cannot be read) converts on `?` into one that
//! could not check. The causes stay a chain, printed outermost first.

use std::fmt;
use std::process::ExitCode;

/// What a run of prov concluded; its code is the process's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Held,
    Failed,
    Unchecked,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Held, Outcome::Failed, Outcome::Unchecked];

    pub fn code(self) -> u8 {
        match self {
            Outcome::Held => 0,
            Outcome::Failed => 1,
            Outcome::Unchecked => 2,
        }
    }

    /// What the code means, as the README's table of exit codes says it (a test holds them
    /// equal).
    pub fn meaning(self) -> &'static str {
        match self {
            Outcome::Held => "everything held",
            Outcome::Failed => {
                "a check ran and failed: verify found the node not as recorded, diff found a \
                 must-match field that differs, reproduce found the images different, attest \
                 found the record not as the node's engine holds it, a build failed or the \
                 execution context was refused"
            }
            Outcome::Unchecked => {
                "something could not be checked or run: a node unreachable or not answering \
                 within its bound, no build recorded, an unreadable or refused record, bad \
                 input, a held build lock, or a panic (a bug in prov, never a verdict)"
            }
        }
    }

    /// The outcome of several checks: the worst of them (nothing checked beats a failure, which
    /// beats everything held).
    pub fn worst(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
        outcomes.into_iter().max().unwrap_or(Outcome::Held)
    }

    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

/// An error with its causes, and whether it is a failed check or a check that could not be made.
pub struct Error {
    outcome: Outcome,
    cause: anyhow::Error,
}

impl Error {
    /// A verdict: the check ran, and what it checked does not hold.
    pub fn failed(cause: impl Into<anyhow::Error>) -> Error {
        Error {
            outcome: Outcome::Failed,
            cause: cause.into(),
        }
    }

    /// Never [`Outcome::Held`]: an error is a failure or a check not made.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    pub fn code(&self) -> u8 {
        self.outcome.code()
    }

    /// Adds what was being done when it went wrong, keeping the outcome.
    pub fn context(self, what: impl fmt::Display + Send + Sync + 'static) -> Error {
        Error {
            outcome: self.outcome,
            cause: self.cause.context(what),
        }
    }

    /// The causes, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        self.cause.chain()
    }
}

/// Anything else that goes wrong means the check could not be made.
impl<E: Into<anyhow::Error>> From<E> for Error {
    fn from(cause: E) -> Error {
        Error {
            outcome: Outcome::Unchecked,
            cause: cause.into(),
        }
    }
}

/// The causes, joined by ": ".
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.cause)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} (exit {}): {:#}",
            self.outcome,
            self.code(),
            self.cause
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_error_could_not_check_and_a_verdict_failed() {
        let io = std::io::Error::other("no route to host");
        let e: Error = io.into();
        assert_eq!(e.code(), 2);
        let e = Error::failed(anyhow::anyhow!("the image differs"));
        assert_eq!(e.code(), 1);
    }

    #[test]
    fn context_keeps_the_outcome_and_the_causes() {
        let e = Error::failed(anyhow::anyhow!("the image differs")).context("verifying main");
        assert_eq!(e.outcome(), Outcome::Failed);
        assert_eq!(e.to_string(), "verifying main: the image differs");
        assert_eq!(e.chain().count(), 2);
    }

    #[test]
    fn the_worst_outcome_wins() {
        use Outcome::*;
        assert_eq!(Outcome::worst([Held, Failed, Held]), Failed);
        assert_eq!(Outcome::worst([Failed, Unchecked]), Unchecked);
        assert_eq!(Outcome::worst([]), Held);
    }
}
