//! `/hark/sync/1` sessions, both sides (the protocol is described in [`crate::sync`]); when
//! sessions start: a new room peer, anti-entropy, changes waiting for dependencies, and the
//! onward spread of what a session brought.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hark_proto::sync::{SyncBody, MAX_SYNC_BYTES};
use hark_proto::{seal, Topic};
use libp2p::PeerId;
use rand::seq::IteratorRandom;

use super::history::check_authorship;
use super::{Engine, Output, Storage, Timer};
use crate::api::Event;
use crate::history::Added;
use crate::rooms::Room;
use crate::sync::{Session, SyncRequest, SyncResponse, MAX_ROUNDS, SESSION_TIMEOUT};

/// Onward syncs after a sync brought news: at most this often per room.
const SPREAD_INTERVAL: Duration = Duration::from_secs(2);

/// Which side of a session.
#[derive(Clone, Copy)]
enum Side {
    Outbound,
    Inbound,
}

impl<S: Storage> Engine<S> {
    /// Start a sync session with `peer` for the room of `topic`, unless one is running.
    pub(super) fn start_sync(&mut self, peer: PeerId, topic: &Topic) {
        let now = self.now.at;
        let own_stored = self.stored_seq;
        match self.rooms.get_mut(topic) {
            Some(room) if !room.outbound.contains_key(&peer) => {
                let mut session = Session::new(now);
                session.own_stored = own_stored;
                room.outbound.insert(peer, session);
            }
            _ => return,
        }
        // As in `answer_sync`: what we showed is stored before we say what we hold.
        self.save_held(topic);
        let digests = match self.history(topic) {
            Ok(history) => {
                history.begin_session(peer);
                history.digests()
            }
            Err(_) => {
                self.finish(Side::Outbound, peer, topic);
                return;
            }
        };
        self.set_timer(SESSION_TIMEOUT, Timer::SessionTimeout(topic.clone(), peer));
        let body = SyncBody {
            digests: Some(digests),
            messages: Vec::new(),
        };
        self.send_sync_request(peer, topic, body);
    }

    fn send_sync_request(&mut self, peer: PeerId, topic: &Topic, body: SyncBody) {
        let Some(room) = self.rooms.get_mut(topic) else {
            return;
        };
        if let Some(session) = room.outbound.get_mut(&peer) {
            session.sent_nothing = body.messages.is_empty();
        }
        let room = room.room.clone();
        let sealed = seal_sync(&room, &body, &mut self.rng);
        if sealed.len() > MAX_SYNC_BYTES {
            tracing::warn!(room = %room.name, %peer, bytes = sealed.len(), "sync message over the limit: session abandoned");
            self.finish(Side::Outbound, peer, topic);
            return;
        }
        self.out.push(Output::SyncRequest {
            peer,
            topic: topic.clone(),
            request: SyncRequest {
                room: topic.as_str().to_owned(),
                sealed,
            },
        });
    }

    /// End a session; returns it if it was running.
    fn finish(&mut self, side: Side, peer: PeerId, topic: &Topic) -> Option<Session> {
        let room = self.rooms.get_mut(topic)?;
        match side {
            Side::Outbound => room.outbound.remove(&peer),
            Side::Inbound => room.inbound.remove(&peer),
        }
    }

    fn session(&mut self, side: Side, peer: PeerId, topic: &Topic) -> Option<&mut Session> {
        let room = self.rooms.get_mut(topic)?;
        match side {
            Side::Outbound => room.outbound.get_mut(&peer),
            Side::Inbound => room.inbound.get_mut(&peer),
        }
    }

    /// A session that has run too long (a peer that stopped answering mid-way) is dropped, so a
    /// new one can start.
    pub(super) fn session_timeout(&mut self, topic: &Topic, peer: PeerId) {
        let now = self.now.at;
        let Some(room) = self.rooms.get_mut(topic) else {
            return;
        };
        let live = |s: &Session| now.duration_since(s.started) < SESSION_TIMEOUT;
        if room.outbound.get(&peer).is_some_and(|s| !live(s)) {
            room.outbound.remove(&peer);
        }
        if room.inbound.get(&peer).is_some_and(|s| !live(s)) {
            room.inbound.remove(&peer);
        }
    }

