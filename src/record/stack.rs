//! The stack's names, defined once: the Compose project, its services and containers, the
//! database volume, the environment variables compose.yaml reads, and the label keys Compose
//! stamps. prov uses these constants; the scripts read them from `prov stack` (shell
//! assignments), and a test checks that compose.yaml agrees with them.

/// Compose project name on every node.
pub const PROJECT: &str = "prov";
/// The Compose file, relative to the repository root.
pub const COMPOSE_FILE: &str = "compose.yaml";
pub const API_SERVICE: &str = "api";
pub const DB_SERVICE: &str = "db";
/// The services, in the order verify reports them.
pub const SERVICES: [&str; 2] = [API_SERVICE, DB_SERVICE];
/// `container_name` of each service, so verify can ask for both in its one round trip.
pub const API_CONTAINER: &str = "prov-api";
pub const DB_CONTAINER: &str = "prov-db";
/// Repository part of the api image's tag; the tag itself is the build id.
pub const API_IMAGE_NAME: &str = "prov-api";
/// The environment variables compose.yaml takes the image references from.
pub const API_IMAGE_VAR: &str = "PROV_API_IMAGE";
pub const DB_IMAGE_VAR: &str = "PROV_DB_IMAGE";
/// The database's named volume (Compose names it `<project>_<volume>`) and where it is mounted.
pub const DB_VOLUME: &str = "dbdata";
pub const DB_DATA_DIR: &str = "/var/lib/postgresql/data";

/// The container name of a service.
pub fn container_of(service: &str) -> Option<&'static str> {
    match service {
        API_SERVICE => Some(API_CONTAINER),
        DB_SERVICE => Some(DB_CONTAINER),
        _ => None,
    }
}

/// Labels Compose (v1 and v2) stamps on the containers it creates.
pub mod compose_labels {
    pub const PROJECT: &str = "com.docker.compose.project";
    pub const SERVICE: &str = "com.docker.compose.service";
    pub const ONEOFF: &str = "com.docker.compose.oneoff";
    pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
    pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
    /// Compose v2 only: the ID of the image the container was created from.
    pub const IMAGE: &str = "com.docker.compose.image";
}

/// `prov stack`: the names as shell assignments, for the scripts to `eval`.
pub fn shell_assignments() -> String {
    [
        ("PROV_PROJECT", PROJECT),
        ("PROV_COMPOSE_FILE", COMPOSE_FILE),
        ("PROV_API_SERVICE", API_SERVICE),
        ("PROV_DB_SERVICE", DB_SERVICE),
        ("PROV_API_CONTAINER", API_CONTAINER),
        ("PROV_DB_CONTAINER", DB_CONTAINER),
        ("PROV_API_IMAGE_NAME", API_IMAGE_NAME),
        ("PROV_BUILD_LABEL", crate::record::manifest::labels::TREE),
        ("PROV_LABEL_PROJECT", compose_labels::PROJECT),
        ("PROV_LABEL_SERVICE", compose_labels::SERVICE),
    ]
    .iter()
    .map(|(name, value)| format!("{name}={value}\n"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml_ng::Value;

    /// compose.yaml is the other place these names appear: it must agree.
    #[test]
    fn compose_yaml_agrees_with_the_names() {
        let text = include_str!("../../compose.yaml");
        let compose: Value = serde_yaml_ng::from_str(text).unwrap();
        let services = compose["services"].as_mapping().unwrap();
        let names: Vec<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
        let mut expected = SERVICES.to_vec();
        expected.sort();
        let mut names_sorted = names.clone();
        names_sorted.sort();
        assert_eq!(names_sorted, expected);
        for service in SERVICES {
            assert_eq!(
                compose["services"][service]["container_name"].as_str(),
                container_of(service)
            );
        }
        assert!(compose["volumes"].get(DB_VOLUME).is_some());
        let db_volume = compose["services"][DB_SERVICE]["volumes"][0]
            .as_str()
            .unwrap();
        assert_eq!(db_volume, format!("{DB_VOLUME}:{DB_DATA_DIR}"));
        assert!(text.contains(&format!("${{{API_IMAGE_VAR}:?")));
        assert!(text.contains(&format!("${{{DB_IMAGE_VAR}:?")));
    }
}
