//! History: sending messages as Automerge changes, applying changes that arrive by gossip,
//! storing them through the [`Storage`] port, and reading history back.
//!
//! Every change we make is stored (one transaction) before it is reported `sent` or published.
//! What peers send by sync is stored before it is shown as a `message`; what they send by
//! gossip is shown at once and stored with the next ones (`held.rs`). A message is shown the
//! first time its id enters the store's index or the room's held ids, which makes "each id
//! exactly once" hold across gossip and sync (after a crash, once more for what was lost).

use std::collections::BTreeMap;
use std::time::Duration;

use hark_proto::{MessageId, MessageKind, MessageRecord, Topic};
use libp2p::PeerId;

use super::storage::Durability;
use super::{fail, CommandError, Engine, Storage, Timer};
use crate::api::{Event, HistoryMessage};
use crate::history::{authorship, Added, Applied, RoomHistory, Shard, ShardError};
use crate::store::{StoredMessage, SEARCH_BATCH};
use crate::validate::Drop;

/// A shard stored as more chunks than this is compacted into one when it is loaded.
const COMPACT_AFTER_CHUNKS: usize = 32;
/// `history` answers with at most this many messages.
pub const MAX_HISTORY_LIMIT: usize = 10_000;
const DEFAULT_HISTORY_LIMIT: usize = 100;
/// How long a change may wait for its dependencies by gossip before we sync for them.
const DEPS_GRACE: Duration = Duration::from_millis(500);
/// Received batches of at least this many messages (a catch-up) log how long storing took.
const BIG_BATCH: usize = 1_000;
/// Search indexing runs this long after new messages were stored. A search indexes what is
/// left before it answers, so this only sets how many messages share one indexing
/// transaction: at 100 ms a busy room paid a second commit for every message or two, and at
/// 1 s indexing was still 3 % of a fan-out node's CPU (docs/performance.md, "ninth pass").
const SEARCH_INDEX_EVERY: Duration = Duration::from_secs(10);
/// While a backlog (a catch-up) waits, batches of [`SEARCH_BATCH`] follow each other this
/// often, so that the node stays responsive between them.
const SEARCH_BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// What a gossip change brought.
pub(super) enum Taken {
    /// To store, then show ([`Engine::take_in`]).
    Now(Added),
    /// Shown at once, stored with the next ones (`held.rs`).
    Held(Added),
}

impl<S: Storage> Engine<S> {
    // ----- sending and reading -----

    /// Send a message: committed here, fsynced off the event loop, then told of and published
    /// (`unsynced.rs`).
    pub(super) fn send_message(
        &mut self,
        typed: &str,
        kind: MessageKind,
        text: String,
    ) -> Result<(), CommandError> {
        self.send_with(typed, kind, text, Durability::Synced)
    }

    /// Send a message whose `sent` must come before whatever else its command tells (`dm`
    /// answers `sent`, then `joined`): fsynced on the event loop, as every send once was.
    pub(super) fn send_message_at_once(
        &mut self,
        typed: &str,
        kind: MessageKind,
        text: String,
    ) -> Result<(), CommandError> {
        self.send_with(typed, kind, text, Durability::Now)
    }

    fn send_with(
        &mut self,
        typed: &str,
        kind: MessageKind,
        text: String,
        durability: Durability,
    ) -> Result<(), CommandError> {
        let topic = self.room_topic(typed)?;
        if self.kicked_from(&topic, &self.me.to_bytes()) {
            // Every member drops what we write there now: a `sent` would promise a message
            // that nobody else will ever read.
            return Err(fail(
                "not_allowed",
                "you were kicked from this room: nobody else reads what you write in it",
            ));
        }
        if text.trim().is_empty() {
            return Err(fail("bad_command", "text is empty"));
        }
        if text.len() > hark_proto::limits::MAX_TEXT_BYTES {
            return Err(fail("too_long", "text is over the 16 KiB limit"));
        }
        let now = self.wall_ms();
        let mut record = MessageRecord {
            id: MessageId::random(&mut self.rng),
            author: self.me.to_bytes(),
            name: self.name.clone(),
            hlc: self.clock.tick(now),
            kind,
            text,
            signature: Vec::new(),
        };
        authorship::sign(&mut record, &self.identity, topic.as_str());
        let added = self
            .history(&topic)
            .map_err(|e| fail("store_failed", e))?
            .add_local(&record)
            .map_err(|e| fail("history_failed", e.to_string()))?;
        let (shard, change) = (added.shard, added.bytes.clone());
        // Durable before anyone hears of it: `sent` means it survives kill -9 and power loss.
        self.persist_with(&topic, vec![added], durability)
            .map_err(|e| fail("store_failed", e))?;
        if durability == Durability::Now {
            let room = self.room_name(&topic);
            self.announce_sent(&topic, room, record, shard, change);
            return Ok(());
        }
        self.announce_when_durable(topic, record, shard, change)
    }