    /// Every room syncs with one random peer of that room now and then, so that anything gossip
    /// lost (a partition, a dropped frame) is repaired without waiting for a reconnect.
    pub(super) fn anti_entropy(&mut self) {
        self.set_timer(crate::sync::ANTI_ENTROPY_INTERVAL, Timer::AntiEntropy);
        let mut topics: Vec<Topic> = self.rooms.keys().cloned().collect();
        topics.sort();
        for topic in topics {
            let peers = self.room_peers(&topic);
            if let Some(peer) = peers.into_iter().choose(&mut self.rng) {
                self.start_sync(peer, &topic);
            }
        }
    }

    /// A newly joined room: sync with the peers already in it (the rule of who starts is the
    /// same as for a peer that joins: the smaller peer id).
    pub(super) fn sync_new_room(&mut self, topic: &Topic) {
        for peer in self.room_peers(topic) {
            if self.me < peer {
                self.start_sync(peer, topic);
            }
        }
    }

    /// Changes still wait for their dependencies after the grace period: sync with the peer
    /// that sent them.
    pub(super) fn check_waiting(&mut self, topic: &Topic) {
        let now = self.now.at;
        let Some(room) = self.rooms.get_mut(topic) else {
            return;
        };
        let Some((at, peer)) = room.deps_due else {
            return;
        };
        if at > now {
            return;
        }
        room.deps_due = None;
        let still_waiting = room
            .history
            .as_mut()
            .is_some_and(crate::history::RoomHistory::is_waiting);
        if still_waiting {
            self.start_sync(peer, topic);
        }
    }

    /// Sync brought messages that gossip never carried to our other room peers (a healed
    /// partition, a relay's backlog): pass them on by syncing with those peers too. Where the
    /// peer already has them the session ends after one exchange of digests. At most once per
    /// room every [`SPREAD_INTERVAL`]: a later request waits for its turn, so a sync that races
    /// live gossip in a big mesh cannot set off a cascade of sessions.
    pub(super) fn spread(&mut self, topic: &Topic, from: PeerId) {
        let now = self.now.at;
        let Some(room) = self.rooms.get_mut(topic) else {
            return;
        };
        let earliest = room.last_spread.map_or(now, |at| at + SPREAD_INTERVAL);
        if earliest > now {
            if room.spread_due.is_none() {
                room.spread_due = Some(earliest);
                self.set_timer(earliest - now, Timer::Spread(topic.clone()));
            }
            return;
        }
        room.last_spread = Some(now);
        for peer in self.room_peers(topic) {
            if peer != from {
                self.start_sync(peer, topic);
            }
        }
    }

    /// A spread that had to wait for its turn.
    pub(super) fn spread_due(&mut self, topic: &Topic) {
        let now = self.now.at;
        let Some(room) = self.rooms.get_mut(topic) else {
            return;
        };
        if room.spread_due.is_none_or(|at| at > now) {
            return;
        }
        room.spread_due = None;
        // Nobody is excluded: the peer we synced with agrees by now and costs one exchange of
        // digests.
        self.spread(topic, self.me);
    }

