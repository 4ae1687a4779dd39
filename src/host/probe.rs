//! `prov verify`'s read-only view of a node's Docker state, in one ssh round trip.
//!
//! A docker CLI call costs 20-30 ms on a node, while the engine answers a request on its socket
//! in about a millisecond. So the node runs nothing but one `curl` sending GET requests to the
//! Docker Engine API: the container list; the stack's two containers by name; every image and
//! image history asked for; and the events the engine remembers of the stack's containers. curl
//! prints each answer's body followed by its own `%{json}` transfer summary, so the output is a
//! stream of JSON documents that pair up (`%{json}` needs curl 7.70 or later; nodes install curl
//! with their packages); the events come last, as a stream of their own. What the two
//! containers changed in their files, what they execute and their processes are listed beside
//! it, on the node ([`upper`]), with the tail of the api's log. Containers the list shows beyond
//! the stack's own (one started by hand, say) are fetched afterwards ([`after_http`]).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::host::proven_files::{NamedContainer, ProvenFiles};
use crate::host::transport::Transport;
use crate::host::upper;
use crate::record::engine::{
    Change, ContainerInspect, EngineEvent, HistoryEntry, ImageHistory, ImageInspect, LogLine,
    NodeState, Top,
};
use crate::record::stack;

const ENGINE_SOCKET: &str = "/var/run/docker.sock";

/// The stack's containers, as named in compose.yaml (`container_name`).
const STACK_CONTAINERS: [&str; 2] = [stack::API_CONTAINER, stack::DB_CONTAINER];

/// `ps` arguments for a container's processes: each one's parent tells the entrypoint's
/// processes from the ones an exec session started.
const TOP_ARGS: &str = "-eo%20pid,ppid,args";

/// The events verify reads: every start and exec session of the stack's containers, as far as
/// the engine remembers (`{"type":["container"],"event":["start","exec_create"],"container":
/// ["prov-api","prov-db"]}`, URL-encoded).
const EVENT_FILTER: &str = "%7B%22type%22%3A%5B%22container%22%5D%2C%22event%22%3A%5B%22start%22%2C%22exec_create%22%5D%2C%22container%22%3A%5B%22prov-api%22%2C%22prov-db%22%5D%7D";

/// The most of the api's log verify reads: the tail, where its own requests are.
const LOG_TAIL_BYTES: u64 = 256 << 10;

/// The images to ask the engine about: those whose configuration the checks read, and those
/// whose history they read. Each answer costs the engine about 5 ms on the containerd store, so
/// only what is read is asked.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImageQuery {
    pub inspect: Vec<String>,
    pub history: Vec<String>,
}

impl ImageQuery {
    /// Whether this query asks for everything `other` does.
    pub fn covers(&self, other: &ImageQuery) -> bool {
        other.inspect.iter().all(|i| self.inspect.contains(i))
            && other.history.iter().all(|i| self.history.contains(i))
    }
}

/// The images asked for (by ID or tag), as the node's engine answers, in the order asked; `None`
/// where it has no such image.
pub fn images_by_reference(
    transport: &Transport,
    references: &[String],
) -> Result<Vec<Option<ImageInspect>>> {
    let paths: Vec<String> = references
        .iter()
        .map(|i| format!("/images/{i}/json"))
        .collect();
    engine_get(transport, &paths, false)?
        .into_iter()
        .map(|a| a.into_found::<ImageInspect>())
        .collect()
}

/// What an import asks the node's engine: its version, its image store, the images asked for
/// (`None` where it has none, in the order asked) and the histories asked for (likewise).
pub struct ImportFacts {
    pub version: Value,
    pub store: crate::record::manifest::ImageStore,
    pub images: Vec<Option<ImageInspect>>,
    pub histories: Vec<Option<Vec<HistoryEntry>>>,
}

pub fn import_facts(
    transport: &Transport,
    references: &[String],
    histories: &[String],
) -> Result<ImportFacts> {
    #[derive(Deserialize)]
    struct Info {
        #[serde(rename = "DriverStatus", default)]
        driver_status: Option<Vec<Vec<String>>>,
    }
    let mut paths = vec!["/version".to_string(), "/info".to_string()];
    paths.extend(references.iter().map(|r| format!("/images/{r}/json")));
    paths.extend(histories.iter().map(|i| format!("/images/{i}/history")));
    let mut answers = engine_get(transport, &paths, false)?.into_iter();
    let mut next = || answers.next().expect("one answer per request");
    let version = next()
        .into_found::<Value>()?
        .context("the engine has no version")?;
    let info = next()
        .into_found::<Info>()?
        .context("the engine has no /info")?;
    // The containerd store names its snapshotter as the driver's type.
    let containerd =
        info.driver_status.iter().flatten().any(|pair| {
            pair.len() == 2 && pair[0] == "driver-type" && pair[1].contains("snapshotter")
        });
    let images = references
        .iter()
        .map(|_| next().into_found::<ImageInspect>())
        .collect::<Result<_>>()?;
    let histories = histories
        .iter()
        .map(|_| next().into_found::<Vec<HistoryEntry>>())
        .collect::<Result<_>>()?;
    Ok(ImportFacts {
        version,
        store: if containerd {
            crate::record::manifest::ImageStore::Containerd
        } else {
            crate::record::manifest::ImageStore::Classic
        },
        images,
        histories,
    })
}

