//! The node's client surface: commands in, events out.
//!
//! Both types serialise to the JSON-lines control of `hark-node --json` (SPEC §2.1), so field
//! names here are a public, documented contract (docs/protocol.md). Add, never rename.

use serde::{Deserialize, Serialize};

use crate::store::StoredMessage;

/// A name as clients should draw it, its invisible characters shown (an emoji's joiners kept):
/// two names must not look alike.
pub use hark_proto::envelope::show_invisible;

/// A request from the client (the TUI, or one JSON line on stdin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// A chat line.
    Send { room: String, text: String },
    /// An action line (`/me`).
    Me { room: String, text: String },
    /// The panic button: delivered like a message, shown loudly.
    Alert { room: String, text: String },
    /// Tell the room we are typing (rate-limited by the node).
    Typing { room: String },
    /// Join a public room by name, or a private room by invite.
    Join {
        #[serde(default)]
        room: Option<String>,
        #[serde(default)]
        invite: Option<String>,
    },
    /// Create a new private room; answered with [`Event::Created`] holding its invite.
    Create { room: String },
    /// Leave a room and forget its key.
    Leave { room: String },
    /// The newest `limit` stored messages of a room (default 100, at most 10 000), oldest first;
    /// with `before` (a message id), those older than that message: a page further back.
    History {
        room: String,
        #[serde(default)]
        limit: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
    },
    /// Search a room's stored history for messages holding every word of `text` (whole words
    /// or their beginnings; case and accents ignored). Answered with [`Event::SearchResults`].
    Search {
        room: String,
        text: String,
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Change our display name from now on (this run; `--name` sets it at start).
    Nick { name: String },
    /// The invite of a private room we are in, to pass on out of band.
    Invite { room: String },
    /// Play a WAV file into a room as one push-to-talk spurt, paced in real time (any common
    /// sample rate and channel count). Answered with [`Event::VoiceSent`] when it has been sent.
    Voice {
        room: String,
        wav: std::path::PathBuf,
    },
    /// List connected peers.
    Peers,
    /// The safety number of this node's identity and `peer`'s (a peer id, or a name heard
    /// this run, `bob` or `bob#a1c2`), answered with [`Event::SafetyNumber`]. With `confirm`
    /// `true` the peer is marked verified (kept in the store), with `false` the mark goes.
    Verify {
        peer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confirm: Option<bool>,
    },
    /// The peers marked verified, answered with [`Event::VerifiedPeers`].
    VerifiedPeers,
    /// A direct message to one peer (`to`: its peer id, or a name heard as for `verify`), in
    /// the room `@PEER_ID`, opened on first use on both sides; answered with `sent` (and
    /// `joined {room:"@PEER_ID"}` before it the first time).
    Dm { to: String, text: String },
    /// Take `peer` (a peer id, or a name heard) out of a private room: the room moves to a new
    /// key that every other member gets and `peer` does not (`engine/membership.rs`). Owner
    /// and admins only. Answered with `kicked` and `epoch`.
    Kick { room: String, peer: String },
    /// The owner names `peer` an admin of a private room (admins can kick). Answered with
    /// `members`.
    Promote { room: String, peer: String },
    /// Who is in a private room: answered with `members`.
    Members { room: String },
    /// Stop the node.
    Quit,
}

/// A connected peer as `peers` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub peer_id: String,
    /// The name it last used in any room we share; empty until it has said something.
    pub name: String,
    pub addrs: Vec<String>,
    /// Our gossipsub score of this peer (diagnostic: below 0 it is kept out of our meshes,
    /// below -10 it gets no gossip from us, below -80 it is ignored).
    #[serde(default)]
    pub score: f64,
    /// Marked verified by this node's user (its safety number was compared).
    #[serde(default)]
    pub verified: bool,
    /// Other peer ids heard using the same name (any case): someone else claims it.
    #[serde(default)]
    pub same_name: Vec<String>,
}

/// A peer marked verified, with the name it had when it was marked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedPeer {
    pub peer_id: String,
    pub name: String,
}

/// One message in a `history` answer: the fields of a `message` event without the room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryMessage {
    pub id: String,
    pub from: String,
    pub name: String,
    /// The wall-clock part of the message's hybrid logical clock, milliseconds since the epoch.
    pub ts: u64,
    /// The clock's counter: the message's place among those of the same `ts` (messages sort
    /// by `ts`, `tick`, then `id`, the order `history` gives).
    #[serde(default)]
    pub tick: u16,
    pub kind: String,
    pub text: String,
}