    /// The responder's side of one exchange.
    pub(super) fn answer_sync(&mut self, peer: PeerId, request: SyncRequest) -> SyncResponse {
        let Some(room) = self.book.by_topic(&request.room).cloned() else {
            return SyncResponse::refused("not in this room");
        };
        let topic = room.chat_topic.clone();
        let body = match open_sync(&room, &request.sealed) {
            Ok(body) => body,
            Err(why) => {
                tracing::warn!(%peer, room = %room.name, "refused a sync request: {why}");
                return SyncResponse::refused(&why);
            }
        };
        let starts = body.digests.is_some();
        if starts {
            // A session that completes tells the peer we hold what it has (delivery marks):
            // what we showed is stored first.
            self.save_held(&topic);
        }
        let checker = Checker::new(&topic, peer);
        let (added, outcome) = match self.history(&topic) {
            Ok(history) => {
                if starts {
                    history.begin_session(peer);
                }
                let mut added = Vec::new();
                let outcome =
                    history.receive_checked(peer, &body.messages, &mut added, &checker.check());
                (added, outcome)
            }
            Err(e) => return SyncResponse::refused(&format!("history unavailable: {e}")),
        };
        let received = self.take_in_checked(&topic, added, checker.forged());
        if received > 0 {
            self.spread(&topic, peer);
        }
        if let Err(e) = outcome {
            tracing::warn!(%peer, room = %room.name, "bad sync message: {e}");
            self.forget_if_panicked(&topic, &e);
            self.finish(Side::Inbound, peer, &topic);
            return SyncResponse::refused("bad sync message");
        }
        let Ok(history) = self.history(&topic) else {
            return SyncResponse::refused("history unavailable");
        };
        let differing = body
            .digests
            .as_ref()
            .map(|theirs| history.differing(theirs));
        let digests = starts.then(|| history.digests());
        let now = self.now.at;
        let own_stored = self.stored_seq;
        let Some(state) = self.rooms.get_mut(&topic) else {
            return SyncResponse::refused("not in this room");
        };
        if starts || !state.inbound.contains_key(&peer) {
            let mut session = Session::new(now);
            session.own_stored = own_stored;
            state.inbound.insert(peer, session);
            self.set_timer(SESSION_TIMEOUT, Timer::SessionTimeout(topic.clone(), peer));
        }
        let Some(session) = self.session(Side::Inbound, peer, &topic) else {
            return SyncResponse::refused("not in this room");
        };
        if let Some(differing) = differing {
            session.shards = differing;
        }
        session.rounds += 1;
        session.received += received;
        if session.rounds > MAX_ROUNDS {
            self.finish(Side::Inbound, peer, &topic);
            return SyncResponse::refused("too many rounds");
        }
        let shards = session.shards.clone();
        let Ok(history) = self.history(&topic) else {
            return SyncResponse::refused("history unavailable");
        };
        let reply = SyncBody {
            digests,
            messages: history.generate(peer, &shards),
        };
        if body.messages.is_empty() && reply.messages.is_empty() {
            if let Some(session) = self.finish(Side::Inbound, peer, &topic) {
                self.synced(&topic, peer, &session);
            }
        }
        SyncResponse {
            sealed: seal_sync(&room, &reply, &mut self.rng),
            error: None,
        }
    }

