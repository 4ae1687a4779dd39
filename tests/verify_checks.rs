//! verify's checks as pure functions, over a fixture captured from a real node after
//! `make demo-reviewer` (tests/fixtures/verify/base: the record, the engine's answers, the
//! api's answers). Each case changes one thing the way a bypass would and names the check that
//! must fail, and what it must say; the untouched fixture passes every check.

use std::path::Path;

use serde_json::{json, Value};

use prov::checks::{judge, Evidence};
use prov::docker::NodeState;
use prov::manifest::Store;
use prov::model::{AttestedMark, Check, HttpAnswers, Manifest};

fn base() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/verify/base")
}

fn read_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(base().join(name)).unwrap()).unwrap()
}

/// The checks for the fixture after `change` has edited the engine's state and the api's
/// answers (both as JSON), with the host's tree as given.
fn checks_with(change: impl FnOnce(&mut Value, &mut Value), tree_now: Option<&str>) -> Vec<Check> {
    judged(change, |_| {}, tree_now)
}

/// The checks after `change` edited the engine's state and the api's answers, and `record`
/// edited the latest manifest as read (the pin is not what is tested here).
fn judged(
    change: impl FnOnce(&mut Value, &mut Value),
    record: impl FnOnce(&mut Manifest),
    tree_now: Option<&str>,
) -> Vec<Check> {
    judged_with_mark(change, record, tree_now, None)
}

/// As [`judged`], with the host's memory of the newest attested build.
fn judged_with_mark(
    change: impl FnOnce(&mut Value, &mut Value),
    record: impl FnOnce(&mut Manifest),
    tree_now: Option<&str>,
    attested: Option<AttestedMark>,
) -> Vec<Check> {
    judged_with(change, record, tree_now, |e| e.attested = attested)
}

/// As [`judged`], with `evidence` changing the gathered evidence last.
fn judged_with(
    change: impl FnOnce(&mut Value, &mut Value),
    record: impl FnOnce(&mut Manifest),
    tree_now: Option<&str>,
    evidence: impl FnOnce(&mut Evidence),
) -> Vec<Check> {
    let (mut state, mut http) = (read_json("state.json"), read_json("http.json"));
    change(&mut state, &mut http);
    let store = Store::new(&base().join("provenance"), "main");
    let mut latest = store.latest();
    if let Ok(stored) = latest.as_mut() {
        record(&mut stored.manifest);
    }
    let tree = latest.as_ref().unwrap().manifest.git.tree.clone();
    let imported = latest.as_ref().ok().map(|s| s.sha256.clone());
    let mut gathered = Evidence {
        node: "main".into(),
        chain: store.chain().unwrap(),
        latest,
        state: serde_json::from_value::<NodeState>(state).unwrap(),
        http: serde_json::from_value::<HttpAnswers>(http).unwrap(),
        tree_now: Ok(tree_now.map_or(tree, str::to_string)),
        attestation: None,
        policy: prov::policy::load(Path::new(env!("CARGO_MANIFEST_DIR")), "build-policy.json")
            .unwrap(),
        attested: None,
        imported,
        cached_steps: Ok(Vec::new()),
    };
    evidence(&mut gathered);
    judge(&gathered)
}

