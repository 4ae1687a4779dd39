//! The node transport: ssh, configured from `vagrant ssh-config`, with connections reused, and
//! each node's host key pinned.
//!
//! One `vagrant ssh -c` costs about two seconds; plain ssh with a shared master connection costs
//! about ten milliseconds, so every remote call goes through here. The configuration and the
//! pinned keys are host-only state, outside the checkout: Vagrant's own configuration
//! accepts any host key (`StrictHostKeyChecking no`), so prov overrides it with the key pinned
//! under the node's name (`HostKeyAlias`), ed25519 only. The host makes a node's host key itself
//! before the node first boots and pins its public half (`prov pin --key`), so the pin never
//! comes from the network; only a node whose provider cannot be given a key (a real VM's box)
//! is pinned on first contact (`prov pin --new`).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::host::state::HostState;
use crate::record::nodes::NodeName;
use crate::record::store::write_atomic;

/// A node reachable over ssh.
#[derive(Clone)]
pub struct Transport {
    node: NodeName,
    config: PathBuf,
    known_hosts: PathBuf,
    /// Where ssh keeps the shared connection's socket: in the host-only state.
    control_path: PathBuf,
    /// `yes` (the pin must match) or, when pinning, `accept-new`.
    host_key_checking: &'static str,
    /// Whether to reuse (and keep) the shared connection. Pinning opens its own: a shared one
    /// skips the host key exchange.
    shared: bool,
    /// When set, `output` gives up at this instant (the node or its connection stalled).
    deadline: Option<Instant>,
}

impl Transport {
    /// Uses the node's ssh configuration, which `prov pin` wrote when the node was brought up.
    /// Writes nothing: the reading commands (verify, show, diff) connect through here too.
    pub fn connect(repo: &Path, node: &NodeName) -> Result<Self> {
        let state = HostState::for_checkout(repo)?;
        let config = state.ssh_config(node);
        if !config.is_file() {
            bail!(
                "node {node} has no ssh configuration in {}: bring it up (`make up NODE={node}`), \
                 which writes it",
                state.dir().display()
            );
        }
        let control_path = control_path(&state)?;
        Ok(Transport {
            node: node.clone(),
            config,
            known_hosts: state.known_hosts(),
            // Without the sockets' folder (made by `prov pin`), each call has its own connection.
            shared: control_path.parent().is_some_and(Path::is_dir),
            control_path,
            host_key_checking: "yes",
            deadline: None,
        })
    }

