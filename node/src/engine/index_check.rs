//! A room's message index checked once against its documents.
//!
//! Builds before 2026-12-04 could store a message's change without indexing its record: a
//! change that came by sync before what it depended on waited in Automerge's queue, and when
//! gossip brought the missing change both were applied and stored, but the waiting one's
//! record was never shown nor indexed (`history/shard.rs`, `release_dequeued`, fixed). Such a
//! message is in the node's documents and every other node shows it; this node's `history`
//! and search did not. The first time a room's history is loaded, the records its documents
//! hold and the index lacks are checked as any record not straight from its author (the
//! author's signature; membership operations and a removed member's late words are sifted
//! out) and indexed, not shown: they are old. Then the room is marked checked in the store.

use hark_proto::{MessageRecord, Topic};

use super::history::check_authorship;
use super::{Engine, Storage};
use crate::history::Added;

impl<S: Storage> Engine<S> {
    /// Run once a room's history is loaded and in place (so that sifting membership, which
    /// may use the room's history, finds it loaded). Marks the room checked only when every
    /// shard was read and what it lacked is durably indexed; otherwise the next load tries
    /// again.
    pub(super) fn index_what_the_documents_hold(&mut self, topic: &Topic) {
        if !matches!(self.store.index_checked(topic), Ok(false)) {
            return;
        }
        let began = std::time::Instant::now();
        let room = self.room_name(topic);
        let Some(documents) = self.every_record(topic) else {
            return;
        };
        let total = documents
            .iter()
            .map(|(_, records)| records.len())
            .sum::<usize>();
        let mut missing = Vec::new();
        for (shard, records) in documents {
            let mut lacking = Vec::new();
            for record in records {
                match self.store.message_clock(topic, record.id) {
                    Ok(Some(_)) => {}
                    Ok(None) => lacking.push(record),
                    Err(e) => {
                        tracing::warn!(room, "cannot check the room's index: {e}");
                        return;
                    }
                }
            }
            if !lacking.is_empty() {
                missing.push(Added {
                    shard,
                    records: lacking,
                    bytes: Vec::new(),
                });
            }
        }
        let mut indexed = 0;
        if !missing.is_empty() {
            let forged = missing
                .iter_mut()
                .map(|chunk| check_authorship(chunk, topic.as_str(), &[], true))
                .sum();
            self.sift(topic, &mut missing, forged);
            // Durable now, in the call (`persist`): a write behind (a big batch into an empty
            // index) could fail after the room is marked, and nothing would index these again.
            // A failure is logged there, and the room is checked again on its next load.
            match self.persist(topic, missing) {
                Ok(new) => indexed = new.len(),
                Err(_) => return,
            }
        }
        if total > 0 {
            tracing::info!(
                room,
                messages = total,
                indexed,
                ms = began.elapsed().as_millis() as u64,
                "checked the room's message index against its history (once, after an upgrade); \
                 indexed what it lacked"
            );
        }
        if let Err(e) = self.store.set_index_checked(topic) {
            tracing::warn!(room, "cannot mark the room's index checked: {e}");
        }
    }

    /// Every record of every loaded shard of the room, or None (logged) if Automerge failed
    /// on one.
    fn every_record(&mut self, topic: &Topic) -> Option<Vec<(u32, Vec<MessageRecord>)>> {
        let history = self.rooms.get_mut(topic)?.history.as_mut()?;
        let mut all = Vec::new();
        for shard in history.shard_ids() {
            let Some(doc) = history.shard_mut(shard) else {
                continue;
            };
            match doc.all_records() {
                Ok(records) => all.push((shard, records)),
                Err(e) => {
                    tracing::warn!(
                        shard,
                        "cannot read the room's history to check its index: {e}"
                    );
                    return None;
                }
            }
        }
        Some(all)
    }
}
