//! prov as a library: the CLI in `main.rs` is a thin layer over these modules.

pub mod attest;
pub mod bounded;
pub mod build;
pub mod build_context;
pub mod checks;
pub mod cli;
pub mod compose;
pub mod context;
pub mod diff;
pub mod digest;
pub mod docker;
pub mod exit;
pub mod image_fs;
pub mod manifest;
pub mod model;
pub mod nodes;
pub mod policy;
pub mod probe;
pub mod report;
pub mod show;
pub mod stack;
pub mod text;
pub mod transport;
pub mod tree_hash;
pub mod vendor;
pub mod verify;
