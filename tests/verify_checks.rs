//! verify's checks as pure functions, over what real nodes gave after `make demo`: one of each
//! flavour (tests/fixtures/verify/<node>: the record, the engine's answers, the api's answers;
//! its README says how to capture them again). Each case changes one thing the way a bypass
//! would and names the check that must fail, and what it must say; the untouched fixtures pass
//! every check.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use prov::host::checks::{judge, Evidence};
use prov::host::report::{Check, HttpAnswers};
use prov::record::engine::NodeState;
use prov::record::manifest::{AttestedMark, Manifest};
use prov::record::store::{ChainLink, Store};

/// The captured nodes: `main` (bookworm: Engine 20.10, Compose v1, classic store) and `worker1`
/// (trixie: Engine 26, Compose v2, containerd store, BuildKit).
const NODES: [&str; 2] = ["main", "worker1"];

fn fixture(node: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/verify")
        .join(node)
}

fn read_json(node: &str, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(node).join(name)).unwrap()).unwrap()
}

fn store(node: &str) -> Store {
    Store::new(&fixture(node).join("provenance"), &node.parse().unwrap())
}

/// The evidence of a node's fixture, as verify gathers it (the host's tree is the record's).
fn evidence(node: &str) -> Evidence {
    let store = store(node);
    let latest = store.latest();
    let tree = latest.as_ref().unwrap().manifest.git.tree.clone();
    let key: prov::host::attest::PublicKeyFile =
        serde_json::from_value(read_json(node, "attest.pub.json")).unwrap();
    let envelope = std::fs::read(store.dir().join(prov::record::names::envelope(
        &latest.as_ref().unwrap().manifest.build_id,
    )))
    .map_err(|e| e.to_string());
    let bases =
        serde_json::from_slice(&std::fs::read(fixture(node).join("../bases.json")).unwrap())
            .map(prov::host::bases::HostBases)
            .map_err(|e| e.to_string());
    Evidence {
        node: node.parse().unwrap(),
        chain: store.chain().unwrap().iter().map(ChainLink::from).collect(),
        held: 0,
        imported: latest.as_ref().ok().map(|s| s.sha256.clone()),
        latest,
        state: serde_json::from_value::<NodeState>(read_json(node, "state.json")).unwrap(),
        in_images: serde_json::from_value(read_json(node, "in-images.json")).unwrap(),
        http: serde_json::from_value::<HttpAnswers>(read_json(node, "http.json")).unwrap(),
        tree_now: Ok(tree),
        attestation: Ok((key, envelope)),
        policy: prov::record::policy::load(
            Path::new(env!("CARGO_MANIFEST_DIR")),
            "build-policy.json",
        )
        .unwrap(),
        attested: Some(serde_json::from_value(read_json(node, "attested.json")).unwrap()),
        cached_steps: Ok(Vec::new()),
        bases,
    }
}

/// The checks of a node's fixture after `change` edited the engine's state and the api's answers
/// (both as JSON), `record` the latest record as read (the pin is not what is tested here), and
/// `evidence` the rest of what was gathered.
fn judged_with(
    node: &str,
    change: impl FnOnce(&mut Value, &mut Value),
    record: impl FnOnce(&mut Manifest),
    evidence_change: impl FnOnce(&mut Evidence),
) -> Vec<Check> {
    let mut e = evidence(node);
    let (mut state, mut http) = (
        serde_json::to_value(&e.state).unwrap(),
        serde_json::to_value(&e.http).unwrap(),
    );
    change(&mut state, &mut http);
    e.state = serde_json::from_value(state).unwrap();
    e.http = serde_json::from_value(http).unwrap();
    if let Ok(stored) = e.latest.as_mut() {
        record(&mut stored.manifest);
    }
    evidence_change(&mut e);
    judge(&e)
}

fn checks_after(node: &str, change: impl FnOnce(&mut Value, &mut Value)) -> Vec<Check> {
    judged_with(node, change, |_| {}, |_| {})
}

fn judged(
    node: &str,
    change: impl FnOnce(&mut Value, &mut Value),
    record: impl FnOnce(&mut Manifest),
) -> Vec<Check> {
    judged_with(node, change, record, |_| {})
}

/// Asserts exactly the named checks fail, and that the first one says `says`.
fn fails(checks: &[Check], names: &[&str], says: &str) {
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failed, names, "{checks:#?}");
    let first = checks.iter().find(|c| c.name == names[0]).unwrap();
    assert!(
        first.observed.contains(says),
        "{} says {:?}, not {says:?}",
        first.name,
        first.observed
    );
}

