//! Outgoing hooks (`[[hook]]` in the config file; docs/integrations.md): when a room sees a
//! message, an alert or a mention of this node's name, POST it as JSON to a URL or run a
//! command with it on stdin.
//!
//! Hooks are a client of the node like the control socket: one dispatcher attaches with a
//! filter for the hooked rooms' `message` events and hands each match to its hook's worker
//! ([`deliver`]). The node never waits for a hook: a worker's queue that is full sends the
//! message straight to the dead-letter file, and a worker retries with backoff on its own task.
//!
//! Only messages written in the last [`MAX_AGE_MS`] fire hooks: a node that comes back after a
//! day catches up on the day's history, and that must not replay it into an SMS gateway.

mod deliver;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::api::Event;
use crate::control::{normal_room, Filter};
use crate::node::ClientLink;
use crate::settings::{Hook, HookFormat, HookOn};

pub use deliver::DEAD_LETTER_FILE;

/// Messages older than this (by their author's clock) when they reach the node fire no hook.
pub const MAX_AGE_MS: u64 = 15 * 60 * 1000;
/// Messages waiting for one hook, at most; past this they go to the dead-letter file.
const QUEUE: usize = 1024;

/// Start the hooks beside a running node. Returns at once; the hooks stop with the node.
pub fn start(hooks: Vec<Hook>, data_dir: &Path, link: ClientLink) {
    if hooks.is_empty() {
        return;
    }
    let dead_letter = deliver::DeadLetter::new(data_dir.join(DEAD_LETTER_FILE));
    let workers: Vec<Worker> = hooks
        .into_iter()
        .enumerate()
        .map(|(index, hook)| {
            let (queue, jobs) = mpsc::channel(QUEUE);
            let target = deliver::Target::of(&hook);
            tokio::spawn(deliver::run(
                index + 1,
                target.clone(),
                jobs,
                dead_letter.clone(),
            ));
            Worker {
                index: index + 1,
                room: normal_room(&hook.room),
                on: hook.on.clone(),
                format: hook.format.unwrap_or(HookFormat::Event),
                target,
                queue,
                dead_letter: dead_letter.clone(),
            }
        })
        .collect();
    tokio::spawn(dispatch(workers, link));
}

/// One hook's matching rule and the queue of its worker.
struct Worker {
    index: usize,
    room: String,
    on: Vec<HookOn>,
    format: HookFormat,
    target: deliver::Target,
    queue: mpsc::Sender<deliver::Job>,
    dead_letter: deliver::DeadLetter,
}

async fn dispatch(workers: Vec<Worker>, link: ClientLink) {
    let filter = Filter {
        rooms: Some(
            workers
                .iter()
                .map(|w| w.room.clone())
                .collect::<HashSet<_>>(),
        ),
        kinds: Some(HashSet::from(["message".to_owned()])),
    };
    let Ok(mut attached) = link.attach(filter).await else {
        return;
    };
    let mut my_name = String::new();
    while let Some(answered) = attached.events.recv().await {
        match &answered.event {
            Event::Ready { name, .. } => my_name = name.clone(),
            Event::Lagged { missed } => {
                tracing::warn!(missed, "hooks fell behind the node: {missed} events missed")
            }
            event @ Event::Message { room, ts, .. } => {
                if crate::clock::wall_ms().saturating_sub(*ts) > MAX_AGE_MS {
                    continue;
                }
                let room = normal_room(room);
                for worker in workers.iter().filter(|w| w.room == room) {
                    if fires(&worker.on, event, &my_name) {
                        worker.offer(event);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether a hook listening for `on` fires for this message event.
fn fires(on: &[HookOn], event: &Event, my_name: &str) -> bool {
    let Event::Message { kind, text, .. } = event else {
        return false;
    };
    on.iter().any(|on| match on {
        HookOn::Message => true,
        HookOn::Alert => kind == "alert",
        HookOn::Mention => crate::mentions(text, my_name),
    })
}

impl Worker {
    /// Queue the message for the worker, or, when its queue is full, dead-letter it now: the
    /// node never waits for a hook.
    fn offer(&self, event: &Event) {
        let job = deliver::Job {
            body: body(self.format, &self.target, event),
            event: serde_json::to_value(event).unwrap_or(Value::Null),
        };
        if let Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) =
            self.queue.try_send(job)
        {
            let reason = format!("{QUEUE} messages already waiting for this hook");
            tracing::warn!(hook = self.index, "hook queue full: message dead-lettered");
            self.dead_letter
                .write(self.index, &self.target, &job, &reason, 0);
        }
    }
}

/// What goes to the hook: the event as JSON (a command always gets this on stdin), or the
/// Slack/Mattermost shape for a `url` hook with `format = "slack"`.
fn body(format: HookFormat, target: &deliver::Target, event: &Event) -> Vec<u8> {
    let value = match (format, target, event) {
        (HookFormat::Slack, deliver::Target::Url { .. }, Event::Message { .. }) => {
            json!({ "text": slack_text(event) })
        }
        _ => serde_json::to_value(event).unwrap_or(Value::Null),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// One line for a chat webhook: `#ops alice: pump 4 is down`, `#ops * alice waves`, or
/// `:rotating_light: ALERT #ops alice: fire in hall B`.
fn slack_text(event: &Event) -> String {
    let Event::Message {
        room,
        name,
        kind,
        text,
        ..
    } = event
    else {
        return String::new();
    };
    match kind.as_str() {
        "alert" => format!(":rotating_light: ALERT #{room} {name}: {text}"),
        "me" => format!("#{room} * {name} {text}"),
        _ => format!("#{room} {name}: {text}"),
    }
}

/// The pause before retry `attempt` (1-based): 0.5 s, doubling, at most 60 s.
fn backoff(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(10));
    Duration::from_millis(ms.min(60_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: &str, text: &str) -> Event {
        Event::Message {
            room: "ops".into(),
            id: "00".into(),
            from: "12D3KooWabc".into(),
            name: "alice".into(),
            ts: 0,
            tick: 0,
            kind: kind.into(),
            text: text.into(),
        }
    }

    #[test]
    fn hooks_fire_on_their_kinds_only() {
        let alert = message("alert", "fire in hall B");
        let chat = message("text", "lunch?");
        let named = message("text", "relay1: are you up?");
        assert!(fires(&[HookOn::Alert], &alert, "relay1"));
        assert!(!fires(&[HookOn::Alert], &chat, "relay1"));
        assert!(fires(&[HookOn::Mention], &named, "relay1"));
        assert!(!fires(&[HookOn::Mention], &chat, "relay1"));
        assert!(fires(&[HookOn::Message], &chat, "relay1"));
        assert!(fires(&[HookOn::Alert, HookOn::Mention], &named, "relay1"));
    }

    #[test]
    fn slack_bodies_are_one_readable_line() {
        let url = deliver::Target::Url {
            url: "http://x".into(),
            timeout: Duration::from_secs(1),
            retries: 0,
        };
        let body = body(HookFormat::Slack, &url, &message("alert", "fire"));
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"text": ":rotating_light: ALERT #ops alice: fire"})
        );
        let event = body_event(&url);
        assert_eq!(event["event"], "message");
        assert_eq!(event["kind"], "alert");
    }

    fn body_event(url: &deliver::Target) -> Value {
        serde_json::from_slice(&body(HookFormat::Event, url, &message("alert", "fire"))).unwrap()
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(5), Duration::from_secs(8));
        assert_eq!(backoff(30), Duration::from_secs(60));
    }
}
