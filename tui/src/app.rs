//! The whole UI state and how it changes: node events and key actions go in, [`Effect`]s
//! (commands for the node, a bell, quitting) come out. No IO and no clock reads here: time
//! is an argument ([`Now`]), so every path is testable without a terminal or a node.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hark_node::{Command, Event, HistoryMessage};
use ratatui::layout::Rect;

use crate::commands::{self, Submitted, UiCommand, VerifyStep};
use crate::identities::{IdMark, Identities};
use crate::input::InputLine;
use crate::keys::Action;
use crate::layout::{self, lines::entry_lines};
use crate::people::People;
use crate::replies::{HistoryReason, Replies, Request};
use crate::style::{display_name, mentions, LocalTime};
use crate::timeline::{
    ChatMessage, Entry, EntryBody, EntryKey, MessageKind, NoticeLevel, Timeline,
};
use crate::voice::{Ptt, PttAction};

/// Messages loaded when a room is opened; scrolling to the top loads more, up to the node's
/// limit.
pub const HISTORY_PAGE: usize = 500;
const HISTORY_MAX: usize = 10_000;
/// Our typing notices: at most one per room this often (the node's own limit too).
const TYPING_EVERY: Duration = Duration::from_secs(2);
/// A hint under the input stays this long.
const HINT_SHOWN_FOR: Duration = Duration::from_secs(8);
/// An alert banner flashes this long, then stays until Esc.
pub const ALERT_FLASH_FOR: Duration = Duration::from_secs(6);
/// Alerts older than this (arriving late by sync) are listed, not flashed.
const ALERT_FRESH_MS: u64 = 10 * 60 * 1000;
/// A peer counts as syncing from its connection until its first `synced`, at most this long.
const SYNC_SHOWN_FOR: Duration = Duration::from_secs(15);
const SEARCH_LIMIT: usize = 200;

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

/// What `/web-invite` says when this `hark` serves no browser client.
pub const NO_WEB: &str = "start hark with --web ADDR to serve the browser client";

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

/// Tab completion in progress: repeated Tabs cycle through `candidates`.
#[derive(Debug)]
struct Completion {
    start: usize,
    candidates: Vec<String>,
    index: usize,
}

pub struct App {
    pub me: Option<Me>,
    pub rooms: Vec<Room>,
    pub current: usize,
    pub input: InputLine,
    completion: Option<Completion>,
    replies: Replies,
    pub connected: HashSet<String>,
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

    /// Ask for a room's newest `limit` stored messages; the answer is merged in place.
    fn request_history(&mut self, room: String, limit: usize, reason: HistoryReason) -> Effect {
        self.send(
            Command::History {
                room: room.clone(),
                limit: Some(limit),
                before: None,
            },
            Some(Request::History { room, reason }),
        )
    }

