//! `prov watch`: each node judged again on every engine event that can change its verdict. The
//! node's event stream is followed over one ssh session that stays open (no polling: while the
//! stack's healthchecks run, their events are the stream's heartbeat; only a silent stream is
//! pinged). What each event means is `record::drift`'s to say; the verdict is verify's own.
//! Nothing is ever reported as passing that was not judged in full since the stream last broke.

use std::collections::VecDeque;
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
use crate::record::nodes::{NodeSpec, NODE_MOUNT};

/// The longest event line the host reads: an event is about a kilobyte (a container's labels
/// are its attributes); a node must not be able to fill the host's memory with one.
const MAX_LINE_BYTES: u64 = 1 << 20;

/// How long a stream may stay silent before the engine is asked whether it still answers (the
/// stack's two healthchecks send events every 2 s, about one a second between them).
const QUIET: Duration = Duration::from_secs(3);

/// How long to gather the events that follow one before judging once for them all.
const SETTLE: Duration = Duration::from_millis(200);

/// The most lines held between the node and the judgement, waiting or gathered into one batch:
/// a node that sends faster than the host reads is slowed by its own pipe, never by the host's
/// memory (about two minutes of the healthchecks' events).
const MAX_PENDING_LINES: usize = 512;

/// The longest wait between two attempts to reach a node whose stream broke.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How a node is watched.
pub struct Options {
    /// The build policy in force, relative to the repository.
    pub policy: String,
    /// How long each judgement of the node may take (as verify's `--timeout`).
    pub timeout: Duration,
    /// The longest a verdict stands without a full judgement: what changes a node without an
    /// engine event (a process entered with nsenter, a file written on the node's disk, the
    /// node's firewall) is seen by the next one.
    pub every: Duration,
}

/// What watch saw of a node: a verdict, why it was reached, and when.
pub struct Seen {
    pub report: NodeReport,
    /// The event (or the stream's state) that led to it.
    pub cause: String,
    /// A drift seen in an event, whatever the node's verdict is afterwards: reported on its
    /// own, as FAILED for the time it lasted.
    pub drift: bool,
    /// For a drift, the event's time on the node's engine (nanoseconds since the epoch).
    pub event_time_ns: Option<i64>,
}

/// A node's stream: the ssh session, and the lines its reader thread passes on, each with when
/// it came.
struct Stream {
    child: Child,
    lines: Receiver<(Instant, Result<Line>)>,
    /// Lines taken off the channel while a judgement ran, not read yet.
    held: VecDeque<Result<Line>>,
    /// When the node last sent a line, or its engine last answered a ping.
    heard: Instant,
}

impl Stream {
    /// The next line, waiting at most `wait` for it.
    fn recv(&mut self, wait: Duration) -> Result<Result<Line>, RecvTimeoutError> {
        if let Some(line) = self.held.pop_front() {
            return Ok(line);
        }
        let (at, line) = self.lines.recv_timeout(wait)?;
        self.heard = at;
        Ok(line)
    }

    /// Takes what the node sent meanwhile off the channel, up to the bound on lines held.
    fn hold(&mut self) {
        while self.held.len() < MAX_PENDING_LINES {
            let Ok((at, line)) = self.lines.try_recv() else {
                return;
            };
            self.heard = at;
            self.held.push_back(line);
        }
    }

    /// How long the stream may stay silent before its engine is asked whether it still answers.
    fn quiet_left(&self) -> Duration {
        QUIET.saturating_sub(self.heard.elapsed())
    }