/// Asserts the named check fails and says `says` (other checks may fail with it).
fn fails_including(checks: &[Check], name: &str, says: &str) {
    let check = checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {checks:#?}"));
    assert!(!check.ok, "{name} passed: {check:#?}");
    assert!(
        check.observed.contains(says),
        "{name} says {:?}, not {says:?}",
        check.observed
    );
}

fn passes(checks: &[Check]) {
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.ok).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

/// The api container (index 0) and the db container (index 1) of the state.
fn api(state: &mut Value) -> &mut Value {
    &mut state["containers"][0]
}

fn db(state: &mut Value) -> &mut Value {
    &mut state["containers"][1]
}

/// The api container's image, among the images of the state.
fn api_image(state: &mut Value) -> &mut Value {
    let id = state["containers"][0]["Image"].clone();
    state["images"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|i| i["Id"] == id)
        .unwrap()
}

fn id_of(state: &Value, index: usize) -> String {
    state["containers"][index]["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A container that is not the stack's: a copy of the api's, under another name and ID, with
/// no network of the stack's.
fn stranger(state: &Value) -> Value {
    let mut c = state["containers"][0].clone();
    c["Id"] = json!("5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a");
    c["Name"] = json!("/stranger");
    c["Image"] = json!(format!("sha256:{}", "77".repeat(32)));
    c["Config"]["Labels"] = json!({});
    c["NetworkSettings"]["Networks"] = json!({"bridge": {}});
    c
}

fn push(state: &mut Value, container: Value) {
    state["containers"].as_array_mut().unwrap().push(container);
}

#[test]
fn the_captured_golden_path_passes_every_check_on_both_flavours() {
    for node in NODES {
        let checks = checks_after(node, |_, _| {});
        passes(&checks);
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        for name in [
            "manifest",
            "hash-chain",
            "service:api",
            "image-id",
            "layers-fresh",
            "config:api",
            "config:db",
            "filesystem:api",
            "filesystem:db",
            "processes:api",
            "processes:db",
            "reach",
            "no-bypass",
            "source-tree",
            "one-tree",
            "http/version",
            "answered-by-api",
            "db-image",
            "attestation",
            "no-rollback",
        ] {
            assert!(
                names.contains(&name),
                "{node}: {name} missing from {names:?}"
            );
        }
    }
}

#[test]
fn a_container_with_copied_labels_running_as_root_with_the_host_mounted_fails() {
    for node in NODES {
        let checks = checks_after(node, |state, _| {
            let c = api(state);
            c["Config"]["User"] = json!("root");
            c["Mounts"] = json!([{"Type": "bind", "Source": "/", "Destination": "/host",
                "Mode": "", "RW": true, "Propagation": "rprivate"}]);
        });
        fails(
            &checks,
            &["config:api"],
            "Config.User: expected \"app\", found \"root\"",
        );
        fails_including(&checks, "config:api", "bind / /host rw");
    }
}

#[test]
fn a_one_off_compose_run_container_is_a_bypass_and_reaches_the_stack() {
    for node in NODES {
        let checks = checks_after(node, |state, _| {
            let mut one_off = api(state).clone();
            one_off["Id"] =
                json!("0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0f");
            one_off["Name"] = json!("/prov_api_run_1");
            one_off["Config"]["Labels"]["com.docker.compose.oneoff"] = json!("True");
            push(state, one_off);
        });
        fails(
            &checks,
            &["reach", "no-bypass"],
            "attached to the stack's network",
        );
        fails_including(&checks, "no-bypass", "prov_api_run_1");
    }
}

#[test]
fn a_container_started_by_hand_from_the_database_image_is_a_bypass() {
    for node in NODES {
        let checks = checks_after(node, |state, _| {
            let mut stray = db(state).clone();
            stray["Id"] = json!("5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a");
            stray["Name"] = json!("/my-postgres");
            stray["Config"]["Labels"] = json!({});
            stray["NetworkSettings"]["Networks"] = json!({"bridge": {}});
            stray["Mounts"] = json!([]);
            push(state, stray);
        });
        fails(&checks, &["no-bypass"], "my-postgres");
    }
}

#[test]
fn a_database_recreated_from_another_image_fails_naming_the_image() {
    for node in NODES {
        let checks = checks_after(node, |state, _| {
            db(state)["Image"] = json!(format!("sha256:{}", "ab".repeat(32)));
        });
        fails_including(&checks, "config:db", "Image: expected \"sha256:");
    }
}

#[test]
fn what_the_configuration_does_not_set_is_the_engines_default() {
    // docker update of limits and restart policy, a second network, an alias, a label, a
    // device, no seccomp, the node's process namespace, a writable root.
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "HostConfig.Memory: expected unset, found 268435456",
            Box::new(|c| c["HostConfig"]["Memory"] = json!(268_435_456)),
        ),
        (
            "HostConfig.PidsLimit: expected unset, found 100",
            Box::new(|c| c["HostConfig"]["PidsLimit"] = json!(100)),
        ),
        (
            "HostConfig.RestartPolicy: expected \"no\", found \"always\"",
            Box::new(|c| c["HostConfig"]["RestartPolicy"]["Name"] = json!("always")),
        ),
        (
            "NetworkSettings.Networks: expected {\"prov_default\"}",
            Box::new(|c| {
                let endpoint = c["NetworkSettings"]["Networks"]["prov_default"].clone();
                c["NetworkSettings"]["Networks"]["second"] = endpoint;
            }),
        ),
        (
            "NetworkSettings.Networks.prov_default.Aliases",
            Box::new(|c| {
                c["NetworkSettings"]["Networks"]["prov_default"]["Aliases"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("db"))
            }),
        ),
        (
            "Config.Labels: extra: not expected",
            Box::new(|c| c["Config"]["Labels"]["extra"] = json!("1")),
        ),
        (
            "HostConfig.Devices: expected unset",
            Box::new(|c| {
                c["HostConfig"]["Devices"] = json!([{"PathOnHost": "/dev/sda",
                    "PathInContainer": "/dev/sda", "CgroupPermissions": "rwm"}])
            }),
        ),
        (
            "HostConfig.SecurityOpt: expected unset, found [\"seccomp=unconfined\"]",
            Box::new(|c| c["HostConfig"]["SecurityOpt"] = json!(["seccomp=unconfined"])),
        ),
        (
            "HostConfig.PidMode: expected unset, found \"host\"",
            Box::new(|c| c["HostConfig"]["PidMode"] = json!("host")),
        ),
        (
            "HostConfig.ReadonlyRootfs: expected true, found false",
            Box::new(|c| c["HostConfig"]["ReadonlyRootfs"] = json!(false)),
        ),
        (
            "HostConfig.MaskedPaths: expected at least",
            Box::new(|c| c["HostConfig"]["MaskedPaths"] = json!([])),
        ),
        (
            "Config.Env: expected no EXTRA, found EXTRA added",
            Box::new(|c| {
                c["Config"]["Env"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("EXTRA=1"))
            }),
        ),
        (
            "HostConfig.Sysctl: a field prov does not know",
            Box::new(|c| c["HostConfig"]["Sysctl"] = json!({"x": "1"})),
        ),
        (
            "Name: expected \"/prov-api\"",
            Box::new(|c| c["Name"] = json!("/prov-api-2")),
        ),
    ];
    for node in NODES {
        for (says, change) in &cases {
            let checks = checks_after(node, |state, _| change(api(state)));
            fails_including(&checks, "config:api", says);
        }
    }
}

#[test]
fn a_restarted_api_that_is_healthy_again_passes() {
    for node in NODES {
        let checks = checks_after(node, |state, _| {
            api(state)["RestartCount"] = json!(1);
            api(state)["State"]["StartedAt"] = json!("2099-01-01T00:00:00Z");
        });
        passes(&checks);
    }
}

#[test]
fn an_api_still_starting_fails_its_service_check() {
    let checks = checks_after("main", |state, _| {
        api(state)["State"]["Health"]["Status"] = json!("starting");
    });
    fails(&checks, &["service:api"], "starting");
}

/// Sets the digest the node found for `path` (mapped, or as the entrypoint) among what the
/// container at `index` executes.
fn executed_digest(state: &mut Value, index: usize, path: &str, sha256: Value) {
    let id = id_of(state, index);
    let mut found = false;
    for entry in state["executed"][&id].as_array_mut().unwrap() {
        if entry["path"] == path {
            entry["sha256"] = sha256.clone();
            found = true;
        }
    }
    assert!(found, "{path} is not among what the container executes");
}

#[test]
fn a_file_a_container_executes_that_is_not_its_images_fails_naming_it() {
    for node in NODES {
        // The api's binary, edited where the image's layers are stored on the node.
        let other = "0".repeat(64);
        let checks = checks_after(node, |state, _| {
            executed_digest(state, 0, "/usr/local/bin/api", json!(other));
        });
        fails(
            &checks,
            &["runs:api"],
            "/usr/local/bin/api: sha256 000000000000, the image holds",
        );
        // Its executable is its entrypoint too: named once.
        let runs = checks.iter().find(|c| c.name == "runs:api").unwrap();
        assert_eq!(
            runs.observed.matches("/usr/local/bin/api").count(),
            1,
            "{runs:?}"
        );
        // A library of the database's base: replaced since the process mapped it.
        let checks = checks_after(node, |state, _| {
            executed_digest(state, 1, "/usr/lib/x86_64-linux-gnu/libc.so.6", Value::Null);
        });
        fails(
            &checks,
            &["runs:db"],
            "libc.so.6: mapped, but the file at that path is no longer",
        );
        // verify asks again before it judges that (runc's init shows the node's own runc and
        // libraries so while it sets up a healthcheck's exec); not for a missing entrypoint.
        let mut state = evidence(node).state;
        assert!(!state.in_passing());
        let db = state.containers[1].id.clone();
        let entries = state.executed.get_mut(&db).unwrap();
        entries.iter_mut().find(|e| e.entrypoint).unwrap().sha256 = None;
        assert!(!state.in_passing());
        let entries = state.executed.get_mut(&db).unwrap();
        entries.iter_mut().find(|e| !e.entrypoint).unwrap().sha256 = None;
        assert!(state.in_passing());
        // Not in a container that shares another's process namespace: that stays.
        for mode in ["host", "container:prov-api"] {
            let mut raw = state.containers[1].raw.clone();
            raw["HostConfig"]["PidMode"] = json!(mode);
            state.containers[1] = serde_json::from_value(raw).unwrap();
            assert!(!state.in_passing(), "{mode}");
        }
        // A library the image does not hold (preloaded from the volume, say).
        let checks = checks_after(node, |state, _| {
            let id = id_of(state, 1);
            state["executed"][&id].as_array_mut().unwrap().push(json!({
                "path": "/var/lib/postgresql/data/evil.so", "sha256": other, "entrypoint": false}));
        });
        fails(
            &checks,
            &["runs:db"],
            "evil.so: sha256 000000000000, a file the image does not hold",
        );
        // The entrypoint's file gone from the container's root.
        let checks = checks_after(node, |state, _| {
            let id = id_of(state, 1);
            let entry = state["executed"][&id]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|e| e["entrypoint"] == true)
                .unwrap();
            entry["sha256"] = Value::Null;
        });
        fails(
            &checks,
            &["runs:db"],
            "entrypoint /usr/local/bin/prov-postgres-entrypoint: not in",
        );
        // The node could not tell (no sudo): not a pass.
        let checks = checks_after(node, |state, _| {
            let id = id_of(state, 0);
            state["executed"].as_object_mut().unwrap().remove(&id);
        });
        fails(&checks, &["runs:api"], "not listed");
        // Nothing executed at all is no proof of anything.
        let checks = checks_after(node, |state, _| {
            let id = id_of(state, 0);
            state["executed"][&id]
                .as_array_mut()
                .unwrap()
                .retain(|e| e["entrypoint"] == true);
        });
        fails(
            &checks,
            &["runs:api"],
            "no process of the container executes any file",
        );
        // The host has no listing of the image (a build imported before prov listed images).
        let checks = judged_with(
            node,
            |_, _| {},
            |_| {},
            |e| {
                let id = e.state.containers[0].id.clone();
                e.in_images.insert(
                    id,
                    Err("the host has not listed the files of image x".into()),
                );
            },
        );
        fails(
            &checks,
            &["runs:api"],
            "the host has not listed the files of image x",
        );
    }
}