    /// The node's answer to [`Effect::WebInvite`]: the link in a box with its QR code (and
    /// on the clipboard where the terminal allows), or why there is none.
    pub fn on_web_invite(
        &mut self,
        name: Option<String>,
        made: Result<String, String>,
        now: Now,
    ) -> Vec<Effect> {
        match made {
            Ok(url) => {
                self.overlay = Some(Overlay::WebInvite {
                    url: url.clone(),
                    name,
                });
                vec![Effect::Copy(url)]
            }
            Err(why) => {
                self.set_hint(format!("no join link: {why}"), true, now.at);
                Vec::new()
            }
        }
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
                key: EntryKey { ts, id },
                body: EntryBody::Notice {
                    text: text.into(),
                    level,
                },
            });
        }
    }

    fn rooms_to_save(&self) -> Effect {
        Effect::SaveRooms(self.rooms.iter().map(|r| r.name.clone()).collect())
    }

    // ----- node events -----

    pub fn on_event(&mut self, event: Event, now: Now) -> Vec<Effect> {
        let mut effects = Vec::new();
        let (answered, typed) = self.replies.answer(&event).unzip();
        match event {
            Event::Ready {
                peer_id,
                name,
                listen,
            } => {
                self.me = Some(Me {
                    peer_id: peer_id.clone(),
                    name: name.clone(),
                });
                self.note_name(&peer_id, &name);
                // Its answer marks people; it answers no typed command (an error never lands on it).
                effects.push(self.send(Command::VerifiedPeers, None));
                let rooms: Vec<String> = self.rooms.iter().map(|r| r.name.clone()).collect();
                for room in rooms {
                    effects.push(self.request_history(
                        room.clone(),
                        HISTORY_PAGE,
                        HistoryReason::Startup,
                    ));
                    if room != "lobby" && !room.starts_with('@') {
                        effects.push(self.send(
                            Command::Invite { room: room.clone() },
                            Some(Request::Invite { room, quiet: true }),
                        ));
                    }
                }
                let me = display_name(&name, &peer_id);
                self.notice(
                    0,
                    format!("you are {me}. F1: keys and commands · /join ROOM · /create ROOM"),
                    NoticeLevel::Info,
                    now,
                );
                for addr in listen.iter().take(3) {
                    self.notice(0, format!("listening on {addr}"), NoticeLevel::Info, now);
                }
            }
            Event::Sent { room, id } => {
                if let Some(Request::Send {
                    room: r,
                    kind,
                    text,
                }) = answered
                {
                    if r == room {
                        self.add_own_message(&room, id, kind, text, now);
                    }
                }
            }
            Event::PeerConnected { peer_id } => {
                self.connected.insert(peer_id.clone());
                self.syncing.insert(peer_id, now.at);
            }
            Event::PeerDisconnected { peer_id } => {
                self.connected.remove(&peer_id);
                self.syncing.remove(&peer_id);
                for room in &mut self.rooms {
                    room.people.stop_talking(&peer_id);
                }
            }
            Event::Message {
                room,
                id,
                from,
                name,
                ts,
                kind,
                text,
            } => self.on_message(&room, id, from, name, ts, &kind, text, now, &mut effects),
            Event::Typing { room, from, name }
                if self.me.as_ref().is_none_or(|m| m.peer_id != from) =>
            {
                if let Some(room) = self.room_mut(&room) {
                    room.people.typing(&from, &name, now.at);
                }
                self.note_name(&from, &name);
            }
            Event::Presence { room, from, name } => {
                if let Some(room) = self.room_mut(&room) {
                    room.people.seen(&from, &name);
                }
                self.note_name(&from, &name);
            }
            Event::Created { room, invite } => {
                let index = self.ensure_room(&room);
                self.rooms[index].private = Some(true);
                self.notice(
                    index,
                    format!("created private room #{room}; its invite (give it only to members):"),
                    NoticeLevel::Info,
                    now,
                );
                // On a line of its own, to copy.
                self.notice(index, invite.clone(), NoticeLevel::Info, now);
                effects.push(Effect::Copy(invite.clone()));
                self.overlay = Some(Overlay::Invite { room, invite });
            }
            Event::Joined { room } => {
                // A created room is already in the sidebar (from `created`), but new all the same.
                let fresh = self.room_index(&room).is_none() || answered == Some(Request::Create);
                let index = self.ensure_room(&room);
                self.rooms[index].confirmed = true;
                // Someone opening a direct-message room with us does not move our view.
                let direct = room.starts_with('@');
                if !direct {
                    self.switch_to(index);
                }
                if fresh {
                    effects.push(self.request_history(
                        room.clone(),
                        HISTORY_PAGE,
                        HistoryReason::Opened,
                    ));
                    if self.rooms[index].private.is_none() {
                        effects.push(self.send(
                            Command::Invite { room: room.clone() },
                            Some(Request::Invite {
                                room: room.clone(),
                                quiet: true,
                            }),
                        ));
                    }
                    let what = if direct {
                        format!(
                            "direct messages with {}",
                            self.room_label(&self.rooms[index])
                        )
                    } else {
                        format!("joined #{room}")
                    };
                    self.notice(index, what, NoticeLevel::Info, now);
                    effects.push(self.rooms_to_save());
                }
            }
            Event::Left { room } => {
                if let Some(index) = self.room_index(&room) {
                    self.rooms.remove(index);
                    if self.current >= index && self.current > 0 {
                        self.current -= 1;
                    }
                    self.set_hint(format!("left #{room}"), false, now.at);
                    effects.push(self.rooms_to_save());
                }
            }
            Event::Peers { peers } => {
                let here = self.current;
                self.notice(
                    here,
                    match peers.len() {
                        1 => "1 peer connected".to_owned(),
                        n => format!("{n} peers connected"),
                    },
                    NoticeLevel::Info,
                    now,
                );
                for peer in peers {
                    let name = if peer.name.is_empty() {
                        "?".to_owned()
                    } else {
                        peer.name.clone()
                    };
                    let mark = self.identities.mark(&peer.peer_id, &peer.name);
                    self.notice(
                        here,
                        format!(
                            "  {}{}  score {:.1}  {}",
                            display_name(&name, &peer.peer_id),
                            mark.suffix(),
                            peer.score,
                            peer.addrs.join(" ")
                        ),
                        NoticeLevel::Info,
                        now,
                    );
                }
                self.follow_current();
            }
            Event::History { room, messages } => {
                let reason = match answered {
                    Some(Request::History { reason, .. }) => reason,
                    _ => HistoryReason::Opened,
                };
                if reason == HistoryReason::Startup {
                    tracing::debug!(room, "room confirmed at start");
                }
                self.merge_history(&room, messages);
            }
            Event::SearchResults {
                room,
                text,
                messages,
            } => {
                let my_name = self.my_name().to_owned();
                let my_id = self
                    .me
                    .as_ref()
                    .map(|m| m.peer_id.clone())
                    .unwrap_or_default();
                let results = messages
                    .into_iter()
                    .map(|m| history_entry(m, &my_id, &my_name))
                    .collect();
                self.overlay = Some(Overlay::Search {
                    room,
                    text,
                    results,
                });
            }
            Event::Nick { name } => {
                if let Some(me) = &mut self.me {
                    me.name = name.clone();
                }
                if let Some(me) = self.me.clone() {
                    self.note_name(&me.peer_id, &name);
                }
                self.set_hint(format!("you are now {name}"), false, now.at);
            }
            Event::SafetyNumber {
                peer,
                name,
                number,
                verified,
                same_name,
            } => self.on_safety_number(answered, peer, name, number, verified, same_name, now),
            Event::VerifiedPeers { peers } => {
                for peer in peers {
                    self.identities.set_verified(&peer.peer_id, true);
                    self.note_name(&peer.peer_id, &peer.name);
                }
                self.refresh_marks();
            }
            Event::Invite { room, invite } => match answered {
                Some(Request::Invite { quiet: true, .. }) => {
                    if let Some(room) = self.room_mut(&room) {
                        room.private = Some(true);
                    }
                }
                _ => {
                    effects.push(Effect::Copy(invite.clone()));
                    self.overlay = Some(Overlay::Invite { room, invite });
                }
            },
            Event::Synced {
                room,
                peer_id,
                received,
            } => {
                self.syncing.remove(&peer_id);
                self.synced_once = true;
                if received > 0 {
                    if let Some(index) = self.room_index(&room) {
                        self.notice(
                            index,
                            format!(
                                "{received} earlier {} arrived by history sync",
                                if received == 1 { "message" } else { "messages" }
                            ),
                            NoticeLevel::Info,
                            now,
                        );
                    }
                }
            }
            Event::Error { code, detail } => {
                self.on_error(answered, &code, &detail, now);
                // The node refused what the user typed: give the line back to be fixed.
                if let Some(line) = typed.flatten() {
                    if self.input.is_empty() {
                        self.input.set(&line, line.len());
                    }
                }
            }
            Event::Lagged { missed } => effects.extend(self.on_lagged(missed, now)),
            Event::VoiceStart { room, from, name } => {
                if let Some(room) = self.room_mut(&room) {
                    room.people.set_talking(&from, &name, true);
                }
            }
            Event::VoiceEnd {
                room, from, name, ..
            } => {
                if let Some(room) = self.room_mut(&room) {
                    room.people.set_talking(&from, &name, false);
                }
            }
            // `hark-node ctl ptt …` through the control socket keys our microphone.
            Event::Ptt { room, action } => {
                let action = self.ptt.remote(&room, action == "start");
                effects.extend(self.ptt_action(action, now));
            }
            // Events this client does not show (`voice_sent` answers a WAV the UI never sends).
            _ => {}
        }
        effects
    }

    #[allow(clippy::too_many_arguments)]
    fn on_message(
        &mut self,
        room: &str,
        id: String,
        from: String,
        name: String,
        ts: u64,
        kind: &str,
        text: String,
        now: Now,
        effects: &mut Vec<Effect>,
    ) {
        // A direct message opens its room in the sidebar (the node says `joined` first, but
        // a client that attached later has not heard that).
        if room.starts_with('@') && self.room_index(room).is_none() {
            self.ensure_room(room);
            effects.push(self.rooms_to_save());
        }
        let Some(index) = self.room_index(room) else {
            tracing::debug!(room, "message for a room not in the sidebar");
            return;
        };
        let kind = MessageKind::parse(kind);
        let own = self.me.as_ref().is_some_and(|m| m.peer_id == from);
        let mention = !own && mentions(&text, self.my_name());
        let who = display_name(&name, &from);
        let in_view = index == self.current;
        if self.note_name(&from, &name) {
            self.refresh_marks();
        }
        let mark = self.identities.mark(&from, &name);
        let room_state = &mut self.rooms[index];
        let added = room_state.timeline.insert(Entry {
            key: EntryKey { ts, id },
            body: EntryBody::Message(ChatMessage {
                from: from.clone(),
                name: name.clone(),
                kind,
                text: text.clone(),
                mention,
                own,
                mark,
            }),
        });
        if !added {
            return;
        }
        room_state.people.spoke(&from, &name, ts);
        if own {
            return;
        }
        // A direct message is for us: it counts (and rings) like a mention.
        let direct = room.starts_with('@');
        if !in_view {
            room_state.unread += 1;
            if mention || direct || kind == MessageKind::Alert {
                room_state.mentions += 1;
            }
        }
        if kind == MessageKind::Alert {
            effects.push(Effect::Bell);
            if now.wall_ms.saturating_sub(ts) < ALERT_FRESH_MS {
                self.alert = Some(AlertBanner {
                    room: room.to_owned(),
                    who,
                    text,
                    since: now.at,
                });
            }
        } else if (mention || direct) && !in_view {
            effects.push(Effect::Bell);
        }
    }

    /// The node dropped `missed` events because we fell behind. Typing and presence go stale
    /// soon anyway; messages are stored, so every room reloads its history, merged by id, so
    /// nothing missed stays off the screen and nothing shown appears twice.
    fn on_lagged(&mut self, missed: u64, now: Now) -> Vec<Effect> {
        let missed = usize::try_from(missed).unwrap_or(usize::MAX);
        let mut reload = Vec::new();
        for room in &mut self.rooms {
            // Its first history answer is still to come, and will hold what was missed.
            if !room.confirmed {
                continue;
            }
            // The newest `limit` messages must reach back past the oldest one shown: at most
            // what is shown plus everything missed (every missed event may be a message here).
            room.history_limit = room
                .timeline
                .len()
                .saturating_add(missed)
                .max(room.history_limit)
                .min(HISTORY_MAX);
            reload.push((room.name.clone(), room.history_limit));
        }
        let here = self.current;
        self.notice(
            here,
            format!("fell behind the node ({missed} events missed): reloading history"),
            NoticeLevel::Info,
            now,
        );
        reload
            .into_iter()
            .map(|(room, limit)| self.request_history(room, limit, HistoryReason::Lagged))
            .collect()
    }

    fn on_error(&mut self, answered: Option<Request>, code: &str, detail: &str, now: Now) {
        match answered {
            Some(Request::History {
                room,
                reason: HistoryReason::Startup,
            }) if code == "not_joined" => {
                // Remembered from the last run, but the node is no longer in it.
                if let Some(index) = self.room_index(&room) {
                    self.rooms.remove(index);
                    if self.current >= self.rooms.len() {
                        self.current = self.rooms.len().saturating_sub(1);
                    }
                }
            }
            Some(Request::Invite { room, quiet: true }) => {
                if code == "public_room" {
                    if let Some(room) = self.room_mut(&room) {
                        room.private = Some(false);
                    }
                }
            }
            Some(Request::Send { .. }) => {
                self.set_hint(format!("not sent: {detail}"), true, now.at)
            }
            _ => self.set_hint(detail.to_owned(), true, now.at),
        }
    }

    fn add_own_message(
        &mut self,
        room: &str,
        id: String,
        kind: MessageKind,
        text: String,
        now: Now,
    ) {
        let Some(me) = self.me.clone() else { return };
        let mark = self.identities.mark(&me.peer_id, &me.name);
        let Some(room_state) = self.room_mut(room) else {
            return;
        };
        // The node stamps our message after everything it has seen, so it sorts last here too.
        let ts = now
            .wall_ms
            .max(room_state.timeline.newest_ts().unwrap_or(0));
        room_state.timeline.insert(Entry {
            key: EntryKey { ts, id },
            body: EntryBody::Message(ChatMessage {
                from: me.peer_id.clone(),
                name: me.name.clone(),
                kind,
                text,
                mention: false,
                own: true,
                mark,
            }),
        });
    }

    fn merge_history(&mut self, room: &str, messages: Vec<HistoryMessage>) {
        let my_name = self.my_name().to_owned();
        let my_id = self
            .me
            .as_ref()
            .map(|m| m.peer_id.clone())
            .unwrap_or_default();
        let Some(room_state) = self.room_mut(room) else {
            return;
        };
        room_state.history_complete = messages.len() < room_state.history_limit;
        room_state.confirmed = true;
        for message in messages {
            let entry = history_entry(message, &my_id, &my_name);
            if let EntryBody::Message(m) = &entry.body {
                room_state.people.spoke(&m.from, &m.name, entry.key.ts);
            }
            // Already-shown messages are skipped: history never counts as unread.
            room_state.timeline.insert(entry);
        }
        let authors: Vec<(String, String)> = room_state
            .timeline
            .messages_mut()
            .map(|m| (m.from.clone(), m.name.clone()))
            .collect();
        for (from, name) in authors {
            self.note_name(&from, &name);
        }
        self.refresh_marks();
    }

    /// `peer_id` uses `name`; true when another key already used it (marks may change).
    fn note_name(&mut self, peer_id: &str, name: &str) -> bool {
        let clash = self.identities.note(peer_id, name);
        if clash {
            self.refresh_marks();
        }
        clash
    }

    /// Set the mark beside every message's author anew (verified, or a shared name).
    fn refresh_marks(&mut self) {
        let identities = &self.identities;
        for room in &mut self.rooms {
            for message in room.timeline.messages_mut() {
                message.mark = identities.mark(&message.from, &message.name);
            }
        }
    }

    /// The mark to show after a person's name (people list, messages).
    pub fn mark(&self, peer_id: &str, name: &str) -> IdMark {
        self.identities.mark(peer_id, name)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_safety_number(
        &mut self,
        answered: Option<Request>,
        peer: String,
        name: String,
        number: String,
        verified: bool,
        same_name: Vec<String>,
        now: Now,
    ) {
        let was = self.identities.is_verified(&peer);
        self.identities.set_verified(&peer, verified);
        self.note_name(&peer, &name);
        self.refresh_marks();
        let who = display_name(if name.is_empty() { "?" } else { &name }, &peer);
        let here = self.current;
        match answered {
            Some(Request::Verify {
                step: VerifyStep::Show,
            })
            | None => {
                self.overlay = Some(Overlay::Safety {
                    peer,
                    name,
                    number,
                    verified,
                    same_name,
                });
            }
            Some(_) if verified && !was => {
                self.notice(
                    here,
                    format!("{who} is marked verified ✓"),
                    NoticeLevel::Info,
                    now,
                );
            }
            Some(_) if !verified && was => {
                self.notice(
                    here,
                    format!("{who} is no longer marked verified"),
                    NoticeLevel::Info,
                    now,
                );
            }
            Some(_) => {
                let state = if verified { "already" } else { "was not" };
                self.set_hint(format!("{who} {state} marked verified"), false, now.at);
            }
        }
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

    /// `/msg NICK TEXT`: opens (and shows) the room `@PEER` and sends the line there.
    fn direct_message(&mut self, who: &str, text: String, now: Now) -> Vec<Effect> {
        let Some(peer) = self.resolve_nick(who, "/msg", now) else {
            return Vec::new();
        };
        // Not a name heard here: only a whole peer id will do (the room is named after it).
        let known = self.identities.name_of(&peer).is_some();
        let looks_like_id = peer.len() > 40 && peer.chars().all(|c| c.is_ascii_alphanumeric());
        if !known && !looks_like_id {
            self.set_hint(
                format!("no one called {who} heard yet: /msg takes a name seen here or a peer id"),
                true,
                now.at,
            );
            return Vec::new();
        }
        let room = format!("@{peer}");
        let index = self.ensure_room(&room);
        self.switch_to(index);
        self.follow_current();
        vec![self.send(
            Command::Dm {
                to: peer,
                text: text.clone(),
            },
            Some(Request::Send {
                room,
                kind: MessageKind::Text,
                text,
            }),
        )]
    }

    /// The peer id a typed name means (`bob`, `bob#a1c2`), among every key heard; what was
    /// typed when no one is known by it (a peer id, or a name the node may know); `None`
    /// (with a hint) when several keys share the name.
    fn resolve_nick(&mut self, who: &str, command: &str, now: Now) -> Option<String> {
        let who = who.trim_start_matches('@');
        let (name, short) = match who.split_once('#') {
            Some((name, short)) => (name, Some(short)),
            None => (who, None),
        };
        let keys: Vec<String> = self
            .identities
            .keys_named(name)
            .into_iter()
            .filter(|k| short.is_none_or(|s| k.ends_with(s)))
            .collect();
        match &keys[..] {
            [one] => Some(one.clone()),
            [] => Some(who.to_owned()),
            several => {
                let ids: Vec<String> = several.iter().map(|k| display_name(name, k)).collect();
                self.set_hint(
                    format!(
                        "several keys use the name {name}: {} (add the #id: {command} {name}#…)",
                        ids.join(", ")
                    ),
                    true,
                    now.at,
                );
                None
            }
        }
    }

    /// The peer `/verify` means: a name (or `name#abcd`) heard here, else what was typed, for
    /// the node to resolve (a peer id, or a name it heard).
    fn verify(&mut self, who: &str, step: VerifyStep, now: Now) -> Vec<Effect> {
        let (name, short) = match who.split_once('#') {
            Some((name, short)) => (name, Some(short)),
            None => (who, None),
        };
        let keys: Vec<String> = self
            .identities
            .keys_named(name)
            .into_iter()
            .filter(|k| short.is_none_or(|s| k.ends_with(s)))
            .collect();
        let peer = match &keys[..] {
            [one] => one.clone(),
            [] => who.to_owned(),
            several => {
                let ids: Vec<String> = several.iter().map(|k| display_name(name, k)).collect();
                self.set_hint(
                    format!(
                        "several keys use the name {name}: {} (add the #id)",
                        ids.join(", ")
                    ),
                    true,
                    now.at,
                );
                return Vec::new();
            }
        };
        let confirm = match step {
            VerifyStep::Show => None,
            VerifyStep::Confirm => Some(true),
            VerifyStep::Revoke => Some(false),
        };
        vec![self.send(
            Command::Verify { peer, confirm },
            Some(Request::Verify { step }),
        )]
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

    // ----- keys -----

    pub fn on_paste(&mut self, text: &str, now: Now) -> Vec<Effect> {
        self.completion = None;
        self.input.insert_str(text);
        self.typed(now).into_iter().collect()
    }

    pub fn on_action(&mut self, action: Action, now: Now) -> Vec<Effect> {
        if action != Action::Complete {
            self.completion = None;
        }
        let mut effects = Vec::new();
        match action {
            Action::Insert(c) => {
                self.input.insert_char(c);
                effects.extend(self.typed(now));
            }
            Action::Backspace => self.input.backspace(),
            Action::Delete => self.input.delete(),
            Action::Left => self.input.left(),
            Action::Right => self.input.right(),
            Action::WordLeft => self.input.word_left(),
            Action::WordRight => self.input.word_right(),
            Action::LineStart => self.input.home(),
            Action::LineEnd => self.input.end(),
            Action::DeleteWordLeft => self.input.delete_word_left(),
            Action::DeleteWordRight => self.input.delete_word_right(),
            Action::DeleteToSpaceLeft => self.input.delete_to_space_left(),
            Action::DeleteToStart => self.input.delete_to_start(),
            Action::DeleteToEnd => self.input.delete_to_end(),
            Action::HistoryBack => self.input.history_back(),
            Action::HistoryForward => self.input.history_forward(),
            Action::Complete => self.complete(),
            Action::Submit => {
                if self.overlay.is_some() && self.input.is_empty() {
                    self.overlay = None;
                } else {
                    effects.extend(self.submit(now));
                }
            }
            Action::PageUp => effects.extend(self.page_up()),
            Action::PageDown => self.page_down(),
            Action::ScrollTop => effects.extend(self.scroll_top()),
            Action::ScrollBottom => self.follow_current(),
            Action::NextRoom => {
                let next = (self.current + 1) % self.rooms.len().max(1);
                self.switch_to(next);
            }
            Action::PrevRoom => {
                let count = self.rooms.len().max(1);
                self.switch_to((self.current + count - 1) % count);
            }
            Action::GoToRoom(index) => {
                if index < self.rooms.len() {
                    self.switch_to(index);
                } else {
                    self.set_hint(format!("no room {}", index + 1), false, now.at);
                }
            }
            Action::Help => {
                self.overlay = match self.overlay {
                    Some(Overlay::Help) => None,
                    _ => Some(Overlay::Help),
                };
            }
            Action::PttPress => {
                let room = self
                    .current_room()
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                let action = self.ptt.pressed(&room);
                effects.extend(self.ptt_action(action, now));
            }
            Action::PttRelease => {
                let action = self.ptt.released();
                effects.extend(self.ptt_action(action, now));
            }
            Action::Escape => {
                if self.overlay.is_some() {
                    self.overlay = None;
                } else if self.alert.is_some() {
                    self.alert = None;
                } else {
                    self.hint = None;
                }
            }
            Action::Quit => effects.push(Effect::Quit),
            Action::Redraw => {}
        }
        effects
    }

    /// `/mute NICK` / `/unmute NICK`: NICK is a name in this room, or `name#abcd` (the last
    /// four characters of the peer id) when several people share the name.
    fn mute(&mut self, who: &str, muted: bool, now: Now) -> Vec<Effect> {
        let (name, short) = match who.split_once('#') {
            Some((name, short)) => (name, Some(short)),
            None => (who, None),
        };
        let matches: Vec<(String, String)> = self
            .current_room()
            .map(|room| {
                room.people
                    .sorted(&|_| true)
                    .into_iter()
                    .filter(|p| p.name.eq_ignore_ascii_case(name))
                    .filter(|p| short.is_none_or(|s| p.peer_id.ends_with(s)))
                    .map(|p| (p.peer_id.clone(), p.name.clone()))
                    .collect()
            })
            .unwrap_or_default();
        match &matches[..] {
            [] => {
                self.set_hint(format!("no one called {who} in this room"), true, now.at);
                Vec::new()
            }
            [(peer_id, name)] => {
                let short = &peer_id[peer_id.len().saturating_sub(4)..];
                let what = if muted { "muted" } else { "unmuted" };
                let here = self.current;
                self.notice(
                    here,
                    format!("{what} {name}#{short}"),
                    NoticeLevel::Info,
                    now,
                );
                vec![Effect::Mute {
                    peer_id: peer_id.clone(),
                    muted,
                }]
            }
            _ => {
                self.set_hint(
                    format!(
                        "several people are called {who}: add their #id, as in /mute {who}#3f9a"
                    ),
                    true,
                    now.at,
                );
                Vec::new()
            }
        }
    }

    fn ptt_action(&mut self, action: PttAction, now: Now) -> Option<Effect> {
        match action {
            PttAction::None => None,
            PttAction::Unavailable(reason) => {
                if !self.told_no_voice {
                    self.told_no_voice = true;
                    let here = self.current;
                    self.notice(here, reason.clone(), NoticeLevel::Error, now);
                }
                self.set_hint(reason, true, now.at);
                None
            }
            action => Some(Effect::Talk(action)),
        }
    }

    /// The user typed into the line: tell the room, at most every 2 s, unless it is a command.
    fn typed(&mut self, now: Now) -> Option<Effect> {
        if self.input.text().starts_with('/') || self.input.text().trim().is_empty() {
            return None;
        }
        let room = self.rooms.get_mut(self.current)?;
        if !room.confirmed
            || room
                .last_typing_sent
                .is_some_and(|at| now.at.duration_since(at) < TYPING_EVERY)
        {
            return None;
        }
        room.last_typing_sent = Some(now.at);
        Some(Effect::Node(Command::Typing {
            room: room.name.clone(),
        }))
    }

    fn complete(&mut self) {
        if let Some(completion) = &mut self.completion {
            completion.index = (completion.index + 1) % completion.candidates.len();
            let (start, choice) = (
                completion.start,
                completion.candidates[completion.index].clone(),
            );
            self.input.replace_before_cursor(start, &choice);
            return;
        }
        let (start, word) = self.input.word_before_cursor();
        let word = word.to_owned();
        let command = self.input.text()[..start].trim_end().to_lowercase();
        let candidates: Vec<String> = if start == 0 && word.starts_with('/') {
            commands::complete(&word[1..])
                .into_iter()
                .map(|c| format!("{c} "))
                .collect()
        } else if commands::takes_room(&command) {
            // The argument of /join, /leave, /invite: the rooms in the sidebar.
            let prefix = word.trim_start_matches('#').to_lowercase();
            self.rooms
                .iter()
                .map(|room| room.name.clone())
                .filter(|name| name.starts_with(&prefix))
                .collect()
        } else {
            let (at, prefix) = match word.strip_prefix('@') {
                Some(rest) => ("@", rest),
                None => ("", word.as_str()),
            };
            let prefix = prefix.to_lowercase();
            let suffix = if start == 0 { ": " } else { " " };
            let my_name = self.my_name().to_owned();
            self.current_room()
                .map(|room| room.people.completion_names())
                .unwrap_or_default()
                .into_iter()
                .filter(|name| *name != my_name && name.to_lowercase().starts_with(&prefix))
                .map(|name| format!("{at}{name}{suffix}"))
                .collect()
        };
        if candidates.is_empty() {
            return;
        }
        self.input.replace_before_cursor(start, &candidates[0]);
        self.completion = Some(Completion {
            start,
            candidates,
            index: 0,
        });
    }

    /// Enter: the line becomes a command for the node, or a hint. A line that fails is never
    /// lost: it stays in the input (a hint), or comes back when the node refuses it.
    fn submit(&mut self, now: Now) -> Vec<Effect> {
        let line = self.input.submit();
        self.hint = None;
        let queued = self.replies.len();
        let effects = self.submit_line(&line, now);
        if self.replies.len() > queued {
            self.replies.typed_for_newest(line);
        } else if self.hint.as_ref().is_some_and(|h| h.error) && self.input.is_empty() {
            self.input.set(&line, line.len());
        }
        effects
    }

    fn submit_line(&mut self, line: &str, now: Now) -> Vec<Effect> {
        let parsed = match commands::parse(line) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                if !line.is_empty() {
                    self.set_hint("nothing sent: the line is blank", false, now.at);
                }
                return Vec::new();
            }
            Err(hint) => {
                self.set_hint(hint, true, now.at);
                return Vec::new();
            }
        };
        let here = self.current_room().map(|r| r.name.clone());
        let need_room = |this: &mut Self| -> Option<String> {
            if here.is_none() {
                this.set_hint("not in any room: /join lobby", true, now.at);
            }
            here.clone()
        };
        let say = |this: &mut Self, kind: MessageKind, text: String| -> Vec<Effect> {
            let Some(room) = need_room(this) else {
                return Vec::new();
            };
            this.follow_current();
            if let Some(r) = this.rooms.get_mut(this.current) {
                // A sent line ends our typing: the next keystroke may announce typing again.
                r.last_typing_sent = None;
            }
            let command = match kind {
                MessageKind::Text => Command::Send {
                    room: room.clone(),
                    text: text.clone(),
                },
                MessageKind::Me => Command::Me {
                    room: room.clone(),
                    text: text.clone(),
                },
                MessageKind::Alert => Command::Alert {
                    room: room.clone(),
                    text: text.clone(),
                },
            };
            vec![this.send(command, Some(Request::Send { room, kind, text }))]
        };
        match parsed {
            Submitted::Say(text) => say(self, MessageKind::Text, text),
            Submitted::Command(command) => match command {
                UiCommand::Me(text) => say(self, MessageKind::Me, text),
                UiCommand::Alert(text) => say(self, MessageKind::Alert, text),
                UiCommand::Join(target) => {
                    // The node tells a name from an invite (also one without its `hark:`).
                    let join = Command::Join {
                        room: Some(target),
                        invite: None,
                    };
                    vec![self.send(join, Some(Request::Join))]
                }
                UiCommand::Create(room) => {
                    vec![self.send(Command::Create { room }, Some(Request::Create))]
                }
                UiCommand::Invite(room) => match room.or_else(|| need_room(self)) {
                    Some(room) => vec![self.send(
                        Command::Invite { room: room.clone() },
                        Some(Request::Invite { room, quiet: false }),
                    )],
                    None => Vec::new(),
                },
                UiCommand::Leave(room) => match room.or_else(|| need_room(self)) {
                    Some(room) => vec![self.send(Command::Leave { room }, Some(Request::Leave))],
                    None => Vec::new(),
                },
                UiCommand::Nick(name) => {
                    vec![self.send(Command::Nick { name }, Some(Request::Nick))]
                }
                UiCommand::Peers => vec![self.send(Command::Peers, Some(Request::Peers))],
                UiCommand::Search(text) => match need_room(self) {
                    Some(room) => vec![self.send(
                        Command::Search {
                            room,
                            text,
                            limit: Some(SEARCH_LIMIT),
                        },
                        Some(Request::Search),
                    )],
                    None => Vec::new(),
                },
                UiCommand::Mute(who, muted) => self.mute(&who, muted, now),
                UiCommand::Verify(who, step) => self.verify(&who, step, now),
                UiCommand::Msg(who, text) => self.direct_message(&who, text, now),
                UiCommand::WebInvite(name) => {
                    if self.serves_web {
                        vec![Effect::WebInvite { name }]
                    } else {
                        self.set_hint(NO_WEB, false, now.at);
                        Vec::new()
                    }
                }
                UiCommand::Help => {
                    self.overlay = Some(Overlay::Help);
                    Vec::new()
                }
                UiCommand::Quit => vec![Effect::Quit],
            },
        }
    }

    // ----- scrolling -----

    /// The message pane's inner size (columns, rows) at the current terminal size.
    pub fn pane_size(&self) -> (usize, usize) {
        let areas = layout::areas(self.size);
        let inner = layout::inner(areas.messages);
        (inner.width as usize, inner.height as usize)
    }

    fn heights(&self) -> impl Fn(usize) -> usize + '_ {
        let (width, _) = self.pane_size();
        let room = self.current_room();
        move |i: usize| {
            room.map_or(1, |room| {
                let entries = room.timeline.entries();
                let previous = i.checked_sub(1).map(|p| &entries[p]);
                entry_lines(&entries[i], previous, width, &self.clock).len()
            })
        }
    }

    fn page_up(&mut self) -> Option<Effect> {
        let (_, height) = self.pane_size();
        let page = height.saturating_sub(2).max(1);
        let heights: Vec<usize> = self.all_heights();
        let room = self.rooms.get_mut(self.current)?;
        room.timeline.scroll_up(page, height, &|i| heights[i]);
        self.more_history_if_at_top(height, &heights)
    }

    fn page_down(&mut self) {
        let (_, height) = self.pane_size();
        let page = height.saturating_sub(2).max(1);
        let heights: Vec<usize> = self.all_heights();
        if let Some(room) = self.rooms.get_mut(self.current) {
            room.timeline.scroll_down(page, &|i| heights[i]);
        }
    }

    fn scroll_top(&mut self) -> Option<Effect> {
        let (_, height) = self.pane_size();
        let heights: Vec<usize> = self.all_heights();
        let room = self.rooms.get_mut(self.current)?;
        room.timeline.scroll_to_top(height, &|i| heights[i]);
        self.more_history_if_at_top(height, &heights)
    }

    /// Every entry's height in the current room. Scrolling is rare next to drawing, and the
    /// node caps a room's loaded history, so measuring all of them is affordable.
    fn all_heights(&self) -> Vec<usize> {
        let len = self.current_room().map_or(0, |r| r.timeline.len());
        let height = self.heights();
        (0..len).map(height).collect()
    }

    /// At the top of what is loaded: ask the node for a bigger page (it merges in place).
    fn more_history_if_at_top(&mut self, view_height: usize, heights: &[usize]) -> Option<Effect> {
        let room = self.rooms.get_mut(self.current)?;
        if room.history_complete
            || room.history_limit >= HISTORY_MAX
            || !room.timeline.at_top(view_height, &|i| heights[i])
        {
            return None;
        }
        room.history_limit = (room.history_limit * 4).min(HISTORY_MAX);
        let (name, limit) = (room.name.clone(), room.history_limit);
        Some(self.request_history(name, limit, HistoryReason::More))
    }

    // ----- time -----

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

/// A stored message as a timeline entry.
fn history_entry(m: HistoryMessage, my_id: &str, my_name: &str) -> Entry {
    let own = m.from == my_id;
    let mention = !own && mentions(&m.text, my_name);
    Entry {
        key: EntryKey { ts: m.ts, id: m.id },
        body: EntryBody::Message(ChatMessage {
            from: m.from,
            name: m.name,
            kind: MessageKind::parse(&m.kind),
            text: m.text,
            mention,
            own,
            mark: IdMark::None,
        }),
    }
}