    /// Asks a silent stream's engine whether it still answers.
    fn ping(&mut self, transport: &Transport, timeout: Duration) -> Result<()> {
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
        self.heard = Instant::now();
        Ok(())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A line of a node's stream.
#[derive(Debug)]
enum Line {
    /// The first: the node's time the engine's events are followed from.
    Since(String),
    /// An engine event.
    Event(Event),
    /// The node's records changed: inotify's names of what happened.
    Records(String),
}

/// Follows the node's engine events since `since` (the engine's `seconds.nanoseconds`; none:
/// from the node's now), and its records' changes. The engine first sends the events it still
/// remembers since then, then each as it happens. The stream ends when either follower does.
fn follow(transport: &Transport, since: Option<&str>) -> Result<Stream> {
    // inotifywait's --format names only the events (capital letters and commas), never a file:
    // a file name is the node's to choose and could hold a line of its own.
    let script = r#"since=${1:-$(date +%s.%N)}
        echo "since $since"
        inotifywait --monitor --quiet --recursive --format 'records %e' \
          --event close_write,moved_to,moved_from,create,delete,delete_self,attrib "$2" &
        curl --silent --show-error --no-buffer --unix-socket /var/run/docker.sock \
          "http://docker/events?since=$since" &
        wait -n
        kill $(jobs -p) 2>/dev/null"#;
    let records = format!("{NODE_MOUNT}/provenance/{}", transport.node());
    let argv: Vec<String> = ["bash", "-c", script, "bash", since.unwrap_or(""), &records]
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
    let (send, lines) = mpsc::sync_channel(MAX_PENDING_LINES);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        while let Some(line) = next_line(&mut reader) {
            let failed = line.is_err();
            if send.send((Instant::now(), line)).is_err() || failed {
                break;
            }
        }
    });
    Ok(Stream {
        child,
        lines,
        held: VecDeque::new(),
        heard: Instant::now(),
    })
}

/// The next line of a stream; `None` when it ended (the connection, the engine or the node went
/// away); an error for a line that is none of a stream's.
fn next_line(reader: &mut impl BufRead) -> Option<Result<Line>> {
    let mut line = Vec::new();
    match reader.take(MAX_LINE_BYTES + 1).read_until(b'\n', &mut line) {
        Ok(0) => None,
        Err(e) => Some(Err(e).context("reading the node's event stream")),
        Ok(n) if n as u64 > MAX_LINE_BYTES => Some(Err(anyhow!(
            "the node sent an event line of more than {MAX_LINE_BYTES} bytes"
        ))),
        Ok(_) => Some(parse_line(&line)),
    }
}

