//! Which of a node's engine events can change its verdict, for `prov watch`. The Engine API's
//! event stream says what changed on the node; watch judges the node again on every event that
//! can matter, and reports at once those that are a bypass whatever follows (an exec session or a
//! file copied into a stack container, its configuration updated), so that a change undone
//! before the next check still shows. Pure: the mapping is tested over streams recorded on both
//! engine generations.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::record::engine::ContainerInspect;
use crate::record::stack;

/// One event of `GET /events` (the fields every engine generation sends that watch reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.actor.attributes.get(key).map(String::as_str)
    }

    /// The container's name, for a container's event.
    fn name(&self) -> &str {
        self.attribute("name").unwrap_or(&self.actor.id)
    }
}

/// What an event means for the node's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing a check reads: a read of the engine (top, copy out, export), the healthcheck's own
    /// exec sessions, another container's exec sessions.
    None,
    /// The node is judged again; the event says what changed.
    Judge(String),
    /// A bypass by itself, whatever the next check finds: reported FAILED for the time it
    /// lasted, and the node is judged again.
    Drift(String),
}

/// What watch knows of the stack from its last check: by container ID, each stack container's
/// name and its healthcheck's command (as the engine names its exec sessions); and what no other
/// container may touch, the stack's images (by ID and by the reference it was created from),
/// networks and volumes.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub names: BTreeMap<String, String>,
    pub healthchecks: BTreeMap<String, String>,
    pub images: BTreeSet<String>,
    pub networks: BTreeSet<String>,
    pub volumes: BTreeSet<String>,
    /// Containers created under a stack container's name since the last check (Compose replacing
    /// one): the stack's own, not yet running.
    pub created: BTreeSet<String>,
}

impl Stack {
    /// From the stack's containers as the engine describes them.
    pub fn of(containers: &[ContainerInspect]) -> Stack {
        Stack {
            names: containers
                .iter()
                .map(|c| (c.id.clone(), c.name.trim_start_matches('/').to_string()))
                .collect(),
            healthchecks: containers
                .iter()
                .filter_map(|c| Some((c.id.clone(), c.healthcheck_command()?)))
                .collect(),
            images: containers
                .iter()
                .flat_map(|c| [Some(c.image.as_str()), c.raw["Config"]["Image"].as_str()])
                .flatten()
                .filter(|i| !i.is_empty())
                .map(String::from)
                .collect(),
            networks: containers
                .iter()
                .flat_map(|c| c.network_settings.networks.keys().cloned())
                .collect(),
            volumes: containers
                .iter()
                .flat_map(|c| c.mounts.iter().filter_map(|m| m.name.clone()))
                .collect(),
            created: BTreeSet::new(),
        }
    }

    /// Learns the containers created under a stack container's name (Compose replacing one),
    /// so that their own networks and volumes are theirs, not another container's.
    pub fn learn(&mut self, batch: &[Event]) {
        for event in batch {
            if event.kind != "container" {
                continue;
            }
            let id = &event.actor.id;
            if event.action == "create" && self.holds(event) {
                self.created.insert(id.clone());
            } else if event.action == "destroy" {
                self.names.remove(id);
                self.healthchecks.remove(id);
                self.created.remove(id);
            }
        }
    }

    /// The stack as the engine now describes it, keeping the containers known before that are
    /// no longer under a stack name: the engine is asked by name, and a stack container renamed
    /// while it was asked stays the stack's (by its ID) until it is destroyed (`learn`).
    pub fn refreshed(self, containers: &[ContainerInspect]) -> Stack {
        let mut now = Stack::of(containers);
        for (id, name) in self.names {
            if !now.names.contains_key(&id) {
                if let Some(health) = self.healthchecks.get(&id) {
                    now.healthchecks.insert(id.clone(), health.clone());
                }
                now.names.insert(id, name);
            }
        }
        now
    }

    /// Whether the container is the stack's: as last checked, or made under its name since.
    fn owns(&self, id: &str) -> bool {
        self.names.contains_key(id) || self.created.contains(id)
    }

    fn holds(&self, event: &Event) -> bool {
        self.owns(&event.actor.id)
            || stack::SERVICES
                .iter()
                .filter_map(|s| stack::container_of(s))
                .any(|name| event.attribute("name") == Some(name))
    }
}