/// The node's containers (all of them, running or not; the stack's own with their processes and
/// changed files), the asked images and histories that exist there, and the engine's remembered
/// starts and exec sessions of the stack.
pub fn node_state(transport: &Transport, images: &ImageQuery) -> Result<NodeState> {
    node_state_and(transport, images, &ProvenFiles::default(), |_| Ok(())).map(|(state, ())| state)
}

/// [`node_state`], running `meanwhile` on the engine's answers while the node still lists the
/// containers' files (the longest of the requests): what `meanwhile` asks costs no time of its
/// own. The containers' changes and what they execute are not in the state `meanwhile` sees.
/// The files `proven` names are not hashed again, and the containers it names are not asked of
/// the engine by the node (listed again when the engine's answer no longer matches them).
pub fn node_state_and<T>(
    transport: &Transport,
    images: &ImageQuery,
    proven: &ProvenFiles,
    meanwhile: impl FnOnce(&mut NodeState) -> Result<T>,
) -> Result<(NodeState, T)> {
    let mut paths = vec!["/containers/json?all=1".to_string()];
    for name in STACK_CONTAINERS {
        paths.push(format!("/containers/{name}/json"));
    }
    paths.extend(images.inspect.iter().map(|i| format!("/images/{i}/json")));
    paths.extend(
        images
            .history
            .iter()
            .map(|i| format!("/images/{i}/history")),
    );
    paths.push(EVENTS.to_string());
    // A container's changed files are read from its writable layer on the node (see
    // `upper`), while the rest is asked; a container the node cannot list is asked of the
    // engine afterwards.
    let (state, listed) = std::thread::scope(|scope| {
        let listed = scope.spawn(|| {
            upper::list(
                transport,
                &STACK_CONTAINERS,
                proven,
                stack::API_CONTAINER,
                LOG_TAIL_BYTES,
            )
        });
        let state = engine_get(transport, &paths, true)
            .and_then(|answers| from_answers(answers, images))
            .and_then(|mut state| {
                let got = meanwhile(&mut state)?;
                Ok((state, got))
            });
        (state, listed.join())
    });
    let (mut state, got) = state?;
    let mut listed = listed.map_err(|_| anyhow!("listing the containers' files panicked"))??;
    if !named_as_now(proven, &state) {
        // The containers changed since the host named them: the node asks its engine.
        listed = upper::list(
            transport,
            &STACK_CONTAINERS,
            &proven.files_only(),
            stack::API_CONTAINER,
            LOG_TAIL_BYTES,
        )?;
    }
    // The node's tail of the api's log stands when it is the log the engine keeps for the api
    // container it described; otherwise the log is read again (`settle_api_log`).
    if let (Some(tail), Some(api)) = (&listed.log, api_container(&state)) {
        if tail.id == api.id && api.log_path == json_log_path(&api.id) {
            state.api_log = Some(Ok(log_lines(&tail.tail)));
        }
    }
    for c in &state.containers {
        let name = c.name.trim_start_matches('/');
        let upper::Listed {
            changes: changed,
            executed,
            processes,
            ran,
        } = listed.containers.remove(name).unwrap_or_default();
        // What the node listed as running is this container only when the engine named the
        // same one to the node (replaced or restarted in between, it is not).
        let (executed, processes) = match ran {
            Some((id, pid)) if id == c.id && pid == c.state.pid => (executed, processes),
            _ => (None, None),
        };
        match processes {
            Some(top) => {
                state.processes.insert(c.id.clone(), top);
            }
            None if c.state.running => {
                // A container that stopped between the requests has no processes (the engine
                // answers 409): none are listed then, and service:<name> fails it.
                let top = engine_get(
                    transport,
                    &[format!("/containers/{name}/top?ps_args={TOP_ARGS}")],
                    false,
                )?
                .into_iter()
                .next()
                .expect("one answer per request")
                .into_found::<Top>();
                if let Ok(Some(top)) = top {
                    state.processes.insert(c.id.clone(), top);
                }
            }
            None => {}
        }
        let changes = match changed {
            Some(listed) => listed,
            // `null` when nothing changed.
            None => engine_get(transport, &[format!("/containers/{name}/changes")], false)?
                .into_iter()
                .next()
                .expect("one answer per request")
                .into_found::<Option<Vec<Change>>>()?
                .flatten()
                .unwrap_or_default(),
        };
        state.changes.insert(c.id.clone(), changes);
        if let Some(executed) = executed {
            state.executed.insert(c.id.clone(), executed);
        }
    }
    Ok((state, got))
}

