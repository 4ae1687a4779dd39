//! Request tests: first without a database, then against a real throwaway
//! PostgreSQL (see support/mod.rs). Each test has its own port and dir.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use serde_json::{json, Value};
use support::{free_port, TestPostgres};

fn app(database_url: &str) -> api::App {
    api::App::new(api::Db::new(database_url.parse().unwrap()))
}

/// An app whose database is a closed port on localhost.
fn app_without_database() -> api::App {
    app(&format!("postgres://app@127.0.0.1:{}/app", free_port()))
}

/// Sends one request (JSON body if given) and returns status and JSON body.
async fn call(app: &api::App, method: &str, path: &str, body: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_string())))
        .unwrap();
    let response = app.handle(request).await;
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {bytes:?}"));
    (status, json)
}

#[tokio::test]
async fn health_is_ok_without_database() {
    let app = app_without_database();
    assert_eq!(
        call(&app, "GET", "/health", None).await,
        (StatusCode::OK, json!({ "status": "ok" }))
    );
}

#[tokio::test]
async fn version_names_the_source_commit_and_tree_only() {
    let (status, body) = call(&app_without_database(), "GET", "/version", None).await;
    assert_eq!(status, StatusCode::OK);
    let fields = body.as_object().unwrap();
    assert_eq!(fields.len(), 2, "{body}");
    assert!(
        fields["commit"].is_string() && fields["tree"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn ready_is_503_with_reason_when_database_port_is_closed() {
    let started = Instant::now();
    let (status, body) = call(&app_without_database(), "GET", "/ready", None).await;
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "not ready");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.to_lowercase().contains("refused"), "{reason}");
}

#[tokio::test]
async fn create_note_rejects_empty_or_missing_text() {
    let app = app_without_database();
    for bad in [
        r#"{"text": ""}"#,
        r#"{"text": "  "}"#,
        "{}",
        r#"{"text": 5}"#,
        "not json",
    ] {
        let (status, body) = call(&app, "POST", "/notes", Some(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
}

#[tokio::test]
async fn other_paths_methods_and_media_types_are_refused_in_json() {
    let app = app_without_database();
    for (method, path, body, want) in [
        ("GET", "/nope", None, StatusCode::NOT_FOUND),
        ("DELETE", "/notes", None, StatusCode::METHOD_NOT_ALLOWED),
        ("POST", "/ready", Some("{}"), StatusCode::METHOD_NOT_ALLOWED),
        // No Content-Type: application/json.
        ("POST", "/notes", None, StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ] {
        let (status, body) = call(&app, method, path, body).await;
        assert_eq!(status, want, "{method} {path}: {body}");
        assert!(body["error"].is_string(), "{method} {path}: {body}");
    }
}

#[tokio::test]
async fn notes_are_503_when_database_is_down() {
    let app = app_without_database();
    let (status, body) = call(&app, "POST", "/notes", Some(r#"{"text": "hi"}"#)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].is_string(), "{body}");
    let (status, _) = call(&app, "GET", "/notes", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn ready_is_ok_with_database_up() {
    let pg = TestPostgres::start();
    assert_eq!(
        call(&app(&pg.url()), "GET", "/ready", None).await,
        (StatusCode::OK, json!({ "status": "ready" }))
    );
}

#[tokio::test]
async fn notes_round_trip() {
    let pg = TestPostgres::start();
    let app = app(&pg.url());

    let (status, first) = call(&app, "POST", "/notes", Some(r#"{"text": "first"}"#)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, second) = call(&app, "POST", "/notes", Some(r#"{"text": "second"}"#)).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(first["text"], "first");
    assert!(first["id"].as_i64().unwrap() < second["id"].as_i64().unwrap());
    let created_at = first["created_at"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(created_at).unwrap();

    let (status, list) = call(&app, "GET", "/notes", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([first, second]));
}

#[tokio::test]
async fn ready_follows_database_stop_and_restart_without_api_restart() {
    let pg = TestPostgres::start();
    let app = app(&pg.url());
    assert_eq!(call(&app, "GET", "/ready", None).await.0, StatusCode::OK);

    pg.stop();
    let started = Instant::now();
    let (status, body) = call(&app, "GET", "/ready", None).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(!body["reason"].as_str().unwrap().is_empty());
    assert_eq!(call(&app, "GET", "/health", None).await.0, StatusCode::OK);

    pg.resume();
    let started = Instant::now();
    loop {
        let (status, body) = call(&app, "GET", "/ready", None).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still not ready 5 s after the database came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The new connection serves real queries again too.
    assert_eq!(call(&app, "GET", "/notes", None).await.0, StatusCode::OK);
}
