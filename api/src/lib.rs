//! HTTP routes of the api service. `main.rs` only wires config, listener and
//! shutdown around `router`.

pub mod config;
pub mod db;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
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

/// The service: every connection's requests go to `App::handle` (a clone per connection).
#[derive(Clone)]
pub struct App(Arc<AppState>);

/// The header `prov verify` sends a random nonce in. The api notes it in its log line, with the
/// digest of the body it answered, so that verify can show, from the engine's copy of this
/// container's log, that the answer it got came from this very process.
const NONCE_HEADER: &str = "x-prov-nonce";

/// The largest request body the api reads.
const MAX_BODY: usize = 64 * 1024;

/// What a route answers: a status and a JSON body.
type Answer = (StatusCode, Value);

impl App {
    pub fn new(db: Db) -> App {
        App(Arc::new(AppState {
            db,
            notes_table: OnceCell::new(),
            last_ready: Mutex::new(None),
        }))
    }

    /// Answers one request and logs it: one line, with the nonce and the body's digest when
    /// the request carried a nonce.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        // Only a nonce of the form verify sends (hex) is noted: the log line stays one line.
        let nonce = request
            .headers()
            .get(NONCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|n| !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned);
        let started = Instant::now();
        let (status, body) = self.route(&method, &path, request).await;
        let body = Bytes::from(body.to_string());
        let elapsed = started.elapsed().as_millis();
        let status_code = status.as_u16();
        match nonce {
            Some(nonce) => {
                let digest = Sha256::digest(&body);
                println!("{method} {path} {status_code} {elapsed}ms nonce={nonce} body-sha256={digest:x}");
            }
            None => println!("{method} {path} {status_code} {elapsed}ms"),
        }
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }

    async fn route<B>(&self, method: &Method, path: &str, request: Request<B>) -> Answer
    where
        B: hyper::body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let state = &self.0;
        match (method, path) {
            (&Method::GET | &Method::HEAD, "/health") => health(),
            (&Method::GET | &Method::HEAD, "/ready") => ready(state).await,
            (&Method::GET | &Method::HEAD, "/version") => version(),
            (&Method::GET | &Method::HEAD, "/notes") => {
                list_notes(state).await.unwrap_or_else(ApiError::answer)
            }
            (&Method::POST, "/notes") => create_note(state, request)
                .await
                .unwrap_or_else(ApiError::answer),
            (_, "/health" | "/ready" | "/version" | "/notes") => ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on {path}"),
            )
            .answer(),
            _ => ApiError(StatusCode::NOT_FOUND, format!("no route {path}")).answer(),
        }
    }
}

/// Liveness: the process serves. Never touches the database.
fn health() -> Answer {
    (StatusCode::OK, json!({ "status": "ok" }))
}

/// Readiness: `SELECT 1` succeeds within READY_TIMEOUT, checkout included.
async fn ready(state: &AppState) -> Answer {
    if cfg!(feature = "dishonest-ready") {
        // TEST-ONLY lie (see Cargo.toml).
        return (StatusCode::OK, json!({ "status": "ready" }));
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
        Ok(()) => (StatusCode::OK, json!({ "status": "ready" })),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "not ready", "reason": e.0 }),
        ),
    }
}

/// The source the binary was built from. An image is a function of its inputs (the image of the
/// same source is the same image), so it names no build: the build's record does.
fn version() -> Answer {
    (
        StatusCode::OK,
        json!({
            "commit": GIT_COMMIT,
            "tree": GIT_TREE,
        }),
    )
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

async fn list_notes(state: &AppState) -> Result<Answer, ApiError> {
    let rows = db::within(QUERY_TIMEOUT, async {
        let client = state.db.client().await?;
        ensure_notes_table(state, &client).await?;
        Ok(client
            .query(
                &format!("SELECT {NOTE_COLUMNS} FROM notes ORDER BY id"),
                &[],
            )
            .await?)
    })
    .await?;
    let notes: Vec<Note> = rows.iter().map(Note::from).collect();
    Ok((StatusCode::OK, json!(notes)))
}

async fn create_note<B>(state: &AppState, request: Request<B>) -> Result<Answer, ApiError>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    // Any unusable body (not JSON, missing `text`, ...) is the client's fault: 400.
    let json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected a request with Content-Type: application/json".to_string(),
        ));
    }
    let body = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("unreadable body: {e}")))?
        .to_bytes();
    let new: NewNote = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a note: {e}")))?;
    if new.text.trim().is_empty() {
        return Err(ApiError::bad_request("text must not be empty".to_string()));
    }

    let row = db::within(QUERY_TIMEOUT, async {
        let client = state.db.client().await?;
        ensure_notes_table(state, &client).await?;
        Ok(client
            .query_one(
                &format!("INSERT INTO notes (text) VALUES ($1) RETURNING {NOTE_COLUMNS}"),
                &[&new.text],
            )
            .await?)
    })
    .await?;
    Ok((StatusCode::CREATED, json!(Note::from(&row))))
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

    fn answer(self) -> Answer {
        (self.0, json!({ "error": self.1 }))
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
