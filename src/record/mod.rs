//! The record: data and its rules, shared by both sides of the trust line. What a build records
//! and how it is stored, hashed, named, read safely and rendered as text. Nothing here runs a
//! process or reaches a node; the node and host layers build on it, never the other way.

pub mod bounded;
pub mod build_context;
pub mod build_inputs;
pub mod build_log;
pub mod buildkit;
pub mod compose;
pub mod digest;
pub mod drift;
pub mod engine;
pub mod image_fs;
pub mod manifest;
pub mod names;
pub mod nodes;
pub mod policy;
pub mod reproduction;
pub mod sbom;
pub mod stack;
pub mod store;
pub mod text;
pub mod tree_hash;
pub mod vendor;
