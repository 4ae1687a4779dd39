//! What runs on the host, the only trusted party: the ssh transport, the export sync, the import
//! and its proofs, the bases, verify and its checks, attestations and summaries, reproduce, diff
//! and the host's state. It reads what nodes wrote as data, through `record`, and never uses
//! `node`.

pub mod attest;
pub mod bases;
pub mod checks;
pub mod container_config;
pub mod diff;
pub mod held;
pub mod image_files;
pub mod import;
pub mod pool;
pub mod probe;
pub mod proof;
pub mod proven_files;
pub mod report;
pub mod reproduce;
pub mod state;
pub mod sync;
pub mod transport;
pub mod upper;
pub mod verdicts;
pub mod verify;
pub mod vsa;
pub mod watch;
