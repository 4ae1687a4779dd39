//! What runs inside a node, from `/vagrant`: `prov build` and its parts, the docker and Compose
//! command lines, and the execution-context guard. The host never calls into this layer (a test
//! holds it): what a node does reaches the host only as data.

pub mod build;
pub mod docker;
pub mod guard;