    /// Bounds every later `output` call: past `deadline` the ssh process is killed.
    pub fn until(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// A copy whose calls end within `limit` from now (or the deadline already set, if sooner).
    pub fn bounded(&self, limit: Duration) -> Transport {
        let by = Instant::now() + limit;
        let mut bounded = self.clone();
        bounded.deadline = Some(self.deadline.map_or(by, |d| d.min(by)));
        bounded
    }

    /// Time left before the deadline, if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The ssh options every connection to the node uses: its configuration, the shared
    /// connection, the bounds, and the pinned host key.
    fn ssh_options(&self) -> Vec<String> {
        let shared = if self.shared {
            [
                "ControlMaster=auto".to_string(),
                format!("ControlPath={}", self.control_path.display()),
                "ControlPersist=120".to_string(),
            ]
        } else {
            ["ControlMaster=no", "ControlPath=none", "ControlPersist=no"].map(String::from)
        };
        let mut options = vec!["-F".to_string(), self.config.display().to_string()];
        let settings = shared.into_iter().chain([
            "LogLevel=ERROR".to_string(),
            "ConnectTimeout=10".to_string(),
            // A connection whose packets are dropped is given up after about ten seconds.
            "ServerAliveInterval=5".to_string(),
            "ServerAliveCountMax=2".to_string(),
            "BatchMode=yes".to_string(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            format!("StrictHostKeyChecking={}", self.host_key_checking),
            format!("HostKeyAlias={}", self.node),
            // The pin is an ed25519 key: a node offering only another kind is refused.
            "HostKeyAlgorithms=ssh-ed25519".to_string(),
            // Pins are looked up by node name, so they are kept in the clear.
            "HashKnownHosts=no".to_string(),
        ]);
        for setting in settings {
            options.push("-o".to_string());
            options.push(setting);
        }
        options
    }

    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// ssh to the node with the connection options; `tty` asks for a terminal on the node.
    fn ssh(&self, tty: bool, argv: &[&str]) -> Result<Command> {
        let mut cmd = Command::new("ssh");
        if tty {
            cmd.arg("-t");
        }
        cmd.args(self.ssh_options())
            .arg(&self.node)
            .arg(shlex::try_join(argv.iter().copied()).context("quoting the remote command")?);
        Ok(cmd)
    }

    /// The ssh command that runs `argv` on the node, for the caller to wire up and spawn.
    pub fn command(&self, argv: &[String]) -> Result<Command> {
        self.ssh(false, &argv.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Runs a command on the node, its output shown here as it comes, line by line, with every
    /// control sequence escaped (a node must not write to the host's terminal), at most
    /// `max_output` bytes and within the deadline if one is set; returns its exit status.
    pub fn exec(&self, argv: &[String], max_output: u64) -> Result<ExitStatus> {
        trace(argv, false)?;
        let mut child = self
            .ssh(false, &argv.iter().map(String::as_str).collect::<Vec<_>>())?
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running ssh to node {}", self.node))?;
        let pid = child.id();
        let left = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(max_output));
        let relay = |from: Box<dyn Read + Send>, to: fn() -> Box<dyn Write>| {
            let left = left.clone();
            std::thread::spawn(move || relay_lines(from, to(), &left, pid))
        };
        let out = relay(
            Box::new(child.stdout.take().expect("stdout is piped")),
            || Box::new(std::io::stdout()),
        );
        let err = relay(
            Box::new(child.stderr.take().expect("stderr is piped")),
            || Box::new(std::io::stderr()),
        );
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(child.wait());
        });
        let status = match self.remaining() {
            None => finished
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(limit) => finished.recv_timeout(limit),
        };
        let Ok(status) = status else {
            // Not reaped yet (the waiting thread has not returned), so the pid is still ours.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            bail!(
                "the command on node {} did not end within its bound: stopped (is the node \
                 frozen?)",
                self.node
            );
        };
        let _ = (out.join(), err.join());
        if left.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            bail!(
                "node {} printed more than {max_output} bytes: the command was stopped",
                self.node
            );
        }
        let status = status.with_context(|| format!("running ssh to node {}", self.node))?;
        if status.code() == Some(255) {
            bail!(
                "node {} is unreachable over ssh; is it up? `make up NODE={}`",
                self.node,
                self.node
            );
        }
        Ok(status)
    }

    /// Runs a command on the node and captures its output, within the deadline if one is set.
    pub fn output(&self, argv: &[String]) -> Result<Output> {
        self.output_bounded(argv, u64::MAX)
    }

    /// Like `output`, but a node that sends more than `max_stdout` bytes is cut off and refused:
    /// what a node sends is read into memory, and a node must not be able to fill it.
    pub fn output_bounded(&self, argv: &[String], max_stdout: u64) -> Result<Output> {
        self.run(argv, None, max_stdout, None)
    }

    /// Like `output_bounded`, but what the command prints on stderr (a build's output) is shown
    /// here as it comes, escaped, up to `max_shown` bytes, instead of being kept.
    pub fn output_showing_stderr(
        &self,
        argv: &[String],
        max_stdout: u64,
        max_shown: u64,
    ) -> Result<Output> {
        self.run(argv, None, max_stdout, Some(max_shown))
    }

    /// Runs a command on the node with what `input` writes on its standard input, within the
    /// deadline if one is set; its output is read up to the usual bound.
    pub fn feed(
        &self,
        argv: &[String],
        input: impl FnOnce(&mut dyn Write) -> std::io::Result<()> + Send + 'static,
    ) -> Result<Output> {
        self.run(argv, Some(Box::new(input)), 1 << 20, None)
    }

    /// Runs `argv` on the node, within the deadline: its stdout kept up to `max_stdout` bytes,
    /// its stderr kept (64 KiB) or, with `shown`, shown here escaped up to that many bytes.
    fn run(
        &self,
        argv: &[String],
        input: Option<Input>,
        max_stdout: u64,
        shown: Option<u64>,
    ) -> Result<Output> {
        trace(argv, input.is_some())?;
        let mut child = self
            .command(argv)?
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running ssh to node {}", self.node))?;
        let pid = child.id();
        let (mut stdout, mut stderr) = (
            child.stdout.take().expect("stdout is piped"),
            child.stderr.take().expect("stderr is piped"),
        );
        // What the host sends goes in a thread of its own: a node that stops reading stalls it,
        // not the deadline below.
        let sent = input.map(|input| {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            std::thread::spawn(move || input(&mut stdin))
        });
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let errors = std::thread::spawn(move || match shown {
                Some(budget) => {
                    let left = std::sync::atomic::AtomicU64::new(budget);
                    relay_lines(Box::new(stderr), Box::new(std::io::stderr()), &left, pid);
                    Vec::new()
                }
                None => {
                    let mut bytes = Vec::new();
                    let _ = stderr.by_ref().take(64 << 10).read_to_end(&mut bytes);
                    // The rest is read and dropped: a node that writes more must not stall.
                    let _ = std::io::copy(&mut stderr, &mut std::io::sink());
                    bytes
                }
            });
            let mut out = Vec::new();
            let read = stdout
                .by_ref()
                .take(max_stdout.saturating_add(1))
                .read_to_end(&mut out);
            if out.len() as u64 > max_stdout {
                // Not reaped yet (this thread waits below), so the pid is still the child's.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            let status = child.wait();
            let _ = done.send(read.and(status).map(|status| Output {
                status,
                stdout: out,
                stderr: errors.join().unwrap_or_default(),
            }));
        });
        let outcome = match self.remaining() {
            None => finished
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(limit) => finished.recv_timeout(limit),
        };
        match outcome {
            Ok(Ok(out)) if out.stdout.len() as u64 > max_stdout => bail!(
                "node {} sent more than {max_stdout} bytes for `{}`: refused (records are small; \
                 is the node's provenance folder tampered with?)",
                self.node,
                argv.join(" ")
            ),
            Ok(out) => {
                let out = self.reached(out?)?;
                if let Some(sent) = sent {
                    sent.join()
                        .map_err(|_| anyhow::anyhow!("sending to node {} panicked", self.node))?
                        .with_context(|| format!("sending to node {}", self.node))?;
                }
                Ok(out)
            }
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

    /// The output of a remote command, or an error when ssh could not reach the node or the
    /// node is not the one pinned.
    fn reached(&self, out: Output) -> Result<Output> {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
            bail!(
                "node {} offers another ssh host key than the one pinned when it was created \
                 (pinned {}, offered {}): it is not the node the host made, or it was changed \
                 by hand. If you re-created it, `make destroy NODE={}` then `make up` pins the \
                 new one",
                self.node,
                pinned_fingerprint(&self.known_hosts, &self.node)
                    .unwrap_or_else(|| "(unreadable)".into()),
                stderr
                    .split_whitespace()
                    .find(|w| w.starts_with("SHA256:"))
                    .map_or("(not shown)", |w| w.trim_end_matches('.')),
                self.node
            );
        }
        if stderr.contains("Host key verification failed") {
            bail!(
                "node {}'s ssh host key is not pinned on this host: `make up NODE={}` pins it \
                 (the host pins a node's key when it creates the node)",
                self.node,
                self.node
            );
        }
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

/// Copies what a node prints to `to`, line by line (a line is cut at 64 KiB), escaped; past the
/// shared byte budget `left`, the ssh process `pid` is killed.
fn relay_lines(
    from: Box<dyn Read + Send>,
    mut to: Box<dyn Write>,
    left: &std::sync::atomic::AtomicU64,
    pid: u32,
) {
    use std::io::BufRead;
    use std::sync::atomic::Ordering;
    let mut reader = std::io::BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader).take(64 << 10).read_until(b'\n', &mut line);
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n as u64,
        };
        if left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(n))
            .is_err()
        {
            left.store(0, Ordering::Relaxed);
            // The child is reaped by the thread that waits for it, after this kill.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            return;
        }
        // A line's end: its newline, and the carriage return before it (CRLF), if any.
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let _ = writeln!(to, "{}", crate::record::text::printable_line(text));
        let _ = to.flush();
    }
}

