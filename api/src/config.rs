//! Settings read from the environment once, at startup.

use std::net::SocketAddr;

const DEFAULT_LISTEN_ADDR: &str = "0.0.0.0:8080";

#[derive(Debug)]
pub struct Config {
    /// Parsed `DATABASE_URL`; nothing connects until a request needs it.
    pub database: tokio_postgres::Config,
    /// `LISTEN_ADDR`, default 0.0.0.0:8080.
    pub listen_addr: SocketAddr,
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as `from_env`, with the variables given by `var` (lets tests avoid
    /// touching the process environment).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let url = var("DATABASE_URL").ok_or(
            "DATABASE_URL is not set (expected e.g. postgres://app:app@db:5432/app)".to_string(),
        )?;
        let database: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("DATABASE_URL is malformed: {e}"))?;
        // tokio-postgres would otherwise fall back to a unix socket at run time.
        if database.get_hosts().is_empty() {
            return Err("DATABASE_URL names no host".to_string());
        }

        let listen = var("LISTEN_ADDR").unwrap_or_else(|| DEFAULT_LISTEN_ADDR.to_string());
        let listen_addr = listen.parse().map_err(|e| {
            format!("LISTEN_ADDR {listen:?} is not an address like 0.0.0.0:8080: {e}")
        })?;

        Ok(Config {
            database,
            listen_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_apply_when_only_database_url_is_set() {
        let c = config(&[("DATABASE_URL", "postgres://app:app@db:5432/app")]).unwrap();
        assert_eq!(c.listen_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.database.get_dbname(), Some("app"));
    }

    #[test]
    fn missing_database_url_is_a_clear_error() {
        let err = config(&[]).unwrap_err();
        assert!(err.contains("DATABASE_URL is not set"), "{err}");
    }

    #[test]
    fn malformed_database_url_is_a_clear_error() {
        for bad in [
            "not a url",
            "postgres://app@db:notaport/app",
            "postgres:///app",
        ] {
            let err = config(&[("DATABASE_URL", bad)]).unwrap_err();
            assert!(err.contains("DATABASE_URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn malformed_listen_addr_is_a_clear_error() {
        let err = config(&[
            ("DATABASE_URL", "postgres://app@db/app"),
            ("LISTEN_ADDR", "8080"),
        ])
        .unwrap_err();
        assert!(err.contains("LISTEN_ADDR"), "{err}");
    }
}
