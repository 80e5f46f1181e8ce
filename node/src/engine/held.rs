//! Gossip messages shown at once and stored together.
//!
//! A gossip change that carries one well-formed message is forwarded, shown and counted at
//! once, but its document and the store take it in with the next ones: within
//! [`SAVE_HELD_EVERY`], before any other write of the room, before any read of its documents
//! (a sync, a send), or when [`MAX_HELD`] are waiting. Automerge 0.12 pays for each apply in
//! proportion to the document, and SQLite for each commit: a busy room paid both per message
//! (docs/performance.md, "Issue 11, fifth pass").
//!
//! What is held is what a node received, which is always safe to lose: a crash loses at most
//! the last [`SAVE_HELD_EVERY`] of it, and sync brings it again (it is then shown again, once,
//! by the restarted node). What we send is never held: it is durable before `sent`.

use std::collections::HashSet;
use std::time::Duration;

use hark_proto::{MessageId, Topic};

use super::history::{check_authorship, message_event};
use super::{Engine, Storage, Timer};
use crate::history::Added;

/// Held messages are stored at most this long after the first of them arrived.
pub(super) const SAVE_HELD_EVERY: Duration = Duration::from_secs(1);
/// Held messages of one room stored at once, at most.
const MAX_HELD: usize = crate::history::MAX_PENDING;

/// A room's messages shown but not yet stored.
#[derive(Default)]
pub struct Held {
    /// Their records, by shard (the change bytes wait in the shard's document).
    chunks: Vec<Added>,
    ids: HashSet<MessageId>,
    /// A [`Timer::SaveHeld`] is set.
    armed: bool,
}

impl Held {
    fn count(&self) -> usize {
        self.ids.len()
    }
}

impl<S: Storage> Engine<S> {
    /// Show what a held-back gossip change carries (the change itself waits in its shard, see
    /// [`crate::history::Applied::Deferred`]): checked as [`take_in`](Self::take_in) checks,
    /// each id shown once across held, stored and later arrivals.
    pub(super) fn show_held(&mut self, topic: &Topic, mut added: Added, straight_from: &[u8]) {
        let forged = check_authorship(&mut added, topic.as_str(), straight_from, false);
        let mut chunks = [added];
        let room = self.sift(topic, &mut chunks, forged);
        let [mut added] = chunks;
        let mut fresh = Vec::with_capacity(added.records.len());
        for record in std::mem::take(&mut added.records) {
            let held = self
                .rooms
                .get(topic)
                .is_some_and(|r| r.held.ids.contains(&record.id));
            if held || matches!(self.store.message_clock(topic, record.id), Ok(Some(_))) {
                continue;
            }
            fresh.push(record);
        }
        let now = self.wall_ms();
        let me = self.me.to_bytes();
        for record in &fresh {
            self.clock.observe(record.hlc, now);
            if record.author == me {
                continue;
            }
            if let Some(message) = self.index_entry(record.clone()) {
                self.emit(message_event(&room, message));
            }
        }
        let Some(state) = self.rooms.get_mut(topic) else {
            return;
        };
        state.held.ids.extend(fresh.iter().map(|r| r.id));
        added.records = fresh;
        state.held.chunks.push(added);
        let full = state.held.count() >= MAX_HELD;
        if !state.held.armed {
            state.held.armed = true;
            self.set_timer(SAVE_HELD_EVERY, Timer::SaveHeld(topic.clone()));
        }
        if full {
            self.save_held(topic);
        }
    }

    /// Store a room's held messages and what its documents took in (Deferred durability, like
    /// any received history).
    pub(super) fn save_held(&mut self, topic: &Topic) {
        if let Err(e) = self.persist_received(topic, Vec::new()) {
            tracing::warn!(
                room = self.room_name(topic),
                "cannot store held messages: {e}"
            );
        }
    }

    /// The [`Timer::SaveHeld`] of a room fired.
    pub(super) fn save_held_due(&mut self, topic: &Topic) {
        if let Some(state) = self.rooms.get_mut(topic) {
            state.held.armed = false;
        }
        self.save_held(topic);
    }

    /// Store every room's held messages (the node is stopping).
    pub(super) fn save_all_held(&mut self) {
        let topics: Vec<Topic> = self.rooms.keys().cloned().collect();
        for topic in topics {
            self.save_held(&topic);
        }
    }

    /// Take a room's held records and its documents' unstored changes, to be written first in
    /// the room's next store transaction (so that the index has them before anything else is
    /// asked whether it is new).
    pub(super) fn take_held(&mut self, topic: &Topic) -> Vec<Added> {
        let Some(state) = self.rooms.get_mut(topic) else {
            return Vec::new();
        };
        let mut chunks = std::mem::take(&mut state.held.chunks);
        state.held.ids.clear();
        if let Some(history) = state.history.as_mut() {
            chunks.extend(history.take_unstored());
        }
        chunks.retain(|c| !c.records.is_empty() || !c.bytes.is_empty());
        chunks
    }
}