/// What a command on the node reads on its standard input, written by the host.
type Input = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

/// ssh names a shared connection's socket `%C` (40 hex digits) in a folder of the host-only
/// state, mode 0700: in a world-writable folder such as /tmp, another local user could make the
/// socket first and answer in the node's place. A unix socket's path holds at most 107 bytes,
/// and ssh first binds `<path>.<16 random characters>`.
const SOCKET_PATH_MAX: usize = 107;

/// Where ssh keeps the shared connections' sockets, `<state>/cm/%C`; checked, not made.
fn control_path(state: &HostState) -> Result<PathBuf> {
    let dir = state.dir().join("cm");
    let longest = dir.as_os_str().len() + "/".len() + 40 + ".".len() + 16;
    if longest > SOCKET_PATH_MAX {
        bail!(
            "the host state folder {} is too deep for ssh's connection sockets ({longest} bytes, \
             at most {SOCKET_PATH_MAX} in a unix socket's path): set PROV_STATE_DIR (or \
             XDG_STATE_HOME) to a shorter folder",
            state.dir().display()
        );
    }
    Ok(dir.join("%C"))
}

/// Makes the sockets' folder, private to the host's user (`prov pin` does, once per node).
fn make_control_dir(state: &HostState) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = state.dir().join("cm");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the mode of {}", dir.display()))
}