fn parse_line(line: &[u8]) -> Result<Line> {
    let text = std::str::from_utf8(line).unwrap_or("").trim_end();
    let word = |c: char| c.is_ascii_uppercase() || c == '_' || c == ',';
    if let Some(since) = text.strip_prefix("since ") {
        let (secs, nanos) = since.split_once('.').unwrap_or((since, "0"));
        if !secs.is_empty() && (secs.bytes().chain(nanos.bytes())).all(|b| b.is_ascii_digit()) {
            return Ok(Line::Since(since.to_string()));
        }
    } else if let Some(what) = text.strip_prefix("records ") {
        if !what.is_empty() && what.chars().all(word) {
            return Ok(Line::Records(what.to_string()));
        }
    } else {
        return serde_json::from_slice(line)
            .map(Line::Event)
            .context("the node's event stream sent a line that is not an engine event");
    }
    bail!(
        "the node's stream sent a line that is none of its own: {:?}",
        text.chars().take(80).collect::<String>()
    )
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
    options: &Options,
    seen: &(dyn Fn(Seen) + Sync),
) -> ! {
    let mut since: Option<String> = None;
    let mut backoff = Duration::from_secs(1);
    let mut cause = "watch started".to_string();
    loop {
        let broke = match watch_stream(repo, node, options, &mut since, &cause, seen) {
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
            event_time_ns: None,
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
    options: &Options,
    since: &mut Option<String>,
    cause: &str,
    seen: &(dyn Fn(Seen) + Sync),
) -> Result<()> {
    let (policy, timeout) = (options.policy.as_str(), options.timeout);
    let transport = Transport::connect(repo, &node.name)?;
    let mut stream = follow(&transport, since.as_deref())?;
    match stream.recv(timeout) {
        Ok(Ok(Line::Since(from))) => {
            since.get_or_insert(from);
        }
        Ok(Ok(line)) => {
            bail!("the node's stream began with {line:?}, not the time it follows from")
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => bail!(
            "the node's stream did not begin within {} s",
            timeout.as_secs()
        ),
    }
    let judging = Judging {
        repo,
        node,
        policy,
        timeout,
        transport: &transport,
    };
    // Judged in full; what the engine still remembers of a gap is read before the verdict is
    // said, so that a drift made and undone in the gap is reported first.
    let (report, mut stack) = judging.judge(&mut stream, Stack::default())?;
    stream.hold();
    let backlog: Vec<(Result<Line>, bool)> = stream.held.drain(..).map(|l| (l, false)).collect();
    let mut causes = read(node, backlog, &mut stack, since, seen)?;
    seen(Seen {
        report,
        cause: cause.to_string(),
        drift: false,
        event_time_ns: None,
    });
    let mut judged = Instant::now();
    loop {
        if causes.is_empty() && judged.elapsed() >= options.every {
            causes.push(format!(
                "judged in full every {} s, for what no event shows",
                options.every.as_secs()
            ));
        }
        if !causes.is_empty() {
            let (report, now) = judging.judge(&mut stream, std::mem::take(&mut stack))?;
            (stack, judged) = (now, Instant::now());
            seen(Seen {
                report,
                cause: causes.join("; "),
                drift: false,
                event_time_ns: None,
            });
        }
        let due = (judged + options.every).saturating_duration_since(Instant::now());
        let first = match stream.recv(stream.quiet_left().min(due)) {
            Ok(line) => line,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Err(RecvTimeoutError::Timeout) => {
                if judged.elapsed() < options.every {
                    stream.ping(&transport, timeout)?;
                }
                causes = Vec::new();
                continue;
            }
        };
        // The lines that follow at once are judged together; a drift that needs no other event
        // to be one is reported as it comes.
        let mut batch = Vec::new();
        let until = Instant::now() + SETTLE;
        let mut next = Some(first);
        while let Some(line) = next.take() {
            let reported = match &line {
                Ok(Line::Event(event)) => report_at_once(node, event, &stack, seen),
                _ => false,
            };
            batch.push((line, reported));
            if batch.len() < MAX_PENDING_LINES {
                let left = until.saturating_duration_since(Instant::now());
                next = stream.recv(left).ok();
            }
        }
        causes = read(node, batch, &mut stack, since, seen)?;
    }
}

/// What a node is judged with.
struct Judging<'a> {
    repo: &'a Path,
    node: &'a NodeSpec,
    policy: &'a str,
    timeout: Duration,
    transport: &'a Transport,
}

impl Judging<'_> {
    /// Judges the node in full, and learns its stack anew from `known`. The judgement runs on a
    /// thread of its own while the stream is still heard: an engine frozen during one is not
    /// checked once the stream is silent for its bound, not only when the judgement's own
    /// requests give up (`--timeout`). A judgement given up on ends within that timeout, unread.
    fn judge(&self, stream: &mut Stream, known: Stack) -> Result<(NodeReport, Stack)> {
        let (send, judged) = mpsc::channel();
        let (repo, node, policy) = (
            self.repo.to_path_buf(),
            self.node.clone(),
            self.policy.to_string(),
        );
        let (transport, timeout) = (self.transport.clone(), self.timeout);
        std::thread::spawn(move || {
            let report = verify::verify_nodes(
                &repo,
                std::slice::from_ref(&node),
                &policy,
                1,
                timeout,
                None,
            )
            .remove(0);
            // What the stack is decides which events are drift: not knowing it breaks the
            // stream (the node is then not checked), never reads the events against an empty
            // stack.
            let stack = probe::stack_containers(&transport.bounded(timeout))
                .context("asking the node's engine for the stack's containers")
                .map(|containers| known.refreshed(&containers));
            let _ = send.send(stack.map(|stack| (report, stack)));
        });
        loop {
            match judged.recv_timeout(stream.quiet_left()) {
                Ok(judged) => return judged,
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("the node's judgement ended unfinished")
                }
                Err(RecvTimeoutError::Timeout) => {
                    stream.hold();
                    if stream.quiet_left().is_zero() {
                        stream.ping(self.transport, self.timeout)?;
                    }
                }
            }
        }
    }
}