/// Whether the stack's containers are, by the engine's answer, those the host named to the node
/// (the same ID, main process, entrypoint and environment), or none were named.
fn named_as_now(proven: &ProvenFiles, state: &NodeState) -> bool {
    let named = proven.named();
    let now: Vec<NamedContainer> = state
        .containers
        .iter()
        .filter(|c| c.state.running && STACK_CONTAINERS.contains(&c.name.trim_start_matches('/')))
        .map(NamedContainer::of)
        .collect();
    named.is_empty() || (named.len() == now.len() && named.iter().all(|n| now.contains(n)))
}

/// The engine's answers to [`node_state_and`]'s requests, in their order (exactly one per
/// request), as the node's state.
fn from_answers(answers: Vec<Answer>, images: &ImageQuery) -> Result<NodeState> {
    #[derive(Deserialize)]
    struct Listed {
        #[serde(rename = "Id")]
        id: String,
    }
    let mut answers = answers.into_iter();
    let mut next = || answers.next().expect("one answer per request");
    let all: Vec<Listed> = next()
        .into_found()?
        .context("the engine has no container list")?;
    let mut state = NodeState {
        containers: Vec::new(),
        images: Vec::new(),
        history: Vec::new(),
        processes: BTreeMap::new(),
        changes: BTreeMap::new(),
        executed: BTreeMap::new(),
        events: Vec::new(),
        api_log: None,
        others: Vec::new(),
    };
    // A container that is not there, or an image that is not, answers 404.
    for _ in STACK_CONTAINERS {
        state
            .containers
            .extend(next().into_found::<ContainerInspect>()?);
    }
    for _ in &images.inspect {
        state.images.extend(next().into_found::<ImageInspect>()?);
    }
    for image in &images.history {
        if let Some(entries) = next().into_found::<Vec<HistoryEntry>>()? {
            state.history.push(ImageHistory {
                image: image.clone(),
                entries,
            });
        }
    }
    state.events = next().into_events()?;
    state.others = all
        .into_iter()
        .map(|l| l.id)
        .filter(|id| !state.containers.iter().any(|c| &c.id == id))
        .collect();
    Ok(state)
}

/// The events request: its `until` is the node's own clock (a time past it would make the
/// engine wait for it), filled in on the node.
const EVENTS: &str = "/events?since=1&filters=";

/// How long verify waits for the api's log to show its answered requests: the engine writes what
/// a container prints to the log file a moment after the container wrote it.
const LOG_SETTLE: std::time::Duration = std::time::Duration::from_secs(3);

/// What verify asks once its HTTP requests are answered: the containers beyond the stack's.
pub fn after_http(transport: &Transport, state: &mut NodeState) -> Result<()> {
    let others: Vec<String> = std::mem::take(&mut state.others)
        .iter()
        .map(|id| format!("/containers/{id}/json"))
        .collect();
    for answer in engine_get(transport, &others, false)? {
        state
            .containers
            .extend(answer.into_found::<ContainerInspect>()?);
    }
    Ok(())
}