#[test]
fn a_file_changed_outside_the_writable_paths_fails_naming_it() {
    for node in NODES {
        let checks = checks_after(node, |state, _| {
            let id = id_of(state, 0);
            state["changes"][id] = json!([{"Path": "/usr/local/bin/api", "Kind": 0},
                {"Path": "/etc/passwd-", "Kind": 1}]);
        });
        fails(
            &checks,
            &["filesystem:api"],
            "/usr/local/bin/api (changed); /etc/passwd- (added)",
        );
        // Under the database's volume and tmpfs mounts, writing is what it is for.
        let checks = checks_after(node, |state, _| {
            let id = id_of(state, 1);
            state["changes"][id] = json!([{"Path": "/run/postgresql/x.lock", "Kind": 1},
                {"Path": "/var/lib/postgresql/data/base", "Kind": 0}]);
        });
        passes(&checks);
        let checks = checks_after(node, |state, _| {
            let id = id_of(state, 1);
            state["changes"][id] = json!([{"Path": "/run/postgresql-other", "Kind": 1}]);
        });
        fails(&checks, &["filesystem:db"], "/run/postgresql-other (added)");
    }
}

/// Lists one more process (a `ps` row: pid, ppid, command) in the container at `index`.
fn add_process(state: &mut Value, index: usize, row: Value) {
    let id = id_of(state, index);
    state["processes"][&id]["Processes"]
        .as_array_mut()
        .unwrap()
        .push(row);
}