impl From<StoredMessage> for HistoryMessage {
    fn from(m: StoredMessage) -> Self {
        Self {
            id: m.id.to_hex(),
            from: m.author,
            name: m.name,
            ts: m.hlc.wall_ms(),
            tick: m.hlc.counter(),
            kind: m.kind.as_str().to_owned(),
            text: m.text,
        }
    }
}

/// Something the client should know. `ready` is always the first event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Ready {
        peer_id: String,
        name: String,
        listen: Vec<String>,
    },
    /// A message of ours is stored durably (it survives kill -9) and was published; peers
    /// that do not hear it now get it by sync when they meet this node or anyone who has it.
    Sent {
        room: String,
        id: String,
    },
    /// More peers are known to hold a message of ours that this run sent (a history sync
    /// session with each, begun after it was stored, completed; or a relay keeps it). Raised
    /// each time the set grows, with every holder so far (engine/delivery.rs).
    Delivered {
        room: String,
        id: String,
        /// Every peer known to hold it, members and relays, in the order they were learned.
        peers: Vec<String>,
        /// The room's members this node knows of, itself excluded (M of `✓✓ N/M`).
        #[serde(default)]
        members: usize,
        /// How many of `peers` are among those members (N).
        #[serde(default)]
        members_holding: usize,
    },
    PeerConnected {
        peer_id: String,
    },
    PeerDisconnected {
        peer_id: String,
    },
    Message {
        room: String,
        id: String,
        from: String,
        name: String,
        /// The wall-clock part of the message's hybrid logical clock (the author's clock,
        /// pulled forward past anything the author had seen), milliseconds since the epoch.
        ts: u64,
        /// The clock's counter, as in [`HistoryMessage::tick`].
        #[serde(default)]
        tick: u16,
        /// `text`, `me` or `alert`.
        kind: String,
        text: String,
    },
    Typing {
        room: String,
        from: String,
        name: String,
    },
    /// A peer announced itself in a room (on join, and now and then).
    Presence {
        room: String,
        from: String,
        name: String,
    },
    Created {
        room: String,
        invite: String,
    },
    Joined {
        room: String,
    },
    Left {
        room: String,
    },
    Peers {
        peers: Vec<PeerInfo>,
    },
    /// The answer to `history`: messages oldest first, in the room's (HLC, id) order.
    History {
        room: String,
        messages: Vec<HistoryMessage>,
    },
    /// The answer to `search`: matching messages, oldest first (the newest `limit`).
    SearchResults {
        room: String,
        text: String,
        messages: Vec<HistoryMessage>,
    },
    /// The answer to `verify`: the safety number of our identity and `peer`'s, the same on
    /// both sides (twelve groups of five digits). `same_name` lists other peer ids heard using
    /// `name` (an impostor, or a namesake); `verified` is the peer's mark after the command.
    SafetyNumber {
        peer: String,
        name: String,
        number: String,
        verified: bool,
        #[serde(default)]
        same_name: Vec<String>,
    },
    /// The answer to `verified_peers`.
    VerifiedPeers {
        peers: Vec<VerifiedPeer>,
    },
    /// Our display name changed.
    Nick {
        name: String,
    },
    /// The answer to `invite`.
    Invite {
        room: String,
        invite: String,
    },
    /// Someone started talking in a room (the first frame of a talk-spurt arrived).
    VoiceStart {
        room: String,
        from: String,
        name: String,
    },
    /// A talk-spurt has been played out.
    VoiceEnd {
        room: String,
        from: String,
        name: String,
        /// Frames in the played-out spurt (its length in frames).
        frames: u32,
        /// Frames that did not arrive in time: `recovered` + `concealed`.
        lost: u32,
        /// Frames that arrived (in time or not).
        #[serde(default)]
        received: u32,
        /// Lost frames rebuilt from the next frame's in-band FEC.
        #[serde(default)]
        recovered: u32,
        /// Lost frames concealed by Opus PLC.
        #[serde(default)]
        concealed: u32,
        /// Frames that arrived after their playout slot, dropped.
        #[serde(default)]
        late: u32,
        /// Capture-to-playout latency of the played frames (talker's and our wall clock).
        #[serde(default)]
        latency_p50_ms: u32,
        #[serde(default)]
        latency_p99_ms: u32,
        /// The recording, with `--voice-out DIR`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wav: Option<String>,
    },
    /// A `voice` command's talk-spurt has been sent.
    VoiceSent {
        room: String,
        frames: u32,
    },
    /// A history sync session with a peer finished; `received` messages were new to us.
    Synced {
        room: String,
        peer_id: String,
        received: usize,
    },
    Error {
        code: String,
        detail: String,
    },
    /// The answer to `subscribe` (control socket and `--json`): the rooms and kinds this
    /// client follows from now on (absent: all).
    Subscribed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rooms: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kinds: Option<Vec<String>>,
    },
    /// A client asked to key (`start`) or release (`stop`) the microphone of `hark` in `room`;
    /// `hark` acts on it, and the asker gets it back as its answer.
    Ptt {
        room: String,
        action: String,
    },
    /// This client fell behind and `missed` events were not delivered to it (the node never
    /// waits for a slow client). Typing and presence are dropped quietly; anything that was
    /// stored (messages) can be read back with `history`, so a client reloads the rooms it
    /// shows when it gets this.
    Lagged {
        missed: u64,
    },
    /// `peer` was taken out of a private room by `by` (an admin or the owner). To the kicked
    /// node itself too: it reads nothing written after this.
    Kicked {
        room: String,
        peer: String,
        by: String,
    },
    /// This node moved to a new key epoch of a private room (after a kick); `epoch` counts
    /// from 0 (the key of the room's first invite).
    Epoch {
        room: String,
        epoch: u32,
    },
    /// The answer to `members` and `promote`: the private room's owner, admins (the owner
    /// among them) and members (everyone in the current epoch, owner and admins included),
    /// the current epoch, and who was kicked.
    Members {
        room: String,
        owner: String,
        admins: Vec<String>,
        members: Vec<String>,
        epoch: u32,
        kicked: Vec<String>,
    },
}

