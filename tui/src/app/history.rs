//! Stored messages: asking the node for a room's history, merging the answer in place,
//! and reloading every room after the node says we lagged.

use hark_node::{Command, HistoryMessage};

use super::{App, Effect, Now, HISTORY_MAX};
use crate::identities::IdMark;
use crate::replies::{HistoryReason, Request};
use crate::style::mentions;
use crate::timeline::{ChatMessage, Entry, EntryBody, EntryKey, MessageKind, NoticeLevel};

impl App {
    /// Ask for a room's newest `limit` stored messages; the answer is merged in place.
    pub(super) fn request_history(
        &mut self,
        room: String,
        limit: usize,
        reason: HistoryReason,
    ) -> Effect {
        self.send(
            Command::History {
                room: room.clone(),
                limit: Some(limit),
                before: None,
            },
            Some(Request::History { room, reason }),
        )
    }

    /// The node dropped `missed` events because we fell behind. Typing and presence go stale
    /// soon anyway; messages are stored, so every room reloads its history, merged by id, so
    /// nothing missed stays off the screen and nothing shown appears twice.
    pub(super) fn on_lagged(&mut self, missed: u64, now: Now) -> Vec<Effect> {
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

    pub(super) fn merge_history(&mut self, room: &str, messages: Vec<HistoryMessage>) {
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
}

/// A stored message as a timeline entry.
pub(super) fn history_entry(m: HistoryMessage, my_id: &str, my_name: &str) -> Entry {
    let own = m.from == my_id;
    let mention = !own && mentions(&m.text, my_name);
    Entry {
        key: EntryKey {
            ts: m.ts,
            tick: m.tick,
            id: m.id,
        },
        body: EntryBody::Message(ChatMessage {
            from: m.from,
            name: m.name,
            kind: MessageKind::parse(&m.kind),
            text: m.text,
            mention,
            own,
            mark: IdMark::None,
            // Who holds it was not kept; the node follows only what it sends from now on.
            delivery: None,
        }),
    }
}