#[test]
fn a_process_an_exec_session_started_fails_and_the_healthchecks_own_do_not() {
    for node in NODES {
        let checks = checks_after(node, |state, _| {
            add_process(state, 0, json!(["4242", "1", "sleep 300"]))
        });
        fails(&checks, &["processes:api"], "process 4242 `sleep 300`");
        let health = "curl -fsS -o /dev/null http://127.0.0.1:8080/health";
        let checks = checks_after(node, |state, _| {
            add_process(state, 0, json!(["4242", "1", health]))
        });
        passes(&checks);
        // A healthcheck that just ended, not yet reaped, is the healthcheck's; another program's
        // zombie is not.
        for (zombie, ok) in [("[pg_isready] <defunct>", true), ("[sh] <defunct>", false)] {
            let checks = checks_after(node, |state, _| {
                add_process(state, 1, json!(["4444", "0", zombie]))
            });
            if ok {
                passes(&checks);
            } else {
                fails(&checks, &["processes:db"], "process 4444 `[sh] <defunct>`");
            }
        }
        // A process without its command line (a healthcheck's, starting or ending, or one that
        // hides it) is asked about again by verify; one still there is judged as it is.
        let checks = checks_after(node, |state, _| {
            add_process(state, 0, json!(["4545", "0", "[curl]"]))
        });
        fails(&checks, &["processes:api"], "process 4545 `[curl]`");
        let state = serde_json::to_value(&evidence(node).state).unwrap();
        let api_top = state["processes"][&id_of(&state, 0)].clone();
        let top = |extra: &str| {
            let mut top: prov::record::engine::Top =
                serde_json::from_value(api_top.clone()).unwrap();
            top.processes
                .as_mut()
                .unwrap()
                .push(vec!["4545".into(), "0".into(), extra.into()]);
            top.lists_one_in_passing()
        };
        assert!(top("[curl]"));
        assert!(!top("[curl] <defunct>"));
        assert!(!top(health));
        // runc setting up an exec session (a healthcheck's) is asked about again too; one that
        // stays fails like any other process.
        assert!(top("runc init"));
        assert!(!top("runc init x"));
        let checks = checks_after(node, |state, _| {
            add_process(state, 1, json!(["4646", "0", "runc init"]))
        });
        fails(&checks, &["processes:db"], "process 4646 `runc init`");
        // A child of the entrypoint is the entrypoint's.
        let checks = checks_after(node, |state, _| {
            let main = state["containers"][1]["State"]["Pid"].to_string();
            add_process(state, 1, json!(["4343", main, "postgres: worker"]))
        });
        passes(&checks);
    }
}

