pub mod build;
pub mod docker;
pub mod guard;
