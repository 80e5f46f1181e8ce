//! The engine's one port to durable state: what it reads and writes of rooms and history.
//!
//! The engine calls it synchronously on purpose: "stored before `sent`" and "a message is shown
//! the first time its id enters the index" are rules of the engine, and both need the store's
//! answer before the next step. The node's driver plugs in SQLite ([`Store`]); engine tests and
//! the simulator plug in [`MemoryStore`], which a simulated node keeps across a crash.

use std::collections::{BTreeMap, HashMap, HashSet};

use hark_proto::{Hlc, MessageId, RoomName, Topic};

pub use crate::store::Durability;
use crate::store::{LostWrite, ShardChunks, Store, StoredMessage, StoredRoom};

/// A chunk to append: a shard, its Automerge bytes (may be empty) and the messages they hold.
pub type Chunk<'a> = (u32, &'a [u8], &'a [StoredMessage]);

/// Durable state as the engine needs it. Errors are one-line reasons.
pub trait Storage {
    fn save_room(&mut self, room: &StoredRoom, now_ms: u64) -> Result<(), String>;
    fn forget_room(&mut self, name: &RoomName) -> Result<(), String>;
    /// A room's stored shards, each as its chunks in write order.
    fn history_chunks(&mut self, room: &Topic) -> Result<Vec<ShardChunks>, String>;
    /// Replace a shard's chunks with one saved document.
    fn compact_shard(&mut self, room: &Topic, shard: u32, saved: &[u8]) -> Result<(), String>;
    /// Append chunks and index their messages, all or nothing, as durable as `durability`
    /// asks. Returns, per chunk and message, whether the message was new to the index.
    fn append_history(
        &mut self,
        room: &Topic,
        chunks: &[Chunk],
        durability: Durability,
    ) -> Result<Vec<Vec<bool>>, String>;
    /// The newest `limit` messages before `before` (all when `None`), oldest first.
    fn messages(
        &mut self,
        room: &Topic,
        limit: usize,
        before: Option<MessageId>,
    ) -> Result<Vec<StoredMessage>, String>;
    fn search(
        &mut self,
        room: &Topic,
        text: &str,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, String>;
    /// Index up to `limit` stored messages for search; returns how many were indexed.
    fn index_for_search(&mut self, limit: usize) -> Result<usize, String>;
    /// The peers the user marked verified: (peer id, name when marked).
    fn verified_peers(&mut self) -> Result<Vec<(String, String)>, String>;
    /// Mark `peer` verified under `name`, or (`None`) take the mark away.
    fn set_verified(&mut self, peer: &str, name: Option<&str>, now_ms: u64) -> Result<(), String>;
    /// The membership state saved for a private room (`membership.rs`), if any.
    fn membership(&mut self, _room: &RoomName) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
    /// Save (`None`: forget) a private room's membership state, durable at once.
    fn set_membership(&mut self, _room: &RoomName, _state: Option<&[u8]>) -> Result<(), String> {
        Ok(())
    }
    /// Make every write so far durable ([`Durability::Synced`] ones included), off the
    /// caller's thread where the store can: `Some(ticket)` when the engine is to wait for
    /// [`Input::Synced`](super::Input::Synced) with it; `None` when it is durable already.
    fn request_sync(&mut self) -> Result<Option<u64>, String> {
        Ok(None)
    }
    /// Batches of received history written behind ([`Store::append_history_batch`]) whose
    /// write failed after their messages were shown; never waits.
    fn lost_writes(&mut self) -> Vec<LostWrite> {
        Vec::new()
    }
    /// The clock of a message the room holds (to page back across a room's key epochs).
    fn message_clock(&mut self, _room: &Topic, _id: MessageId) -> Result<Option<Hlc>, String> {
        Ok(None)
    }
    /// Whether the room's message index was checked against its documents, once per data dir
    /// (`Engine::index_what_the_documents_hold`).
    fn index_checked(&mut self, _room: &Topic) -> Result<bool, String> {
        Ok(true)
    }
    fn set_index_checked(&mut self, _room: &Topic) -> Result<(), String> {
        Ok(())
    }
    /// The newest `limit` messages before `(hlc, id)`, oldest first.
    fn messages_older(
        &mut self,
        _room: &Topic,
        _hlc: Hlc,
        _id: MessageId,
        _limit: usize,
    ) -> Result<Vec<StoredMessage>, String> {
        Ok(Vec::new())
    }
}

impl Storage for Store {
    fn request_sync(&mut self) -> Result<Option<u64>, String> {
        Store::request_sync(self).map_err(|e| e.to_string())
    }