    pub(super) fn history_command(
        &mut self,
        typed: &str,
        limit: Option<usize>,
        before: Option<&str>,
    ) -> Result<(), CommandError> {
        let topic = self.room_topic(typed)?;
        let limit = limit
            .unwrap_or(DEFAULT_HISTORY_LIMIT)
            .min(MAX_HISTORY_LIMIT);
        let before = before
            .map(|id| {
                hex::decode(id)
                    .ok()
                    .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
                    .map(MessageId)
                    .ok_or_else(|| {
                        fail("bad_command", format!("before: {id:?} is not a message id"))
                    })
            })
            .transpose()?;
        let messages = self
            .room_messages(&topic, limit, before)
            .map_err(|e| fail("store_failed", e))?
            // An empty page means "the start of the room": a script paging back from an id
            // this room does not hold must hear so, not stop there.
            .ok_or_else(|| {
                fail(
                    "unknown_message",
                    "before: this room has no message with that id",
                )
            })?
            .into_iter()
            .map(HistoryMessage::from)
            .collect();
        let room = self.room_name(&topic);
        self.emit(Event::History { room, messages });
        Ok(())
    }

    pub(super) fn search(
        &mut self,
        typed: &str,
        text: String,
        limit: Option<usize>,
    ) -> Result<(), CommandError> {
        let topic = self.room_topic(typed)?;
        if text.trim().is_empty() {
            return Err(fail("bad_command", "search needs some text"));
        }
        let limit = limit
            .unwrap_or(DEFAULT_HISTORY_LIMIT)
            .min(MAX_HISTORY_LIMIT);
        let messages = self
            .room_search(&topic, &text, limit)
            .map_err(|e| fail("store_failed", e))?
            .into_iter()
            .map(HistoryMessage::from)
            .collect();
        let room = self.room_name(&topic);
        self.emit(Event::SearchResults {
            room,
            text,
            messages,
        });
        Ok(())
    }

    pub(super) fn index_for_search(&mut self) {
        if !self.search_backlog {
            return;
        }
        match self.store.index_for_search(SEARCH_BATCH) {
            Ok(indexed) => self.search_backlog = indexed == SEARCH_BATCH,
            Err(e) => {
                // A search indexes what is left before it answers; nothing is lost.
                tracing::warn!("cannot index messages for search: {e}");
                self.search_backlog = false;
            }
        }
        if self.search_backlog {
            self.set_timer(SEARCH_BACKLOG_EVERY, Timer::SearchIndex);
        }
    }

    // ----- loading and storing -----

    /// The room's history, loaded from the store on first use.
    pub(super) fn history(&mut self, topic: &Topic) -> Result<&mut RoomHistory, String> {
        let broken = self
            .rooms
            .get(topic)
            .is_some_and(|room| room.history.as_ref().is_some_and(RoomHistory::is_broken));
        if broken {
            tracing::error!(
                room = self.room_name(topic),
                "Automerge failed on held-back gossip; reloading the room's history"
            );
            self.drop_history(topic);
        }
        let loaded = match self.rooms.get(topic) {
            None => return Err("not in this room".to_owned()),
            Some(room) if room.history.is_some() => None,
            Some(_) => Some(self.load_history(topic)?),
        };
        let room = self
            .rooms
            .get_mut(topic)
            .ok_or_else(|| "not in this room".to_owned())?;
        if let Some(loaded) = loaded {
            room.history = Some(loaded);
            self.index_what_the_documents_hold(topic);
        }
        self.rooms
            .get_mut(topic)
            .and_then(|room| room.history.as_mut())
            .ok_or_else(|| "history not loaded".to_owned())
    }

