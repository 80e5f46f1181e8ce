//! What a node is started with.

use std::path::PathBuf;

use libp2p::pnet::PreSharedKey;
use libp2p::Multiaddr;

/// Everything a node needs to start. [`crate::cli::NodeArgs`] builds one from the command line.
#[derive(Clone)]
pub struct NodeConfig {
    /// The display name sent with every envelope.
    pub name: String,
    /// Where the identity, rooms and (later) history live.
    pub data_dir: PathBuf,
    /// Addresses to listen on; empty means all interfaces on an ephemeral TCP port (plus QUIC
    /// when there is no network key).
    pub listen: Vec<Multiaddr>,
    /// Static peers (with `/p2p/ID`), dialled at start and redialled when they drop.
    pub peers: Vec<Multiaddr>,
    /// Local discovery. Off for tests in the root network namespace.
    pub mdns: bool,
    /// The private network's pre-shared key; peers without it cannot connect.
    pub network_key: Option<PreSharedKey>,
    /// Rooms (names or invites) to join at start, beside `lobby` and the stored ones.
    pub join: Vec<String>,
    /// Relay mode (`hark-node --relay`): every room's history is loaded at start and kept.
    pub relay: bool,
    /// Test hook: shift this node's wall clock by this many milliseconds (environment variable
    /// `HARK_CLOCK_OFFSET_MS`), to test ordering between nodes whose clocks disagree.
    pub clock_offset_ms: i64,
    /// Voice frame length, ms: 20 (default) or 10.
    pub voice_frame_ms: u8,
    /// Voice bitrate, bit/s (`crate::voice::codec::DEFAULT_BITRATE` unless configured).
    pub voice_bitrate: i32,
    /// `hark-node --voice-out DIR`: every received talk-spurt is written there as a WAV file.
    pub voice_out: Option<PathBuf>,
    /// Test hook: drop this percentage of received voice frames at random (environment
    /// variable `HARK_VOICE_DROP_PERCENT`), to test loss concealment.
    pub voice_drop_percent: u8,
    /// Test hook: each fsync of the node's own messages takes this many milliseconds longer
    /// (environment variable `HARK_TEST_FSYNC_DELAY_MS`), to test a slow disk.
    pub fsync_delay_ms: u64,
    /// In-process harnesses only (`hark-bench scale`): libp2p's memory transport instead of
    /// TCP and QUIC, so that hundreds of nodes share one process without sockets. Listen
    /// addresses are then `/memory/N`.
    pub memory_transport: bool,
    /// Outgoing hooks from the config file (`[[hook]]`), run beside the node by [`crate::hooks`].
    pub hooks: Vec<crate::settings::Hook>,
}

/// The platform's data dir for Hark (`~/.local/share/hark` on Linux).
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "hark").map(|dirs| dirs.data_dir().to_path_buf())
}

/// The default nick: `$USER` made valid, or `anon`.
pub fn default_name() -> String {
    let user = std::env::var("USER").unwrap_or_default();
    let cleaned: String = user
        .chars()
        .filter(|c| c.is_alphanumeric() || "-_.".contains(*c))
        .take(32)
        .collect();
    if cleaned.is_empty() {
        "anon".to_owned()
    } else {
        cleaned
    }
}
