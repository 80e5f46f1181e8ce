//! The whole UI state and how it changes: node events and key actions go in, [`Effect`]s
//! (commands for the node, a bell, quitting) come out. No IO and no clock reads here: time
//! is an argument ([`Now`]), so every path is testable without a terminal or a node.
//!
//! The reducer is split by job: `events` reacts to the node, `actions` to keys,
//! `submit` turns a typed line into commands, `completion` is Tab, `scroll` pages
//! the message pane, `history` loads and merges stored messages, `identity` keeps
//! names and verification marks, `direct` is `/msg`, `web_invite` is `/web-invite`.

mod actions;
mod completion;
mod direct;
mod events;
mod history;
mod identity;
mod members;
mod scroll;
mod submit;
mod web_invite;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hark_node::Command;
use ratatui::layout::Rect;

use crate::identities::Identities;
use crate::input::InputLine;
use crate::people::People;
use crate::replies::{Replies, Request};
use crate::style::{display_name, LocalTime};
use crate::timeline::{Entry, EntryBody, EntryKey, NoticeLevel, Timeline};
use crate::voice::{Ptt, PttAction};

use completion::Completion;
pub use web_invite::NO_WEB;

/// Messages loaded when a room is opened; scrolling to the top loads more, up to the node's
/// limit.
pub const HISTORY_PAGE: usize = 500;
/// A peer heard this recently (presence every minute, and a little slack) is shown present.
pub(super) const HEARD_PRESENT_FOR: Duration = Duration::from_secs(150);
/// Peers remembered as heard, at most (then those not heard lately are forgotten).
const MAX_HEARD: usize = 4_096;
const HISTORY_MAX: usize = 10_000;
/// A hint under the input stays this long.
const HINT_SHOWN_FOR: Duration = Duration::from_secs(8);
/// An alert banner flashes this long, then stays until Esc.
pub const ALERT_FLASH_FOR: Duration = Duration::from_secs(6);
/// A peer counts as syncing from its connection until its first `synced`, at most this long.
const SYNC_SHOWN_FOR: Duration = Duration::from_secs(15);

/// The present, passed in: a monotonic instant for timers and wall-clock ms for stamps.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub at: Instant,
    pub wall_ms: u64,
}

impl Now {
    pub fn real() -> Self {
        Self {
            at: Instant::now(),
            wall_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }
}

/// What the event loop must do for the app.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Node(Command),
    Bell,
    /// Copy to the clipboard where the terminal allows it (OSC 52): invites.
    Copy(String),
    /// Remember the sidebar's rooms for the next start.
    SaveRooms(Vec<String>),
    Talk(PttAction),
    /// Stop (`true`) or resume playing one peer's voice.
    Mute {
        peer_id: String,
        muted: bool,
    },
    /// Make a join link for the browser client (`/web-invite`); the answer comes back
    /// through [`App::on_web_invite`].
    WebInvite {
        name: Option<String>,
    },
    Quit,
}

#[derive(Debug)]
pub struct Room {
    pub name: String,
    /// `None` until the node has said.
    pub private: Option<bool>,
    pub timeline: Timeline,
    pub people: People,
    pub unread: usize,
    pub mentions: usize,
    history_limit: usize,
    /// The last history answer held everything stored: scrolling up loads no more.
    history_complete: bool,
    last_typing_sent: Option<Instant>,
    /// The node has confirmed we are in it (a history answer or `joined`). Until then no
    /// typing notices: their errors would answer no command (see [`crate::replies`]).
    confirmed: bool,
}

impl Room {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            private: if name == "lobby" {
                Some(false)
            } else if name.starts_with('@') {
                Some(true)
            } else {
                None
            },
            timeline: Timeline::default(),
            people: People::default(),
            unread: 0,
            mentions: 0,
            history_limit: HISTORY_PAGE,
            history_complete: false,
            last_typing_sent: None,
            confirmed: false,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Overlay {
    Help,
    Invite {
        room: String,
        invite: String,
    },
    Search {
        room: String,
        text: String,
        results: Vec<Entry>,
    },
    /// A safety number to compare with `peer` (`/verify`).
    Safety {
        peer: String,
        name: String,
        number: String,
        verified: bool,
        /// Other keys heard using the same name.
        same_name: Vec<String>,
    },
    /// A one-time join link for the browser client (`/web-invite`).
    WebInvite {
        url: String,
        name: Option<String>,
    },
}

#[derive(Clone, Debug)]
pub struct AlertBanner {
    pub room: String,
    pub who: String,
    pub text: String,
    pub since: Instant,
}

#[derive(Clone, Debug)]
pub struct Hint {
    pub text: String,
    pub error: bool,
    since: Instant,
}

#[derive(Clone, Debug)]
pub struct Me {
    pub peer_id: String,
    pub name: String,
}

pub struct App {
    pub me: Option<Me>,
    pub rooms: Vec<Room>,
    pub current: usize,
    pub input: InputLine,
    completion: Option<Completion>,
    replies: Replies,
    pub connected: HashSet<String>,
    /// When each peer was last heard live (presence, typing, a message): one reached through
    /// another node (a relay, the node serving a web user) has no connection of ours.
    pub(super) heard: HashMap<String, Instant>,
    syncing: HashMap<String, Instant>,
    pub synced_once: bool,
    pub network_key: bool,
    pub ptt: Ptt,
    pub overlay: Option<Overlay>,
    pub alert: Option<AlertBanner>,
    pub hint: Option<Hint>,
    pub clock: LocalTime,
    /// The terminal's size, for page sizes.
    pub size: Rect,
    notices: u64,
    /// The voice-not-available notice is shown once.
    told_no_voice: bool,
    /// Verified peers, and names more than one key uses.
    pub identities: Identities,
    /// This `hark` serves the browser client (`--web`), so `/web-invite` can make links.
    pub serves_web: bool,
}

impl App {
    /// `rooms`: the sidebar at start (lobby, the rooms of the last run, `--join` targets);
    /// the node confirms each once it is ready.
    pub fn new(rooms: &[String], network_key: bool, ptt: Ptt, clock: LocalTime) -> Self {
        let mut list = vec![Room::new("lobby")];
        for name in rooms {
            if !list.iter().any(|r| &r.name == name) {
                list.push(Room::new(name));
            }
        }
        Self {
            me: None,
            rooms: list,
            current: 0,
            input: InputLine::default(),
            completion: None,
            replies: Replies::default(),
            connected: HashSet::new(),
            heard: HashMap::new(),
            syncing: HashMap::new(),
            synced_once: false,
            network_key,
            ptt,
            overlay: None,
            alert: None,
            hint: None,
            clock,
            size: Rect::new(0, 0, 80, 24),
            notices: 0,
            told_no_voice: false,
            identities: Identities::default(),
            serves_web: false,
        }
    }

