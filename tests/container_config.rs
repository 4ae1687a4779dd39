//! The whole-configuration comparison (`src/container_config.rs`) over the containers real nodes
//! of both flavours made (tests/fixtures/verify): every field the engines report is classified,
//! and every compared field has a passing case (the fixture) and a failing one (the fixture with
//! that field changed), generated here for each field in turn.

use std::path::Path;

use serde_json::{json, Value};

use prov::host::container_config::{classified, differences, Expected};
use prov::record::engine::{ContainerInspect, ImageInspect};
use prov::record::store::Store;

/// The stack's containers of each captured node, with what they must be.
struct Case {
    node: &'static str,
    service: &'static str,
    container: Value,
    image: ImageInspect,
    spec: prov::record::compose::ServiceSpec,
    image_ref: String,
    compose_version: String,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for node in ["main", "worker1"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/verify")
            .join(node);
        let state: Value =
            serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
        let record = Store::new(&dir.join("provenance"), &node.parse().unwrap())
            .latest()
            .unwrap()
            .manifest;
        let services = record.compose.services.clone().unwrap();
        for (index, service) in ["api", "db"].into_iter().enumerate() {
            let container = state["containers"][index].clone();
            let image: ImageInspect = serde_json::from_value(
                state["images"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|i| i["Id"] == container["Image"])
                    .unwrap()
                    .clone(),
            )
            .unwrap();
            let spec = services[service].clone();
            let image_ref = if service == "api" {
                record.image.as_ref().unwrap().tag.clone()
            } else {
                spec.image.clone()
            };
            out.push(Case {
                node,
                service,
                container,
                image,
                spec,
                image_ref,
                compose_version: record.tool.versions["compose"].clone(),
            });
        }
    }
    out
}

fn differ(case: &Case, container: &Value) -> Vec<String> {
    let id = container["Id"].as_str().unwrap_or_default().to_string();
    differences(
        &Expected {
            service: case.service,
            spec: &case.spec,
            image_id: &case.image.id,
            image_ref: &case.image_ref,
            image: &case.image.config,
            container_id: &id,
            compose_version: &case.compose_version,
        },
        container,
    )
}

#[test]
fn the_captured_containers_are_what_their_configuration_makes() {
    for case in cases() {
        // Read the way verify reads it.
        let inspect: ContainerInspect = serde_json::from_value(case.container.clone()).unwrap();
        assert_eq!(inspect.raw, case.container);
        let found = differ(&case, &case.container);
        assert!(
            found.is_empty(),
            "{} {}: {found:#?}",
            case.node,
            case.service
        );
    }
}

#[test]
fn every_field_the_engines_report_is_classified_and_no_field_twice() {
    let listed: Vec<&str> = classified().map(|(path, _)| path).collect();
    let mut unique = listed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), listed.len(), "a field is listed twice");
    for case in cases() {
        for (path, _) in leaf_fields(&case.container) {
            let pattern = network_pattern(&path);
            assert!(
                listed
                    .iter()
                    .any(|l| *l == pattern || pattern.starts_with(&format!("{l}."))),
                "{} {}: {path} is not classified",
                case.node,
                case.service
            );
        }
    }
}

#[test]
fn a_field_no_engine_reported_before_is_a_difference_not_ignored() {
    for case in cases() {
        for (pointer, field) in [
            ("", "Future"),
            ("/Config", "Future"),
            ("/HostConfig", "Future"),
            ("/NetworkSettings", "Future"),
            ("/NetworkSettings/Networks/prov_default", "Future"),
        ] {
            let mut changed = case.container.clone();
            changed.pointer_mut(pointer).unwrap()[field] = json!(true);
            let found = differ(&case, &changed);
            assert!(
                found
                    .iter()
                    .any(|d| d.contains("a field prov does not know")),
                "{pointer}/{field}: {found:#?}"
            );
        }
    }
}

#[test]
fn every_compared_field_fails_when_it_changes_and_a_varying_one_does_not() {
    for case in cases() {
        for (path, varies) in classified() {
            let pointer = pointer_of(path);
            let mut changed = case.container.clone();
            let Some(parent) = parent_of(&mut changed, &pointer) else {
                continue;
            };
            let key = pointer.rsplit('/').next().unwrap().to_string();
            let before = parent.get(&key).cloned().unwrap_or(Value::Null);
            let after = mutated(&before);
            parent.insert(key.clone(), after.clone());
            let found = differ(&case, &changed);
            let shown = path.replace('*', "prov_default");
            match varies {
                None => assert!(
                    found.iter().any(|d| d.starts_with(&shown)),
                    "{} {}: changing {path} ({before} -> {after}) went unseen: {found:#?}",
                    case.node,
                    case.service,
                ),
                Some(reason) => assert!(
                    !found.iter().any(|d| d.starts_with(&format!("{shown}:"))),
                    "{path} varies ({reason}) but was compared: {found:#?}"
                ),
            }
        }
    }
}

/// Every leaf of a JSON value (and every empty collection), by dotted path.
fn leaf_fields(v: &Value) -> Vec<(String, &Value)> {
    fn walk<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let next = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(v, next, out);
                }
            }
            _ => out.push((path, v)),
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

/// A path with its network's name replaced by `*`, as the classification lists it.
fn network_pattern(path: &str) -> String {
    match path.strip_prefix("NetworkSettings.Networks.") {
        Some(rest) => match rest.split_once('.') {
            Some((_, field)) => format!("NetworkSettings.Networks.*.{field}"),
            None => "NetworkSettings.Networks".into(),
        },
        None => path.to_string(),
    }
}

fn pointer_of(path: &str) -> String {
    format!("/{}", path.replace('*', "prov_default").replace('.', "/"))
}

/// The object that holds the field at `pointer`.
fn parent_of<'a>(
    v: &'a mut Value,
    pointer: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let (parent, _) = pointer.rsplit_once('/')?;
    v.pointer_mut(parent)?.as_object_mut()
}

/// A value of the same kind that differs: a flipped flag, another number or text, a list with
/// one item more (or less, where the rule asks for at least some items), an object with one key
/// more (a copy of one of its values, or text).
fn mutated(v: &Value) -> Value {
    match v {
        Value::Null => json!("x"),
        Value::Bool(b) => json!(!b),
        Value::Number(n) => json!(n.as_f64().unwrap_or(0.0) as i64 + 1),
        Value::String(s) => json!(format!("{s}x")),
        Value::Array(items) if items.len() >= 5 => json!(items[1..].to_vec()),
        Value::Array(items) => {
            let mut items = items.clone();
            items.push(match items.first() {
                Some(Value::Object(_)) => {
                    json!({"Type": "bind", "Source": "/", "Destination": "/x",
                    "RW": true, "Propagation": "rprivate", "Mode": ""})
                }
                _ => json!("x"),
            });
            Value::Array(items)
        }
        Value::Object(map) => {
            let mut map = map.clone();
            let copy = map.values().next().cloned().unwrap_or(json!("x"));
            map.insert("9999/tcp".into(), copy);
            Value::Object(map)
        }
    }
}