#[test]
fn an_exec_session_the_engine_remembers_fails_even_after_it_ended() {
    for node in NODES {
        let session = |action: &str, after_start: bool| {
            let action = action.to_string();
            move |state: &mut Value, _: &mut Value| {
                let id = id_of(state, 0);
                let started = chrono::DateTime::parse_from_rfc3339(
                    state["containers"][0]["State"]["StartedAt"]
                        .as_str()
                        .unwrap(),
                )
                .unwrap()
                .timestamp_nanos_opt()
                .unwrap();
                let at = if after_start {
                    started + 5
                } else {
                    started - 5
                };
                state["events"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"Action": action, "Actor": {"ID": id}, "timeNano": at}));
            }
        };
        let checks = checks_after(
            node,
            session("exec_create: sh -c cp /tmp/x /usr/local/bin/api", true),
        );
        fails(&checks, &["processes:api"], "exec session `sh -c cp /tmp/x");
        let health = "exec_create: curl -fsS -o /dev/null http://127.0.0.1:8080/health";
        passes(&checks_after(node, session(health, true)));
        // Before the container started: another container's life.
        passes(&checks_after(node, session("exec_create: sh", false)));
    }
}

#[test]
fn another_container_that_reaches_into_the_stack_fails_naming_how() {
    type Reach = Box<dyn Fn(&Value, &mut Value)>;
    let cases: Vec<(&str, Reach)> = vec![
        (
            "shares the process namespace of prov-api",
            Box::new(|s, c| {
                c["HostConfig"]["PidMode"] = json!(format!("container:{}", id_of(s, 0)))
            }),
        ),
        (
            "shares the network namespace of prov-db",
            Box::new(|_, c| c["HostConfig"]["NetworkMode"] = json!("container:prov-db")),
        ),
        (
            "shares the IPC namespace of prov-api",
            Box::new(|s, c| {
                c["HostConfig"]["IpcMode"] = json!(format!("container:{}", &id_of(s, 0)[..12]))
            }),
        ),
        (
            "runs in the node's process namespace",
            Box::new(|_, c| c["HostConfig"]["PidMode"] = json!("host")),
        ),
        (
            "is privileged",
            Box::new(|_, c| c["HostConfig"]["Privileged"] = json!(true)),
        ),
        (
            "mounts prov_dbdata at /data",
            Box::new(|_, c| {
                c["Mounts"] = json!([{"Type": "volume", "Name": "prov_dbdata",
                    "Source": "/var/lib/docker/volumes/prov_dbdata/_data", "Destination": "/data"}])
            }),
        ),
        (
            "mounts /var/lib/docker at /d",
            Box::new(|_, c| {
                c["Mounts"] =
                    json!([{"Type": "bind", "Source": "/var/lib/docker", "Destination": "/d"}])
            }),
        ),
        (
            "mounts /var/run/docker.sock",
            Box::new(|_, c| {
                c["Mounts"] = json!([{"Type": "bind", "Source": "/var/run/docker.sock",
                    "Destination": "/var/run/docker.sock"}])
            }),
        ),
        (
            "mounts the volumes of prov-db",
            Box::new(|_, c| c["HostConfig"]["VolumesFrom"] = json!(["prov-db:ro"])),
        ),
        (
            "is attached to the stack's network prov_default",
            Box::new(|_, c| c["NetworkSettings"]["Networks"] = json!({"prov_default": {}})),
        ),
    ];
    for node in NODES {
        for (says, reach) in &cases {
            let checks = checks_after(node, |state, _| {
                let mut c = stranger(state);
                reach(state, &mut c);
                push(state, c);
            });
            fails(&checks, &["reach"], says);
            fails_including(&checks, "reach", "stranger");
            // A stopped container reaches nothing.
            let checks = checks_after(node, |state, _| {
                let mut c = stranger(state);
                reach(state, &mut c);
                c["State"]["Running"] = json!(false);
                push(state, c);
            });
            passes(&checks);
        }
        // One that shares nothing passes.
        passes(&checks_after(node, |state, _| {
            let c = stranger(state);
            push(state, c);
        }));
    }
}