    fn load_history(&mut self, topic: &Topic) -> Result<RoomHistory, String> {
        let actor = self.me.to_bytes();
        let room = self.room_name(topic);
        let mut shards = BTreeMap::new();
        for (shard, chunks) in self.store.history_chunks(topic)? {
            match Shard::load(&actor, &chunks) {
                Ok(mut doc) => {
                    if chunks.len() > COMPACT_AFTER_CHUNKS {
                        if let Err(e) = self.store.compact_shard(topic, shard, &doc.save()) {
                            tracing::warn!(room, "cannot compact history: {e}");
                        }
                    }
                    shards.insert(shard, doc);
                }
                // Kept in the store untouched; the shard starts empty in memory and is
                // refilled by sync from peers.
                Err(e) => tracing::error!(room, shard, "stored history shard does not load: {e}"),
            }
        }
        tracing::debug!(room, shards = shards.len(), "history loaded");
        Ok(RoomHistory::new(actor, shards))
    }

    /// `--relay`: load every room's history at start, so the first sync is answered at once.
    pub(super) fn preload_histories(&mut self) {
        let topics: Vec<Topic> = self.rooms.keys().cloned().collect();
        for topic in topics {
            if let Err(e) = self.history(&topic) {
                tracing::warn!(room = self.room_name(&topic), "cannot load history: {e}");
            }
        }
    }

    /// Store what changes added, durable now (before `sent`), and return the messages that are
    /// new to this node.
    pub(super) fn persist(
        &mut self,
        topic: &Topic,
        added: Vec<Added>,
    ) -> Result<Vec<StoredMessage>, String> {
        self.persist_with(topic, added, Durability::Now)
    }

    /// Store what changes added and return the messages that are new to this node. On a store
    /// failure the room's in-memory history is dropped, so memory never runs ahead of disk.
    fn persist_with(
        &mut self,
        topic: &Topic,
        added: Vec<Added>,
        durability: Durability,
    ) -> Result<Vec<StoredMessage>, String> {
        // Held gossip messages go first, so that the index has them before it is asked about
        // anything else; they were shown already, so their verdicts are skipped below. Then
        // what the documents took in besides, with the records released from Automerge's
        // queue: shown here if new, since no caller knows of them.
        let (mut all, unstored) = self.take_held(topic);
        let held = all.len();
        let released = unstored.len();
        all.extend(unstored);
        all.extend(added);
        if all.is_empty() {
            return Ok(Vec::new());
        }
        let chunks: Vec<(u32, Vec<u8>, Vec<StoredMessage>)> = all
            .into_iter()
            .map(|chunk| {
                let messages = chunk
                    .records
                    .into_iter()
                    .filter_map(|record| self.index_entry(record))
                    .collect();
                (chunk.shard, chunk.bytes, messages)
            })
            .collect();
        let batch: Vec<(u32, &[u8], &[StoredMessage])> = chunks
            .iter()
            .map(|(shard, bytes, messages)| (*shard, bytes.as_slice(), messages.as_slice()))
            .collect();
        match self.store.append_history(topic, &batch, durability) {
            Ok(fresh) => {
                if fresh.iter().flatten().any(|new| *new) {
                    self.search_falls_behind();
                }
                let mut verdicts = chunks.into_iter().zip(fresh).skip(held);
                let mut released: Vec<StoredMessage> =
                    new_messages(verdicts.by_ref().take(released));
                let mut new = new_messages(verdicts);
                self.held_stored(topic, &mut released);
                self.held_stored(topic, &mut new);
                let room = self.room_name(topic);
                self.announce(&room, released);
                Ok(new)
            }
            Err(e) => {
                self.held_not_stored(topic);
                tracing::error!(room = self.room_name(topic), "cannot store history: {e}");
                if let Some(room) = self.rooms.get_mut(topic) {
                    room.history = None;
                }
                Err(e)
            }
        }
    }

    /// What received history is stored with: written before it is shown or answered for, not
    /// waited for on the disk (see [`take_in`](Self::take_in)).
    pub(super) fn persist_received(
        &mut self,
        topic: &Topic,
        added: Vec<Added>,
    ) -> Result<Vec<StoredMessage>, String> {
        self.persist_with(topic, added, Durability::Deferred)
    }