/// The effects of events that came together (within a moment of each other), given what watch
/// knows of the stack: each event's, but for a running stack container's volumes mounted or its
/// networks changed. A start, stop or restart does both, beside the container's own event;
/// without one, a volume mounted is `docker cp` at work (it mounts the container's volumes,
/// even when the copy is then refused), a network is the operator's.
pub fn effects(batch: &[Event], stack: &Stack) -> Vec<Effect> {
    let cycled = |id: &str| {
        batch.iter().any(|e| {
            e.kind == "container"
                && e.actor.id == id
                && matches!(
                    e.action.as_str(),
                    "start" | "die" | "stop" | "kill" | "restart"
                )
        })
    };
    batch
        .iter()
        .map(|event| {
            let id = event.attribute("container").unwrap_or("");
            let running = stack.names.get(id).filter(|_| !stack.created.contains(id));
            let (Some(name), false) = (running, cycled(id)) else {
                return effect(event, stack);
            };
            let network = event.attribute("name").unwrap_or(&event.actor.id);
            match (event.kind.as_str(), event.action.as_str()) {
                ("volume", "mount") => Effect::Drift(format!(
                    "{name}'s volumes mounted while it runs: files copied to or from it (docker cp)"
                )),
                ("network", "connect") => {
                    Effect::Drift(format!("{name} connected to network {network}"))
                }
                ("network", "disconnect") => {
                    Effect::Drift(format!("{name} disconnected from network {network}"))
                }
                _ => effect(event, stack),
            }
        })
        .collect()
}

/// The effect of one event, given what watch knows of the stack.
pub fn effect(event: &Event, stack: &Stack) -> Effect {
    let action = event.action.as_str();
    match event.kind.as_str() {
        "container" => container_effect(event, action, stack),
        "image" => match action {
            "tag" | "untag" | "delete" | "load" | "import" | "pull" => Effect::Judge(format!(
                "image {} {action}",
                event.attribute("name").unwrap_or(&event.actor.id)
            )),
            _ => Effect::None,
        },
        // Another container on the stack's network reaches it; on its volume, reads and writes
        // the database's files: a bypass even if it is gone by the next check.
        "network" => {
            let network = event.attribute("name").unwrap_or(&event.actor.id);
            let id = event.attribute("container").unwrap_or("?");
            let container = short(id);
            match action {
                "connect" if stack.networks.contains(network) && !stack.owns(id) => Effect::Drift(
                    format!("container {container} joined the stack's network {network}"),
                ),
                "connect" | "disconnect" => {
                    Effect::Judge(format!("network {network} {action} container {container}"))
                }
                _ => Effect::None,
            }
        }
        "volume" => {
            let id = event.attribute("container").unwrap_or("?");
            let container = short(id);
            match action {
                "mount" if stack.volumes.contains(&event.actor.id) && !stack.owns(id) => {
                    Effect::Drift(format!(
                        "container {container} mounted the stack's volume {}",
                        event.actor.id
                    ))
                }
                "mount" => Effect::Judge(format!(
                    "volume {} mounted by container {container}",
                    event.actor.id
                )),
                _ => Effect::None,
            }
        }
        // A daemon's reload (its configuration) or anything newer: judged again, never ignored
        // unread.
        _ => Effect::Judge(format!("{} {action}", event.kind)),
    }
}

fn container_effect(event: &Event, action: &str, stack: &Stack) -> Effect {
    let in_stack = stack.holds(event);
    let name = event.name();
    if let Some(command) = action.strip_prefix("exec_create:") {
        let command = command.trim();
        return match stack.healthchecks.get(&event.actor.id) {
            Some(health) if health == command => Effect::None,
            _ if in_stack => Effect::Drift(format!("exec session `{command}` in {name}")),
            _ => Effect::None,
        };
    }
    match action.split(':').next().unwrap_or("") {
        "exec_start" | "exec_die" | "exec_detach" | "top" | "attach" | "detach" | "resize"
        | "archive-path" | "copy" | "export" | "commit" => Effect::None,
        "extract-to-dir" if in_stack => Effect::Drift(format!("a file copied into {name}")),
        "update" if in_stack => Effect::Drift(format!("{name}'s configuration updated")),
        // The golden path never renames a stack container but to replace it (Compose v1 keeps
        // the old one aside while it makes the new): either way what runs is not the stack then.
        "rename" if in_stack => Effect::Drift(format!(
            "{} renamed to {name}",
            event
                .attribute("oldName")
                .map_or("a stack container", |n| n.trim_start_matches('/'))
        )),
        "health_status" if !in_stack => Effect::None,
        // The app's or the database's image run outside the stack (a one-off, a clone): a
        // bypass while it runs, even if it is gone by the next check.
        "create"
            if !in_stack
                && event
                    .attribute("image")
                    .is_some_and(|i| stack.images.contains(i)) =>
        {
            Effect::Drift(format!(
                "container {name} created from the stack's image {} outside the stack",
                event.attribute("image").unwrap_or_default()
            ))
        }
        _ => Effect::Judge(format!("container {name} {action}")),
    }
}

/// A container ID as `docker ps` shows it.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
