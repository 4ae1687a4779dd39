//! `prov watch`'s reading of a node: its engine's event stream, followed over one ssh session
//! that stays open (no polling: an idle stream costs neither side anything). What each event
//! means for the verdict is `record::drift`'s to say.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};

use anyhow::{anyhow, Context, Result};

use crate::host::transport::Transport;
use crate::record::drift::Event;

/// The longest event line the host reads: an event is about a kilobyte (a container's labels
/// are its attributes); a node must not be able to fill the host's memory with one.
const MAX_EVENT_BYTES: u64 = 1 << 20;

/// A node's events as its engine sends them, from the time asked for, until the stream breaks.
pub struct Events {
    child: Child,
    lines: BufReader<Box<dyn Read + Send>>,
}

/// Follows the node's engine events since `since` (the engine's `seconds.nanoseconds`): the
/// engine first sends those it still remembers since then, then each as it happens.
pub fn follow(transport: &Transport, since: &str) -> Result<Events> {
    let url = format!("http://docker/events?since={since}");
    let argv: Vec<String> = [
        "curl",
        "--silent",
        "--show-error",
        "--no-buffer",
        "--unix-socket",
        "/var/run/docker.sock",
        &url,
    ]
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
    Ok(Events {
        child,
        lines: BufReader::new(stdout),
    })
}

impl Events {
    /// The next event; `None` when the stream ended (the connection, the engine or the node
    /// went away); an error for a line that is not an event.
    pub fn next_event(&mut self) -> Option<Result<Event>> {
        let mut line = Vec::new();
        let read = (&mut self.lines)
            .take(MAX_EVENT_BYTES + 1)
            .read_until(b'\n', &mut line);
        match read {
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

    /// Ends the stream (the ssh session and the curl it runs).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
