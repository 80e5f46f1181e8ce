//! # hark-tests — end-to-end tests and the benchmark harness
//!
//! - [`process`]: start `hark-node --json` processes, send commands, wait for events with
//!   deadlines; every process is killed when its handle drops, even when a test fails.
//! - [`raw`]: a bare libp2p gossipsub peer inside the test process, for seeing what a
//!   non-member sees on the wire and for playing a hostile peer.
//! - [`netns`]: network namespaces joined by a bridge, torn down on drop (for mDNS tests).
//!
//! The tests themselves live in `tests/`; the benchmark binary is `src/bin/hark-bench.rs`.

pub mod netns;
pub mod process;
pub mod raw;

pub use process::{hark_node_bin, NodeProcess};