    /// A record as the store indexes it; None if its author is not a peer id.
    pub(super) fn index_entry(&mut self, record: MessageRecord) -> Option<StoredMessage> {
        let author = self.peer_text(&record.author);
        if author.is_empty() {
            return None;
        }
        Some(StoredMessage {
            id: record.id,
            hlc: record.hlc,
            author,
            name: record.name,
            kind: record.kind,
            text: record.text,
        })
    }

    /// Store and announce everything a gossip change or sync message added (one transaction);
    /// returns how many messages were new.
    ///
    /// What peers sent is stored with [`Durability::Deferred`]: written before it is shown, but
    /// not waited for on the disk. A crash (even of the machine) may lose the last of it, and
    /// sync brings it again from the peers that have it (`tests/tests/crash_catch_up.rs`).
    ///
    /// `straight_from` is the peer the records came from over an authenticated channel (the
    /// signed gossip source, the sync peer): its own records need no signature check, since
    /// the transport already proved who sent them. Every other record must carry its author's
    /// valid signature for this room, or it is never shown nor indexed (its change stays in the
    /// document, where it harms nothing).
    pub(super) fn take_in(
        &mut self,
        topic: &Topic,
        mut added: Vec<Added>,
        straight_from: &[u8],
    ) -> usize {
        let forged = added
            .iter_mut()
            .map(|chunk| check_authorship(chunk, topic.as_str(), straight_from, true))
            .sum();
        self.take_in_checked(topic, added, forged)
    }

    /// Apply membership operations (never shown) and hide a kicked member's late words; say
    /// how many records lacked their author's signature. Returns the room's name.
    pub(super) fn sift(&mut self, topic: &Topic, added: &mut [Added], forged: usize) -> String {
        self.sift_members(topic, added);
        let room = self.room_name(topic);
        if forged > 0 {
            tracing::warn!(
                room,
                forged,
                "records without their author's valid signature were not shown"
            );
        }
        room
    }

    /// [`take_in`](Self::take_in) for records already checked with [`check_authorship`]
    /// (`forged` of them were dropped).
    pub(super) fn take_in_checked(
        &mut self,
        topic: &Topic,
        mut added: Vec<Added>,
        forged: usize,
    ) -> usize {
        let room = self.sift(topic, &mut added, forged);
        if added.is_empty() {
            return 0;
        }
        // Received history never waits for the disk, a catch-up's big batch included: waiting
        // for its fsync cost a 100k catch-up ≈ 50 ms (docs/performance.md, seventh pass), and
        // the flusher's checkpoint a second later makes it durable off the event loop.
        let records: usize = added.iter().map(|chunk| chunk.records.len()).sum();
        let began = std::time::Instant::now();
        let Ok(fresh) = self.persist_received(topic, added) else {
            return 0;
        };
        if records >= BIG_BATCH {
            // Into a room with no messages yet the store hands the batch to a writer thread
            // (store/behind.rs): then `ms` is only the time to hand it over.
            tracing::debug!(
                room,
                records,
                ms = began.elapsed().as_millis() as u64,
                "stored a big batch"
            );
        }
        let count = fresh.len();
        self.announce(&room, fresh);
        count
    }

    /// New messages entered the index: the full-text index catches up within
    /// [`SEARCH_INDEX_EVERY`].
    pub(super) fn search_falls_behind(&mut self) {
        if !self.search_backlog {
            self.search_backlog = true;
            self.set_timer(SEARCH_INDEX_EVERY, Timer::SearchIndex);
        }
    }

    /// Show messages new to this node (our own are only observed by the clock).
    fn announce(&mut self, room: &str, fresh: Vec<StoredMessage>) {
        let now = self.wall_ms();
        let me = self.peer_text(&self.me.to_bytes());
        for message in fresh {
            self.clock.observe(message.hlc, now);
            if message.author != me {
                self.emit(message_event(room, message));
            }
        }
    }

