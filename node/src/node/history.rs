//! The event loop's history side: sending messages as Automerge changes, applying changes that
//! arrive by gossip, the `/hark/sync/1` sessions, and the `history` command.
//!
//! Every change is stored (SQLite, one transaction) before it is reported `sent`, published,
//! or shown as a `message`; a message is shown the first time its id enters the store, which
//! makes "each id exactly once" hold across gossip, sync and restarts alike.

use std::collections::BTreeMap;
use std::time::Instant;

use hark_proto::sync::{SyncBody, MAX_SYNC_BYTES};
use hark_proto::{seal, Body, MessageId, MessageKind, MessageRecord};
use libp2p::request_response::{self, Message as RrMessage};
use libp2p::PeerId;
use rand::rngs::OsRng;
use rand::seq::IteratorRandom;

use super::{fail, CommandError, Runtime};
use crate::api::{Event, HistoryMessage};
use crate::history::{authorship, Added, Applied, RoomHistory, Shard};
use crate::rooms::Room;
use crate::store::StoredMessage;
use crate::sync::{SyncRequest, SyncResponse, MAX_ROUNDS};
use crate::validate::Drop;

/// A shard stored as more chunks than this is compacted into one when it is loaded.
const COMPACT_AFTER_CHUNKS: usize = 32;
/// `history` answers with at most this many messages.
pub const MAX_HISTORY_LIMIT: usize = 10_000;
const DEFAULT_HISTORY_LIMIT: usize = 100;
/// Onward syncs after a sync brought news: at most this often per room.
const SPREAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a change may wait for its dependencies by gossip before we sync for them.
const DEPS_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

type SyncEvent = request_response::Event<SyncRequest, SyncResponse>;

impl Runtime {
    // ----- sending and the history command -----

    pub(super) async fn send_message(
        &mut self,
        room: &str,
        kind: MessageKind,
        text: String,
    ) -> Result<(), CommandError> {
        let room = self.room(room)?;
        if text.trim().is_empty() {
            return Err(fail("bad_command", "text is empty"));
        }
        if text.len() > hark_proto::limits::MAX_TEXT_BYTES {
            return Err(fail("too_long", "text is over the 16 KiB limit"));
        }
        let mut record = MessageRecord {
            id: MessageId::random(&mut OsRng),
            author: self.local_peer.to_bytes(),
            name: self.name.clone(),
            hlc: self.clock.tick(self.now_ms()),
            kind,
            text,
            signature: Vec::new(),
        };
        authorship::sign(&mut record, &self.identity, room.chat_topic.as_str());
        let added = self
            .history(&room)
            .map_err(|e| fail("store_failed", e))?
            .add_local(&record)
            .map_err(|e| fail("history_failed", e.to_string()))?;
        let (shard, change) = (added.shard, added.bytes.clone());
        // Durable before anyone hears of it: `sent` means it survives kill -9.
        self.persist(&room, vec![added])
            .map_err(|e| fail("store_failed", e))?;
        self.emit(Event::Sent {
            room: room.name.to_string(),
            id: record.id.to_hex(),
        })
        .await;
        self.publish(&room, record.id, Body::Change { shard, change })
    }

    pub(super) async fn history_command(
        &mut self,
        room: &str,
        limit: Option<usize>,
    ) -> Result<(), CommandError> {
        let room = self.room(room)?;
        let limit = limit
            .unwrap_or(DEFAULT_HISTORY_LIMIT)
            .min(MAX_HISTORY_LIMIT);
        let messages = self
            .store
            .recent_messages(room.chat_topic.as_str(), limit)
            .map_err(|e| fail("store_failed", e.to_string()))?
            .into_iter()
            .map(HistoryMessage::from)
            .collect();
        self.emit(Event::History {
            room: room.name.to_string(),
            messages,
        })
        .await;
        Ok(())
    }