#[test]
fn an_answer_the_api_containers_log_does_not_show_fails() {
    for node in NODES {
        // A listener on the node that replays the api's answers: the same bodies, another nonce.
        let checks = checks_after(node, |_, http| http["nonce"] = json!("00".repeat(16)));
        fails(
            &checks,
            &["answered-by-api"],
            "/health answered 200, which the api's log does not show",
        );
        // Another body than the api sent.
        let checks = checks_after(node, |_, http| {
            http["ready"]["body"] = json!("{\"status\":\"ready\", \"from\": \"elsewhere\"}")
        });
        fails(&checks, &["answered-by-api"], "/ready answered 200");
        let checks = checks_after(node, |state, _| {
            state["api_log"] = json!({"Err": "no such file"})
        });
        fails(&checks, &["answered-by-api"], "no such file");
        let checks = checks_after(node, |_, http| http["nonce"] = Value::Null);
        fails(&checks, &["answered-by-api"], "carried no nonce");
    }
}

#[test]
fn the_source_tree_and_the_served_tree_must_be_the_recorded_one() {
    for node in NODES {
        let checks = judged_with(
            node,
            |_, _| {},
            |_| {},
            |e| e.tree_now = Ok("0000000000000000000000000000000000000000".into()),
        );
        fails(&checks, &["source-tree"], "tree 0000000000");
        let checks = checks_after(node, |_, http| {
            http["version"]["body"] = json!(http["version"]["body"]
                .as_str()
                .unwrap()
                .replace("\"tree\":\"", "\"tree\":\"ff"));
        });
        fails(
            &checks,
            &["one-tree", "http/version", "answered-by-api"],
            "/version ff",
        );
    }
}

#[test]
fn an_api_that_does_not_answer_or_is_not_ready_fails_its_http_checks() {
    let checks = checks_after("main", |_, http| {
        http["ready"] = json!({"status": 503, "body": "database unavailable"});
    });
    fails(
        &checks,
        &["http/ready", "answered-by-api"],
        "503 database unavailable",
    );
    let checks = checks_after("main", |_, http| {
        http["health"] = json!({"status": null, "body": "connection refused"});
    });
    fails(
        &checks,
        &["http/health", "answered-by-api"],
        "no answer: connection refused",
    );
}

#[test]
fn a_build_log_showing_cached_steps_or_missing_fails_log_fresh() {
    let cached = |e: &mut Evidence| {
        e.cached_steps = Ok(vec!["#8 [build 2/8] COPY Cargo.toml Cargo.lock ./".into()])
    };
    let checks = judged_with("worker1", |_, _| {}, |_| {}, cached);
    fails(
        &checks,
        &["log-fresh"],
        "from the cache: #8 [build 2/8] COPY",
    );
    let missing = |e: &mut Evidence| e.cached_steps = Err("no build log at x.log".into());
    let checks = judged_with("main", |_, _| {}, |_| {}, missing);
    fails(&checks, &["log-fresh"], "no build log at x.log");
}

#[test]
fn with_timestamps_set_to_the_source_date_every_own_layer_must_carry_that_date() {
    use prov::record::manifest::{SourceDate, SourceDateFrom};
    let epoch = 1_700_000_000;
    let dated = |m: &mut Manifest| {
        m.source_date = Some(SourceDate {
            epoch,
            from: SourceDateFrom::Commit,
        })
    };
    // The legacy builder's layers carry their build times: not the source's date.
    let checks = judged("main", |_, _| {}, dated);
    fails(&checks, &["layers-fresh"], "outside:");
    // Every entry dated at the source's date passes (in the classic store the base is found by
    // its ID, whatever the dates).
    let rewritten = |s: &mut Value, _: &mut Value| {
        for entry in s["history"][0]["entries"].as_array_mut().unwrap() {
            entry["Created"] = json!(epoch);
        }
    };
    passes(&judged("main", rewritten, dated));
    // The BuildKit build's own layers carry its source's date: another date fails.
    let other = |m: &mut Manifest| m.source_date.as_mut().unwrap().epoch += 1;
    let checks = judged("worker1", |_, _| {}, other);
    fails(&checks, &["layers-fresh"], "outside:");
}