impl Event {
    pub fn error(code: &str, detail: impl Into<String>) -> Self {
        Event::Error {
            code: code.to_owned(),
            detail: detail.into(),
        }
    }
}

/// The last four characters of a peer id: with the name they tell people apart (`alice#3f9a`).
pub fn short_id(peer_id: &str) -> &str {
    let start = peer_id.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    &peer_id[start..]
}

impl Event {
    /// One plain-text line for a chat message event (`[room] alice#3f9a: text`, `* …` for an
    /// action, `ALERT …` for an alert); `None` for every other event.
    pub fn message_line(&self) -> Option<String> {
        let Event::Message {
            room,
            name,
            from,
            kind,
            text,
            ..
        } = self
        else {
            return None;
        };
        let who = format!("{name}#{}", short_id(from));
        Some(match kind.as_str() {
            "me" => format!("[{room}] * {who} {text}"),
            "alert" => format!("[{room}] ALERT {who}: {text}"),
            _ => format!("[{room}] {who}: {text}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_from_the_documented_json() {
        let cmd: Command =
            serde_json::from_str(r#"{"cmd":"send","room":"lobby","text":"hi"}"#).unwrap();
        assert_eq!(
            cmd,
            Command::Send {
                room: "lobby".into(),
                text: "hi".into()
            }
        );
        let cmd: Command = serde_json::from_str(r#"{"cmd":"join","invite":"hark:x"}"#).unwrap();
        assert_eq!(
            cmd,
            Command::Join {
                room: None,
                invite: Some("hark:x".into())
            }
        );
        let cmd: Command = serde_json::from_str(r#"{"cmd":"peers"}"#).unwrap();
        assert_eq!(cmd, Command::Peers);
        assert!(serde_json::from_str::<Command>(r#"{"cmd":"fly"}"#).is_err());
        assert!(serde_json::from_str::<Command>(r#"{"cmd":"send","room":"lobby"}"#).is_err());
    }

    #[test]
    fn message_lines_name_the_author_with_a_short_id() {
        let event = |kind: &str| Event::Message {
            room: "ops".into(),
            id: "01".into(),
            from: "12D3KooW3f9a".into(),
            name: "alice".into(),
            ts: 0,
            tick: 0,
            kind: kind.into(),
            text: "hi".into(),
        };
        assert_eq!(
            event("text").message_line().unwrap(),
            "[ops] alice#3f9a: hi"
        );
        assert_eq!(event("me").message_line().unwrap(), "[ops] * alice#3f9a hi");
        assert_eq!(
            event("alert").message_line().unwrap(),
            "[ops] ALERT alice#3f9a: hi"
        );
        assert_eq!(short_id("ab"), "ab");
        assert!(Event::Joined { room: "x".into() }.message_line().is_none());
    }

    #[test]
    fn events_serialise_with_their_name() {
        let line = serde_json::to_string(&Event::Joined { room: "ops".into() }).unwrap();
        assert_eq!(line, r#"{"event":"joined","room":"ops"}"#);
    }
}
