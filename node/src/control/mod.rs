//! The JSON-lines control surface shared by `hark-node --json` (stdin/stdout) and the control
//! socket `DATA_DIR/control.sock` (SPEC §2.1, §8; docs/protocol.md).
//!
//! - [`lines`]: reading lines in bounded pieces (not UTF-8, too long → one error each).
//! - this file: a line → a [`Request`] (with the command's `id` and name), an [`Answered`]
//!   event → a line (the `id` echoed, `cmd` on errors, `version` and `api` on `ready`), and
//!   each client's [`Filter`] (`subscribe`).
//! - [`socket`]: the Unix socket server, many clients at once.
//! - [`ctl`]: `hark-node ctl …`, a client of that socket.
//! - [`safety`]: a safety number as a terminal shows it (digits and a QR code).

pub mod ctl;
pub mod lines;
pub mod oneshot;
pub mod safety;
pub mod socket;
pub mod stdout;

use std::collections::HashSet;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::api::{Command, Event};

/// The longest command line read (64 KiB, the size of the largest envelope); a longer one is
/// skipped and answered with a `too_long` error.
pub const MAX_LINE: usize = 64 * 1024;
/// The API level in `ready`: raised when commands or events are added.
pub const API_LEVEL: u32 = 3;
/// The control socket's file name in the data dir.
pub const SOCKET_NAME: &str = "control.sock";
/// The version in `ready`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A client of the node. The embedding client (the TUI, or hark-node's own stdout when it is
/// not attached) is [`PRIMARY`].
pub type ClientId = u64;
pub const PRIMARY: ClientId = 0;

/// Who asked: the client and the command's optional `id` and name.
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    pub client: ClientId,
    pub id: Option<Value>,
    pub cmd: String,
}

/// Which events a client follows; `None` is everything. Answers to its own commands, `ready`,
/// `lagged` and `error` always reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub rooms: Option<HashSet<String>>,
    pub kinds: Option<HashSet<String>>,
}

impl Filter {
    pub fn all() -> Self {
        Self::default()
    }

    /// Whether a broadcast event reaches a client with this filter.
    pub fn passes(&self, event: &Event) -> bool {
        let kind = event_kind(event);
        if matches!(kind, "ready" | "lagged" | "error") {
            return true;
        }
        if let Some(kinds) = &self.kinds {
            let alert = matches!(event, Event::Message { kind, .. } if kind == "alert");
            if !(kinds.contains(kind) || alert && kinds.contains("alert")) {
                return false;
            }
        }
        match (&self.rooms, event_room(event)) {
            (Some(rooms), Some(room)) => rooms.contains(&normal_room(room)),
            _ => true,
        }
    }
}

pub(crate) fn normal_room(room: &str) -> String {
    let room = room.trim();
    let room = room.strip_prefix('#').unwrap_or(room);
    if room.starts_with('@') {
        room.to_owned()
    } else {
        room.to_lowercase()
    }
}

/// The event's name as it appears in JSON (`"event":…`). A new event's name goes into
/// [`KINDS`] too, or `subscribe` refuses to follow it.
pub fn event_kind(event: &Event) -> &'static str {
    match event {
        Event::Ready { .. } => "ready",
        Event::Sent { .. } => "sent",
        Event::Delivered { .. } => "delivered",
        Event::PeerConnected { .. } => "peer_connected",
        Event::PeerDisconnected { .. } => "peer_disconnected",
        Event::Message { .. } => "message",
        Event::Typing { .. } => "typing",
        Event::Presence { .. } => "presence",
        Event::Created { .. } => "created",
        Event::Joined { .. } => "joined",
        Event::Left { .. } => "left",
        Event::Peers { .. } => "peers",
        Event::History { .. } => "history",
        Event::SearchResults { .. } => "search_results",
        Event::SafetyNumber { .. } => "safety_number",
        Event::VerifiedPeers { .. } => "verified_peers",
        Event::Nick { .. } => "nick",
        Event::Invite { .. } => "invite",
        Event::VoiceStart { .. } => "voice_start",
        Event::VoiceEnd { .. } => "voice_end",
        Event::VoiceSent { .. } => "voice_sent",
        Event::Synced { .. } => "synced",
        Event::Subscribed { .. } => "subscribed",
        Event::Ptt { .. } => "ptt",
        Event::Error { .. } => "error",
        Event::Lagged { .. } => "lagged",
        Event::Kicked { .. } => "kicked",
        Event::Epoch { .. } => "epoch",
        Event::Members { .. } => "members",
    }
}