    pub fn current_room(&self) -> Option<&Room> {
        self.rooms.get(self.current)
    }

    fn room_index(&self, name: &str) -> Option<usize> {
        self.rooms.iter().position(|r| r.name == name)
    }

    fn room_mut(&mut self, name: &str) -> Option<&mut Room> {
        self.rooms.iter_mut().find(|r| r.name == name)
    }

    pub fn is_online(&self, peer_id: &str) -> bool {
        self.connected.contains(peer_id) || self.me.as_ref().is_some_and(|m| m.peer_id == peer_id)
    }

    /// Online, or heard lately through another node (presence comes every minute).
    pub fn is_present(&self, peer_id: &str, now: Instant) -> bool {
        self.is_online(peer_id)
            || self
                .heard
                .get(peer_id)
                .is_some_and(|at| now.duration_since(*at) < HEARD_PRESENT_FOR)
    }

    /// `peer_id` was heard live just now.
    pub(super) fn heard_now(&mut self, peer_id: &str, now: Instant) {
        if self.heard.len() >= MAX_HEARD && !self.heard.contains_key(peer_id) {
            self.heard
                .retain(|_, at| now.duration_since(*at) < HEARD_PRESENT_FOR);
        }
        self.heard.insert(peer_id.to_owned(), now);
    }

    /// Whether a history sync is under way (between a connection and its first `synced`).
    pub fn syncing(&self, now: Instant) -> bool {
        self.syncing
            .values()
            .any(|since| now.duration_since(*since) < SYNC_SHOWN_FOR)
    }

    pub fn my_name(&self) -> &str {
        self.me.as_ref().map_or("", |m| m.name.as_str())
    }

    fn send(&mut self, command: Command, request: Option<Request>) -> Effect {
        if let Some(request) = request {
            self.replies.expect(request);
        }
        Effect::Node(command)
    }

    pub fn set_hint(&mut self, text: impl Into<String>, error: bool, now: Instant) {
        self.hint = Some(Hint {
            text: text.into(),
            error,
            since: now,
        });
    }

    /// Add a line from hark itself to a room.
    pub fn notice(&mut self, room: usize, text: impl Into<String>, level: NoticeLevel, now: Now) {
        self.notices += 1;
        let id = format!("~{:016x}", self.notices);
        if let Some(room) = self.rooms.get_mut(room) {
            let ts = now.wall_ms.max(room.timeline.newest_ts().unwrap_or(0));
            room.timeline.insert(Entry {
                key: EntryKey {
                    ts,
                    tick: u16::MAX,
                    id,
                },
                body: EntryBody::Notice {
                    text: text.into(),
                    level,
                },
            });
        }
    }

    pub(super) fn rooms_to_save(&self) -> Effect {
        Effect::SaveRooms(self.rooms.iter().map(|r| r.name.clone()).collect())
    }

    /// How a room is named on screen: `ops`, or `@bob#a1c2` for a direct-message room.
    pub fn room_label(&self, room: &Room) -> String {
        match room.name.strip_prefix('@') {
            Some(peer) => format!(
                "@{}",
                display_name(self.identities.name_of(peer).unwrap_or("?"), peer)
            ),
            None => room.name.clone(),
        }
    }

    fn ensure_room(&mut self, name: &str) -> usize {
        match self.room_index(name) {
            Some(index) => index,
            None => {
                self.rooms.push(Room::new(name));
                self.rooms.len() - 1
            }
        }
    }

    pub fn switch_to(&mut self, index: usize) {
        if index < self.rooms.len() {
            self.current = index;
            let room = &mut self.rooms[index];
            room.unread = 0;
            room.mentions = 0;
        }
    }

    fn follow_current(&mut self) {
        if let Some(room) = self.rooms.get_mut(self.current) {
            room.timeline.follow();
        }
    }

    /// Expire what expires; `true` when the screen should be redrawn.
    pub fn tick(&mut self, now: Instant) -> bool {
        let mut changed = false;
        if self
            .hint
            .as_ref()
            .is_some_and(|h| now.duration_since(h.since) >= HINT_SHOWN_FOR)
        {
            self.hint = None;
            changed = true;
        }
        let before = self.syncing.len();
        self.syncing
            .retain(|_, since| now.duration_since(*since) < SYNC_SHOWN_FOR);
        changed |= before != self.syncing.len();
        changed
    }
}
