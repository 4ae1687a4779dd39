//! `prov watch`: each node judged again on every engine event that can change its verdict. The
//! node's event stream is followed over one ssh session that stays open (no polling: while the
//! stack's healthchecks run, their events are the stream's heartbeat; only a silent stream is
//! pinged). What each event means is `record::drift`'s to say; the verdict is verify's own.
//! Nothing is ever reported as passing that was not judged in full since the stream last broke.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::host::probe;
use crate::host::report::{Check, NodeReport};
use crate::host::transport::Transport;
use crate::host::verify;
use crate::record::drift::{self, Effect, Event, Stack};
use crate::record::nodes::NodeSpec;

/// The longest event line the host reads: an event is about a kilobyte (a container's labels
/// are its attributes); a node must not be able to fill the host's memory with one.
const MAX_EVENT_BYTES: u64 = 1 << 20;

/// How long a stream may stay silent before the engine is asked whether it still answers (the
/// stack's two healthchecks send events every 2 s, about one a second between them).
const QUIET: Duration = Duration::from_secs(3);

/// How long to gather the events that follow one before judging once for them all.
const SETTLE: Duration = Duration::from_millis(200);

/// The longest wait between two attempts to reach a node whose stream broke.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What watch saw of a node: a verdict, why it was reached, and when.
pub struct Seen {
    pub report: NodeReport,
    /// The event (or the stream's state) that led to it.
    pub cause: String,
    /// A drift seen in an event, whatever the node's verdict is afterwards: reported on its
    /// own, as FAILED for the time it lasted.
    pub drift: bool,
}

/// A node's event stream: the ssh session, and the events its reader thread passes on.
struct Stream {
    child: Child,
    events: Receiver<Result<Event>>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Follows the node's engine events since `since` (the engine's `seconds.nanoseconds`; none:
/// from the node's now): the engine first sends those it still remembers since then, then each
/// as it happens.
fn follow(transport: &Transport, since: Option<&str>) -> Result<Stream> {
    let script = r#"exec curl --silent --show-error --no-buffer --unix-socket /var/run/docker.sock \
        "http://docker/events?since=${1:-$(date +%s.%N)}""#;
    let argv: Vec<String> = ["sh", "-c", script, "sh", since.unwrap_or("")]
        .into_iter()
        .map(String::from)
        .collect();
    let mut child = transport
        .command(&argv)?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running ssh to node {}", transport.node()))?;
    let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("stdout is piped"));
    let (send, events) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        while let Some(event) = next_event(&mut lines) {
            let failed = event.is_err();
            if send.send(event).is_err() || failed {
                break;
            }
        }
    });
    Ok(Stream { child, events })
}

/// The next event of a stream; `None` when it ended (the connection, the engine or the node
/// went away); an error for a line that is not an event.
fn next_event(lines: &mut impl BufRead) -> Option<Result<Event>> {
    let mut line = Vec::new();
    match lines.take(MAX_EVENT_BYTES + 1).read_until(b'\n', &mut line) {
        Ok(0) => None,
        Err(e) => Some(Err(e).context("reading the node's event stream")),
        Ok(n) if n as u64 > MAX_EVENT_BYTES => Some(Err(anyhow!(
            "the node sent an event line of more than {MAX_EVENT_BYTES} bytes"
        ))),
        Ok(_) => Some(
            serde_json::from_slice(&line)
                .context("the node's event stream sent a line that is not an engine event"),
        ),
    }
}

/// The engine's own time of an event, as `since` takes it.
fn since_of(event: &Event) -> String {
    format!(
        "{}.{:09}",
        event.time_nano.div_euclid(1_000_000_000),
        event.time_nano.rem_euclid(1_000_000_000)
    )
}

/// Watches one node until the process ends: every verdict and drift goes to `seen`, in order.
pub fn watch_node(
    repo: &Path,
    node: &NodeSpec,
    policy: &str,
    timeout: Duration,
    seen: &(dyn Fn(Seen) + Sync),
) -> ! {
    let mut since: Option<String> = None;
    let mut backoff = Duration::from_secs(1);
    let mut cause = "watch started".to_string();
    loop {
        let broke = match watch_stream(repo, node, policy, timeout, &mut since, &cause, seen) {
            Ok(()) => "the node's event stream ended".to_string(),
            Err(e) => format!("{e:#}"),
        };
        seen(Seen {
            report: verify::unchecked(
                &node.name,
                format!("{broke}; trying again in {} s", backoff.as_secs()),
            ),
            cause: "the event stream broke".into(),
            drift: false,
        });
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
        cause = "the event stream is back (judged in full)".into();
    }
}

/// One stream's life: judged in full first, then on every event that can matter. Returns when
/// the stream ends; an error when it breaks otherwise.
fn watch_stream(
    repo: &Path,
    node: &NodeSpec,
    policy: &str,
    timeout: Duration,
    since: &mut Option<String>,
    cause: &str,
    seen: &(dyn Fn(Seen) + Sync),
) -> Result<()> {
    let transport = Transport::connect(repo, &node.name)?;
    let stream = follow(&transport, since.as_deref())?;
    let judge = |cause: String| -> Stack {
        let report =
            verify::verify_nodes(repo, std::slice::from_ref(node), policy, 1, timeout, None)
                .remove(0);
        seen(Seen {
            report,
            cause,
            drift: false,
        });
        probe::stack_containers(&transport.bounded(timeout))
            .map(|containers| Stack::of(&containers))
            .unwrap_or_default()
    };
    let mut stack = judge(cause.to_string());
    loop {
        let first = match stream.events.recv_timeout(QUIET) {
            Ok(event) => event?,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Err(RecvTimeoutError::Timeout) => {
                ping(&transport, timeout)?;
                continue;
            }
        };
        // The events that follow at once are judged together.
        let mut events = vec![first];
        let until = Instant::now() + SETTLE;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match stream.events.recv_timeout(left) {
                Ok(event) => events.push(event?),
                Err(_) => break,
            }
        }
        *since = events.last().map(since_of);
        let mut causes = Vec::new();
        for effect in drift::effects(&events, &stack) {
            match effect {
                Effect::None => {}
                Effect::Judge(what) => causes.push(what),
                Effect::Drift(what) => {
                    seen(drifted(node, &what));
                    causes.push(what);
                }
            }
        }
        if !causes.is_empty() {
            stack = judge(causes.join("; "));
        }
    }
}

/// A drift, as a failed verdict of its own: the check `drift` names the event.
fn drifted(node: &NodeSpec, what: &str) -> Seen {
    let mut report = verify::unchecked(&node.name, String::new());
    report.error = None;
    report.checks.push(Check {
        name: "drift".into(),
        ok: false,
        expected: "nothing changes the stack outside the golden path".into(),
        observed: what.to_string(),
        hint: "the node's operator changed the stack by hand: `make clean && make demo` makes \
               it fresh"
            .into(),
    });
    Seen {
        report,
        cause: what.to_string(),
        drift: true,
    }
}

/// Asks a silent stream's engine whether it still answers.
fn ping(transport: &Transport, timeout: Duration) -> Result<()> {
    let argv: Vec<String> = [
        "curl",
        "--silent",
        "--max-time",
        "2",
        "--unix-socket",
        "/var/run/docker.sock",
        "http://docker/_ping",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let out = transport.bounded(timeout).output_bounded(&argv, 64)?;
    if !out.status.success() {
        bail!("the node's Docker engine does not answer (its event stream went silent)");
    }
    Ok(())
}