fn checks_after(change: impl FnOnce(&mut Value, &mut Value)) -> Vec<Check> {
    checks_with(change, None)
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

/// The api container (index 0) and the db container (index 1) of the state.
fn api(state: &mut Value) -> &mut Value {
    &mut state["containers"][0]
}

fn db(state: &mut Value) -> &mut Value {
    &mut state["containers"][1]
}

#[test]
fn the_captured_golden_path_passes_every_check() {
    let checks = checks_after(|_, _| {});
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.ok).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    for name in [
        "manifest",
        "hash-chain",
        "service:api",
        "image-id",
        "layers-fresh",
        "config:api",
        "config:db",
        "no-bypass",
        "source-tree",
        "one-tree",
        "http/version",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

#[test]
fn a_container_with_copied_labels_running_as_root_with_the_host_mounted_fails() {
    let checks = checks_after(|state, _| {
        let c = api(state);
        c["Config"]["User"] = json!("root");
        c["Mounts"] = json!([{"Type": "bind", "Source": "/", "Destination": "/host"}]);
    });
    fails(
        &checks,
        &["config:api"],
        "user: expected \"app\", found \"root\"",
    );
    assert!(
        checks[checks.iter().position(|c| c.name == "config:api").unwrap()]
            .observed
            .contains("mounts: expected [], found [\"bind / /host\"]")
    );
}

#[test]
fn a_one_off_compose_run_container_is_a_bypass() {
    let checks = checks_after(|state, _| {
        let mut one_off = api(state).clone();
        one_off["Id"] = json!("0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0ff0f");
        one_off["Name"] = json!("/prov_api_run_1");
        one_off["Config"]["Labels"]["com.docker.compose.oneoff"] = json!("True");
        state["containers"].as_array_mut().unwrap().push(one_off);
    });
    fails(&checks, &["no-bypass"], "prov_api_run_1");
}

#[test]
fn a_container_started_by_hand_from_the_database_image_is_a_bypass() {
    let checks = checks_after(|state, _| {
        let mut stray = db(state).clone();
        stray["Id"] = json!("5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a");
        stray["Name"] = json!("/my-postgres");
        stray["Config"]["Labels"] = json!({});
        state["containers"].as_array_mut().unwrap().push(stray);
    });
    fails(&checks, &["no-bypass"], "my-postgres");
}

#[test]
fn a_database_recreated_from_another_image_fails_naming_the_image() {
    let checks = checks_after(|state, _| {
        db(state)["Image"] = json!(format!("sha256:{}", "ab".repeat(32)));
    });
    fails(&checks, &["config:db"], "image: expected sha256:");
}

/// An edit of the engine's JSON (a container's, or the whole state).
type Change = Box<dyn Fn(&mut Value)>;

#[test]
fn every_field_of_the_effective_configuration_is_compared() {
    let cases: Vec<(&str, Change)> = vec![
        (
            "entrypoint",
            Box::new(|c| c["Config"]["Entrypoint"] = json!(["/bin/sh"])),
        ),
        ("command", Box::new(|c| c["Config"]["Cmd"] = json!(["-x"]))),
        (
            "environment: expected LISTEN_ADDR as recorded",
            Box::new(|c| c["Config"]["Env"][1] = json!("LISTEN_ADDR=0.0.0.0:1")),
        ),
        (
            "environment: expected no EXTRA",
            Box::new(|c| {
                c["Config"]["Env"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("EXTRA=1"))
            }),
        ),
        (
            "ports",
            Box::new(|c| c["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"] = json!("80")),
        ),
        (
            "networks",
            Box::new(|c| {
                let endpoint = c["NetworkSettings"]["Networks"]["prov_default"].clone();
                c["NetworkSettings"]["Networks"]["host"] = endpoint;
            }),
        ),
        (
            "aliases",
            Box::new(|c| c["NetworkSettings"]["Networks"]["prov_default"]["Aliases"] = json!([])),
        ),
        (
            "healthcheck",
            Box::new(|c| c["Config"]["Healthcheck"]["Test"] = json!(["NONE"])),
        ),
        (
            "restart: expected no, found always",
            Box::new(|c| c["HostConfig"]["RestartPolicy"]["Name"] = json!("always")),
        ),
        (
            "privileged: expected false, found true",
            Box::new(|c| c["HostConfig"]["Privileged"] = json!(true)),
        ),
        (
            "cap_add: expected [], found [\"SYS_ADMIN\"]",
            Box::new(|c| c["HostConfig"]["CapAdd"] = json!(["SYS_ADMIN"])),
        ),
        (
            "cap_drop",
            Box::new(|c| c["HostConfig"]["CapDrop"] = json!(["ALL"])),
        ),
        ("name", Box::new(|c| c["Name"] = json!("/prov-api-2"))),
    ];
    for (says, change) in cases {
        let checks = checks_after(|state, _| change(api(state)));
        fails(&checks, &["config:api"], says);
    }
}

#[test]
fn a_restarted_api_that_is_healthy_again_passes() {
    let checks = checks_after(|state, _| {
        api(state)["RestartCount"] = json!(1);
        api(state)["State"]["StartedAt"] = json!("2099-01-01T00:00:00Z");
    });
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
}

#[test]
fn an_api_still_starting_fails_its_service_check() {
    let checks = checks_after(|state, _| {
        api(state)["State"]["Health"]["Status"] = json!("starting");
    });
    fails(&checks, &["service:api"], "starting");
}

#[test]
fn the_source_tree_and_the_served_tree_must_be_the_recorded_one() {
    let checks = checks_with(|_, _| {}, Some("0000000000000000000000000000000000000000"));
    fails(&checks, &["source-tree"], "tree 0000000000");
    let checks = checks_after(|_, http| {
        http["version"]["body"] = json!(http["version"]["body"]
            .as_str()
            .unwrap()
            .replace("\"tree\": \"", "\"tree\": \"ff"));
    });
    fails(&checks, &["one-tree", "http/version"], "/version ff");
}

#[test]
fn an_api_that_does_not_answer_or_is_not_ready_fails_its_http_checks() {
    let checks = checks_after(|_, http| {
        http["ready"] = json!({"status": 503, "body": "database unavailable"});
    });
    fails(&checks, &["http/ready"], "503 database unavailable");
    let checks = checks_after(|_, http| {
        http["health"] = json!({"status": null, "body": "connection refused"});
    });
    fails(&checks, &["http/health"], "no answer: connection refused");
}

#[test]
fn a_build_log_showing_cached_steps_or_missing_fails_log_fresh() {
    let cached = |e: &mut Evidence| {
        e.cached_steps = Ok(vec!["#8 [build 2/8] COPY Cargo.toml Cargo.lock ./".into()])
    };
    let checks = judged_with(|_, _| {}, |_| {}, None, cached);
    fails_including(&checks, "log-fresh", "from the cache: #8 [build 2/8] COPY");
    let missing = |e: &mut Evidence| e.cached_steps = Err("no build log at x.log".into());
    let checks = judged_with(|_, _| {}, |_| {}, None, missing);
    fails_including(&checks, "log-fresh", "no build log at x.log");
}

#[test]
fn with_timestamps_set_to_the_source_date_every_own_layer_must_carry_that_date() {
    use prov::model::{SourceDate, SourceDateFrom};
    let epoch = 1_700_000_000;
    let dated = |m: &mut Manifest| {
        m.source_date = Some(SourceDate {
            epoch,
            from: SourceDateFrom::Commit,
        })
    };
    // The fixture's layers carry their build times: not the source's date.
    let checks = judged(|_, _| {}, dated, None);
    fails_including(&checks, "layers-fresh", "outside:");
    // Every entry dated at the source's date passes (in the classic store the base is found by
    // its ID, whatever the dates).
    let rewritten = |s: &mut Value, _: &mut Value| {
        for entry in s["history"][0]["entries"].as_array_mut().unwrap() {
            entry["Created"] = json!(epoch);
        }
    };
    let checks = judged(rewritten, dated, None);
    let layers = checks.iter().find(|c| c.name == "layers-fresh").unwrap();
    assert!(layers.ok, "{layers:#?}");
}

#[test]
fn a_container_compose_v2_made_names_its_image_and_must_run_it() {
    // The fixture is Compose v1's, which sets no image label: a v2 record requires it.
    let v2 = |m: &mut Manifest| {
        m.tool.versions.insert("compose".into(), "2.26.1".into());
    };
    let checks = judged(|_, _| {}, v2, None);
    fails_including(
        &checks,
        "compose-wiring",
        "no com.docker.compose.image label",
    );
    let labelled = |s: &mut Value, _: &mut Value| {
        for c in [api, db] {
            let image = c(s)["Image"].clone();
            c(s)["Config"]["Labels"]["com.docker.compose.image"] = image;
        }
    };
    let checks = judged(labelled, v2, None);
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
}

#[test]
fn an_image_with_a_registry_digest_or_a_latest_tag_is_not_local() {
    let checks = checks_after(|state, _| {
        state["images"][0]["RepoDigests"] = json!(["registry.example/prov-api@sha256:00"]);
    });
    fails(&checks, &["image-local"], "registry.example");
}

#[test]
fn a_build_with_arguments_the_policy_in_force_does_not_allow_fails() {
    let checks = judged(
        |_, _| {},
        |m| {
            m.build_args
                .insert("API_FEATURES".into(), "dishonest-ready".into());
        },
        None,
    );
    fails(
        &checks,
        &["build-policy"],
        "API_FEATURES=\"dishonest-ready\" is not allowed",
    );
    let checks = judged(|_, _| {}, |m| m.policy = None, None);
    fails(&checks, &["build-policy"], "names no build policy");
}

#[test]
fn a_record_naming_inputs_outside_the_repository_fails() {
    let checks = judged(
        |_, _| {},
        |m| m.dockerfile.path = "../elsewhere/Dockerfile".into(),
        None,
    );
    fails(
        &checks,
        &["build-inputs"],
        "not a path inside the repository",
    );
}

#[test]
fn a_database_compose_v1_recreated_with_its_affinity_hint_passes() {
    let checks = checks_after(|state, _| {
        db(state)["Config"]["Env"]
            .as_array_mut()
            .unwrap()
            .push(json!("affinity:container==6e8ecf1a0a84"));
    });
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
}

#[test]
fn the_newest_attested_build_or_a_later_one_passes_and_a_rollback_fails() {
    let store = Store::new(&base().join("provenance"), "main");
    let latest = store.latest().unwrap();
    let mark = |build_id: &str, sha: &str| AttestedMark {
        build_id: build_id.into(),
        manifest_sha256: sha.into(),
    };
    let checks = judged_with_mark(
        |_, _| {},
        |_| {},
        None,
        Some(mark(&latest.manifest.build_id, &latest.sha256)),
    );
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    // The host attested a newer build, which is gone: the record was rolled back.
    let checks = judged_with_mark(
        |_, _| {},
        |_| {},
        None,
        Some(mark("20991231-000000-000-ffff", &"e".repeat(64))),
    );
    fails(&checks, &["no-rollback"], "is gone or changed");
    // The attested record itself was edited (its digest changed).
    let checks = judged_with_mark(
        |_, _| {},
        |_| {},
        None,
        Some(mark(&latest.manifest.build_id, &"e".repeat(64))),
    );
    fails(&checks, &["no-rollback"], "is gone or changed");
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
        "{name} says {:?}",
        check.observed
    );
}

#[test]
fn every_runtime_check_fails_on_its_own_fixture() {
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
                s["images"][0]["Config"]["Labels"]["org.opencontainers.image.title"] =
                    json!("other")
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
            "compose-wiring",
            "api: created from",
            Box::new(|s| {
                api(s)["Config"]["Labels"]["com.docker.compose.image"] =
                    json!(format!("sha256:{}", "e".repeat(64)))
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
    for (name, says, change) in cases {
        let checks = checks_after(|state, _| change(state));
        fails_including(&checks, name, says);
    }
}

#[test]
fn the_record_checks_fail_on_a_broken_chain_a_moved_latest_or_no_usable_record() {
    use prov::manifest::{ChainEntry, Link, StoreError};
    let evidence = || {
        let store = Store::new(&base().join("provenance"), "main");
        Evidence {
            node: "main".into(),
            chain: store.chain().unwrap(),
            latest: store.latest(),
            state: serde_json::from_value(read_json("state.json")).unwrap(),
            http: serde_json::from_value(read_json("http.json")).unwrap(),
            tree_now: Ok(store.latest().unwrap().manifest.git.tree),
            attestation: None,
            policy: prov::policy::load(Path::new(env!("CARGO_MANIFEST_DIR")), "build-policy.json")
                .unwrap(),
            attested: None,
            imported: Some(store.latest().unwrap().sha256),
            cached_steps: Ok(Vec::new()),
        }
    };
    // A latest record the host never imported, or imported with other bytes, is not trusted.
    let mut never = evidence();
    never.imported = None;
    fails_including(&judge(&never), "imported", "the host never imported");
    let mut changed = evidence();
    changed.imported = Some("0".repeat(64));
    fails_including(&judge(&changed), "imported", "the node holds");

    let mut broken = evidence();
    broken.chain[0].link = Link::Broken {
        expected: None,
        found: Some("0".repeat(64)),
    };
    fails_including(
        &judge(&broken),
        "hash-chain",
        "previous-manifest digest does not match",
    );

    // A newer successful build is in the chain, but latest still points at the older one.
    let mut moved = evidence();
    let mut newer = moved.latest.as_ref().unwrap().clone();
    newer.manifest.build_id = "20991231-000000-000-aaaa".into();
    moved.chain.push(ChainEntry {
        build_id: newer.manifest.build_id.clone(),
        read: Ok(newer),
        link: Link::Intact,
    });
    fails_including(&judge(&moved), "latest-is-newest", "latest = 20261130");

    let mut gone = evidence();
    gone.latest = Err(StoreError::NoSuchBuild {
        build_id: "20261130-000000-000-0000".into(),
        dir: base(),
    });
    fails_including(&judge(&gone), "manifest", "is not recorded");
}
