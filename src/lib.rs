//! prov as a library: the CLI in `main.rs` is a thin layer over these modules.

pub mod cli;
pub mod error;
pub mod host;
pub mod node;
pub mod record;