    fn save_room(&mut self, room: &StoredRoom, now_ms: u64) -> Result<(), String> {
        Store::save_room(self, room, now_ms).map_err(|e| e.to_string())
    }

    fn forget_room(&mut self, name: &RoomName) -> Result<(), String> {
        Store::forget_room(self, name).map_err(|e| e.to_string())
    }

    fn history_chunks(&mut self, room: &Topic) -> Result<Vec<ShardChunks>, String> {
        Store::history_chunks(self, room.as_str()).map_err(|e| e.to_string())
    }

    fn compact_shard(&mut self, room: &Topic, shard: u32, saved: &[u8]) -> Result<(), String> {
        Store::compact_shard(self, room.as_str(), shard, saved).map_err(|e| e.to_string())
    }

    fn append_history(
        &mut self,
        room: &Topic,
        chunks: &[Chunk],
        durability: Durability,
    ) -> Result<Vec<Vec<bool>>, String> {
        self.append_history_batch(room.as_str(), chunks, durability)
            .map_err(|e| e.to_string())
    }

    fn messages(
        &mut self,
        room: &Topic,
        limit: usize,
        before: Option<MessageId>,
    ) -> Result<Vec<StoredMessage>, String> {
        match before {
            None => self.recent_messages(room.as_str(), limit),
            Some(id) => self.messages_before(room.as_str(), id, limit),
        }
        .map_err(|e| e.to_string())
    }

