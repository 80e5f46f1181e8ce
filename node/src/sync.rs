//! `/hark/sync/1`: Automerge sync of room history over libp2p request-response.
//!
//! A session runs between an initiator and a responder for one room:
//! 1. The initiator sends its shard digests. The responder answers with its own digests and,
//!    for every shard where the two differ, its first Automerge sync message.
//! 2. The initiator applies what came, and sends its sync messages for those shards; the
//!    responder applies and answers with its next ones; and so on.
//! 3. The session ends with an exchange in which neither side had anything to send. Both sides
//!    see that same exchange, so both report `synced`.
//!
//! Bodies are sealed under the room key ([`hark_proto::sync`]); the request names the room by
//! its chat topic, which is public anyway. A peer that is not in the room gets an error and
//! learns nothing. This module is pure bookkeeping; the event loop does the IO.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::request_response::OutboundRequestId;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

pub const PROTOCOL: &str = "/hark/sync/1";
/// A session gives up after this many exchanges (a healthy one needs two to four).
pub const MAX_ROUNDS: u32 = 64;
/// A session that has not finished by then is dropped, so a new one can start.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(120);
/// Each room syncs with one random room peer this often (anti-entropy).
pub const ANTI_ENTROPY_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The room's chat topic.
    pub room: String,
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncResponse {
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
    /// Set instead of `sealed` when the request could not be served.
    pub error: Option<String>,
}

impl SyncResponse {
    pub fn refused(why: &str) -> Self {
        Self {
            sealed: Vec::new(),
            error: Some(why.to_owned()),
        }
    }
}

/// One side's view of a running session.
#[derive(Debug)]
pub struct Session {
    /// The shards the two sides disagreed on; known after the first exchange.
    pub shards: Vec<u32>,
    pub rounds: u32,
    /// Messages new to us so far.
    pub received: usize,
    pub started: Instant,
    /// The initiator's last request carried no sync messages (see the module doc: an exchange
    /// where neither side sends any ends the session).
    pub sent_nothing: bool,
}

impl Session {
    fn new(now: Instant) -> Self {
        Self {
            shards: Vec::new(),
            rounds: 0,
            received: 0,
            started: now,
            sent_nothing: false,
        }
    }
}

/// Sessions in flight, by (peer, room topic), on both sides.
#[derive(Default)]
pub struct Sessions {
    outbound: HashMap<(PeerId, String), Session>,
    inbound: HashMap<(PeerId, String), Session>,
    requests: HashMap<OutboundRequestId, (PeerId, String)>,
}

impl Sessions {
    /// Start an outbound session unless one with this peer for this room is running.
    pub fn start_outbound(&mut self, peer: PeerId, room: &str, now: Instant) -> bool {
        let key = (peer, room.to_owned());
        if self.outbound.contains_key(&key) {
            return false;
        }
        self.outbound.insert(key, Session::new(now));
        true
    }

    pub fn outbound(&mut self, peer: PeerId, room: &str) -> Option<&mut Session> {
        self.outbound.get_mut(&(peer, room.to_owned()))
    }

    pub fn finish_outbound(&mut self, peer: PeerId, room: &str) -> Option<Session> {
        self.outbound.remove(&(peer, room.to_owned()))
    }

    pub fn sent(&mut self, request: OutboundRequestId, peer: PeerId, room: &str) {
        self.requests.insert(request, (peer, room.to_owned()));
    }

    /// The session a response (or failure) belongs to.
    pub fn answered(&mut self, request: &OutboundRequestId) -> Option<(PeerId, String)> {
        self.requests.remove(request)
    }

    /// The responder's session; a request with digests starts a new one.
    pub fn inbound(
        &mut self,
        peer: PeerId,
        room: &str,
        starts: bool,
        now: Instant,
    ) -> &mut Session {
        let key = (peer, room.to_owned());
        if starts {
            self.inbound.insert(key.clone(), Session::new(now));
        }
        self.inbound.entry(key).or_insert_with(|| Session::new(now))
    }

    pub fn finish_inbound(&mut self, peer: PeerId, room: &str) -> Option<Session> {
        self.inbound.remove(&(peer, room.to_owned()))
    }

    /// Drop every session with a peer that went away.
    pub fn forget_peer(&mut self, peer: &PeerId) {
        self.outbound.retain(|(p, _), _| p != peer);
        self.inbound.retain(|(p, _), _| p != peer);
        self.requests.retain(|_, (p, _)| p != peer);
    }

    /// Drop sessions of a room we left.
    pub fn forget_room(&mut self, room: &str) {
        self.outbound.retain(|(_, r), _| r != room);
        self.inbound.retain(|(_, r), _| r != room);
        self.requests.retain(|_, (_, r)| r != room);
    }

    /// Drop sessions that have run too long (a peer that stopped answering mid-way).
    pub fn expire(&mut self, now: Instant) {
        let live = |s: &Session| now.duration_since(s.started) < SESSION_TIMEOUT;
        self.outbound.retain(|_, s| live(s));
        self.inbound.retain(|_, s| live(s));
    }

    pub fn is_syncing(&self) -> bool {
        !self.outbound.is_empty() || !self.inbound.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_outbound_session_per_peer_and_room_and_expiry() {
        let mut sessions = Sessions::default();
        let peer = PeerId::random();
        let now = Instant::now();
        assert!(sessions.start_outbound(peer, "r", now));
        assert!(!sessions.start_outbound(peer, "r", now));
        assert!(sessions.start_outbound(peer, "s", now));
        sessions.inbound(peer, "r", true, now).received = 3;
        assert_eq!(sessions.inbound(peer, "r", false, now).received, 3);
        assert_eq!(sessions.inbound(peer, "r", true, now).received, 0);
        sessions.expire(now + SESSION_TIMEOUT);
        assert!(!sessions.is_syncing());
        assert!(sessions.start_outbound(peer, "r", now));
        sessions.forget_peer(&peer);
        assert!(sessions.finish_outbound(peer, "r").is_none());
    }
}
