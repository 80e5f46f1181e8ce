//! Blind relays (`/hark/blind/1`, [`hark_proto::blind`]), both sides.
//!
//! **The relay** (`--relay`) keeps what members hand it — the sealed bytes they published on a
//! private room's or a DM's chat topic — in `blind.db` ([`BlindPort`]), within the bounds
//! documented in `store/blind.rs`, and answers fetches for a topic after a cursor. It carries
//! every topic it is handed (a chat topic, within the bounds); it never holds or asks for a
//! key, so it cannot open, check or forge what it keeps.
//!
//! **A member** learns that a peer is a blind relay when identify lists the protocol
//! ([`Input::BlindRelay`]). It then:
//! - stores its own messages of private rooms and DMs: each one as it is sent, and on meeting
//!   a relay those not yet held by any (the outbox, kept in `blind.db` across restarts,
//!   bounded). A relay's
//!   `Stored`/`Known` answer means it holds the message: `delivered` names the relay
//!   (engine/delivery.rs);
//! - fetches, on meeting the relay and every [`BLIND_EVERY`], what it holds for the topics of
//!   its private rooms and DMs and of the DMs it would have with every peer it has met or
//!   heard in a room they share (kept in `blind.db`), each after the cursor of the last fetch (in memory: a restart fetches again,
//!   and what is known already is dropped as a replay).
//!
//! What a member takes from a relay is second-hand: it must open under the room key (a wrong
//! key or topic: dropped), decode as a chat change, not be a replay (an envelope id seen
//! already), and every record in it must carry its author's valid signature for the room
//! (`take_in` with the relay as the sender, exactly as for sync through a relay). A DM room
//! becomes real (`joined`) when the first item for it opens, as if it had come by gossip.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use hark_proto::blind::{
    BlindRequest, BlindResponse, Held, Sealed, StoreResult, Want, MAX_BATCH_BYTES,
    MAX_FETCH_TOPICS, MAX_STORE_ITEMS,
};
use hark_proto::{Body, MessageId, Topic};
use libp2p::PeerId;

use super::history::Taken;
use super::{Engine, Input, Output, Storage, Timer};
use crate::api::Event;
use crate::rooms::Room;
use crate::store::blind::{BlindDb, OutboxItem, MAX_MET, MAX_OUTBOX};
use crate::validate::{open_chat, Drop};

/// Members fetch from (and store to) each connected relay this often.
pub const BLIND_EVERY: Duration = Duration::from_secs(10);
/// Relays whose cursors are remembered.
const MAX_CURSORS: usize = 64;

/// What blind relaying needs from durable state: the relay's items, a member's peers met.
/// Errors are one-line reasons.
pub trait BlindPort: Send {
    fn put(
        &mut self,
        topic: &str,
        sender: &str,
        sealed: &[u8],
        now_ms: u64,
    ) -> Result<StoreResult, String>;
    fn fetch(&mut self, wants: &[Want], now_ms: u64) -> Result<(Vec<Held>, bool), String>;
    fn note_met(&mut self, peer: &str, now_ms: u64) -> Result<(), String>;
    fn met(&mut self) -> Result<Vec<String>, String>;
    /// Our own messages no relay holds yet, kept across restarts.
    fn outbox_put(
        &mut self,
        topic: &str,
        id: &[u8; 16],
        sealed: &[u8],
        now_ms: u64,
    ) -> Result<(), String>;
    fn outbox_remove(&mut self, id: &[u8; 16]) -> Result<(), String>;
    fn outbox(&mut self) -> Result<Vec<OutboxItem>, String>;
}

impl BlindPort for BlindDb {
    fn put(
        &mut self,
        topic: &str,
        sender: &str,
        sealed: &[u8],
        now_ms: u64,
    ) -> Result<StoreResult, String> {
        BlindDb::put(self, topic, sender, sealed, now_ms).map_err(|e| e.to_string())
    }

    fn fetch(&mut self, wants: &[Want], now_ms: u64) -> Result<(Vec<Held>, bool), String> {
        BlindDb::fetch(self, wants, now_ms).map_err(|e| e.to_string())
    }

    fn note_met(&mut self, peer: &str, now_ms: u64) -> Result<(), String> {
        BlindDb::note_met(self, peer, now_ms).map_err(|e| e.to_string())
    }

    fn met(&mut self) -> Result<Vec<String>, String> {
        BlindDb::met(self).map_err(|e| e.to_string())
    }