/// Writes `vagrant ssh-config NODE` to the host state; stale after the node is recreated.
fn refresh_config(repo: &Path, state: &HostState, node: &NodeName) -> Result<()> {
    let path = state.ssh_config(node);
    let out = state
        .vagrant(repo)
        .args(["ssh-config", node])
        .output()
        .context("running `vagrant ssh-config`: is Vagrant installed?")?;
    if !out.status.success() {
        bail!(
            "node {node} has no ssh configuration (is it up? `make up NODE={node}`): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    fs::create_dir_all(path.parent().expect("config path has a parent"))?;
    write_atomic(&path, &out.stdout)?;
    Ok(())
}

/// The fingerprint (`SHA256:...`, as ssh prints it) of the key pinned for `alias`.
fn pinned_fingerprint(known_hosts: &Path, alias: &str) -> Option<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    use base64::Engine;
    use sha2::Digest;
    let text = fs::read_to_string(known_hosts).ok()?;
    let key = text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        if fields.next()? == alias {
            fields.nth(1)
        } else {
            None
        }
    })?;
    let blob = STANDARD.decode(key).ok()?;
    Some(format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(sha2::Sha256::digest(&blob))
    ))
}

/// With `PROV_TRANSPORT_TRACE=FILE`, each command prov runs on a node and waits for is appended
/// to FILE as one shell command line, its standard input closed; one whose input the host feeds
/// is written as a comment (its input is not kept). The benchmark replays what `prov verify`
/// sent, in one ssh round trip, as a floor (bench/run.sh).
fn trace(argv: &[String], fed: bool) -> Result<()> {
    let Some(path) = std::env::var_os("PROV_TRANSPORT_TRACE") else {
        return Ok(());
    };
    let line =
        shlex::try_join(argv.iter().map(String::as_str)).context("quoting the remote command")?;
    let line = match fed {
        false => format!("{line} </dev/null\n"),
        true => format!(
            "# fed by the host, not replayed: {}\n",
            line.replace('\n', " ")
        ),
    };
    // One write each: commands sent at the same time (verify's are) do not interleave.
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()))
        .with_context(|| {
            format!(
                "writing PROV_TRANSPORT_TRACE={}",
                Path::new(&path).display()
            )
        })
}

