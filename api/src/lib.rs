//! HTTP routes of the api service. `main.rs` only wires config, listener and
//! shutdown around `router`.

pub mod config;
pub mod db;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tokio_postgres::{Client, Row};

pub use config::Config;
pub use db::Db;

/// /ready must answer within about a second, database down or not.
const READY_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound for a notes request, so a stalled database yields 503, not a hang.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Baked in at compile time: the same source gives the same binary anywhere.
pub const GIT_COMMIT: &str = match option_env!("PROV_GIT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};
pub const GIT_TREE: &str = match option_env!("PROV_GIT_TREE") {
    Some(tree) => tree,
    None => "unknown",
};

struct AppState {
    db: Db,
    /// Set once the notes table is known to exist; also serialises the first
    /// CREATE TABLE, which PostgreSQL does not make safe to run concurrently.
    notes_table: OnceCell<()>,
    /// Last /ready outcome, so only changes get logged.
    last_ready: Mutex<Option<bool>>,
}

pub fn router(db: Db) -> Router {
    let state = AppState {
        db,
        notes_table: OnceCell::new(),
        last_ready: Mutex::new(None),
    };
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/version", get(version))
        .route("/notes", get(list_notes).post(create_note))
        .layer(middleware::from_fn(log_request))
        .with_state(Arc::new(state))
}

/// The header `prov verify` sends a random nonce in. The api notes it in its log line, with the
/// digest of the body it answered, so that verify can show, from the engine's copy of this
/// container's log, that the answer it got came from this very process.
const NONCE_HEADER: &str = "x-prov-nonce";

/// The largest body the api answers; a nonced answer is read whole to be digested.
const MAX_BODY: usize = 64 * 1024;

async fn log_request(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    // Only a nonce of the form verify sends (hex) is noted: the log line stays one line.
    let nonce = request
        .headers()
        .get(NONCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|n| !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned);
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_millis();
    let Some(nonce) = nonce else {
        println!("{method} {path} {status} {elapsed}ms");
        return response;
    };
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => {
            let digest = Sha256::digest(&bytes);
            println!("{method} {path} {status} {elapsed}ms nonce={nonce} body-sha256={digest:x}");
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        Err(e) => {
            println!("{method} {path} {status} {elapsed}ms nonce={nonce} body unreadable: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Liveness: the process serves. Never touches the database.
async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: `SELECT 1` succeeds within READY_TIMEOUT, checkout included.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if cfg!(feature = "dishonest-ready") {
        // TEST-ONLY lie (see Cargo.toml).
        return Json(json!({ "status": "ready" })).into_response();
    }

    let result = db::within(READY_TIMEOUT, async {
        let client = state.db.client().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    })
    .await;

    {
        let mut last = state.last_ready.lock().unwrap();
        if *last != Some(result.is_ok()) {
            match &result {
                Ok(()) => println!("readiness: ready"),
                Err(e) => println!("readiness: not ready: {}", e.0),
            }
            *last = Some(result.is_ok());
        }
    }

    match result {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "reason": e.0 })),
        )
            .into_response(),
    }
}

/// The source the binary was built from. An image is a function of its inputs (the image of the
/// same source is the same image), so it names no build: the build's record does.
async fn version() -> Json<serde_json::Value> {
    Json(json!({
        "commit": GIT_COMMIT,
        "tree": GIT_TREE,
    }))
}

#[derive(Serialize)]
struct Note {
    id: i64,
    text: String,
    /// RFC 3339, UTC, to the microsecond: PostgreSQL writes it (NOTE_COLUMNS).
    created_at: String,
}

/// A note's columns as the api answers them.
const NOTE_COLUMNS: &str = r#"id, text, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at"#;

impl From<&Row> for Note {
    fn from(row: &Row) -> Note {
        Note {
            id: row.get("id"),
            text: row.get("text"),
            created_at: row.get("created_at"),
        }
    }
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

async fn list_notes(State(state): State<Arc<AppState>>) -> Result<Json<Vec<Note>>, ApiError> {
    let rows = db::within(QUERY_TIMEOUT, async {
        let client = state.db.client().await?;
        ensure_notes_table(&state, &client).await?;
        Ok(client
            .query(
                &format!("SELECT {NOTE_COLUMNS} FROM notes ORDER BY id"),
                &[],
            )
            .await?)
    })
    .await?;
    Ok(Json(rows.iter().map(Note::from).collect()))
}

async fn create_note(
    State(state): State<Arc<AppState>>,
    body: Result<Json<NewNote>, JsonRejection>,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    // Any unusable body (bad JSON, missing `text`, ...) is the client's fault: 400.
    let Json(new) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if new.text.trim().is_empty() {
        return Err(ApiError::bad_request("text must not be empty".to_string()));
    }

    let row = db::within(QUERY_TIMEOUT, async {
        let client = state.db.client().await?;
        ensure_notes_table(&state, &client).await?;
        Ok(client
            .query_one(
                &format!("INSERT INTO notes (text) VALUES ($1) RETURNING {NOTE_COLUMNS}"),
                &[&new.text],
            )
            .await?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(Note::from(&row))))
}

/// The database may start empty, so the table is created on first use.
async fn ensure_notes_table(state: &AppState, client: &Client) -> Result<(), db::DbError> {
    state
        .notes_table
        .get_or_try_init(|| async {
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS notes (
                        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        text text NOT NULL,
                        created_at timestamptz NOT NULL DEFAULT now()
                    )",
                )
                .await
        })
        .await?;
    Ok(())
}

/// An error response: `{"error": "..."}` with a status.
struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(message: String) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message)
    }
}

impl From<db::DbError> for ApiError {
    fn from(e: db::DbError) -> ApiError {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {}", e.0),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}