#[test]
fn on_the_containerd_store_the_image_is_held_to_the_hosts_history_of_its_recorded_base() {
    // A base loaded again may get another ID (the store reuses the layers it holds compressed):
    // the record's ID is then nowhere on the node, and the host's history still finds the base.
    let reloaded = |m: &mut Manifest| {
        for base in &mut m.base_images {
            base.id = format!("sha256:{}", "ab".repeat(32));
        }
    };
    let checks = judged("worker1", |_, _| {}, reloaded);
    let fresh = checks.iter().find(|c| c.name == "layers-fresh").unwrap();
    assert!(fresh.ok, "{fresh:#?}");
    // The bottom of the image's history is not the host's base, entry for entry.
    let other_base = |e: &mut Evidence| {
        for base in &mut e.bases.as_mut().unwrap().0 {
            base.history[0].created_by.push_str(" (not this one)");
        }
    };
    let checks = judged_with("worker1", |_, _| {}, |_| {}, other_base);
    fails(&checks, &["layers-fresh"], "no recorded base");
    // The record names a base the host did not make (the edit also breaks its attestation).
    let unknown = |m: &mut Manifest| {
        for base in &mut m.base_images {
            base.config_digest = Some(format!("sha256:{}", "cd".repeat(32)));
        }
    };
    let checks = judged("worker1", |_, _| {}, unknown);
    fails_including(&checks, "layers-fresh", "no recorded base");
}

#[test]
fn a_container_compose_v2_made_names_its_image_and_must_run_it() {
    let checks = checks_after("worker1", |state, _| {
        let labels = &mut api(state)["Config"]["Labels"];
        labels
            .as_object_mut()
            .unwrap()
            .remove("com.docker.compose.image");
    });
    fails_including(
        &checks,
        "compose-wiring",
        "no com.docker.compose.image label",
    );
    fails_including(
        &checks,
        "config:api",
        "com.docker.compose.image: expected, missing",
    );
}

#[test]
fn an_image_with_a_registry_digest_or_a_latest_tag_is_not_local() {
    for node in NODES {
        let checks = checks_after(node, |state, _| {
            api_image(state)["RepoDigests"] = json!(["registry.example/prov-api@sha256:00"]);
        });
        fails(&checks, &["image-local"], "registry.example");
    }
}

#[test]
fn a_build_with_arguments_the_policy_in_force_does_not_allow_fails() {
    let checks = judged(
        "main",
        |_, _| {},
        |m| {
            m.build_args
                .insert("API_FEATURES".into(), "dishonest-ready".into());
        },
    );
    // A record changed after it was signed fails its attestation too.
    fails(
        &checks,
        &["build-policy", "attestation"],
        "API_FEATURES=\"dishonest-ready\" is not allowed",
    );
    let checks = judged("main", |_, _| {}, |m| m.policy = None);
    fails(
        &checks,
        &["build-policy", "attestation"],
        "names no build policy",
    );
}

#[test]
fn a_record_naming_inputs_outside_the_repository_fails() {
    let checks = judged(
        "main",
        |_, _| {},
        |m| m.dockerfile.path = "../elsewhere/Dockerfile".into(),
    );
    fails(
        &checks,
        &["build-inputs", "attestation"],
        "not a path inside the repository",
    );
}

#[test]
fn a_database_compose_v1_recreated_with_its_affinity_hint_passes() {
    let checks = checks_after("main", |state, _| {
        db(state)["Config"]["Env"]
            .as_array_mut()
            .unwrap()
            .push(json!("affinity:container==6e8ecf1a0a84"));
    });
    passes(&checks);
}

#[test]
fn the_newest_attested_build_or_a_later_one_passes_and_a_rollback_fails() {
    let latest = store("main").latest().unwrap();
    let mark = |build_id: &str, sha: &str| AttestedMark {
        build_id: build_id.into(),
        manifest_sha256: sha.into(),
    };
    let with_mark =
        |m: AttestedMark| judged_with("main", |_, _| {}, |_| {}, |e| e.attested = Some(m));
    passes(&with_mark(mark(&latest.manifest.build_id, &latest.sha256)));
    // The host attested a newer build, which is gone: the record was rolled back.
    let checks = with_mark(mark("20991231-000000-000-ffff", &"e".repeat(64)));
    fails(&checks, &["no-rollback"], "is gone or changed");
    // The attested record itself was edited (its digest changed).
    let checks = with_mark(mark(&latest.manifest.build_id, &"e".repeat(64)));
    fails(&checks, &["no-rollback"], "is gone or changed");
}

