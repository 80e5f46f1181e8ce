//! Room history: Automerge documents, sharded by UTC day, merged and synced between peers.
//!
//! - [`shard`]: one document; adding our messages, applying gossip changes, the Automerge sync
//!   protocol, and the check that turns a change into a message (or not).
//! - [`authorship`]: the author's signature on every record, made on send, checked on arrival.
//! - [`room`]: a room's shards and per-peer sync states; shard digests that let a sync skip
//!   the days both sides already agree on.
//!
//! Both are pure. The event loop ([`crate::node`]) loads shards from the store, stores every
//! change before it reports or publishes it, and indexes messages in SQLite for `history`.

pub mod authorship;
pub mod room;
pub mod shard;

pub use room::{Added, RecordCheck, RoomHistory};
pub use shard::{Applied, Shard, ShardError, MAX_PENDING};