/// `prov pin`: refreshes the node's ssh configuration and pins its host key. For a node the host
/// just created (`new`), any older pin is dropped first and the key it offers now is pinned;
/// otherwise a key already pinned must match, and a node with none (made by an older prov) has
/// its key pinned on this first use. Returns the pinned fingerprint.
pub fn pin(repo: &Path, node: &NodeName, new: bool) -> Result<String> {
    let state = HostState::for_checkout(repo)?;
    refresh_config(repo, &state, node)?;
    make_control_dir(&state)?;
    let known_hosts = state.known_hosts();
    let _lock = lock_known_hosts(&known_hosts)?;
    if new {
        forget_key(&known_hosts, node)?;
    }
    let mut transport = Transport::connect(repo, node)?;
    transport.host_key_checking = "accept-new";
    transport.shared = false;
    let out = transport.output(&["true".to_string()])?;
    if !out.status.success() {
        bail!(
            "could not reach node {node} to pin its host key: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    pinned_fingerprint(&known_hosts, node).ok_or_else(|| {
        anyhow::anyhow!(
            "ssh pinned no key for node {node} in {}",
            known_hosts.display()
        )
    })
}

/// `prov pin --key FILE`: pins the public half of the host key the host made for the node
/// (`ssh-keygen -t ed25519`), before the node first boots; nothing is asked of the node. Any
/// older pin of the node is dropped. Returns the pinned fingerprint.
pub fn pin_key(repo: &Path, node: &NodeName, public_key: &Path) -> Result<String> {
    let state = HostState::for_checkout(repo)?;
    pin_public_key(&state.known_hosts(), node, public_key)
}

fn pin_public_key(known_hosts: &Path, node: &NodeName, public_key: &Path) -> Result<String> {
    let text = crate::record::bounded::read(public_key)
        .with_context(|| format!("reading {}", public_key.display()))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} does not exist: make the node's host key first (ssh-keygen -t ed25519)",
                public_key.display()
            )
        })?;
    let key = ed25519_public_key(&String::from_utf8_lossy(&text)).with_context(|| {
        format!(
            "{} is not an ssh ed25519 public key (ssh-keygen -t ed25519 makes one)",
            public_key.display()
        )
    })?;
    let _lock = lock_known_hosts(known_hosts)?;
    forget_key(known_hosts, node)?;
    let mut kept = fs::read_to_string(known_hosts).unwrap_or_default();
    kept.push_str(&format!("{node} ssh-ed25519 {key}\n"));
    write_atomic(known_hosts, kept.as_bytes())?;
    pinned_fingerprint(known_hosts, node)
        .ok_or_else(|| anyhow::anyhow!("could not read back the pin of node {node}"))
}

/// The base64 key of a one-line `ssh-ed25519 <base64> [comment]` public key, checked: its blob
/// names the algorithm and holds a 32-byte key.
fn ed25519_public_key(text: &str) -> Result<String> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let (Some(line), None) = (lines.next(), lines.next()) else {
        bail!("expected exactly one key line");
    };
    let mut fields = line.split_whitespace();
    let (Some("ssh-ed25519"), Some(key)) = (fields.next(), fields.next()) else {
        bail!("expected `ssh-ed25519 <key>`");
    };
    let blob = STANDARD.decode(key).context("the key is not base64")?;
    // string "ssh-ed25519", then string key: both with a 4-byte big-endian length.
    let mut want = Vec::new();
    for part in [&b"ssh-ed25519"[..], &[0u8; 32][..]] {
        want.extend_from_slice(&(part.len() as u32).to_be_bytes());
        want.extend_from_slice(part);
    }
    if blob.len() != want.len() || blob[..15] != want[..15] || blob[15..19] != want[15..19] {
        bail!("the key's blob is not an ed25519 key");
    }
    Ok(key.to_string())
}

