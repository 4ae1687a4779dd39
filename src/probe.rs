//! `prov verify`'s read-only view of a node's Docker state, in one ssh round trip.
//!
//! A docker CLI call costs 30-50 ms on a node and `jq` about as much, while the engine answers a
//! request on its socket in about a millisecond. So the node runs nothing but one `curl` sending
//! GET requests to the Docker Engine API: the container list, the stack's two containers by
//! name, and every image and image history asked for. curl prints each answer's body followed
//! by its own `%{json}` transfer summary, so the output is a stream of JSON documents that pair
//! up (`%{json}` needs curl 7.70 or later; nodes install curl with their packages). Containers
//! the list shows beyond the stack's own (one started by hand, say) are fetched in a second round
//! trip.

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::docker::{ContainerInspect, HistoryEntry, ImageHistory, ImageInspect, NodeState};
use crate::stack;
use crate::transport::Transport;

const ENGINE_SOCKET: &str = "/var/run/docker.sock";

/// The stack's containers, as named in compose.yaml (`container_name`).
const STACK_CONTAINERS: [&str; 2] = [stack::API_CONTAINER, stack::DB_CONTAINER];

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

/// The node's containers (all of them, running or not), and the asked images and histories that
/// exist there.
pub fn node_state(transport: &Transport, images: &ImageQuery) -> Result<NodeState> {
    #[derive(Deserialize)]
    struct Listed {
        #[serde(rename = "Id")]
        id: String,
    }
    let mut paths = vec!["/containers/json?all=1".to_string()];
    paths.extend(STACK_CONTAINERS.map(|name| format!("/containers/{name}/json")));
    paths.extend(images.inspect.iter().map(|i| format!("/images/{i}/json")));
    paths.extend(
        images
            .history
            .iter()
            .map(|i| format!("/images/{i}/history")),
    );
    // engine_get gives exactly one answer per path.
    let mut answers = engine_get(transport, &paths)?.into_iter();
    let mut next = || answers.next().expect("one answer per request");

    let listed: Vec<Listed> = next()
        .into_found()?
        .context("the engine has no container list")?;
    let mut state = NodeState {
        containers: Vec::new(),
        images: Vec::new(),
        history: Vec::new(),
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

    let others: Vec<String> = listed
        .iter()
        .filter(|l| !state.containers.iter().any(|c| c.id == l.id))
        .map(|l| format!("/containers/{}/json", l.id))
        .collect();
    for answer in engine_get(transport, &others)? {
        state
            .containers
            .extend(answer.into_found::<ContainerInspect>()?);
    }
    Ok(state)
}

/// One answer of the engine: the HTTP status and the body.
#[derive(Debug)]
struct Answer {
    path: String,
    status: u16,
    body: Value,
}

impl Answer {
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

/// GETs every path from the node's engine with one curl, in one ssh round trip.
fn engine_get(transport: &Transport, paths: &[String]) -> Result<Vec<Answer>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut argv: Vec<String> = [
        "curl",
        "--silent",
        "--show-error",
        "--unix-socket",
        ENGINE_SOCKET,
        "--write-out",
        "%{json}",
    ]
    .map(String::from)
    .into();
    // A stopped engine still accepts connections on its socket: curl must not wait forever.
    if let Some(left) = transport.remaining() {
        argv.extend(["--max-time".into(), left.as_secs_f64().max(0.5).to_string()]);
    }
    argv.extend(paths.iter().map(|p| format!("http://docker{p}")));
    let out = transport.output(&argv)?;
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
    pair_answers(&out.stdout, paths)
}

/// curl's `%{json}` summary of one transfer (the fields prov reads).
#[derive(Deserialize)]
struct Transfer {
    http_code: u16,
}

/// Splits curl's output into (body, transfer summary) pairs, one per path, in order.
fn pair_answers(output: &[u8], paths: &[String]) -> Result<Vec<Answer>> {
    let documents = serde_json::Deserializer::from_slice(output)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .context("reading the Docker engine's answers: not a stream of JSON documents")?;
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
        let answers = pair_answers(out, &paths(&["/images/a/json", "/images/b/json"])).unwrap();
        assert_eq!(answers[0].status, 200);
        assert_eq!(answers[0].body["Id"], "a");
        assert_eq!(answers[1].status, 404);
    }

    #[test]
    fn a_missing_body_is_an_error_not_a_shift() {
        let out = br#"{"http_code":200}{"Id":"b"}{"http_code":200}"#;
        let err = pair_answers(out, &paths(&["/a", "/b"])).unwrap_err();
        assert!(
            err.to_string().contains("3 JSON documents for 2 requests"),
            "{err}"
        );
    }

    #[test]
    fn a_non_json_answer_is_an_error() {
        let err = pair_answers(b"<html>", &paths(&["/a"])).unwrap_err();
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
            let _ = pair_answers(&out, &paths(&["/a", "/b"]));
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
