//! Reacting to the node: each [`Event`] updates rooms, people, overlays and hints, and may
//! answer with [`Effect`]s (history requests, the bell, a copy).

use hark_node::{Command, Event};

use super::history::history_entry;
use super::{AlertBanner, App, Effect, Me, Now, Overlay, HEARD_PRESENT_FOR, HISTORY_PAGE};
use crate::replies::{HistoryReason, Request};
use crate::style::{display_name, mentions};
use crate::timeline::{
    ChatMessage, Delivery, Entry, EntryBody, EntryKey, MessageKind, NoticeLevel,
};

/// Alerts older than this (arriving late by sync) are listed, not flashed.
const ALERT_FRESH_MS: u64 = 10 * 60 * 1000;

impl App {
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
            Event::Delivered {
                room,
                id,
                peers,
                members,
                members_holding,
            } => {
                if let Some(message) = self
                    .room_mut(&room)
                    .and_then(|r| r.timeline.message_mut(&id))
                {
                    message.delivery = Some(Delivery {
                        holders: peers.len(),
                        members_holding,
                        members,
                    });
                }
            }
            Event::PeerConnected { peer_id } => {
                self.connected.insert(peer_id.clone());
                self.syncing.insert(peer_id, now.at);
            }
            Event::PeerDisconnected { peer_id } => {
                self.connected.remove(&peer_id);
                // Its connection closed: absent until heard again (through another node).
                self.heard.remove(&peer_id);
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
                tick,
                kind,
                text,
            } => self.on_message(
                &room,
                id,
                from,
                name,
                (ts, tick),
                &kind,
                text,
                now,
                &mut effects,
            ),
            Event::Typing { room, from, name }
                if self.me.as_ref().is_none_or(|m| m.peer_id != from) =>
            {
                if let Some(room) = self.room_mut(&room) {
                    room.people.typing(&from, &name, now.at);
                }
                self.heard_now(&from, now.at);
                self.note_name(&from, &name);
            }
            Event::Presence { room, from, name } => {
                if let Some(room) = self.room_mut(&room) {
                    room.people.seen(&from, &name);
                }
                self.heard_now(&from, now.at);
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
            Event::Kicked { room, peer, by } => self.on_kicked(&room, &peer, &by, now),
            Event::Epoch { room, epoch } => {
                effects.push(self.members_quietly(room.clone()));
                if let Some(index) = self.room_index(&room) {
                    let text = format!(
                        "{room} moved to a new key (epoch {epoch}): who was kicked reads nothing from here on"
                    );
                    self.notice(index, text, NoticeLevel::Info, now);
                }
            }
            Event::Members {
                room,
                owner,
                admins,
                members,
                epoch,
                kicked,
            } => {
                if let Some(r) = self.room_mut(&room) {
                    r.people.set_roles(&owner, &admins, &kicked);
                }
                if matches!(answered, Some(Request::Members { quiet: false })) {
                    self.on_members(&room, &owner, &admins, &members, epoch, &kicked, now);
                }
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
        (ts, tick): (u64, u16),
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
        // Written just now (not a catch-up's old message): they are here. A web user sends
        // no presence, only messages.
        if !own && now.wall_ms.abs_diff(ts) < HEARD_PRESENT_FOR.as_millis() as u64 {
            self.heard_now(&from, now.at);
        }
        let room_state = &mut self.rooms[index];
        let added = room_state.timeline.insert(Entry {
            key: EntryKey { ts, tick, id },
            body: EntryBody::Message(ChatMessage {
                from: from.clone(),
                name: name.clone(),
                kind,
                text: text.clone(),
                mention,
                own,
                mark,
                // Ours, sent by another client of this node: the node follows it too.
                delivery: own.then(Delivery::default),
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
            // After anything of the same millisecond, as the node's clock puts it.
            key: EntryKey {
                ts,
                tick: u16::MAX,
                id,
            },
            body: EntryBody::Message(ChatMessage {
                from: me.peer_id.clone(),
                name: me.name.clone(),
                kind,
                text,
                mention: false,
                own: true,
                mark,
                delivery: Some(Delivery::default()),
            }),
        });
    }
}
