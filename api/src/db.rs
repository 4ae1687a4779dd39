//! Access to PostgreSQL. Connections are made lazily, so the api starts and
//! serves while the database is down.
//!
//! Recovery after a database restart comes from the pool: every checkout first
//! proves the pooled connection still works (`RecyclingMethod::Verified`, which
//! also catches `is_closed`); a connection that fails or stalls that check is
//! thrown away and a fresh one is made. Short create/recycle timeouts keep a
//! dead or unreachable server from hanging a checkout.

use std::future::Future;
use std::time::Duration;

use tokio_postgres::NoTls;

/// Bound for opening one connection: the driver applies it to the TCP connect,
/// the pool to the whole connect including the startup handshake.
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

#[cfg(not(feature = "no-reconnect"))]
impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match e {
            // Unwrap the driver's error: "connection refused" beats pool jargon.
            PoolError::Backend(e) => e.into(),
            PoolError::Timeout(_) => DbError("timeout".to_string()),
            other => DbError(other.to_string()),
        }
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

fn with_connect_timeout(mut config: tokio_postgres::Config) -> tokio_postgres::Config {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config
}

#[cfg(not(feature = "no-reconnect"))]
pub use pooled::Db;

#[cfg(not(feature = "no-reconnect"))]
mod pooled {
    use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};

    use super::*;

    /// Bound for the liveness check run on a pooled connection before reuse.
    const RECYCLE_TIMEOUT: Duration = Duration::from_millis(500);

    pub struct Db {
        pool: Pool,
    }

    impl Db {
        /// Builds the pool without connecting.
        pub fn new(config: tokio_postgres::Config) -> Db {
            let manager = Manager::from_config(
                with_connect_timeout(config),
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Verified,
                },
            );
            let pool = Pool::builder(manager)
                .runtime(Runtime::Tokio1)
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(RECYCLE_TIMEOUT))
                .build()
                .expect("a pool with a runtime set always builds");
            Db { pool }
        }

        /// A working connection (derefs to `tokio_postgres::Client`).
        pub async fn client(&self) -> Result<Object, DbError> {
            Ok(self.pool.get().await?)
        }
    }
}

#[cfg(feature = "no-reconnect")]
pub use single::Db;

/// TEST-ONLY (see Cargo.toml): one connection, never replaced once made.
#[cfg(feature = "no-reconnect")]
mod single {
    use std::sync::Arc;

    use tokio::sync::OnceCell;
    use tokio_postgres::Client;

    use super::*;

    pub struct Db {
        config: tokio_postgres::Config,
        client: OnceCell<Arc<Client>>,
    }

    impl Db {
        pub fn new(config: tokio_postgres::Config) -> Db {
            Db {
                config: with_connect_timeout(config),
                client: OnceCell::new(),
            }
        }

        /// The one connection, made on first success and kept even once broken.
        pub async fn client(&self) -> Result<Arc<Client>, DbError> {
            let client = self
                .client
                .get_or_try_init(|| async {
                    let (client, connection) = self.config.connect(NoTls).await?;
                    tokio::spawn(connection);
                    Ok::<_, DbError>(Arc::new(client))
                })
                .await?;
            Ok(client.clone())
        }
    }
}
