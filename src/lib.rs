//! prov as a library, in four layers that draw the trust line (docs/ARCHITECTURE.md): `record`
//! (data and its rules), `node` (what runs inside a node), `host` (what runs on the host), `cli`
//! (one file per subcommand, a thin layer over the others). `error` decides every exit code.

pub mod cli;
pub mod error;
pub mod host;
pub mod node;
pub mod record;