    pub(super) async fn search(
        &mut self,
        room: &str,
        text: String,
        limit: Option<usize>,
    ) -> Result<(), CommandError> {
        let room = self.room(room)?;
        if text.trim().is_empty() {
            return Err(fail("bad_command", "search needs some text"));
        }
        let limit = limit
            .unwrap_or(DEFAULT_HISTORY_LIMIT)
            .min(MAX_HISTORY_LIMIT);
        let messages = self
            .store
            .search_messages(room.chat_topic.as_str(), &text, limit)
            .map_err(|e| fail("store_failed", e.to_string()))?
            .into_iter()
            .map(HistoryMessage::from)
            .collect();
        self.emit(Event::SearchResults {
            room: room.name.to_string(),
            text,
            messages,
        })
        .await;
        Ok(())
    }

    // ----- loading and storing -----

    /// The room's history, loaded from the store on first use.
    pub(super) fn history(&mut self, room: &Room) -> Result<&mut RoomHistory, String> {
        let topic = room.chat_topic.as_str();
        if !self.histories.contains_key(topic) {
            let loaded = self.load_history(room)?;
            self.histories.insert(topic.to_owned(), loaded);
        }
        self.histories
            .get_mut(topic)
            .ok_or_else(|| "history not loaded".to_owned())
    }

    fn load_history(&mut self, room: &Room) -> Result<RoomHistory, String> {
        let started = Instant::now();
        let topic = room.chat_topic.as_str();
        let actor = self.local_peer.to_bytes();
        let mut shards = BTreeMap::new();
        for (shard, chunks) in self
            .store
            .history_chunks(topic)
            .map_err(|e| e.to_string())?
        {
            match Shard::load(&actor, &chunks) {
                Ok(doc) => {
                    if chunks.len() > COMPACT_AFTER_CHUNKS {
                        if let Err(e) = self.store.compact_shard(topic, shard, &doc.save()) {
                            tracing::warn!(room = %room.name, "cannot compact history: {e}");
                        }
                    }
                    shards.insert(shard, doc);
                }
                // Kept in the store untouched; the shard starts empty in memory and is
                // refilled by sync from peers.
                Err(e) => {
                    tracing::error!(room = %room.name, shard, "stored history shard does not load: {e}")
                }
            }
        }
        tracing::debug!(room = %room.name, shards = shards.len(), elapsed = ?started.elapsed(), "history loaded");
        Ok(RoomHistory::new(actor, shards))
    }

    /// Store what a change added and return the messages that are new to this node. On a store
    /// failure the room's in-memory history is dropped, so memory never runs ahead of disk.
    fn persist(&mut self, room: &Room, added: Vec<Added>) -> Result<Vec<StoredMessage>, String> {
        // A catch-up brings thousands of messages from a handful of authors: base58 each once.
        let mut authors: std::collections::HashMap<Vec<u8>, Option<String>> = Default::default();
        let chunks: Vec<(u32, Vec<u8>, Vec<StoredMessage>)> = added
            .into_iter()
            .map(|chunk| {
                let messages = chunk
                    .records
                    .into_iter()
                    .filter_map(|record| {
                        let author = authors
                            .entry(record.author)
                            .or_insert_with_key(|bytes| {
                                PeerId::from_bytes(bytes).ok().map(|p| p.to_string())
                            })
                            .clone()?;
                        Some(StoredMessage {
                            id: record.id,
                            hlc: record.hlc,
                            author,
                            name: record.name,
                            kind: record.kind,
                            text: record.text,
                        })
                    })
                    .collect();
                (chunk.shard, chunk.bytes, messages)
            })
            .collect();
        let batch: Vec<(u32, &[u8], &[StoredMessage])> = chunks
            .iter()
            .map(|(shard, bytes, messages)| (*shard, bytes.as_slice(), messages.as_slice()))
            .collect();
        let topic = room.chat_topic.as_str();
        match self.store.append_history_batch(topic, &batch) {
            Ok(fresh) => {
                self.search_backlog |= fresh.iter().flatten().any(|new| *new);
                Ok(chunks
                    .into_iter()
                    .zip(fresh)
                    .flat_map(|((_, _, messages), fresh)| {
                        messages
                            .into_iter()
                            .zip(fresh)
                            .filter_map(|(m, new)| new.then_some(m))
                    })
                    .collect())
            }
            Err(e) => {
                tracing::error!(room = %room.name, "cannot store history: {e}");
                self.histories.remove(topic);
                Err(e.to_string())
            }
        }
    }