    fn search(
        &mut self,
        room: &Topic,
        text: &str,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, String> {
        self.search_messages(room.as_str(), text, limit)
            .map_err(|e| e.to_string())
    }

    fn index_for_search(&mut self, limit: usize) -> Result<usize, String> {
        Store::index_for_search(self, limit).map_err(|e| e.to_string())
    }

    fn verified_peers(&mut self) -> Result<Vec<(String, String)>, String> {
        Store::verified_peers(self).map_err(|e| e.to_string())
    }

    fn set_verified(&mut self, peer: &str, name: Option<&str>, now_ms: u64) -> Result<(), String> {
        Store::set_verified(self, peer, name, now_ms).map_err(|e| e.to_string())
    }

    fn lost_writes(&mut self) -> Vec<LostWrite> {
        Store::lost_writes(self)
    }

    fn membership(&mut self, room: &RoomName) -> Result<Option<Vec<u8>>, String> {
        Store::membership(self, room.as_str()).map_err(|e| e.to_string())
    }

    fn set_membership(&mut self, room: &RoomName, state: Option<&[u8]>) -> Result<(), String> {
        Store::set_membership(self, room.as_str(), state).map_err(|e| e.to_string())
    }

    fn message_clock(&mut self, room: &Topic, id: MessageId) -> Result<Option<Hlc>, String> {
        Store::message_clock(self, room.as_str(), id).map_err(|e| e.to_string())
    }

    fn index_checked(&mut self, room: &Topic) -> Result<bool, String> {
        Store::index_checked(self, room.as_str()).map_err(|e| e.to_string())
    }

    fn set_index_checked(&mut self, room: &Topic) -> Result<(), String> {
        Store::set_index_checked(self, room.as_str()).map_err(|e| e.to_string())
    }

    fn messages_older(
        &mut self,
        room: &Topic,
        hlc: Hlc,
        id: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, String> {
        Store::messages_older(self, room.as_str(), hlc, id, limit).map_err(|e| e.to_string())
    }
}

/// Everything in memory: for engine tests and the simulator. Cloning it is a crash: the clone
/// is what a restarted node finds on its disk.
#[derive(Clone, Default)]
pub struct MemoryStore {
    rooms: BTreeMap<String, StoredRoom>,
    chunks: HashMap<Topic, BTreeMap<u32, Vec<Vec<u8>>>>,
    index: HashMap<Topic, RoomIndex>,
    verified: BTreeMap<String, String>,
    membership: BTreeMap<String, Vec<u8>>,
    index_checked: HashSet<Topic>,
    /// Fails every write from now on (a full disk), for tests.
    pub failing: bool,
    /// The next deferred batch is "written behind" and that write fails, as [`Store`] can fail one
    /// after the call returned: verdicts as for an empty index, nothing stored, the loss
    /// reported by [`Storage::lost_writes`]. For tests.
    pub lose_next_batch: bool,
    lost: Vec<LostWrite>,
    /// [`Storage::request_sync`] hands out tickets, as [`Store`] does with its fsync thread,
    /// instead of answering that all is durable; the test then feeds `Input::Synced`.
    pub tickets: bool,
    last_ticket: u64,
}

#[derive(Clone, Default)]
struct RoomIndex {
    ids: HashSet<MessageId>,
    messages: Vec<StoredMessage>,
}

impl MemoryStore {
    /// The rooms a restarted node would find.
    pub fn rooms(&self) -> Vec<StoredRoom> {
        self.rooms.values().cloned().collect()
    }

    /// Every indexed message of a room in (HLC, id) order.
    pub fn all_messages(&self, room: &Topic) -> Vec<StoredMessage> {
        let mut all = self
            .index
            .get(room)
            .map(|i| i.messages.clone())
            .unwrap_or_default();
        all.sort_by_key(|m| (m.hlc, m.id));
        all
    }

    pub fn message_count(&self, room: &Topic) -> usize {
        self.index.get(room).map_or(0, |i| i.ids.len())
    }

    fn check_writable(&self) -> Result<(), String> {
        if self.failing {
            Err("disk full (test)".to_owned())
        } else {
            Ok(())
        }
    }
}

impl Storage for MemoryStore {
    fn lost_writes(&mut self) -> Vec<LostWrite> {
        std::mem::take(&mut self.lost)
    }

    fn request_sync(&mut self) -> Result<Option<u64>, String> {
        self.check_writable()?;
        if !self.tickets {
            return Ok(None);
        }
        self.last_ticket += 1;
        Ok(Some(self.last_ticket))
    }

    fn save_room(&mut self, room: &StoredRoom, _now_ms: u64) -> Result<(), String> {
        self.check_writable()?;
        self.rooms.insert(room.name.to_string(), room.clone());
        Ok(())
    }

    fn forget_room(&mut self, name: &RoomName) -> Result<(), String> {
        self.check_writable()?;
        self.rooms.remove(name.as_str());
        Ok(())
    }

    fn history_chunks(&mut self, room: &Topic) -> Result<Vec<ShardChunks>, String> {
        Ok(self
            .chunks
            .get(room)
            .map(|shards| shards.iter().map(|(s, c)| (*s, c.clone())).collect())
            .unwrap_or_default())
    }

    fn compact_shard(&mut self, room: &Topic, shard: u32, saved: &[u8]) -> Result<(), String> {
        self.check_writable()?;
        self.chunks
            .entry(room.clone())
            .or_default()
            .insert(shard, vec![saved.to_vec()]);
        Ok(())
    }

    /// Memory is as durable as it gets here: a clone (a simulated crash) keeps every write.
    fn append_history(
        &mut self,
        room: &Topic,
        chunks: &[Chunk],
        durability: Durability,
    ) -> Result<Vec<Vec<bool>>, String> {
        self.check_writable()?;
        // As with `Store`, only a deferred batch can be written behind.
        if durability == Durability::Deferred && std::mem::take(&mut self.lose_next_batch) {
            let mut seen = HashSet::new();
            let fresh = chunks
                .iter()
                .map(|(_, _, messages)| messages.iter().map(|m| seen.insert(m.id)).collect())
                .collect();
            self.lost.push(LostWrite {
                room: room.as_str().to_owned(),
                ids: seen.into_iter().collect(),
            });
            return Ok(fresh);
        }
        let shards = self.chunks.entry(room.clone()).or_default();
        let index = self.index.entry(room.clone()).or_default();
        let mut fresh = Vec::with_capacity(chunks.len());
        for (shard, bytes, messages) in chunks {
            if !bytes.is_empty() {
                shards.entry(*shard).or_default().push(bytes.to_vec());
            }
            fresh.push(
                messages
                    .iter()
                    .map(|m| {
                        let new = index.ids.insert(m.id);
                        if new {
                            index.messages.push(m.clone());
                        }
                        new
                    })
                    .collect(),
            );
        }
        Ok(fresh)
    }

    fn messages(
        &mut self,
        room: &Topic,
        limit: usize,
        before: Option<MessageId>,
    ) -> Result<Vec<StoredMessage>, String> {
        let all = self.all_messages(room);
        let end = match before {
            None => all.len(),
            Some(id) => all.iter().position(|m| m.id == id).unwrap_or(0),
        };
        Ok(all[end.saturating_sub(limit)..end].to_vec())
    }

    fn search(
        &mut self,
        room: &Topic,
        text: &str,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, String> {
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        let found: Vec<StoredMessage> = self
            .all_messages(room)
            .into_iter()
            .filter(|m| {
                let text = m.text.to_lowercase();
                words.iter().all(|w| text.contains(w.as_str()))
            })
            .collect();
        Ok(found[found.len().saturating_sub(limit)..].to_vec())
    }

    fn index_for_search(&mut self, _limit: usize) -> Result<usize, String> {
        Ok(0)
    }

    fn verified_peers(&mut self) -> Result<Vec<(String, String)>, String> {
        Ok(self
            .verified
            .iter()
            .map(|(p, n)| (p.clone(), n.clone()))
            .collect())
    }

    fn set_verified(&mut self, peer: &str, name: Option<&str>, _now_ms: u64) -> Result<(), String> {
        self.check_writable()?;
        match name {
            Some(name) => self.verified.insert(peer.to_owned(), name.to_owned()),
            None => self.verified.remove(peer),
        };
        Ok(())
    }

    fn membership(&mut self, room: &RoomName) -> Result<Option<Vec<u8>>, String> {
        Ok(self.membership.get(room.as_str()).cloned())
    }

    fn set_membership(&mut self, room: &RoomName, state: Option<&[u8]>) -> Result<(), String> {
        self.check_writable()?;
        match state {
            Some(state) => self.membership.insert(room.to_string(), state.to_vec()),
            None => self.membership.remove(room.as_str()),
        };
        Ok(())
    }

    fn message_clock(&mut self, room: &Topic, id: MessageId) -> Result<Option<Hlc>, String> {
        Ok(self
            .index
            .get(room)
            .and_then(|i| i.messages.iter().find(|m| m.id == id))
            .map(|m| m.hlc))
    }

    fn index_checked(&mut self, room: &Topic) -> Result<bool, String> {
        Ok(self.index_checked.contains(room))
    }

    fn set_index_checked(&mut self, room: &Topic) -> Result<(), String> {
        self.check_writable()?;
        self.index_checked.insert(room.clone());
        Ok(())
    }

    fn messages_older(
        &mut self,
        room: &Topic,
        hlc: Hlc,
        id: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, String> {
        let older: Vec<StoredMessage> = self
            .all_messages(room)
            .into_iter()
            .filter(|m| (m.hlc, m.id) < (hlc, id))
            .collect();
        Ok(older[older.len().saturating_sub(limit)..].to_vec())
    }
}
