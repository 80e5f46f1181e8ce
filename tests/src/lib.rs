//! # hark-tests — end-to-end tests and the benchmark harness
//!
//! - [`process`]: start `hark-node --json` processes, send commands, wait for events with
//!   deadlines; every process is killed when its handle drops, even when a test fails.
//! - [`raw`]: a bare libp2p gossipsub peer inside the test process, for seeing what a
//!   non-member sees on the wire and for playing a hostile peer.
//! - [`sync_peer`]: a Hark swarm inside the test process that sends `/hark/sync/1` requests
//!   as the test writes them, for playing a hostile room member against a node's history.
//! - [`sync_fuzz`]: what the `sync_body` fuzz target does with one input, shared with the
//!   replay of the inputs it found.
//! - [`netns`]: network namespaces joined by a bridge, torn down on drop (for mDNS tests).
//! - [`seed`]: fill a data dir with room history through the node library (benchmarks).
//! - [`sim`]: a deterministic simulator of many engines on a virtual clock (`hark-bench sim`).
//! - [`scale`]: many real nodes in this process over the memory transport (`hark-bench scale`).
//! - [`bench_irc`]: the fan-out benchmark's reference, ngircd with as many IRC clients.
//! - [`pace`]: sending at a fixed rate, for both fan-out benchmarks.
//!
//! The tests themselves live in `tests/`; the benchmark binary is `src/bin/hark-bench.rs`.

pub mod bench_irc;
pub mod bench_quality;
pub mod bench_voice;
pub mod netns;
pub mod pace;
pub mod process;
pub mod raw;
pub mod scale;
pub mod seed;
pub mod sim;
pub mod sync_fuzz;
pub mod sync_peer;
pub mod tmux;

pub use process::{hark_node_bin, NodeProcess};

/// A WAV of `seconds` of a 440 Hz tone (48 kHz mono), for `voice` commands in tests.
pub fn tone_wav(path: &std::path::Path, seconds: f32) {
    let samples: Vec<i16> = (0..(seconds * 48_000.0) as usize)
        .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 8_000.0) as i16)
        .collect();
    hark_node::voice::wav::write_48k_mono(path, &samples).expect("write a test WAV");
}