/// Reports an event that is a drift by itself; whether it did.
fn report_at_once(
    node: &NodeSpec,
    event: &Event,
    stack: &Stack,
    seen: &(dyn Fn(Seen) + Sync),
) -> bool {
    let Effect::Drift(what) = drift::effect(event, stack) else {
        return false;
    };
    seen(drifted(node, &what, event.time_nano));
    true
}

/// Reads lines that came together, each with whether it was reported already: reports each
/// drift, and returns what calls for the node to be judged again.
fn read(
    node: &NodeSpec,
    batch: Vec<(Result<Line>, bool)>,
    stack: &mut Stack,
    since: &mut Option<String>,
    seen: &(dyn Fn(Seen) + Sync),
) -> Result<Vec<String>> {
    let (mut events, mut reported) = (Vec::new(), Vec::new());
    let mut causes = Vec::new();
    for (line, done) in batch {
        match line? {
            Line::Event(event) => {
                events.push(event);
                reported.push(done);
            }
            Line::Records(what) => causes.push(format!("the node's records changed ({what})")),
            Line::Since(_) => bail!("the node's stream said again when it began"),
        }
    }
    if let Some(last) = events.last() {
        *since = Some(since_of(last));
    }
    stack.learn(&events);
    let effects = drift::effects(&events, stack);
    for ((effect, event), done) in effects.into_iter().zip(&events).zip(reported) {
        match effect {
            Effect::None => {}
            Effect::Judge(what) => causes.push(what),
            Effect::Drift(what) => {
                if !done {
                    seen(drifted(node, &what, event.time_nano));
                }
                causes.push(what);
            }
        }
    }
    Ok(causes)
}

/// A drift, as a failed verdict of its own: the check `drift` names the event.
fn drifted(node: &NodeSpec, what: &str, event_time_ns: i64) -> Seen {
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
        event_time_ns: Some(event_time_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_line_is_its_start_a_records_change_or_an_engine_event_and_nothing_else() {
        assert!(
            matches!(parse_line(b"since 1796601882.797815478\n"), Ok(Line::Since(s)) if s == "1796601882.797815478")
        );
        assert!(
            matches!(parse_line(b"records CLOSE_WRITE,CLOSE\n"), Ok(Line::Records(r)) if r == "CLOSE_WRITE,CLOSE")
        );
        let event = br#"{"Type":"container","Action":"start","Actor":{"ID":"x","Attributes":{}},"timeNano":5}"#;
        assert!(matches!(parse_line(event), Ok(Line::Event(e)) if e.time_nano == 5));
        // What a node could slip in: a time that is not one, a file's name, a line of its own.
        for bad in [
            &b"since 17966$(reboot)\n"[..],
            b"since \n",
            b"records CREATE prov-e2e\n",
            b"records \n",
            b"hello\n",
            b"{\"Type\":\"container\"}\n",
        ] {
            assert!(
                parse_line(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_line_longer_than_the_bound_is_an_error_not_a_read_to_the_end() {
        let long = vec![b'x'; MAX_LINE_BYTES as usize + 10];
        let mut reader = &long[..];
        assert!(next_line(&mut reader).unwrap().is_err());
        let mut empty = &b""[..];
        assert!(next_line(&mut empty).is_none());
    }
}