    fn outbox_put(
        &mut self,
        topic: &str,
        id: &[u8; 16],
        sealed: &[u8],
        now_ms: u64,
    ) -> Result<(), String> {
        BlindDb::outbox_put(self, topic, id, sealed, now_ms).map_err(|e| e.to_string())
    }

    fn outbox_remove(&mut self, id: &[u8; 16]) -> Result<(), String> {
        BlindDb::outbox_remove(self, id).map_err(|e| e.to_string())
    }

    fn outbox(&mut self) -> Result<Vec<OutboxItem>, String> {
        BlindDb::outbox(self).map_err(|e| e.to_string())
    }
}

/// One of our messages, sealed as published, until a relay holds it.
struct Outgoing {
    topic: Topic,
    id: MessageId,
    sealed: Vec<u8>,
}

/// A request of ours in flight, by token.
enum Pending {
    Store(Vec<(Topic, MessageId)>),
    Fetch,
}

/// The engine's blind-relay state.
#[derive(Default)]
pub struct Blind {
    port: Option<Box<dyn BlindPort>>,
    /// Connected peers that are blind relays.
    relays: BTreeSet<PeerId>,
    outbox: VecDeque<Outgoing>,
    /// Per relay, per topic: the highest sequence number fetched.
    cursors: HashMap<PeerId, HashMap<String, u64>>,
    pending: HashMap<u64, (PeerId, Pending)>,
    next_token: u64,
    /// Relays with a fetch in flight (one at a time each).
    fetching: HashSet<PeerId>,
    /// The DM chat topics of the peers met, to the peer (loaded from the port on first use).
    met: Option<HashMap<String, PeerId>>,
    timer_set: bool,
}

impl<S: Storage> Engine<S> {
    /// Plug in `blind.db` (the node does; without it a relay refuses to keep anything and a
    /// member remembers the peers it met for this run only).
    pub fn set_blind_store(&mut self, mut port: Box<dyn BlindPort>) {
        // What an earlier run wrote that no relay took yet, for rooms we are still in.
        let waiting = port.outbox().unwrap_or_else(|e| {
            tracing::warn!("cannot read the messages waiting for a relay: {e}");
            Vec::new()
        });
        self.blind.outbox.clear();
        for (topic, id, sealed) in waiting {
            if let Some(room) = self.book.by_topic(&topic) {
                self.blind.outbox.push_back(Outgoing {
                    topic: room.chat_topic.clone(),
                    id: MessageId(id),
                    sealed,
                });
            }
        }
        self.blind.port = Some(port);
        self.blind.met = None;
    }

    /// Before an input is handled: connections come and go (peers met, relays lost).
    pub(super) fn watch_blind(&mut self, input: &Input) {
        match input {
            Input::Connected {
                peer, first: true, ..
            } => self.note_met(*peer),
            Input::Disconnected {
                peer, remaining: 0, ..
            } => {
                self.blind.relays.remove(peer);
                self.blind.fetching.remove(peer);
            }
            _ => {}
        }
    }

    /// Identify says `peer` runs `/hark/blind/1`: hand it what it lacks and ask what it has.
    pub(super) fn on_blind_relay(&mut self, peer: PeerId) {
        if peer == self.me || !self.peers.contains_key(&peer) {
            return;
        }
        if !self.blind.relays.insert(peer) {
            return;
        }
        tracing::info!(%peer, "peer is a blind relay");
        self.push_outbox(peer);
        self.blind_fetch(peer);
        if !self.blind.timer_set {
            self.blind.timer_set = true;
            self.set_timer(BLIND_EVERY, Timer::Blind);
        }
    }

    pub(super) fn blind_due(&mut self) {
        self.blind.timer_set = false;
        if self.blind.relays.is_empty() {
            return;
        }
        let relays: Vec<PeerId> = self.blind.relays.iter().copied().collect();
        for relay in relays {
            self.push_outbox(relay);
            self.blind_fetch(relay);
        }
        self.blind.timer_set = true;
        self.set_timer(BLIND_EVERY, Timer::Blind);
    }

    /// A peer met, or heard in a room we share: its DM with us is among what relays are asked
    /// for.
    pub(super) fn note_met(&mut self, peer: PeerId) {
        if peer == self.me {
            return;
        }
        let now = self.wall_ms();
        if let Some(port) = self.blind.port.as_mut() {
            if let Err(e) = port.note_met(&peer.to_base58(), now) {
                tracing::warn!("cannot remember a peer met: {e}");
            }
        }
        // Past the store's bound, the next use reloads the newest peers met from it.
        if self
            .blind
            .met
            .as_ref()
            .is_some_and(|met| met.len() >= MAX_MET)
        {
            self.blind.met = None;
        }
        if self.blind.met.is_some() {
            if let Ok(room) = self.direct_room(&peer) {
                if let Some(met) = self.blind.met.as_mut() {
                    met.insert(room.chat_topic.as_str().to_owned(), peer);
                }
            }
        }
    }

