//! The node transport: ssh, configured from `vagrant ssh-config`, with connections reused.
//!
//! One `vagrant ssh -c` costs about two seconds; plain ssh with a shared master connection costs
//! about ten milliseconds, so every remote call goes through here.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::manifest::write_atomic;

/// A node reachable over ssh.
pub struct Transport {
    node: String,
    config: PathBuf,
    /// When set, `output` gives up at this instant (the node or its connection stalled).
    deadline: Option<Instant>,
}

impl Transport {
    /// Uses the cached ssh configuration of the node, asking Vagrant for it when there is none.
    pub fn connect(repo: &Path, node: &str) -> Result<Self> {
        let config = repo.join(".cache/ssh").join(format!("{node}.config"));
        if !config.is_file() {
            refresh_config(repo, node, &config)?;
        }
        Ok(Transport {
            node: node.to_string(),
            config,
            deadline: None,
        })
    }

    /// Bounds every later `output` call: past `deadline` the ssh process is killed.
    pub fn until(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Time left before the deadline, if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// ssh to the node with the connection options; `tty` asks for a terminal on the node.
    fn ssh(&self, tty: bool, argv: &[&str]) -> Result<Command> {
        let mut cmd = Command::new("ssh");
        if tty {
            cmd.arg("-t");
        }
        cmd.arg("-F")
            .arg(&self.config)
            .args(["-o", "ControlMaster=auto"])
            .args(["-o", "ControlPath=/tmp/prov-ssh-%C"])
            .args(["-o", "ControlPersist=120"])
            .args(["-o", "LogLevel=ERROR"])
            .args(["-o", "ConnectTimeout=10"])
            // A connection whose packets are dropped is given up after about ten seconds.
            .args(["-o", "ServerAliveInterval=5"])
            .args(["-o", "ServerAliveCountMax=2"])
            .args(["-o", "BatchMode=yes"])
            .arg(&self.node)
            .arg(shlex::try_join(argv.iter().copied()).context("quoting the remote command")?);
        Ok(cmd)
    }

    /// The ssh command that runs `argv` on the node, for the caller to wire up and spawn.
    pub fn command(&self, argv: &[String]) -> Result<Command> {
        self.ssh(false, &argv.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Runs a command on the node with the terminal attached; returns its exit status.
    pub fn exec(&self, argv: &[String]) -> Result<ExitStatus> {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
        self.ssh(tty, &argv.iter().map(String::as_str).collect::<Vec<_>>())?
            .status()
            .with_context(|| format!("running ssh to node {}", self.node))
    }

    /// Runs a bash script (fed on stdin) with arguments on the node and captures its output.
    pub fn run_script(&self, script: &str, args: &[String]) -> Result<Output> {
        let argv: Vec<&str> = ["bash", "-s", "--"]
            .into_iter()
            .chain(args.iter().map(String::as_str))
            .collect();
        let mut child = self
            .ssh(false, &argv)?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running ssh to node {}", self.node))?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(script.as_bytes())?;
        self.reached(child.wait_with_output()?)
    }

    /// Runs a command on the node and captures its output, within the deadline if one is set.
    pub fn output(&self, argv: &[String]) -> Result<Output> {
        let child = self
            .command(argv)?
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running ssh to node {}", self.node))?;
        let Some(limit) = self.remaining() else {
            return self.reached(child.wait_with_output()?);
        };
        let pid = child.id();
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(child.wait_with_output());
        });
        match finished.recv_timeout(limit) {
            Ok(out) => self.reached(out?),
            Err(_) => {
                // Not reaped yet (the waiting thread has not returned), so the pid is still ours.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                bail!(
                    "node {} did not answer in time: the ssh connection or the command on the \
                     node stalled (is the node or its Docker engine frozen?)",
                    self.node
                )
            }
        }
    }

    /// The output of a remote command, or an error when ssh could not reach the node.
    fn reached(&self, out: Output) -> Result<Output> {
        // ssh itself exits with 255 when it cannot reach the node.
        if out.status.code() == Some(255) {
            bail!(
                "node {} is unreachable over ssh ({}); is it up? `make up NODE={}`",
                self.node,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.node
            );
        }
        Ok(out)
    }
}

/// Writes `vagrant ssh-config NODE` to the cache; stale after the node is recreated.
pub fn refresh_config(repo: &Path, node: &str, path: &Path) -> Result<()> {
    let out = Command::new("vagrant")
        .args(["ssh-config", node])
        .current_dir(repo)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .context("running `vagrant ssh-config`: is Vagrant installed?")?;
    if !out.status.success() {
        bail!(
            "node {node} has no ssh configuration (is it up? `make up NODE={node}`): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    fs::create_dir_all(path.parent().expect("config path has a parent"))?;
    write_atomic(path, &out.stdout)?;
    Ok(())
}
