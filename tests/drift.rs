//! `prov watch`'s reading of engine events, over streams recorded on a node of each flavour
//! while each drift case was made (tests/fixtures/events/README.md): every drift is reported
//! by name, every change that can matter is judged again, and the healthchecks' own exec
//! sessions, which come every few seconds, are nothing.

use std::path::PathBuf;

use prov::record::drift::{effects as judged_together, Effect, Event, Stack};
use prov::record::engine::ContainerInspect;
use serde_json::Value;

const NODES: [&str; 2] = ["main", "worker1"];

/// A recorded stream: the stack, each case's window and every event.
struct Recorded {
    stack: Stack,
    cases: Vec<(String, i64, i64)>,
    events: Vec<Event>,
}

fn recorded(node: &str) -> Recorded {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(format!("{node}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut recorded = Recorded {
        stack: Stack::default(),
        cases: Vec::new(),
        events: Vec::new(),
    };
    for line in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
        let line = line.unwrap();
        if let Some(stack) = line.get("stack") {
            let containers: Vec<ContainerInspect> = serde_json::from_value(stack.clone()).unwrap();
            recorded.stack = Stack::of(&containers);
        } else if let Some(name) = line.get("case") {
            recorded.cases.push((
                name.as_str().unwrap().to_string(),
                line["from"].as_i64().unwrap(),
                line["to"].as_i64().unwrap(),
            ));
        } else {
            recorded.events.push(serde_json::from_value(line).unwrap());
        }
    }
    assert_eq!(
        recorded.stack.names.len(),
        2,
        "{node}: both stack containers"
    );
    recorded
}

/// The effects of a case's events, other than nothing.
fn effects(recorded: &Recorded, case: &str) -> Vec<Effect> {
    let (_, from, to) = recorded
        .cases
        .iter()
        .find(|(name, _, _)| name == case)
        .unwrap_or_else(|| panic!("no case {case}"));
    let events: Vec<&Event> = recorded
        .events
        .iter()
        .filter(|e| e.time_nano >= *from && e.time_nano <= *to)
        .collect();
    assert!(!events.is_empty(), "case {case}: the engine sent nothing");
    // A case's events, judged as watch judges those that come together.
    let batch: Vec<Event> = events.into_iter().cloned().collect();
    judged_together(&batch, &recorded.stack)
        .into_iter()
        .filter(|e| *e != Effect::None)
        .collect()
}

fn drifts(effects: &[Effect]) -> Vec<&str> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Drift(what) => Some(what.as_str()),
            _ => None,
        })
        .collect()
}

fn judged(effects: &[Effect]) -> Vec<&str> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Judge(what) => Some(what.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_healthchecks_of_an_idle_stack_are_nothing() {
    for node in NODES {
        let recorded = recorded(node);
        for case in ["idle", "idle-again"] {
            assert_eq!(effects(&recorded, case), vec![], "{node} {case}");
        }
    }
}

#[test]
fn an_exec_session_a_copied_file_an_update_a_rename_and_another_container_on_the_stack_are_drift_by_name(
) {
    for node in NODES {
        let recorded = recorded(node);
        for (case, says) in [
            ("exec-exits", "exec session `true` in prov-api"),
            ("exec-detached", "exec session `sleep 1` in prov-api"),
            (
                "copy-in",
                "prov-db's volumes mounted while it runs: files copied to or from it (docker cp)",
            ),
            ("update", "prov-api's configuration updated"),
            ("swap-and-back", "prov-api renamed to prov-events-kept"),
            (
                "second-network",
                "prov-api connected to network prov-events-case",
            ),
            (
                "one-off-app",
                "container prov-events-app created from the stack's image",
            ),
            ("volume-mount", "mounted the stack's volume prov_dbdata"),
        ] {
            let effects = effects(&recorded, case);
            assert!(
                drifts(&effects).iter().any(|what| what.contains(says)),
                "{node} {case}: {effects:?}"
            );
        }
    }
}

#[test]
fn what_can_change_a_verdict_is_judged_again() {
    for node in NODES {
        let recorded = recorded(node);
        for (case, says) in [
            ("retag", "tag"),
            ("one-off", "create"),
            ("restart", "container prov-api restart"),
        ] {
            let effects = effects(&recorded, case);
            assert!(
                judged(&effects).iter().any(|what| what.contains(says)),
                "{node} {case}: {effects:?}"
            );
            assert!(drifts(&effects).is_empty(), "{node} {case}: {effects:?}");
        }
    }
}

/// An event as the engine sends it, for the cases no recording holds.
fn event(kind: &str, action: &str, id: &str, attributes: Value) -> Event {
    serde_json::from_value(serde_json::json!({"Type": kind, "Action": action,
        "Actor": {"ID": id, "Attributes": attributes}, "timeNano": 1}))
    .unwrap()
}

#[test]
fn a_container_compose_makes_under_a_stack_name_is_the_stacks_own_not_a_drift() {
    let mut stack = recorded("worker1").stack;
    let network = stack.networks.iter().next().unwrap().clone();
    let volume = stack.volumes.iter().next().unwrap().clone();
    let id = "f".repeat(64);
    // Compose replacing the database: created under its name, then on the stack's network and
    // volume, in a batch of its own (the create came in the one before).
    stack.learn(&[event(
        "container",
        "create",
        &id,
        serde_json::json!({"name": "prov-db", "image": "prov-postgres:x"}),
    )]);
    let batch = [
        event(
            "network",
            "connect",
            "n",
            serde_json::json!({"name": network, "container": id}),
        ),
        event(
            "volume",
            "mount",
            &volume,
            serde_json::json!({"container": id}),
        ),
    ];
    assert!(drifts(&judged_together(&batch, &stack)).is_empty());
    // The same from a container of another name: both are drift.
    let other = "e".repeat(64);
    let batch = [
        event(
            "network",
            "connect",
            "n",
            serde_json::json!({"name": network, "container": other}),
        ),
        event(
            "volume",
            "mount",
            &volume,
            serde_json::json!({"container": other}),
        ),
    ];
    let effects = judged_together(&batch, &stack);
    assert_eq!(drifts(&effects).len(), 2, "{effects:?}");
}

#[test]
fn a_stack_container_renamed_while_the_engine_was_asked_stays_the_stacks_until_destroyed() {
    let before = recorded("worker1").stack;
    let (api, _) = before.names.iter().find(|(_, n)| *n == "prov-api").unwrap();
    let api = api.clone();
    // Asked by name while the api was renamed away: the engine described the database alone.
    let db: Vec<ContainerInspect> = Vec::new();
    let mut stack = before.refreshed(&db);
    let exec = event(
        "container",
        "exec_create: true",
        &api,
        serde_json::json!({"name": "prov-e2e-kept"}),
    );
    assert_eq!(
        drifts(&judged_together(std::slice::from_ref(&exec), &stack)),
        vec!["exec session `true` in prov-e2e-kept".to_string()]
    );
    stack.learn(&[event("container", "destroy", &api, serde_json::json!({}))]);
    assert!(drifts(&judged_together(&[exec], &stack)).is_empty());
}