/// What a filter's `kinds` may name: every name [`event_kind`] gives, and `alert` (the
/// messages of kind alert).
const KINDS: &[&str] = &[
    "ready",
    "sent",
    "delivered",
    "peer_connected",
    "peer_disconnected",
    "message",
    "typing",
    "presence",
    "created",
    "joined",
    "left",
    "peers",
    "history",
    "search_results",
    "safety_number",
    "verified_peers",
    "nick",
    "invite",
    "voice_start",
    "voice_end",
    "voice_sent",
    "synced",
    "subscribed",
    "ptt",
    "error",
    "lagged",
    "kicked",
    "epoch",
    "members",
    "alert",
];

/// A filter's kinds, checked: a kind no event has would follow nothing, silently.
pub fn check_kinds(kinds: &HashSet<String>) -> Result<(), String> {
    match kinds.iter().find(|kind| !KINDS.contains(&kind.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(format!(
            "no event is of kind {unknown:?} (kinds are event names such as message, alert, presence)"
        )),
    }
}

/// The room an event is about, if any.
pub fn event_room(event: &Event) -> Option<&str> {
    match event {
        Event::Sent { room, .. }
        | Event::Delivered { room, .. }
        | Event::Message { room, .. }
        | Event::Typing { room, .. }
        | Event::Presence { room, .. }
        | Event::Created { room, .. }
        | Event::Joined { room }
        | Event::Left { room }
        | Event::History { room, .. }
        | Event::SearchResults { room, .. }
        | Event::Invite { room, .. }
        | Event::VoiceStart { room, .. }
        | Event::VoiceEnd { room, .. }
        | Event::VoiceSent { room, .. }
        | Event::Synced { room, .. }
        | Event::Ptt { room, .. }
        | Event::Kicked { room, .. }
        | Event::Epoch { room, .. }
        | Event::Members { room, .. } => Some(room),
        _ => None,
    }
}

/// What a client asks of the node.
#[derive(Debug)]
pub enum Request {
    /// A command for the engine.
    Command {
        origin: Option<Origin>,
        command: Command,
    },
    /// Follow only these rooms / kinds from now on.
    Subscribe { origin: Origin, filter: Filter },
    /// Key (or release) the microphone of the embedding client (`hark`).
    Ptt {
        origin: Origin,
        room: String,
        start: bool,
    },
    /// A new client: its own queue of events, which it follows per `filter`.
    Attach {
        client: ClientId,
        sink: mpsc::Sender<Answered>,
        filter: Filter,
        /// Whether its answers must come in the order it asked (a `sent` before the answer
        /// to its next request); not for a client that matches each answer by its `id`.
        ordered: bool,
    },
    /// The client went away.
    Detach { client: ClientId },
    /// A snapshot of the node's counters (the HTTP API's `/healthz` and `/metrics`).
    Stats {
        reply: tokio::sync::oneshot::Sender<crate::node::Stats>,
    },
    /// A message from a web user (`--web`), signed with the key the node holds for them.
    SendAs {
        origin: Option<Origin>,
        send: Box<crate::engine::SendAs>,
    },
    /// One voice frame of a web user's talk-spurt, encoded in the browser (or from PCM it
    /// sent): sealed and published like a frame from this node's own microphone, and played
    /// here as theirs (`from`, `name`), so this node's other users hear it too.
    VoiceFrame {
        room: String,
        from: libp2p::PeerId,
        name: String,
        frame: hark_proto::VoiceFrame,
    },
}

/// An event on its way to a client; `origin` when it answers one of its commands.
#[derive(Clone, Debug, PartialEq)]
pub struct Answered {
    pub event: Event,
    pub origin: Option<Origin>,
}

impl Answered {
    pub fn broadcast(event: Event) -> Self {
        Self {
            event,
            origin: None,
        }
    }

    /// The JSON line (without the newline): the event, plus the command's `id` when it carried
    /// one — as `cmd_id` always, and as `id` too unless the event has an `id` of its own (`sent`
    /// names the message there) — `cmd` on an error answering a command, and `version` and
    /// `api` on `ready`.
    pub fn to_line(&self) -> String {
        let adds_fields = self.origin.is_some() || matches!(self.event, Event::Ready { .. });
        if !adds_fields {
            // Most lines (every `message` of a catch-up) add nothing: written straight from the
            // event, without building a map of it first (docs/performance.md, issue 11).
            if let Ok(line) = serde_json::to_string(&self.event) {
                return line;
            }
        }
        let mut value = match serde_json::to_value(&self.event) {
            Ok(Value::Object(map)) => map,
            Ok(_) | Err(_) => {
                let mut map = Map::new();
                map.insert("event".into(), "error".into());
                map.insert("code".into(), "internal".into());
                map.insert("detail".into(), "event does not serialise".into());
                map
            }
        };
        if let Event::Ready { .. } = self.event {
            value.insert("version".into(), VERSION.into());
            value.insert("api".into(), API_LEVEL.into());
        }
        if let Some(origin) = &self.origin {
            if let Some(id) = &origin.id {
                value.insert("cmd_id".into(), id.clone());
                if !value.contains_key("id") {
                    value.insert("id".into(), id.clone());
                }
            }
            if matches!(self.event, Event::Error { .. }) && !origin.cmd.is_empty() {
                value.insert("cmd".into(), origin.cmd.clone().into());
            }
        }
        Value::Object(value).to_string()
    }
}

/// A line that could not be turned into a request: the error to answer it with.
pub fn line_error(client: ClientId, line: &lines::Line) -> Option<Answered> {
    let (code, detail) = match line {
        lines::Line::Text(_) => return None,
        lines::Line::NotUtf8 => ("bad_command", "the line is not valid UTF-8".to_owned()),
        lines::Line::TooLong => (
            "too_long",
            format!("the line is longer than {MAX_LINE} bytes"),
        ),
    };
    Some(Answered {
        event: Event::error(code, detail),
        origin: Some(Origin {
            client,
            id: None,
            cmd: String::new(),
        }),
    })
}

/// Parse one command line from `client`. `Ok(None)` for a blank line; an `Err` is the error
/// event to answer with (its `id` and `cmd` echoed when the line had them).
pub fn parse_line(client: ClientId, line: &str) -> Result<Option<Request>, Box<Answered>> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let mut origin = Origin {
        client,
        id: None,
        cmd: String::new(),
    };
    let fail = |origin: &Origin, code: &str, detail: String| {
        Box::new(Answered {
            event: Event::error(code, detail),
            origin: Some(origin.clone()),
        })
    };
    let value: Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(e) => return Err(fail(&origin, "bad_command", e.to_string())),
    };
    let Value::Object(mut map) = value else {
        return Err(fail(
            &origin,
            "bad_command",
            "a command is a JSON object".into(),
        ));
    };
    origin.id = map.remove("id");
    origin.cmd = match map.get("cmd") {
        Some(Value::String(cmd)) => cmd.clone(),
        _ => {
            return Err(fail(
                &origin,
                "bad_command",
                "a command needs \"cmd\": its name".into(),
            ))
        }
    };
    let strings = |value: Option<&Value>| -> Result<Option<HashSet<String>>, String> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(normal_room)
                        .ok_or_else(|| "expected a list of strings".to_owned())
                })
                .collect::<Result<HashSet<String>, String>>()
                .map(Some),
            Some(_) => Err("expected a list of strings".to_owned()),
        }
    };
    match origin.cmd.as_str() {
        "subscribe" => {
            let rooms = strings(map.get("rooms"));
            let kinds = strings(map.get("kinds")).and_then(|kinds| {
                if let Some(kinds) = &kinds {
                    check_kinds(kinds)?;
                }
                Ok(kinds)
            });
            match (rooms, kinds) {
                (Ok(rooms), Ok(kinds)) => Ok(Some(Request::Subscribe {
                    origin,
                    filter: Filter { rooms, kinds },
                })),
                (Err(e), _) | (_, Err(e)) => Err(fail(&origin, "bad_command", e)),
            }
        }
        "ptt" => {
            let room = map.get("room").and_then(Value::as_str).map(str::to_owned);
            let start = match map.get("action").and_then(Value::as_str) {
                Some("start") => Some(true),
                Some("stop") => Some(false),
                _ => None,
            };
            match (room, start) {
                (Some(room), Some(start)) => Ok(Some(Request::Ptt {
                    origin,
                    room,
                    start,
                })),
                _ => Err(fail(
                    &origin,
                    "bad_command",
                    "ptt needs \"room\" and \"action\": \"start\" or \"stop\"".into(),
                )),
            }
        }
        _ => match serde_json::from_value::<Command>(Value::Object(map)) {
            Ok(command) => Ok(Some(Request::Command {
                origin: Some(origin),
                command,
            })),
            Err(e) => Err(fail(&origin, "bad_command", e.to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Option<Request>, Box<Answered>> {
        parse_line(7, line)
    }

    #[test]
    fn ids_are_taken_off_and_unknown_fields_ignored() {
        let Ok(Some(Request::Command { origin, command })) =
            parse(r#"{"cmd":"peers","id":"a1","extra":true}"#)
        else {
            panic!("peers parses");
        };
        assert_eq!(command, Command::Peers);
        let origin = origin.unwrap();
        assert_eq!((origin.client, origin.id), (7, Some(Value::from("a1"))));
        assert_eq!(origin.cmd, "peers");
        let Ok(Some(Request::Command { command, .. })) =
            parse(r#"{"cmd":"send","room":"lobby","text":"hi","id":3,"color":"red"}"#)
        else {
            panic!("send parses");
        };
        assert!(matches!(command, Command::Send { .. }));
        assert!(parse("   ").unwrap().is_none());
    }

    #[test]
    fn errors_echo_the_id_and_name_the_command() {
        let error = parse(r#"{"cmd":"fly","id":9}"#).unwrap_err();
        let line: Value = serde_json::from_str(&error.to_line()).unwrap();
        assert_eq!(line["event"], "error");
        assert_eq!(line["code"], "bad_command");
        assert_eq!(line["id"], 9);
        assert_eq!(line["cmd_id"], 9);
        assert_eq!(line["cmd"], "fly");
        // `sent` keeps the message id in `id`; the command's is in `cmd_id`.
        let sent = Answered {
            event: Event::Sent {
                room: "lobby".into(),
                id: "ab".into(),
            },
            origin: Some(Origin {
                client: 7,
                id: Some(1.into()),
                cmd: "send".into(),
            }),
        };
        let line: Value = serde_json::from_str(&sent.to_line()).unwrap();
        assert_eq!(
            (&line["id"], &line["cmd_id"]),
            (&Value::from("ab"), &Value::from(1))
        );
        let error = parse(r#"{"cmd":"send","room":"lobby","id":"x"}"#).unwrap_err();
        let line: Value = serde_json::from_str(&error.to_line()).unwrap();
        assert_eq!(
            (&line["id"], &line["cmd"]),
            (&Value::from("x"), &Value::from("send"))
        );
        let error = parse("not json").unwrap_err();
        let line: Value = serde_json::from_str(&error.to_line()).unwrap();
        assert_eq!(line["code"], "bad_command");
        assert!(line.get("id").is_none());
    }

    #[test]
    fn subscribe_and_filters() {
        let Ok(Some(Request::Subscribe { filter, .. })) =
            parse(r##"{"cmd":"subscribe","rooms":["#Ops"],"kinds":["message"]}"##)
        else {
            panic!("subscribe parses");
        };
        let message = |room: &str, kind: &str| Event::Message {
            room: room.into(),
            id: "01".into(),
            from: "p".into(),
            name: "n".into(),
            ts: 0,
            tick: 0,
            kind: kind.into(),
            text: "t".into(),
        };
        assert!(filter.passes(&message("ops", "text")));
        assert!(!filter.passes(&message("lobby", "text")));
        assert!(!filter.passes(&Event::Typing {
            room: "ops".into(),
            from: "p".into(),
            name: "n".into()
        }));
        assert!(filter.passes(&Event::Lagged { missed: 1 }));
        let alerts = Filter {
            rooms: None,
            kinds: Some(["alert".to_owned()].into()),
        };
        assert!(alerts.passes(&message("lobby", "alert")));
        assert!(!alerts.passes(&message("lobby", "text")));
        assert!(Filter::all().passes(&Event::PeerConnected {
            peer_id: "p".into()
        }));
        assert!(parse(r#"{"cmd":"subscribe","rooms":"ops"}"#).is_err());
        // A kind no event has would follow nothing, silently: refused.
        assert!(parse(r#"{"cmd":"subscribe","kinds":["mesage"]}"#).is_err());
        assert!(parse(r#"{"cmd":"subscribe","kinds":["alert","voice_end","members"]}"#).is_ok());
    }

    #[test]
    fn an_event_line_is_the_event_itself() {
        let message = Event::Message {
            room: "lobby".into(),
            id: "01".into(),
            from: "p".into(),
            name: "n\"ame".into(),
            ts: 7,
            tick: 0,
            kind: "text".into(),
            text: "t\nu".into(),
        };
        let line = Answered::broadcast(message.clone()).to_line();
        assert!(!line.contains('\n'), "one line: {line}");
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value, serde_json::to_value(&message).unwrap());
        assert_eq!(value["event"], "message");
    }

    #[test]
    fn ready_carries_version_and_api() {
        let line = Answered::broadcast(Event::Ready {
            peer_id: "p".into(),
            name: "n".into(),
            listen: vec![],
        })
        .to_line();
        let line: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(line["api"], API_LEVEL);
        assert_eq!(line["version"], VERSION);
    }

    #[test]
    fn ptt_needs_a_room_and_an_action() {
        assert!(matches!(
            parse(r#"{"cmd":"ptt","room":"lobby","action":"start"}"#),
            Ok(Some(Request::Ptt { start: true, .. }))
        ));
        assert!(parse(r#"{"cmd":"ptt","room":"lobby","action":"go"}"#).is_err());
    }
}
