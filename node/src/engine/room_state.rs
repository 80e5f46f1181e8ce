//! The engine's state per room and per connected peer. Each is one entry keyed once: leaving a
//! room or losing a peer drops everything the engine knew of it in one step.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use hark_proto::Topic;
use libp2p::{Multiaddr, PeerId};

use crate::history::RoomHistory;
use crate::rooms::Room;
use crate::sync::Session;

/// A joined room.
pub struct RoomState {
    pub room: Room,
    /// Its history, loaded from the store on first use (or at start on a relay).
    pub history: Option<RoomHistory>,
    /// When we next announce ourselves here (a timer is set for it).
    pub presence_at: Option<Instant>,
    /// Whether that announcement answers a newcomer (never held back) or is a regular one.
    pub presence_soon: bool,
    /// When we last announced ourselves here.
    pub last_presence: Option<Instant>,
    /// When we last told the room we are typing.
    pub last_typing: Option<Instant>,
    /// Changes wait for their dependencies: when to sync for them, and with whom.
    pub deps_due: Option<(Instant, PeerId)>,
    /// When we last passed synced news on, and when we may do so again if asked meanwhile.
    pub last_spread: Option<Instant>,
    pub spread_due: Option<Instant>,
    /// Sync sessions we started, by peer.
    pub outbound: HashMap<PeerId, Session>,
    /// Sync sessions peers started with us, by peer.
    pub inbound: HashMap<PeerId, Session>,
    /// Gossip messages shown and not yet stored.
    pub held: super::held::Held,
}

impl RoomState {
    pub fn new(room: Room) -> Self {
        Self {
            room,
            history: None,
            presence_at: None,
            presence_soon: false,
            last_presence: None,
            last_typing: None,
            deps_due: None,
            last_spread: None,
            spread_due: None,
            outbound: HashMap::new(),
            inbound: HashMap::new(),
            held: Default::default(),
        }
    }

    pub fn session_count(&self) -> usize {
        self.outbound.len() + self.inbound.len()
    }

    /// A peer is gone: its sessions and sync states go with it.
    pub fn forget_peer(&mut self, peer: &PeerId) {
        self.outbound.remove(peer);
        self.inbound.remove(peer);
        if let Some(history) = self.history.as_mut() {
            history.forget_peer(peer);
        }
    }
}

/// A connected peer.
#[derive(Default)]
pub struct PeerState {
    /// The remote address of each open connection.
    pub addrs: Vec<Multiaddr>,
    /// The gossipsub topics it subscribed to.
    pub topics: HashSet<String>,
}

impl PeerState {
    pub fn in_room(&self, topic: &Topic) -> bool {
        self.topics.contains(topic.as_str())
    }
}
