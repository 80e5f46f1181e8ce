//! Write-behind for a catch-up: a big batch of received history into a room whose index holds
//! nothing yet is written by a thread of its own, on its own connection, while the node goes on
//! showing it and finishing the sync session. Storing 100k messages takes ≈ 0.25 s, a quarter
//! of a catch-up's time, and the node has nothing else to wait for (docs/performance.md,
//! "seventh pass").
//!
//! Why it is safe:
//! - Whether each message is new needs no index: the room has none of its messages yet, so
//!   every message is, except a repeat of an id earlier in the same batch, found in memory in
//!   the order the index would meet it ([`verdicts`]).
//! - Every other use of the store waits for the write first ([`Store::conn`]), so reads see it
//!   and no two writers ever meet.
//! - What is written is received history, which is deferred anyway ([`Durability::Deferred`]):
//!   a crash may lose it and sync brings it again. A write that fails is reported to the engine
//!   ([`Store::lost_writes`]), which drops the room's in-memory history as for any failed store.

use std::collections::HashSet;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use hark_proto::MessageId;
use rusqlite::{Connection, OpenFlags};

use super::history::{as_chunks, insert_batch, OwnedChunk, StoredMessage};

/// Batches of at least this many messages may be written behind.
pub const BEHIND_FROM: usize = 1_000;

/// A batch being written.
pub(super) struct Behind {
    pub room: String,
    pub ids: Vec<MessageId>,
    pub thread: JoinHandle<Result<(), rusqlite::Error>>,
}

/// A room's batch whose write failed after its messages were shown.
#[derive(Clone, Debug)]
pub struct LostWrite {
    pub room: String,
    pub ids: Vec<MessageId>,
}

/// Whether each message of a batch is new to an index that holds none of the room's messages:
/// the first of each id in insertion order (chunk by chunk, each in (hlc, id) order, as
/// [`insert_batch`] inserts them).
pub(super) fn verdicts(chunks: &[(u32, &[u8], &[StoredMessage])]) -> Vec<Vec<bool>> {
    let mut seen: HashSet<MessageId> = HashSet::new();
    chunks
        .iter()
        .map(|(_, _, messages)| {
            let mut fresh = vec![false; messages.len()];
            for i in super::history::insert_order(messages) {
                fresh[i] = seen.insert(messages[i].id);
            }
            fresh
        })
        .collect()
}

/// Start writing `chunks` for `room` on a thread with its own connection to `path`.
pub(super) fn start(
    path: &Path,
    room: &str,
    chunks: Vec<OwnedChunk>,
    fail: bool,
) -> std::io::Result<Behind> {
    let ids = chunks
        .iter()
        .flat_map(|(_, _, messages)| messages.iter().map(|m| m.id))
        .collect();
    let path = path.to_owned();
    let topic = room.to_owned();
    let thread = std::thread::Builder::new()
        .name("hark-store-write".into())
        .spawn(move || {
            if fail {
                return Err(rusqlite::Error::InvalidQuery);
            }
            write(&path, &topic, &chunks)
        })?;
    Ok(Behind {
        room: room.to_owned(),
        ids,
        thread,
    })
}

fn write(path: &Path, room: &str, chunks: &[OwnedChunk]) -> Result<(), rusqlite::Error> {
    // Never create the file: a data dir that lost it is an error, not a fresh store.
    let flags = OpenFlags::default() & !OpenFlags::SQLITE_OPEN_CREATE;
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // As the node's own connection for deferred writes: no fsync at commit, no checkpoint
    // inside it (the flusher checkpoints a moment later), the same page cache.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "cache_size", -32_768)?;
    let tx = conn.transaction()?;
    insert_batch(&tx, room, &as_chunks(chunks))?;
    tx.commit()
}
