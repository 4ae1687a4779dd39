//! How builds and the files of a node's store are named, in one place: a build's id, and beside
//! its record `<id>.json`, its build log, the files it pins, its attestations and the verdicts
//! of its reproductions. Every name here is also a path component, so nothing else is accepted.

use crate::record::nodes::NodeName;

/// Build ids are `YYYYMMDD-HHMMSS-mmm-xxxx` (UTC start time, four hex digits): they name files,
/// image tags and command arguments, so nothing else is accepted as one.
pub fn is_build_id(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 24
        && b[8] == b'-'
        && b[15] == b'-'
        && b[19] == b'-'
        && digits(0..8)
        && digits(9..15)
        && digits(16..19)
        && b[20..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// The record of a build.
pub fn record(build_id: &str) -> String {
    format!("{build_id}.json")
}

/// The build id a file name is the record of (`<id>.json`), if it is one.
pub fn record_id(name: &str) -> Option<&str> {
    name.strip_suffix(".json").filter(|id| is_build_id(id))
}

/// The builder's output, as the record's digest pins it.
pub fn log(build_id: &str) -> String {
    format!("{build_id}.log")
}

/// A file the record pins beside itself (`manifest::side_files`: BuildKit's provenance, the
/// SBOM).
pub fn side(build_id: &str, suffix: &str) -> String {
    format!("{build_id}.{suffix}")
}

/// The host's signed attestation of the record (DSSE).
pub fn envelope(build_id: &str) -> String {
    format!("{build_id}.dsse.json")
}

/// The host's signed attestation of the record's SBOM.
pub fn sbom_envelope(build_id: &str) -> String {
    format!("{build_id}.sbom.dsse.json")
}

/// The host's signed verdict of a reproduction of the build on `node`.
pub fn verdict(build_id: &str, node: &NodeName) -> String {
    format!("{build_id}.reproduce-{node}.dsse.json")
}

/// The node a verdict's file name says rebuilt the build, if the name is a verdict of it.
pub fn verdict_node(name: &str, build_id: &str) -> Option<NodeName> {
    name.strip_prefix(build_id)?
        .strip_prefix(".reproduce-")?
        .strip_suffix(".dsse.json")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "20261129-120000-000-aaaa";

    #[test]
    fn a_record_name_is_a_build_id_and_nothing_else() {
        assert_eq!(record_id(&record(ID)), Some(ID));
        for other in [envelope(ID), log(ID), "../x.json".into(), "latest".into()] {
            assert_eq!(record_id(&other), None, "{other}");
        }
    }

    #[test]
    fn a_verdict_names_the_node_that_rebuilt() {
        let worker: NodeName = "worker1".parse().unwrap();
        assert_eq!(verdict_node(&verdict(ID, &worker), ID), Some(worker));
        assert_eq!(verdict_node(&envelope(ID), ID), None);
        assert_eq!(
            verdict_node(&format!("{ID}.reproduce-../x.dsse.json"), ID),
            None
        );
    }
}