/// `prov pin --forget`: drops the node's pinned key and ssh configuration (the node is gone).
pub fn unpin(repo: &Path, node: &NodeName) -> Result<()> {
    let state = HostState::for_checkout(repo)?;
    let _lock = lock_known_hosts(&state.known_hosts())?;
    forget_key(&state.known_hosts(), node)?;
    match fs::remove_file(state.ssh_config(node)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Every node's pin is a line of the one known_hosts file, which each change reads and writes
/// whole: nodes made at the same time (two `make up`s) take turns, or one pin would be lost.
/// The lock (on a file beside it) is released on drop.
fn lock_known_hosts(known_hosts: &Path) -> Result<fs::File> {
    let dir = known_hosts.parent().expect("known_hosts has a parent");
    fs::create_dir_all(dir)?;
    let path = dir.join("known_hosts.lock");
    let file = fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

fn forget_key(known_hosts: &Path, alias: &str) -> Result<()> {
    let Ok(text) = fs::read_to_string(known_hosts) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|line| line.split_whitespace().next() != Some(alias))
        .map(|line| format!("{line}\n"))
        .collect();
    write_atomic(known_hosts, kept.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // ssh-keygen -t ed25519 -N '' -C test
    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFs+pVd4qr8Osk1v+QHOFDM3mR5pcXtPKkH919JBudjr test";

    #[test]
    fn takes_only_one_ed25519_key() {
        assert_eq!(
            ed25519_public_key(&format!("{KEY}\n")).unwrap(),
            KEY.split(' ').nth(1).unwrap()
        );
        for bad in [
            "",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ test",
            "ssh-ed25519 not-base64!",
            // An ed25519 line whose blob is another kind of key.
            "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
            // Two keys.
            &format!("{KEY}\n{KEY}\n"),
        ] {
            assert!(ed25519_public_key(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn a_made_key_replaces_the_nodes_pin_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let known_hosts = dir.path().join("ssh/known_hosts");
        let public = dir.path().join("key.pub");
        fs::write(&public, format!("{KEY}\n")).unwrap();
        fs::create_dir_all(known_hosts.parent().unwrap()).unwrap();
        fs::write(
            &known_hosts,
            "main ssh-ed25519 AAAAold\nworker1 ssh-ed25519 AAAAother\n",
        )
        .unwrap();
        let fingerprint = pin_public_key(&known_hosts, &"main".parse().unwrap(), &public).unwrap();
        let text = fs::read_to_string(&known_hosts).unwrap();
        assert_eq!(
            text,
            format!(
                "worker1 ssh-ed25519 AAAAother\nmain ssh-ed25519 {}\n",
                KEY.split(' ').nth(1).unwrap()
            )
        );
        // As `ssh-keygen -lf` prints it.
        assert_eq!(
            fingerprint,
            "SHA256:kRIfQBfQp5vtwdtkh4wKf6rCDv1ROhCTZ+A6PCzk0ps"
        );
        fs::write(&public, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ x\n").unwrap();
        assert!(pin_public_key(&known_hosts, &"main".parse().unwrap(), &public).is_err());
        assert_eq!(fs::read_to_string(&known_hosts).unwrap(), text);
    }

    #[test]
    fn nodes_pinned_at_the_same_time_all_keep_their_pins() {
        let dir = tempfile::tempdir().unwrap();
        let known_hosts = dir.path().join("ssh/known_hosts");
        let public = dir.path().join("key.pub");
        fs::write(&public, format!("{KEY}\n")).unwrap();
        let nodes: Vec<NodeName> = (0..8).map(|i| format!("n{i}").parse().unwrap()).collect();
        std::thread::scope(|s| {
            for node in &nodes {
                let (known_hosts, public) = (&known_hosts, &public);
                s.spawn(move || {
                    for _ in 0..25 {
                        pin_public_key(known_hosts, node, public).unwrap();
                    }
                });
            }
        });
        for node in &nodes {
            assert!(
                pinned_fingerprint(&known_hosts, node).is_some(),
                "{node} lost its pin"
            );
        }
    }

    #[test]
    fn control_socket_lives_in_the_state_and_fits_a_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let state = HostState::at(dir.path());
        let path = control_path(&state).unwrap();
        assert_eq!(path, dir.path().join("cm/%C"));
        assert!(
            !dir.path().join("cm").exists(),
            "only `prov pin` makes the folder"
        );
        make_control_dir(&state).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("cm"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let deep = dir.path().join("d".repeat(60));
        let err = control_path(&HostState::at(&deep)).unwrap_err().to_string();
        assert!(err.contains("too deep"), "{err}");
    }
}