    /// Store and announce everything a gossip change or sync message added (one transaction);
    /// returns how many messages were new.
    ///
    /// `straight_from` is the peer the records came from over an authenticated channel (the
    /// signed gossip source, the sync peer): its own records need no signature check, since
    /// the transport already proved who sent them. Every other record must carry its author's
    /// valid signature for this room, or it is never shown nor indexed (its change stays in the
    /// document, where it harms nothing).
    async fn take_in(&mut self, room: &Room, mut added: Vec<Added>, straight_from: &[u8]) -> usize {
        let topic = room.chat_topic.as_str();
        let mut forged = 0usize;
        for chunk in &mut added {
            let verdicts = authorship::accepted(&chunk.records, topic, straight_from);
            forged += verdicts.iter().filter(|ok| !**ok).count();
            let mut verdicts = verdicts.into_iter();
            chunk.records.retain(|_| verdicts.next().unwrap_or(false));
        }
        if forged > 0 {
            tracing::warn!(room = %room.name, forged, "records without their author's valid signature were not shown");
        }
        if added.is_empty() {
            return 0;
        }
        let Ok(fresh) = self.persist(room, added) else {
            return 0;
        };
        let count = fresh.len();
        let now = self.now_ms();
        let me = self.local_peer.to_string();
        for message in fresh {
            self.clock.observe(message.hlc, now);
            if message.author != me {
                self.emit(message_event(room, message)).await;
            }
        }
        count
    }

    // ----- gossip -----

    pub(super) async fn on_gossip_change(
        &mut self,
        room: &Room,
        shard: u32,
        change: &[u8],
        author: &[u8],
        propagation_source: PeerId,
    ) -> Result<(), Drop> {
        let history = match self.history(room) {
            Ok(history) => history,
            // Our store's problem, not the sender's: do not penalise it.
            Err(_) => return Ok(()),
        };
        match history.apply_gossip(shard, change, author) {
            Ok(Applied::New {
                records,
                bytes,
                waiting,
            }) => {
                let added = Added {
                    shard,
                    records,
                    bytes,
                };
                self.take_in(room, vec![added], author).await;
                if waiting {
                    // Gossip often delivers the missing change a moment later; if it does not,
                    // fetch it from the peer that sent this one.
                    tracing::debug!(room = %room.name, peer = %propagation_source, "change waits for its dependencies");
                    self.deps_due
                        .entry(room.chat_topic.as_str().to_owned())
                        .or_insert((Instant::now() + DEPS_GRACE, propagation_source));
                }
                Ok(())
            }
            Ok(Applied::Known) => Ok(()),
            Err(e) => {
                tracing::debug!(room = %room.name, "bad history change: {e}");
                self.forget_if_panicked(room, &e);
                Err(Drop::Malformed)
            }
        }
    }

