//! Read-only counters of a running node, for the HTTP API's `/healthz` and `/metrics`
//! (node/src/http/). The driver counts what passes through it; nothing here changes what the
//! node does.

use std::collections::BTreeMap;

/// A snapshot of the node's counters, taken by the driver between two inputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// `ready` has gone out (the listeners are up).
    pub ready: bool,
    /// Connected peers (libp2p connections, any room).
    pub peers: usize,
    /// Joined rooms: name and whether it is private.
    pub rooms: Vec<(String, bool)>,
    /// `message` events raised (messages of others shown), by kind.
    pub messages_in: BTreeMap<String, u64>,
    /// Our messages stored and published (`sent`), by kind.
    pub messages_out: BTreeMap<String, u64>,
    /// Gossip messages dropped, by reason (`Engine::drops`).
    pub drops: BTreeMap<String, u64>,
    /// History sync sessions in progress, both ways.
    pub sync_sessions: usize,
    /// History sync sessions completed (`synced`), and the messages they brought.
    pub syncs_completed: u64,
    pub sync_received: u64,
    /// Bytes of Automerge changes waiting for their dependencies (the catch-up backlog).
    pub waiting_bytes: usize,
    /// Messages received by gossip and shown, not stored yet (stored within three seconds).
    pub unstored_messages: usize,
    /// Lowest and highest gossipsub score among connected peers.
    pub score_min: Option<f64>,
    pub score_max: Option<f64>,
    /// Voice talk-spurts played out, and their frames lost, recovered (FEC), concealed (PLC).
    pub voice_spurts: u64,
    pub voice_frames_lost: u64,
    pub voice_frames_recovered: u64,
    pub voice_frames_concealed: u64,
    /// Voice frames dropped because playout was behind.
    pub playout_overloaded: u64,
    /// Attached clients (control socket, HTTP, `--json`).
    pub clients: usize,
}