    /// Apply a change that came by gossip. What it adds comes back to be stored and shown by
    /// [`take_in`](Self::take_in) once gossipsub has the verdict: a hop forwards a valid change
    /// without waiting for its own store.
    pub(super) fn on_gossip_change(
        &mut self,
        topic: &Topic,
        shard: u32,
        change: &[u8],
        author: &[u8],
        from: PeerId,
    ) -> Result<Option<Taken>, Drop> {
        let history = match self.history(topic) {
            Ok(history) => history,
            // Our store's problem, not the sender's: do not penalise it.
            Err(_) => return Ok(None),
        };
        match history.apply_gossip(shard, change, author) {
            Ok(Applied::New {
                records,
                bytes,
                waiting,
            }) => {
                if waiting {
                    // Gossip often delivers the missing change a moment later; if it does not,
                    // fetch it from the peer that sent this one.
                    tracing::debug!(peer = %from, "change waits for its dependencies");
                    if let Some(room) = self.rooms.get_mut(topic) {
                        if room.deps_due.is_none() {
                            room.deps_due = Some((self.now.at + DEPS_GRACE, from));
                            self.set_timer(DEPS_GRACE, Timer::Dependencies(topic.clone()));
                        }
                    }
                }
                Ok(Some(Taken::Now(Added {
                    shard,
                    records,
                    bytes,
                })))
            }
            Ok(Applied::Deferred { records }) => Ok(Some(Taken::Held(Added {
                shard,
                records,
                bytes: Vec::new(),
            }))),
            Ok(Applied::Known) => Ok(None),
            Err(e) => {
                tracing::debug!(room = self.room_name(topic), "bad history change: {e}");
                self.forget_if_panicked(topic, &e);
                Err(Drop::Malformed)
            }
        }
    }

    /// Automerge panicked on a room's document: drop the room's history from memory so that it
    /// is reloaded from the store (the last state known to be sound) on next use.
    pub(super) fn forget_if_panicked(&mut self, topic: &Topic, error: &ShardError) {
        if *error != ShardError::Panicked {
            return;
        }
        tracing::error!(
            room = self.room_name(topic),
            "Automerge failed on input from a peer; reloading the room's history"
        );
        self.drop_history(topic);
    }

    /// Forget a room's in-memory history and its sessions: the next use reloads it from the
    /// store, the last state known to be sound.
    pub(super) fn drop_history(&mut self, topic: &Topic) {
        if let Some(room) = self.rooms.get_mut(topic) {
            room.history = None;
            room.outbound.clear();
            room.inbound.clear();
        }
    }

    /// The topic of the joined room a user typed.
    pub(super) fn room_topic(&self, typed: &str) -> Result<Topic, CommandError> {
        self.book
            .find(typed)
            .map(|room| room.chat_topic.clone())
            .ok_or_else(|| fail("not_joined", format!("not in a room named {typed:?}")))
    }

    /// The name of a joined room, for events and logs.
    pub(super) fn room_name(&self, topic: &Topic) -> String {
        self.rooms
            .get(topic)
            .map(|r| r.room.name.to_string())
            .unwrap_or_default()
    }
}

/// Keep the records of `chunk` that may be shown (see [`Engine::take_in`]): those that came
/// straight from their author and those with their author's valid signature for the room of
/// `chat_topic`. Returns how many were dropped. `spread`: it may use every core.
pub(super) fn check_authorship(
    chunk: &mut Added,
    chat_topic: &str,
    straight_from: &[u8],
    spread: bool,
) -> usize {
    let verdicts = authorship::accepted_on(&chunk.records, chat_topic, straight_from, spread);
    let forged = verdicts.iter().filter(|ok| !**ok).count();
    let mut verdicts = verdicts.into_iter();
    chunk.records.retain(|_| verdicts.next().unwrap_or(false));
    forged
}

/// The messages of stored chunks that the store found new (`fresh`: one verdict per message).
fn new_messages(
    chunks: impl Iterator<Item = ((u32, Vec<u8>, Vec<StoredMessage>), Vec<bool>)>,
) -> Vec<StoredMessage> {
    chunks
        .flat_map(|((_, _, messages), fresh)| {
            messages
                .into_iter()
                .zip(fresh)
                .filter_map(|(m, new)| new.then_some(m))
        })
        .collect()
}

pub(super) fn message_event(room: &str, message: StoredMessage) -> Event {
    Event::Message {
        room: room.to_owned(),
        id: message.id.to_hex(),
        from: message.author,
        name: message.name,
        ts: message.hlc.wall_ms(),
        tick: message.hlc.counter(),
        kind: message.kind.as_str().to_owned(),
        text: message.text,
    }
}