    /// The initiator's side: take in a response and send the next request, or finish.
    pub(super) fn on_sync_response(&mut self, peer: PeerId, topic: &Topic, response: SyncResponse) {
        let Some(room) = self.rooms.get(topic).map(|r| r.room.clone()) else {
            return;
        };
        if self.session(Side::Outbound, peer, topic).is_none() {
            return;
        }
        let body = match response.error {
            Some(why) => Err(format!("peer refused: {why}")),
            None => open_sync(&room, &response.sealed),
        };
        let body = match body {
            Ok(body) => body,
            Err(why) => {
                tracing::warn!(%peer, room = %room.name, "sync stopped: {why}");
                self.finish(Side::Outbound, peer, topic);
                return;
            }
        };
        let checker = Checker::new(topic, peer);
        let began = std::time::Instant::now();
        let (added, outcome) = match self.history(topic) {
            Ok(history) => {
                let mut added = Vec::new();
                let outcome =
                    history.receive_checked(peer, &body.messages, &mut added, &checker.check());
                (added, outcome)
            }
            Err(_) => {
                self.finish(Side::Outbound, peer, topic);
                return;
            }
        };
        let applied = began.elapsed();
        let received = self.take_in_checked(topic, added, checker.forged());
        if received > 0 {
            // Where a catch-up's time goes (docs/performance.md), for whoever turns debug on.
            tracing::debug!(
                %peer,
                received,
                applied_ms = applied.as_millis() as u64,
                stored_and_shown_ms = (began.elapsed() - applied).as_millis() as u64,
                "sync response taken in"
            );
            self.spread(topic, peer);
        }
        if let Err(e) = outcome {
            tracing::warn!(%peer, room = %room.name, "sync stopped, bad sync message: {e}");
            self.forget_if_panicked(topic, &e);
            self.finish(Side::Outbound, peer, topic);
            return;
        }
        let differing = match self.history(topic) {
            Ok(history) => body
                .digests
                .as_ref()
                .map(|theirs| history.differing(theirs)),
            Err(_) => {
                self.finish(Side::Outbound, peer, topic);
                return;
            }
        };
        let Some(session) = self.session(Side::Outbound, peer, topic) else {
            return;
        };
        if let Some(differing) = differing {
            session.shards = differing;
        }
        session.rounds += 1;
        session.received += received;
        if session.sent_nothing && body.messages.is_empty() {
            if let Some(session) = self.finish(Side::Outbound, peer, topic) {
                self.synced(topic, peer, &session);
            }
            return;
        }
        if session.rounds >= MAX_ROUNDS {
            tracing::warn!(%peer, room = %room.name, "sync did not settle in {MAX_ROUNDS} rounds");
            self.finish(Side::Outbound, peer, topic);
            return;
        }
        let shards = session.shards.clone();
        let messages = match self.history(topic) {
            Ok(history) => history.generate(peer, &shards),
            Err(_) => {
                self.finish(Side::Outbound, peer, topic);
                return;
            }
        };
        self.send_sync_request(
            peer,
            topic,
            SyncBody {
                digests: None,
                messages,
            },
        );
    }

    pub(super) fn on_sync_failed(&mut self, peer: PeerId, topic: &Topic) {
        tracing::debug!(%peer, "sync request failed");
        self.finish(Side::Outbound, peer, topic);
    }

    fn synced(&mut self, topic: &Topic, peer: PeerId, session: &Session) {
        let received = session.received;
        tracing::debug!(%peer, received, "history synced");
        let room = self.room_name(topic);
        self.emit(Event::Synced {
            room,
            peer_id: peer.to_string(),
            received,
        });
        self.session_completed(topic, peer, session.own_stored);
    }
}

/// Signature checks for what a sync message brings, run by the history as each shard is
/// applied (beside the Automerge work of the other shards); counts what it dropped.
struct Checker {
    topic: String,
    peer: Vec<u8>,
    forged: AtomicUsize,
}

impl Checker {
    fn new(topic: &Topic, peer: PeerId) -> Self {
        Self {
            topic: topic.as_str().to_owned(),
            peer: peer.to_bytes(),
            forged: AtomicUsize::new(0),
        }
    }

    fn check(&self) -> impl Fn(&mut Added, bool) + Sync + '_ {
        |chunk: &mut Added, spread: bool| {
            let dropped = check_authorship(chunk, &self.topic, &self.peer, spread);
            self.forged.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    fn forged(&self) -> usize {
        self.forged.load(Ordering::Relaxed)
    }
}

fn seal_sync(room: &Room, body: &SyncBody, rng: &mut rand::rngs::StdRng) -> Vec<u8> {
    seal::seal(&room.key, &room.key.sync_channel(), &body.encode(), rng)
}

fn open_sync(room: &Room, sealed: &[u8]) -> Result<SyncBody, String> {
    let plain = seal::open_bounded(&room.key, &room.key.sync_channel(), sealed, MAX_SYNC_BYTES)
        .map_err(|e| format!("sync body: {e}"))?;
    SyncBody::decode(&plain).map_err(|e| e.to_string())
}
