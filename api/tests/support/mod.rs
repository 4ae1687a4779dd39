//! A throwaway PostgreSQL 15 cluster for tests: its own temp dir, listening on
//! 127.0.0.1 on a free port, with its unix socket inside the temp dir. Dropping
//! it stops the server and removes the dir, so tests can run in parallel and
//! never leave a postgres behind.
//!
//! Needs the Debian package `postgresql-15`. initdb refuses to run as root, so
//! when the tests run as root the server runs as the `postgres` system user.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

pub struct TestPostgres {
    dir: TempDir,
    port: u16,
}

impl TestPostgres {
    /// initdb and start a new cluster; panics with the server log on failure.
    pub fn start() -> TestPostgres {
        assert!(
            Path::new(BIN_DIR).join("initdb").exists(),
            "{BIN_DIR}/initdb not found: install the Debian package postgresql-15"
        );
        let dir = tempfile::Builder::new()
            .prefix("api-pg-")
            .tempdir()
            .unwrap();
        if running_as_root() {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path()));
        }
        let pg = TestPostgres {
            port: free_port(),
            dir,
        };
        // Trust auth on a loopback-only throwaway cluster: no password to manage.
        run(pg
            .command("initdb")
            .args([
                "--auth=trust",
                "--username=app",
                "--no-sync",
                "--encoding=UTF8",
            ])
            .arg("--pgdata")
            .arg(pg.data_dir()));
        pg.resume();
        pg
    }

    /// URL of the `postgres` database, as user `app`.
    pub fn url(&self) -> String {
        format!("postgres://app@127.0.0.1:{}/postgres", self.port)
    }

    /// Stop the server (fast shutdown: open connections are terminated).
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "--mode=fast"]);
    }

    /// Start the server again, same data dir and port; returns once it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let started = self
            .command("pg_ctl")
            .arg("start")
            .arg("--wait")
            .arg("--pgdata")
            .arg(self.data_dir())
            .arg("--log")
            .arg(&log)
            .arg("--options")
            .arg(options)
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "postgres did not start: {}\n{}",
            String::from_utf8_lossy(&started.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        run(self
            .command("pg_ctl")
            .args(args)
            .arg("--wait")
            .arg("--pgdata")
            .arg(self.data_dir()));
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A PostgreSQL binary, run as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let program = Path::new(BIN_DIR).join(program);
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The postgres user may not be allowed into the test's working directory.
        command.current_dir(self.dir.path());
        command
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Immediate: the data is thrown away anyway. Fails harmlessly if already stopped.
        let _ = self
            .command("pg_ctl")
            .args(["stop", "--mode=immediate", "--wait", "--pgdata"])
            .arg(self.data_dir())
            .output();
        // TempDir's own drop then removes the directory.
    }
}

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A port nothing listens on right now (the OS picks it, so parallel tests differ).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