    /// Rooms where changes still wait for their dependencies after the grace period: sync
    /// with the peer that sent them.
    pub(super) fn check_waiting(&mut self, now: Instant) {
        let due: Vec<(String, PeerId)> = self
            .deps_due
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(topic, (_, peer))| (topic.clone(), *peer))
            .collect();
        for (topic, peer) in due {
            self.deps_due.remove(&topic);
            let still_waiting = self
                .histories
                .get(&topic)
                .is_some_and(RoomHistory::is_waiting);
            if let (true, Some(room)) = (still_waiting, self.rooms.by_topic(&topic).cloned()) {
                self.start_sync(peer, &room);
            }
        }
    }

    // ----- sync sessions -----

    /// Start a sync session with `peer` for `room`, unless one is already running.
    pub(super) fn start_sync(&mut self, peer: PeerId, room: &Room) {
        let topic = room.chat_topic.as_str();
        if !self.sessions.start_outbound(peer, topic, Instant::now()) {
            return;
        }
        let digests = match self.history(room) {
            Ok(history) => {
                history.begin_session(peer);
                history.digests()
            }
            Err(_) => {
                self.sessions.finish_outbound(peer, topic);
                return;
            }
        };
        let body = SyncBody {
            digests: Some(digests),
            messages: Vec::new(),
        };
        self.send_sync_request(peer, room, body);
    }

    fn send_sync_request(&mut self, peer: PeerId, room: &Room, body: SyncBody) {
        let topic = room.chat_topic.as_str();
        if let Some(session) = self.sessions.outbound(peer, topic) {
            session.sent_nothing = body.messages.is_empty();
        }
        let sealed = seal_sync(room, &body);
        if sealed.len() > MAX_SYNC_BYTES {
            tracing::warn!(room = %room.name, %peer, bytes = sealed.len(), "sync message over the limit: session abandoned");
            self.sessions.finish_outbound(peer, topic);
            return;
        }
        let request = SyncRequest {
            room: topic.to_owned(),
            sealed,
        };
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.sessions.sent(id, peer, topic);
    }

    /// The room's peers, as gossipsub knows them from their subscriptions.
    fn room_peers(&self, room: &Room) -> Vec<PeerId> {
        self.swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| {
                topics
                    .iter()
                    .any(|t| t.as_str() == room.chat_topic.as_str())
            })
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// Every room syncs with one random peer of that room now and then, so that anything gossip
    /// lost (a partition, a dropped frame) is repaired without waiting for a reconnect.
    pub(super) fn anti_entropy(&mut self) {
        let rooms: Vec<Room> = self.rooms.iter().cloned().collect();
        for room in rooms {
            if let Some(peer) = self.room_peers(&room).into_iter().choose(&mut OsRng) {
                self.start_sync(peer, &room);
            }
        }
    }

    /// A newly joined room: sync with the peers already in it (the rule of who starts is the
    /// same as for a peer that joins: the smaller peer id).
    pub(super) fn sync_new_room(&mut self, room: &Room) {
        for peer in self.room_peers(room) {
            if self.local_peer < peer {
                self.start_sync(peer, room);
            }
        }
    }

    /// Sync brought messages that gossip never carried to our other room peers (a healed
    /// partition, a relay's backlog): pass them on by syncing with those peers too. Where the
    /// peer already has them the session ends after one exchange of digests. At most once per
    /// room every [`SPREAD_INTERVAL`]: a later request waits for its turn (checked on the tick),
    /// so a sync that races live gossip in a big mesh cannot set off a cascade of sessions.
    fn spread(&mut self, room: &Room, from: PeerId) {
        let now = Instant::now();
        let topic = room.chat_topic.as_str();
        let earliest = self
            .last_spread
            .get(topic)
            .map_or(now, |at| *at + SPREAD_INTERVAL);
        if earliest > now {
            self.spread_due.entry(topic.to_owned()).or_insert(earliest);
            return;
        }
        self.last_spread.insert(topic.to_owned(), now);
        for peer in self.room_peers(room) {
            if peer != from {
                self.start_sync(peer, room);
            }
        }
    }

    /// Spreads that had to wait for their turn.
    pub(super) fn spread_waiting(&mut self, now: Instant) {
        let due: Vec<String> = self
            .spread_due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(topic, _)| topic.clone())
            .collect();
        for topic in due {
            self.spread_due.remove(&topic);
            if let Some(room) = self.rooms.by_topic(&topic).cloned() {
                // Nobody is excluded: the peer we synced with agrees by now and costs one
                // exchange of digests.
                self.spread(&room, self.local_peer);
            }
        }
    }

    pub(super) async fn on_sync_event(&mut self, event: SyncEvent) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                RrMessage::Request {
                    request, channel, ..
                } => {
                    let response = self.answer_sync(peer, request).await;
                    if self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response)
                        .is_err()
                    {
                        tracing::debug!(%peer, "sync response not sent: connection gone");
                    }
                }
                RrMessage::Response {
                    request_id,
                    response,
                } => self.on_sync_response(peer, request_id, response).await,
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, "sync request failed: {error}");
                if let Some((peer, topic)) = self.sessions.answered(&request_id) {
                    self.sessions.finish_outbound(peer, &topic);
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "sync request not answered: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// The responder's side of one exchange.
    async fn answer_sync(&mut self, peer: PeerId, request: SyncRequest) -> SyncResponse {
        let Some(room) = self.rooms.by_topic(&request.room).cloned() else {
            return SyncResponse::refused("not in this room");
        };
        let body = match open_sync(&room, &request.sealed) {
            Ok(body) => body,
            Err(why) => {
                tracing::warn!(%peer, room = %room.name, "refused a sync request: {why}");
                return SyncResponse::refused(&why);
            }
        };
        let topic = room.chat_topic.as_str().to_owned();
        let starts = body.digests.is_some();
        let (added, outcome) = match self.history(&room) {
            Ok(history) => {
                if starts {
                    history.begin_session(peer);
                }
                let mut added = Vec::new();
                let outcome = history.receive(peer, &body.messages, &mut added);
                (added, outcome)
            }
            Err(e) => return SyncResponse::refused(&format!("history unavailable: {e}")),
        };
        let received = self.take_in(&room, added, &peer.to_bytes()).await;
        if received > 0 {
            self.spread(&room, peer);
        }
        if let Err(e) = outcome {
            tracing::warn!(%peer, room = %room.name, "bad sync message: {e}");
            self.forget_if_panicked(&room, &e);
            self.sessions.finish_inbound(peer, &topic);
            return SyncResponse::refused("bad sync message");
        }
        let Ok(history) = self.history(&room) else {
            return SyncResponse::refused("history unavailable");
        };
        let differing = body
            .digests
            .as_ref()
            .map(|theirs| history.differing(theirs));
        let digests = starts.then(|| history.digests());
        let session = self.sessions.inbound(peer, &topic, starts, Instant::now());
        if let Some(differing) = differing {
            session.shards = differing;
        }
        session.rounds += 1;
        session.received += received;
        if session.rounds > MAX_ROUNDS {
            self.sessions.finish_inbound(peer, &topic);
            return SyncResponse::refused("too many rounds");
        }
        let shards = session.shards.clone();
        let Ok(history) = self.history(&room) else {
            return SyncResponse::refused("history unavailable");
        };
        let reply = SyncBody {
            digests,
            messages: history.generate(peer, &shards),
        };
        if body.messages.is_empty() && reply.messages.is_empty() {
            if let Some(session) = self.sessions.finish_inbound(peer, &topic) {
                self.synced(&room, peer, session.received).await;
            }
        }
        SyncResponse {
            sealed: seal_sync(&room, &reply),
            error: None,
        }
    }

    /// The initiator's side: take in a response and send the next request, or finish.
    async fn on_sync_response(
        &mut self,
        peer: PeerId,
        request_id: request_response::OutboundRequestId,
        response: SyncResponse,
    ) {
        let Some((_, topic)) = self.sessions.answered(&request_id) else {
            return;
        };
        let Some(room) = self.rooms.by_topic(&topic).cloned() else {
            self.sessions.finish_outbound(peer, &topic);
            return;
        };
        let body = match response.error {
            Some(why) => Err(format!("peer refused: {why}")),
            None => open_sync(&room, &response.sealed),
        };
        let body = match body {
            Ok(body) => body,
            Err(why) => {
                tracing::warn!(%peer, room = %room.name, "sync stopped: {why}");
                self.sessions.finish_outbound(peer, &topic);
                return;
            }
        };
        let (added, outcome) = match self.history(&room) {
            Ok(history) => {
                let mut added = Vec::new();
                let outcome = history.receive(peer, &body.messages, &mut added);
                (added, outcome)
            }
            Err(_) => {
                self.sessions.finish_outbound(peer, &topic);
                return;
            }
        };
        let received = self.take_in(&room, added, &peer.to_bytes()).await;
        if received > 0 {
            self.spread(&room, peer);
        }
        if let Err(e) = outcome {
            tracing::warn!(%peer, room = %room.name, "sync stopped, bad sync message: {e}");
            self.forget_if_panicked(&room, &e);
            self.sessions.finish_outbound(peer, &topic);
            return;
        }
        let differing = match self.history(&room) {
            Ok(history) => body
                .digests
                .as_ref()
                .map(|theirs| history.differing(theirs)),
            Err(_) => {
                self.sessions.finish_outbound(peer, &topic);
                return;
            }
        };
        let Some(session) = self.sessions.outbound(peer, &topic) else {
            return;
        };
        if let Some(differing) = differing {
            session.shards = differing;
        }
        session.rounds += 1;
        session.received += received;
        if session.sent_nothing && body.messages.is_empty() {
            if let Some(session) = self.sessions.finish_outbound(peer, &topic) {
                self.synced(&room, peer, session.received).await;
            }
            return;
        }
        if session.rounds >= MAX_ROUNDS {
            tracing::warn!(%peer, room = %room.name, "sync did not settle in {MAX_ROUNDS} rounds");
            self.sessions.finish_outbound(peer, &topic);
            return;
        }
        let shards = session.shards.clone();
        let messages = match self.history(&room) {
            Ok(history) => history.generate(peer, &shards),
            Err(_) => {
                self.sessions.finish_outbound(peer, &topic);
                return;
            }
        };
        self.send_sync_request(
            peer,
            &room,
            SyncBody {
                digests: None,
                messages,
            },
        );
    }

    /// Automerge panicked on a room's document: drop the room's history from memory so that it
    /// is reloaded from the store (the last state known to be sound) on next use.
    fn forget_if_panicked(&mut self, room: &Room, error: &crate::history::ShardError) {
        if *error == crate::history::ShardError::Panicked {
            tracing::error!(room = %room.name, "Automerge failed on input from a peer; reloading the room's history");
            self.histories.remove(room.chat_topic.as_str());
            self.sessions.forget_room(room.chat_topic.as_str());
        }
    }

    async fn synced(&mut self, room: &Room, peer: PeerId, received: usize) {
        tracing::debug!(room = %room.name, %peer, received, "history synced");
        self.emit(Event::Synced {
            room: room.name.to_string(),
            peer_id: peer.to_string(),
            received,
        })
        .await;
    }

    /// `--relay`: load every room's history at start, so the first sync is answered at once.
    pub(super) fn preload_histories(&mut self) {
        let rooms: Vec<Room> = self.rooms.iter().cloned().collect();
        for room in rooms {
            if let Err(e) = self.history(&room) {
                tracing::warn!(room = %room.name, "cannot load history: {e}");
            }
        }
    }
}

fn seal_sync(room: &Room, body: &SyncBody) -> Vec<u8> {
    seal::seal(
        &room.key,
        &room.key.sync_channel(),
        &body.encode(),
        &mut OsRng,
    )
}

fn open_sync(room: &Room, sealed: &[u8]) -> Result<SyncBody, String> {
    let plain = seal::open_bounded(&room.key, &room.key.sync_channel(), sealed, MAX_SYNC_BYTES)
        .map_err(|e| format!("sync body: {e}"))?;
    SyncBody::decode(&plain).map_err(|e| e.to_string())
}

fn message_event(room: &Room, message: StoredMessage) -> Event {
    Event::Message {
        room: room.name.to_string(),
        id: message.id.to_hex(),
        from: message.author,
        name: message.name,
        ts: message.hlc.wall_ms(),
        kind: message.kind.as_str().to_owned(),
        text: message.text,
    }
}