    /// The DM topics of the peers met (the newest first, up to the port's bound).
    fn met_topics(&mut self) -> &HashMap<String, PeerId> {
        if self.blind.met.is_none() {
            let peers = match self.blind.port.as_mut().map(|p| p.met()) {
                Some(Ok(peers)) => peers,
                Some(Err(e)) => {
                    tracing::warn!("cannot read the peers met: {e}");
                    Vec::new()
                }
                None => Vec::new(),
            };
            let mut met = HashMap::new();
            for peer in peers.iter().filter_map(|p| p.parse::<PeerId>().ok()) {
                if let Ok(room) = self.direct_room(&peer) {
                    met.insert(room.chat_topic.as_str().to_owned(), peer);
                }
            }
            self.blind.met = Some(met);
        }
        self.blind.met.get_or_insert_with(HashMap::new)
    }

    fn next_token(&mut self) -> u64 {
        self.blind.next_token += 1;
        self.blind.next_token
    }

    // ----- a member: storing our own -----

    /// Our message `id` was just published in the room of `topic`: if the room is private (a
    /// DM too), keep its sealed bytes until a relay holds them, and hand them to the relays
    /// connected now. The bytes are those of the `Publish` this input produced.
    /// Our message `id` of a private room or DM was sealed for publishing as `sealed`: keep it
    /// until a relay holds it, and hand it to the relays we have.
    pub(super) fn offer_to_relays(&mut self, topic: &Topic, id: MessageId, sealed: Vec<u8>) {
        if self.blind.outbox.len() >= MAX_OUTBOX {
            self.blind.outbox.pop_front();
        }
        let item = Outgoing {
            topic: topic.clone(),
            id,
            sealed,
        };
        let now = self.wall_ms();
        if let Some(port) = self.blind.port.as_mut() {
            if let Err(e) = port.outbox_put(item.topic.as_str(), &id.0, &item.sealed, now) {
                tracing::warn!("cannot keep a message for relays: {e}");
            }
        }
        let relays: Vec<PeerId> = self.blind.relays.iter().copied().collect();
        for relay in relays {
            self.send_store(relay, std::slice::from_ref(&item));
        }
        self.blind.outbox.push_back(item);
    }

    /// Hand `relay` everything in the outbox (what no relay holds yet), unless a store to it is
    /// still unanswered: a slow relay is not sent the whole outbox again every round.
    fn push_outbox(&mut self, relay: PeerId) {
        let storing = self
            .blind
            .pending
            .values()
            .any(|(to, pending)| *to == relay && matches!(pending, Pending::Store(_)));
        if storing {
            return;
        }
        let items: Vec<Outgoing> = self
            .blind
            .outbox
            .iter()
            .map(|o| Outgoing {
                topic: o.topic.clone(),
                id: o.id,
                sealed: o.sealed.clone(),
            })
            .collect();
        let mut batch: Vec<Outgoing> = Vec::new();
        let mut bytes = 0;
        for item in items {
            if batch.len() == MAX_STORE_ITEMS || bytes + item.sealed.len() > MAX_BATCH_BYTES {
                self.send_store(relay, &batch);
                batch.clear();
                bytes = 0;
            }
            bytes += item.sealed.len();
            batch.push(item);
        }
        if !batch.is_empty() {
            self.send_store(relay, &batch);
        }
    }

    fn send_store(&mut self, relay: PeerId, items: &[Outgoing]) {
        let token = self.next_token();
        let request = BlindRequest::Store {
            items: items
                .iter()
                .map(|o| Sealed {
                    topic: o.topic.as_str().to_owned(),
                    sealed: o.sealed.clone(),
                })
                .collect(),
        };
        let what = items.iter().map(|o| (o.topic.clone(), o.id)).collect();
        self.blind
            .pending
            .insert(token, (relay, Pending::Store(what)));
        self.out.push(Output::BlindRequest {
            peer: relay,
            token,
            request,
        });
    }

