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
//! learns nothing. This module holds the wire types and a session's bookkeeping; the rules are the engine's
//! (`engine/sync.rs`).

use std::time::{Duration, Instant};

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
    /// How many messages of ours the node had stored when the session began: once it
    /// completes, the peer holds all of them (engine/delivery.rs).
    pub own_stored: u64,
}

impl Session {
    pub fn new(now: Instant) -> Self {
        Self {
            shards: Vec::new(),
            rounds: 0,
            received: 0,
            started: now,
            sent_nothing: false,
            own_stored: 0,
        }
    }
}
