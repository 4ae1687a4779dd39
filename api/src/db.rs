//! Access to PostgreSQL. The connection is made lazily, so the api starts and
//! serves while the database is down.
//!
//! Recovery after a database restart: before each use the kept connection must
//! answer an empty query within a short bound (and not be closed); one that fails
//! or stalls is dropped and a new one made. Short connect/check bounds keep a dead
//! or unreachable server from hanging a request.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

/// Bound for opening one connection: the driver applies it to the TCP connect,
/// `Db::client` to the whole connect including the startup handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the database could not be used, in words fit for a response body.
#[derive(Debug)]
pub struct DbError(pub String);

impl From<tokio_postgres::Error> for DbError {
    /// The driver's own message is vague ("error connecting to server"); the
    /// cause chain says what happened ("Connection refused", "FATAL: ...").
    fn from(e: tokio_postgres::Error) -> Self {
        let mut reason = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            reason = format!("{reason}: {c}");
            cause = c.source();
        }
        DbError(reason)
    }
}

/// Runs `work`, giving up with "timeout" after `limit`. Wrap the checkout and
/// the queries together so that no request waits on the database for longer.
pub async fn within<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| Err(DbError("timeout".to_string())))
}

/// Bound for the liveness check run on the kept connection before it is used again.
const CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// One connection, shared by every request (the driver pipelines their queries), made at
/// first use and checked before each use: one that fails or stalls the check is dropped and
/// a new one made.
pub struct Db {
    config: tokio_postgres::Config,
    kept: Mutex<Option<Arc<Client>>>,
}

impl Db {
    /// Connects nothing yet.
    pub fn new(mut config: tokio_postgres::Config) -> Db {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        Db {
            config,
            kept: Mutex::new(None),
        }
    }

    /// A working connection: the kept one if it still answers, else a new one. With the
    /// TEST-ONLY `no-reconnect` feature (see Cargo.toml), the first one ever made, even broken.
    pub async fn client(&self) -> Result<Arc<Client>, DbError> {
        let mut kept = self.kept.lock().await;
        if let Some(client) = kept.as_ref() {
            if cfg!(feature = "no-reconnect") || answers(client).await {
                return Ok(client.clone());
            }
        }
        *kept = None;
        let (client, connection) = within(CONNECT_TIMEOUT, async {
            Ok(self.config.connect(NoTls).await?)
        })
        .await?;
        tokio::spawn(connection);
        Ok(kept.insert(Arc::new(client)).clone())
    }
}

/// The check a kept connection passes before reuse: open, and an empty query answered in time.
async fn answers(client: &Client) -> bool {
    !client.is_closed()
        && matches!(
            tokio::time::timeout(CHECK_TIMEOUT, client.simple_query("")).await,
            Ok(Ok(_))
        )
}
