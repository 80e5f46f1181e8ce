//! Gossip messages shown at once and stored together.
//!
//! A gossip change that carries one well-formed message is forwarded, shown and counted at
//! once, but its document and the store take it in with the next ones. The shard applies what
//! it holds back before any read of its document; the room stores what it holds (records and
//! the changes its documents took in) in its next store transaction, and at the latest within
//! [`SAVE_HELD_EVERY`] (at the next instant of the node's own save grid, [`until_next_save`]),
//! at [`MAX_HELD`] held changes, before a sync session starts (a completed
//! session tells the peer we hold what it has: delivery marks), before `history` or `search`
//! read the store, and when the node quits. Automerge 0.12 pays for each apply in proportion to
//! the document, and SQLite for each commit: a busy room paid both per message
//! (docs/performance.md, "Issue 11, fifth pass").
//!
//! What is held is what a node received from peers, which sync brings again if it is lost: a
//! crash of the process loses at most the last [`SAVE_HELD_EVERY`] of it (the restarted node
//! shows it once more when it comes back), and a failed store transaction loses the held
//! messages it carried (they are not shown again in this run). What we send is never held: it
//! is durable before `sent`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hark_proto::{MessageId, Topic};

use super::history::{check_authorship, message_event};
use super::{Engine, Storage, Timer};
use crate::history::Added;
use crate::store::StoredMessage;

/// Held messages are stored at most this long after the first of them arrived: at the next
/// instant of the node's save grid ([`until_next_save`]). Each save costs Automerge in
/// proportion to the day's document and SQLite a commit, whatever it carries: 3 s rather than
/// 1 s made a fan-out node's CPU per message 0.93× in the bench's small documents, and a busy
/// day's document (5 000 messages, ≈ 0.9 ms per apply) pays a third as often
/// (docs/performance.md, "thirteenth pass"). What it costs is in the module's header.
pub(super) const SAVE_HELD_EVERY: Duration = Duration::from_secs(3);
/// Held changes of one room stored at once, at most.
const MAX_HELD: usize = crate::history::MAX_PENDING;
/// Ids of shown messages whose store failed, remembered at most (a store failing for long
/// would otherwise grow it with every message received).
const MAX_LOST: usize = 65_536;

/// A room's messages shown but not yet stored.
#[derive(Default)]
pub struct Held {
    /// Their records, by shard (the change bytes wait in the shard's document).
    chunks: Vec<Added>,
    ids: HashSet<MessageId>,
    /// Shown, but the transaction that was to store them failed: never shown again in this
    /// run, whatever brings them back (bounded by [`MAX_LOST`]).
    lost: HashSet<MessageId>,
    /// A [`Timer::SaveHeld`] is set.
    armed: bool,
}

/// How long from `now` to the next instant of a save grid: `grid` and every
/// [`SAVE_HELD_EVERY`] before and after it; never zero, at most [`SAVE_HELD_EVERY`].
///
/// Each node's grid has a random phase. Every node of a room gets a gossip message within a
/// few milliseconds of the others, so with a plain "one second after the first held message"
/// they all stored (Automerge apply, SQLite transaction, then the flusher's checkpoint) in the
/// same few milliseconds, and on one machine (the fan-out bench's 50 nodes on two cores, a
/// host running several nodes) the message that came then waited behind all of it: one
/// message a second late at every node (docs/performance.md, "eleventh pass").
pub(super) fn until_next_save(now: Instant, grid: Instant) -> Duration {
    let every = SAVE_HELD_EVERY.as_nanos();
    let until = match grid.checked_duration_since(now) {
        Some(ahead) => ahead.as_nanos() % every,
        None => (every - now.duration_since(grid).as_nanos() % every) % every,
    };
    match until {
        0 => SAVE_HELD_EVERY,
        n => Duration::from_nanos(n as u64),
    }
}

impl Held {
    /// Messages shown and not stored yet.
    pub(super) fn count(&self) -> usize {
        self.ids.len()
    }

    /// Shown messages whose store failed: not to be shown again (at most [`MAX_LOST`]).
    fn remember_lost(&mut self, ids: impl ExactSizeIterator<Item = MessageId>) {
        if self.lost.len() + ids.len() > MAX_LOST {
            self.lost.clear();
        }
        self.lost.extend(ids.take(MAX_LOST));
    }
}