    fn on_stored(
        &mut self,
        relay: PeerId,
        items: Vec<(Topic, MessageId)>,
        results: &[StoreResult],
    ) {
        for ((topic, id), result) in items.into_iter().zip(results) {
            match result {
                StoreResult::Stored | StoreResult::Known => {
                    self.blind.outbox.retain(|o| o.id != id);
                    if let Some(port) = self.blind.port.as_mut() {
                        if let Err(e) = port.outbox_remove(&id.0) {
                            tracing::warn!("cannot forget a message a relay holds: {e}");
                        }
                    }
                    tracing::debug!(%relay, id = %id, "a blind relay holds our message");
                    self.held_by(&topic, relay, id);
                }
                StoreResult::Refused => {
                    tracing::debug!(%relay, id = %id, "a blind relay did not keep our message");
                }
            }
        }
    }

    // ----- a member: fetching -----

    /// Ask `relay` what it holds for our private rooms, our DMs and the DMs we would have with
    /// the peers met, after the last cursors.
    fn blind_fetch(&mut self, relay: PeerId) {
        if self.blind.fetching.contains(&relay) {
            return;
        }
        let mut topics: Vec<String> = self
            .rooms
            .values()
            .filter(|r| r.room.private)
            .map(|r| r.room.chat_topic.as_str().to_owned())
            .collect();
        topics.sort();
        let mut met: Vec<String> = self
            .met_topics()
            .keys()
            .filter(|t| !topics.contains(t))
            .cloned()
            .collect();
        met.sort();
        topics.extend(met);
        topics.truncate(MAX_FETCH_TOPICS);
        if topics.is_empty() {
            return;
        }
        if !self.blind.cursors.contains_key(&relay) && self.blind.cursors.len() >= MAX_CURSORS {
            self.blind.cursors.clear();
        }
        let cursors = self.blind.cursors.entry(relay).or_default();
        let wants = topics
            .into_iter()
            .map(|topic| Want {
                after: cursors.get(&topic).copied().unwrap_or(0),
                topic,
            })
            .collect();
        let token = self.next_token();
        self.blind.pending.insert(token, (relay, Pending::Fetch));
        self.blind.fetching.insert(relay);
        self.out.push(Output::BlindRequest {
            peer: relay,
            token,
            request: BlindRequest::Fetch { wants },
        });
    }

    /// What a relay holds for us: each item checked and taken in like a gossip message that
    /// came second-hand.
    fn on_items(&mut self, relay: PeerId, items: Vec<Held>, more: bool) {
        let mut taken = 0;
        let mut advanced = false;
        for item in items {
            // A topic we did not ask about gets no cursor: a relay cannot grow our memory.
            let asked = self.book.by_topic(&item.topic).is_some()
                || self.met_topics().contains_key(&item.topic);
            if !asked {
                self.count_drop(Drop::Unauthentic, relay, "(from a blind relay)");
                continue;
            }
            let cursor = self
                .blind
                .cursors
                .entry(relay)
                .or_default()
                .entry(item.topic.clone())
                .or_default();
            advanced |= item.seq > *cursor;
            *cursor = (*cursor).max(item.seq);
            match self.take_blind(relay, &item) {
                Ok(n) => taken += n,
                // Had already (by gossip, sync, or an earlier fetch): the normal case.
                Err(Drop::Replayed) => {}
                Err(drop) => self.count_drop(drop, relay, "(from a blind relay)"),
            }
        }
        if taken > 0 {
            tracing::debug!(%relay, taken, "messages from a blind relay");
        }
        // Only a page that moved a cursor earns the next one at once: a relay answering
        // `more` with nothing new waits for the next round like any other.
        if more && advanced {
            self.blind_fetch(relay);
        }
    }