#[test]
fn every_runtime_check_fails_on_its_own_fixture() {
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, &str, Change)> = vec![
        (
            "image-id",
            "sha256:ab",
            Box::new(|s| api(s)["Image"] = json!(format!("sha256:{}", "ab".repeat(32)))),
        ),
        (
            "image-labels",
            "differ: org.opencontainers.image.title",
            Box::new(|s| {
                api_image(s)["Config"]["Labels"]["org.opencontainers.image.title"] = json!("other")
            }),
        ),
        (
            "layers-fresh",
            "outside",
            Box::new(|s| {
                for entry in s["history"][0]["entries"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .take(2)
                {
                    entry["Created"] = json!(1_000_000_000);
                }
            }),
        ),
        (
            "container-fresh",
            "created 2001",
            Box::new(|s| api(s)["Created"] = json!("2001-01-01T00:00:00Z")),
        ),
        (
            "compose-wiring",
            "working_dir /home/vagrant/copy",
            Box::new(|s| {
                api(s)["Config"]["Labels"]["com.docker.compose.project.working_dir"] =
                    json!("/home/vagrant/copy")
            }),
        ),
        (
            "service:db",
            "exited",
            Box::new(|s| {
                db(s)["State"]["Running"] = json!(false);
                db(s)["State"]["Status"] = json!("exited");
            }),
        ),
    ];
    for node in NODES {
        for (name, says, change) in &cases {
            let checks = checks_after(node, |state, _| change(state));
            fails_including(&checks, name, says);
        }
    }
}

#[test]
fn the_record_checks_fail_on_a_broken_chain_a_moved_latest_or_no_usable_record() {
    use prov::record::store::{ChainEntry, Link, StoreError};
    // A latest record the host never imported, or imported with other bytes, is not trusted.
    let mut never = evidence("main");
    never.imported = None;
    fails_including(&judge(&never), "imported", "the host never imported");
    let mut changed = evidence("main");
    changed.imported = Some("0".repeat(64));
    fails_including(&judge(&changed), "imported", "the node holds");

    let mut broken = evidence("main");
    broken.chain[0] = ChainLink::from(&ChainEntry {
        build_id: broken.chain[0].build_id.clone(),
        read: Ok(broken.latest.as_ref().unwrap().clone()),
        link: Link::Broken {
            expected: None,
            found: Some("0".repeat(64)),
        },
    });
    fails_including(
        &judge(&broken),
        "hash-chain",
        "previous-manifest digest does not match",
    );

    // A newer successful build is in the chain, but latest still points at the older one.
    let mut moved = evidence("main");
    let mut newer = moved.latest.as_ref().unwrap().clone();
    let older = newer.manifest.build_id.clone();
    newer.manifest.build_id = "20991231-000000-000-aaaa".into();
    moved.chain.push(ChainLink::from(&ChainEntry {
        build_id: newer.manifest.build_id.clone(),
        read: Ok(newer),
        link: Link::Intact,
    }));
    fails_including(
        &judge(&moved),
        "latest-is-newest",
        &format!("latest = {older}"),
    );

    let mut gone = evidence("main");
    gone.latest = Err(StoreError::NoSuchBuild {
        build_id: "20261130-000000-000-0000".into(),
        dir: fixture("main"),
    });
    fails_including(&judge(&gone), "manifest", "is not recorded");
}

#[test]
fn signing_is_the_default_so_no_key_or_no_attested_build_fails() {
    for node in NODES {
        let checks = judged_with(
            node,
            |_, _| {},
            |_| {},
            |e| e.attestation = Err("the project has no key (x is missing)".into()),
        );
        fails(&checks, &["attestation"], "the project has no key");
        let checks = judged_with(node, |_, _| {}, |_| {}, |e| e.attested = None);
        fails(
            &checks,
            &["no-rollback"],
            "the host attested no build of node",
        );
    }
}

#[test]
fn a_database_whose_image_is_not_the_hosts_fails_db_image() {
    for node in NODES {
        let checks = checks_after(node, |state, _| {
            let id = state["containers"][1]["Image"].clone();
            let images = state["images"].as_array_mut().unwrap();
            let db = images.iter_mut().find(|i| i["Id"] == id).unwrap();
            db["RootFS"]["Layers"]
                .as_array_mut()
                .unwrap()
                .push(json!(format!("sha256:{}", "ee".repeat(32))));
        });
        fails(
            &checks,
            &["db-image"],
            "its layers are not those of the host's postgres",
        );
        let checks = judged_with(
            node,
            |_, _| {},
            |_| {},
            |e| e.bases = Err("bases.json is missing: run `make bases`".into()),
        );
        // On the containerd store the host's history of the base also tells the image's own
        // layers from the base's.
        let failed: &[&str] = match node {
            "main" => &["db-image"],
            _ => &["layers-fresh", "db-image"],
        };
        fails(&checks, failed, "run `make bases`");
    }
}