/// The api's log must show the `answered` requests carrying `nonce`: the tail the node read
/// with its listing usually does; when it does not (or there was none), the log is read again,
/// within [`LOG_SETTLE`], until it does.
pub fn settle_api_log(
    transport: &Transport,
    state: &mut NodeState,
    nonce: Option<&str>,
    answered: usize,
) {
    let noted = nonce.map(|n| format!("nonce={n}"));
    let settled = |log: &Option<Result<Vec<LogLine>, String>>| match log {
        Some(Ok(lines)) => noted
            .as_ref()
            .is_none_or(|noted| lines.iter().filter(|l| l.log.contains(noted)).count() >= answered),
        _ => false,
    };
    let Some(api) = api_container(state) else {
        return;
    };
    let (id, path) = (api.id.clone(), api.log_path.clone());
    let start = std::time::Instant::now();
    while !settled(&state.api_log) {
        if state.api_log.is_some() {
            if start.elapsed() >= LOG_SETTLE {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        state.api_log = Some(api_log(transport, &id, &path));
        if matches!(state.api_log, Some(Err(_))) {
            return;
        }
    }
}

/// The api container, running or not, as the engine described it.
fn api_container(state: &NodeState) -> Option<&ContainerInspect> {
    state
        .containers
        .iter()
        .find(|c| c.name == format!("/{}", stack::API_CONTAINER))
}

/// Where the engine's json-file driver keeps a container's log.
fn json_log_path(id: &str) -> String {
    format!("/var/lib/docker/containers/{id}/{id}-json.log")
}

/// The stack's containers as the engine describes them now (those that exist), in one round
/// trip: `prov watch` tells their healthchecks' exec sessions from others' by them.
pub fn stack_containers(transport: &Transport) -> Result<Vec<ContainerInspect>> {
    let paths: Vec<String> = STACK_CONTAINERS
        .iter()
        .map(|name| format!("/containers/{name}/json"))
        .collect();
    let mut found = Vec::new();
    for answer in engine_get(transport, &paths, false)? {
        found.extend(answer.into_found::<ContainerInspect>()?);
    }
    Ok(found)
}

/// The tail of a container's json-file log, read where the engine keeps it (root's).
fn api_log(transport: &Transport, id: &str, path: &str) -> Result<Vec<LogLine>, String> {
    let expected = json_log_path(id);
    if path != expected || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "the engine keeps the api's log at {path:?}, not where its json-file driver does \
             ({expected})"
        ));
    }
    let argv: Vec<String> = [
        "sudo",
        "-n",
        "tail",
        "-c",
        &LOG_TAIL_BYTES.to_string(),
        "--",
        path,
    ]
    .map(String::from)
    .into();
    let out = transport
        .output_bounded(&argv, LOG_TAIL_BYTES)
        .map_err(|e| format!("{e:#}"))?;
    if !out.status.success() {
        return Err(format!(
            "could not read the api's log {path}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(log_lines(&out.stdout))
}

/// The lines of a json-file log's tail; the first may be cut, and is then left out.
pub fn log_lines(tail: &[u8]) -> Vec<LogLine> {
    tail.split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect()
}

/// One answer of the engine: the HTTP status and the body.
#[derive(Debug)]
struct Answer {
    path: String,
    status: u16,
    body: Value,
}

impl Answer {
    /// The events of an `/events` answer.
    fn into_events(self) -> Result<Vec<EngineEvent>> {
        if self.status != 200 {
            bail!(
                "the Docker engine answered GET {} with HTTP {}: {}",
                self.path,
                self.status,
                self.body
            );
        }
        self.body
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| serde_json::from_value(e.clone()))
            .collect::<Result<_, _>>()
            .context("reading the engine's events")
    }

    /// The body as `T` when the engine found the object, `None` when it answered 404.
    fn into_found<T: DeserializeOwned>(self) -> Result<Option<T>> {
        match self.status {
            200 => serde_json::from_value(self.body)
                .map(Some)
                .with_context(|| format!("reading the engine's answer to GET {}", self.path)),
            404 => Ok(None),
            status => Err(anyhow!(
                "the Docker engine answered GET {} with HTTP {status}: {}",
                self.path,
                self.body
            )),
        }
    }
}

/// GETs every path from the node's engine with one curl, in one ssh round trip. With `events`,
/// the last path is the events request, whose `until` the node fills in.
fn engine_get(transport: &Transport, paths: &[String], events: bool) -> Result<Vec<Answer>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    // A stopped engine still accepts connections on its socket: curl must not wait forever.
    let max_time = transport
        .remaining()
        .map_or(60.0, |left| left.as_secs_f64().max(0.5));
    let script = r#"socket=$1 max=$2 filter=$3; shift 3
        if [ -n "$filter" ]; then set -- "$@" "http://docker/events?since=1&until=$(date +%s.%N)&filters=$filter"; fi
        exec curl --silent --show-error --unix-socket "$socket" --max-time "$max" --write-out '%{json}' "$@""#;
    let (urls, filter) = match paths.split_last() {
        Some((last, rest)) if events && last == EVENTS => (rest, EVENT_FILTER),
        _ => (paths, ""),
    };
    let argv: Vec<String> = ["sh", "-c", script, "sh", ENGINE_SOCKET]
        .into_iter()
        .map(String::from)
        .chain([max_time.to_string(), filter.to_string()])
        .chain(urls.iter().map(|p| format!("http://docker{p}")))
        .collect();
    let out = transport.output_bounded(&argv, MAX_ANSWER_BYTES)?;
    // curl's 28: the operation timed out.
    if out.status.code() == Some(28) {
        bail!(
            "the node's Docker engine did not answer in time (curl on {ENGINE_SOCKET}: {}); is \
             dockerd stopped or frozen? `make up`",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if !out.status.success() {
        bail!(
            "could not ask the node's Docker engine (curl on {ENGINE_SOCKET}): {}; is the engine \
             running? `make up`",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    pair_answers(&out.stdout, paths, events)
}

/// The most the engine's answers to one probe may take (the events alone can be 256 of about a
/// kilobyte each).
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// curl's `%{json}` summary of one transfer (the fields prov reads).
#[derive(Deserialize)]
struct Transfer {
    http_code: u16,
}

/// Splits curl's output into (body, transfer summary) pairs, one per path, in order. With
/// `stream_last`, the last body is a stream of documents of its own (the events), gathered into
/// an array.
fn pair_answers(output: &[u8], paths: &[String], stream_last: bool) -> Result<Vec<Answer>> {
    let mut documents = serde_json::Deserializer::from_slice(output)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .context("reading the Docker engine's answers: not a stream of JSON documents")?;
    if stream_last && documents.len() + 1 >= 2 * paths.len() {
        let summary = documents.pop().expect("at least one document");
        let stream: Vec<Value> = documents.drain(2 * paths.len() - 2..).collect();
        documents.extend([Value::Array(stream), summary]);
    }
    if documents.len() != 2 * paths.len() {
        bail!(
            "the Docker engine gave {} JSON documents for {} requests (expected a body and a \
             transfer summary for each)",
            documents.len(),
            paths.len()
        );
    }
    let mut documents = documents.into_iter();
    let mut answers = Vec::with_capacity(paths.len());
    for path in paths {
        let (Some(body), Some(transfer)) = (documents.next(), documents.next()) else {
            unreachable!("the count was checked");
        };
        let transfer: Transfer = serde_json::from_value(transfer)
            .with_context(|| format!("reading curl's summary of GET {path}"))?;
        answers.push(Answer {
            path: path.clone(),
            status: transfer.http_code,
            body,
        });
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_query_covers_another_only_when_it_asks_everything_the_other_does() {
        let query = |inspect: &[&str], history: &[&str]| ImageQuery {
            inspect: paths(inspect),
            history: paths(history),
        };
        let asked = query(&["built", "db"], &["built", "base"]);
        assert!(asked.covers(&query(&["db"], &["base", "built"])));
        assert!(asked.covers(&ImageQuery::default()));
        assert!(!asked.covers(&query(&["other"], &[])));
        // Inspected is not enough: the history was not asked.
        assert!(!asked.covers(&query(&[], &["db"])));
    }

    #[test]
    fn answers_pair_bodies_with_their_status() {
        let out = br#"{"Id":"a"}
{"http_code":200,"url_effective":"http://docker/images/a/json"}{"message":"No such image: b"}
{"http_code":404,"url_effective":"http://docker/images/b/json"}"#;
        let answers =
            pair_answers(out, &paths(&["/images/a/json", "/images/b/json"]), false).unwrap();
        assert_eq!(answers[0].status, 200);
        assert_eq!(answers[0].body["Id"], "a");
        assert_eq!(answers[1].status, 404);
    }

    #[test]
    fn a_missing_body_is_an_error_not_a_shift() {
        let out = br#"{"http_code":200}{"Id":"b"}{"http_code":200}"#;
        let err = pair_answers(out, &paths(&["/a", "/b"]), false).unwrap_err();
        assert!(
            err.to_string().contains("3 JSON documents for 2 requests"),
            "{err}"
        );
    }

    #[test]
    fn a_non_json_answer_is_an_error() {
        let err = pair_answers(b"<html>", &paths(&["/a"]), false).unwrap_err();
        assert!(
            format!("{err:#}").contains("not a stream of JSON"),
            "{err:#}"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_output_of_the_node_is_an_answer_or_an_error(
            out in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        ) {
            let _ = pair_answers(&out, &paths(&["/a", "/b"]), false);
            let _ = pair_answers(&out, &paths(&["/a", "/events"]), true);
        }
    }

    #[test]
    fn only_404_means_not_found() {
        let answer = |status| Answer {
            path: "/images/x/json".into(),
            status,
            body: serde_json::json!({"message": "boom"}),
        };
        assert!(answer(404).into_found::<Value>().unwrap().is_none());
        let err = answer(500).into_found::<Value>().unwrap_err();
        assert!(err.to_string().contains("HTTP 500: "), "{err}");
    }
}