    /// One item: open it under the room it claims, and take its change in. Returns how many
    /// messages were new.
    fn take_blind(&mut self, relay: PeerId, item: &Held) -> Result<usize, Drop> {
        let (room, dm_with): (Room, Option<PeerId>) = match self.book.by_topic(&item.topic) {
            Some(room) => (room.clone(), None),
            None => {
                let Some(peer) = self.met_topics().get(&item.topic).copied() else {
                    // Not a topic we asked about.
                    return Err(Drop::Unauthentic);
                };
                let room = self.direct_room(&peer).map_err(|_| Drop::Unauthentic)?;
                (room, Some(peer))
            }
        };
        let envelope = open_chat(&room, &item.sealed)?;
        let Body::Change { shard, change } = envelope.body else {
            return Err(Drop::Malformed);
        };
        let author = PeerId::from_bytes(&envelope.author).map_err(|_| Drop::Malformed)?;
        if !self.seen.insert(envelope.id) {
            return Err(Drop::Replayed);
        }
        // It opened under the DM key, which only its two members can derive: the room is real.
        if let Some(peer) = dm_with {
            match self.open_direct(peer) {
                Ok(Some(name)) => self.emit(Event::Joined { room: name }),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%peer, code = e.code, "cannot open the direct-message room: {}", e.detail);
                    return Ok(0);
                }
            }
        }
        let topic = room.chat_topic.clone();
        if author != self.me {
            self.heard_in(&topic, author);
        }
        let added = self.on_gossip_change(&topic, shard, &change, &envelope.author, relay)?;
        // A change waiting for its dependencies would have us sync with the relay, which is no
        // member: leave it to anti-entropy with the room's peers.
        if let Some(state) = self.rooms.get_mut(&topic) {
            if state.deps_due.is_some_and(|(_, peer)| peer == relay) {
                state.deps_due = None;
            }
        }
        Ok(match added {
            // The relay is not the author: every record must carry its author's signature.
            // Stored at once (after what the room holds), not held: take_in checks the signature.
            Some(Taken::Now(added) | Taken::Held(added)) => {
                self.take_in(&topic, vec![added], &relay.to_bytes())
            }
            None => 0,
        })
    }

    /// The answer to our request `token` to `peer`.
    pub(super) fn on_blind_response(&mut self, peer: PeerId, token: u64, response: BlindResponse) {
        let Some((relay, pending)) = self.blind.pending.remove(&token) else {
            return;
        };
        if relay != peer {
            return;
        }
        let sent = match &pending {
            Pending::Store(items) => Some(items.len()),
            Pending::Fetch => None,
        };
        if matches!(pending, Pending::Fetch) {
            self.blind.fetching.remove(&peer);
        }
        if let Err(e) = response.check(sent) {
            tracing::warn!(%peer, "bad answer from a blind relay: {e}");
            return;
        }
        match (pending, response) {
            (Pending::Store(items), BlindResponse::Stored { results }) => {
                self.on_stored(peer, items, &results);
            }
            (Pending::Fetch, BlindResponse::Items { items, more }) => {
                self.on_items(peer, items, more);
            }
            (_, BlindResponse::Refused { reason }) => {
                tracing::debug!(%peer, "blind relay refused: {reason}");
            }
            _ => tracing::warn!(%peer, "a blind relay answered the wrong question"),
        }
    }

    pub(super) fn on_blind_failed(&mut self, peer: PeerId, token: u64) {
        if let Some((_, Pending::Fetch)) = self.blind.pending.remove(&token) {
            self.blind.fetching.remove(&peer);
        }
    }

    // ----- the relay -----

    /// A member's request. Only a `--relay` with its store keeps or hands out anything.
    pub(super) fn answer_blind(&mut self, peer: PeerId, request: BlindRequest) -> BlindResponse {
        if !self.relay {
            return BlindResponse::refused("not a blind relay");
        }
        if let Err(e) = request.check() {
            tracing::debug!(%peer, "refused a blind request: {e}");
            return BlindResponse::refused(&e.to_string());
        }
        let now = self.wall_ms();
        let Some(port) = self.blind.port.as_mut() else {
            return BlindResponse::refused("no store for blind items");
        };
        match request {
            BlindRequest::Store { items } => {
                let sender = peer.to_base58();
                let mut results = Vec::with_capacity(items.len());
                for item in &items {
                    let result = match BlindRequest::check_item(item) {
                        Err(_) => StoreResult::Refused,
                        Ok(()) => match port.put(&item.topic, &sender, &item.sealed, now) {
                            Ok(result) => result,
                            Err(e) => {
                                tracing::warn!("cannot keep a blind item: {e}");
                                StoreResult::Refused
                            }
                        },
                    };
                    results.push(result);
                }
                let stored = results
                    .iter()
                    .filter(|r| **r == StoreResult::Stored)
                    .count();
                tracing::debug!(%peer, items = items.len(), stored, "blind items handed to us");
                BlindResponse::Stored { results }
            }
            BlindRequest::Fetch { wants } => match port.fetch(&wants, now) {
                Ok((items, more)) => {
                    if !items.is_empty() {
                        tracing::debug!(%peer, items = items.len(), more, "blind items handed on");
                    }
                    BlindResponse::Items { items, more }
                }
                Err(e) => {
                    tracing::warn!("cannot read blind items: {e}");
                    BlindResponse::refused("store unavailable")
                }
            },
        }
    }
}

#[cfg(test)]
mod tests;
