//! Group commit for deferred writes: a thread with its own connection to `hark.db` that
//! checkpoints the WAL a moment after writes came in. A checkpoint fsyncs the WAL first, so
//! every write committed under `synchronous = NORMAL` before it is then safe from power loss
//! too; one fsync covers all the writes of the interval, and none of them waits for it.
//!
//! The node's own connection never checkpoints (`wal_autocheckpoint = 0`): a checkpoint inside
//! a commit would stall the event loop on the disk, which is what deferring was for. Nor does it
//! restart the WAL: after a checkpoint that copied all of it, the next write starts the WAL
//! over and SQLite fsyncs the new WAL header in whichever thread makes that write, so the
//! flusher makes one itself (a counter in `flusher_rounds`) and the node's next commit appends.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// How long writes gather before one checkpoint makes them durable. Only received history
/// waits for it (sync brings that back after a power loss); a checkpoint copies each page once
/// however often it changed meanwhile, so a longer wait costs less per message.
pub const FLUSH_DELAY: Duration = Duration::from_secs(1);

pub struct Flusher {
    /// A token per burst of writes; dropped to stop the thread.
    wake: Option<SyncSender<()>>,
    /// Set by the first write after a checkpoint began: only that write wakes the thread
    /// (one wake-up per round, not one per message).
    pending: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    pub fn start(path: &Path) -> Result<Self, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // NORMAL: a checkpoint still fsyncs the WAL before it copies and the database after;
        // the round counter's own commit needs no fsync of its own.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // One pending token is enough: a write after it is covered by the checkpoint it wakes.
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let pending = Arc::new(AtomicBool::new(false));
        let flag = pending.clone();
        let thread = std::thread::Builder::new()
            .name("hark-store-flush".into())
            .spawn(move || run(&conn, &woken, &flag))
            .map_err(|e| {
                rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(e)))
            })?;
        Ok(Self {
            wake: Some(wake),
            pending,
            thread: Some(thread),
        })
    }

    /// Writes were committed: checkpoint soon.
    pub fn dirty(&self) {
        // A round is already due and has not begun its checkpoint: it covers this write.
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(wake) = &self.wake {
            match wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => {
                    tracing::warn!("the store's flusher thread has stopped");
                }
            }
        }
    }
}

impl Drop for Flusher {
    /// A last checkpoint, so that a clean exit leaves everything durable.
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, woken: &mpsc::Receiver<()>, pending: &AtomicBool) {
    loop {
        match woken.recv() {
            Ok(()) => {}
            Err(_) => {
                checkpoint(conn);
                return;
            }
        }
        // Let the burst gather for the whole delay (or stop early when the store closes);
        // writes meanwhile find `pending` set and do not wake us.
        let due = Instant::now() + FLUSH_DELAY;
        loop {
            let left = due.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match woken.recv_timeout(left) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    checkpoint(conn);
                    return;
                }
            }
        }
        // Cleared before the checkpoint: a write committed after this point wakes the next
        // round; one committed before it is copied by this one.
        pending.store(false, Ordering::Release);
        round(conn);
    }
}

/// One round: the checkpoint, then (if it copied the whole WAL) the write that starts the WAL
/// over, so that the node's next commit appends to it.
pub(super) fn round(conn: &Connection) {
    if checkpoint(conn) {
        restart_wal(conn);
    }
}

/// Copies the WAL into the database; returns whether it copied all of it.
fn checkpoint(conn: &Connection) -> bool {
    // PASSIVE: never waits for (or blocks) the node's connection; what it cannot copy now the
    // next round copies. The WAL is fsynced before anything is copied.
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    });
    match done {
        Ok((busy, frames, copied)) => busy == 0 && frames > 0 && copied == frames,
        Err(e) => {
            tracing::warn!("store checkpoint failed: {e}");
            false
        }
    }
}

/// The first write after a whole-WAL checkpoint starts the WAL over and waits for its header
/// to reach the disk: made here, that wait is this thread's (once a round), not the event
/// loop's. If the node writes first, it pays it as before; nothing else depends on this.
fn restart_wal(conn: &Connection) {
    if let Err(e) = conn.execute(
        "UPDATE flusher_rounds SET rounds = rounds + 1 WHERE id = 1",
        [],
    ) {
        tracing::debug!("the flusher could not restart the WAL: {e}");
    }
}