impl<S: Storage> Engine<S> {
    /// Show what a held-back gossip change carries (the change itself waits in its shard, see
    /// [`crate::history::Applied::Deferred`]): checked as [`take_in`](Self::take_in) checks,
    /// each id shown once across held, stored and later arrivals (short of an author that puts
    /// its own id in two changes, see [`stored`](Self::stored)).
    pub(super) fn show_held(&mut self, topic: &Topic, mut added: Added, straight_from: &[u8]) {
        let forged = check_authorship(&mut added, topic.as_str(), straight_from, false);
        let mut chunks = [added];
        let room = self.sift(topic, &mut chunks, forged);
        let [mut added] = chunks;
        let mut fresh = Vec::with_capacity(added.records.len());
        for record in std::mem::take(&mut added.records) {
            let held = self.rooms.get(topic).is_some_and(|r| {
                r.held.ids.contains(&record.id) || r.held.lost.contains(&record.id)
            });
            if held || (record.author != straight_from && self.stored(topic, record.id)) {
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
        // Counted in changes, shown or not: each holds memory until stored.
        let full = state.held.chunks.len() >= MAX_HELD;
        if !state.held.armed {
            state.held.armed = true;
            let after = until_next_save(self.now.at, self.save_grid);
            self.set_timer(after, Timer::SaveHeld(topic.clone()));
        }
        if full {
            self.save_held(topic);
        }
    }

    /// Whether the store already holds message `id`: asked only of a record that someone other
    /// than its author wrapped in a change of their own (a member may copy a signed record
    /// into a new change, whose hash Automerge has not seen). A change that came straight
    /// from its record's author is new when Automerge finds it new: only the author could put
    /// the same id in a second change, and it can as well send its text twice. Asking the
    /// store for every gossip message cost ≈ 4 % of a fan-out node's CPU and two lock calls
    /// (docs/performance.md, "ninth pass").
    fn stored(&mut self, topic: &Topic, id: MessageId) -> bool {
        matches!(self.store.message_clock(topic, id), Ok(Some(_)))
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

    /// Take a room's held records (shown) and, apart, its documents' unstored changes with the
    /// records released from Automerge's queue (not shown yet, checked and sifted here), to be
    /// written first in the room's next store transaction (so that the index has them before
    /// anything else is asked whether it is new).
    pub(super) fn take_held(&mut self, topic: &Topic) -> (Vec<Added>, Vec<Added>) {
        let Some(state) = self.rooms.get_mut(topic) else {
            return (Vec::new(), Vec::new());
        };
        let mut held = std::mem::take(&mut state.held.chunks);
        held.retain(|c| !c.records.is_empty() || !c.bytes.is_empty());
        let mut unstored = match state.history.as_mut() {
            Some(history) => history.take_unstored(),
            None => Vec::new(),
        };
        if unstored.iter().any(|c| !c.records.is_empty()) {
            // They came by sync from a peer that may not be their author, then waited for
            // their dependencies: each must carry its author's signature, as any record that
            // does not come straight from its author.
            let forged = unstored
                .iter_mut()
                .map(|chunk| check_authorship(chunk, topic.as_str(), &[], true))
                .sum();
            self.sift(topic, &mut unstored, forged);
        }
        (held, unstored)
    }

    /// The transaction that took the held messages committed: `fresh`, what it found new,
    /// loses those shown before (held ids are already out; lost ones come back now).
    pub(super) fn held_stored(&mut self, topic: &Topic, fresh: &mut Vec<StoredMessage>) {
        let Some(state) = self.rooms.get_mut(topic) else {
            return;
        };
        state.held.ids.clear();
        if !state.held.lost.is_empty() {
            fresh.retain(|m| !state.held.lost.remove(&m.id));
        }
    }

    /// Catch-ups written behind ([`crate::store::Store::append_history_batch`]) whose write
    /// failed: shown, not stored. As after any failed store, the room's in-memory history and
    /// its sessions go (loaded again from what the store holds; the store refuses the room's
    /// writes until then), the room syncs again with its peers, and the messages are not
    /// shown again when sync brings them back.
    pub(super) fn hear_lost_writes(&mut self) {
        for lost in self.store.lost_writes() {
            let Some(topic) = self.rooms.keys().find(|t| t.as_str() == lost.room).cloned() else {
                continue;
            };
            let Some(state) = self.rooms.get_mut(&topic) else {
                continue;
            };
            state.held.remember_lost(lost.ids.into_iter());
            self.drop_history(&topic);
            self.spread(&topic, self.me);
        }
    }

    /// The transaction that took the held messages failed: they are not stored, but they
    /// were shown.
    pub(super) fn held_not_stored(&mut self, topic: &Topic) {
        let Some(state) = self.rooms.get_mut(topic) else {
            return;
        };
        let ids = std::mem::take(&mut state.held.ids);
        state.held.remember_lost(ids.into_iter());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(non_snake_case)]
    fn MS(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_next_save_is_the_next_instant_of_the_grid_never_now() {
        let t0 = Instant::now();
        let every = SAVE_HELD_EVERY;
        // The grid ahead of now (a node that has just started), and behind it.
        assert_eq!(until_next_save(t0, t0 + MS(300)), MS(300));
        assert_eq!(until_next_save(t0, t0 + every * 2 + MS(300)), MS(300));
        assert_eq!(
            until_next_save(t0 + every + MS(700), t0 + MS(300)),
            every - MS(400)
        );
        assert_eq!(
            until_next_save(t0 + every * 5 + MS(250), t0 + MS(300)),
            MS(50)
        );
        // On the grid: the next instant, a whole period on.
        assert_eq!(until_next_save(t0 + MS(300), t0 + MS(300)), SAVE_HELD_EVERY);
        assert_eq!(
            until_next_save(t0 + every * 4 + MS(300), t0 + MS(300)),
            SAVE_HELD_EVERY
        );
        assert_eq!(until_next_save(t0, t0 + every), SAVE_HELD_EVERY);
    }
}
