//! Makes the node's own messages durable off the event loop: a thread that fsyncs the WAL.
//!
//! A message the user sends is committed under `synchronous = NORMAL` (its WAL frames are
//! written, so it survives a crash of the process), then this thread fsyncs the WAL file and
//! reports the ticket; only then does the engine publish the message and report `sent`
//! (docs/architecture.md, "One message, from keypress to peer"). The event loop goes on
//! forwarding and showing others' messages meanwhile, however long the disk takes. Tickets that
//! queue up while an fsync runs are answered together by the next one (the node's driver asks
//! for one at a time today: it takes the next client request once a send is done).
//!
//! Why an fsync of the file is enough: SQLite's own `FULL` commit is exactly this fsync after
//! the frames are written. If a checkpoint copied the frames into the database meanwhile, it
//! fsynced the database before the WAL could start over, so they are durable either way. The
//! thread keeps the WAL open from its start: an fsync then reports every write-back error since
//! that moment, also one that another descriptor's fsync (the flusher's checkpoint) saw first.
//! SQLite deletes the WAL only when its last connection closes, after the store is gone.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Told, on the fsync thread, that every commit made before `ticket` was asked for is durable
/// (`Ok`), or that the fsync failed.
pub type SyncNotify = Box<dyn Fn(u64, Result<(), String>) + Send>;

pub struct WalSync {
    /// Tickets to answer; dropped to stop the thread.
    tickets: Option<mpsc::Sender<u64>>,
    next: u64,
    thread: Option<JoinHandle<()>>,
}

impl WalSync {
    pub fn start(db: &Path, notify: SyncNotify) -> std::io::Result<Self> {
        let wal = wal_path(db);
        // (Missing only if nothing was ever written: then each fsync opens it by path.)
        let file = File::open(&wal).ok();
        let (tickets, asked) = mpsc::channel::<u64>();
        let thread = std::thread::Builder::new()
            .name("hark-store-sync".into())
            .spawn(move || run(&wal, file.as_ref(), &asked, &notify))?;
        Ok(Self {
            tickets: Some(tickets),
            next: 0,
            thread: Some(thread),
        })
    }

    /// Ask for an fsync covering every commit so far; `None` if the thread has stopped.
    pub fn request(&mut self) -> Option<u64> {
        self.next += 1;
        let tickets = self.tickets.as_ref()?;
        tickets.send(self.next).ok()?;
        Some(self.next)
    }
}

impl Drop for WalSync {
    /// Answers what is queued, then stops.
    fn drop(&mut self) {
        drop(self.tickets.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(wal: &Path, file: Option<&File>, asked: &mpsc::Receiver<u64>, notify: &SyncNotify) {
    while let Ok(mut ticket) = asked.recv() {
        // Everything asked for by now was committed before this fsync starts: one covers all.
        while let Ok(later) = asked.try_recv() {
            ticket = later;
        }
        let synced = match file {
            Some(file) => file
                .sync_data()
                .map_err(|e| format!("cannot fsync {}: {e}", wal.display())),
            None => sync_wal(wal),
        };
        notify(ticket, synced);
    }
}

/// `hark.db` → `hark.db-wal`.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// fsync the WAL file (its data and size). A missing WAL has nothing to make durable: SQLite
/// removes it only after copying all of it into the database, fsynced.
pub fn sync_wal(wal: &Path) -> Result<(), String> {
    match File::open(wal) {
        Ok(file) => file
            .sync_data()
            .map_err(|e| format!("cannot fsync {}: {e}", wal.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot open {}: {e}", wal.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    type Answers = Arc<Mutex<Vec<(u64, Result<(), String>)>>>;

    fn answers() -> (SyncNotify, Answers) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let notify: SyncNotify = Box::new(move |ticket, result| {
            sink.lock().unwrap().push((ticket, result));
        });
        (notify, seen)
    }

    fn wait_for(seen: &Mutex<Vec<(u64, Result<(), String>)>>, ticket: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.lock().unwrap().iter().all(|(t, _)| *t < ticket) {
            assert!(Instant::now() < deadline, "ticket {ticket} never answered");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn every_ticket_is_answered_in_order_and_a_burst_by_one_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hark.db");
        std::fs::write(wal_path(&db), b"frames").unwrap();
        let (notify, seen) = answers();
        let mut sync = WalSync::start(&db, notify).unwrap();
        let tickets: Vec<u64> = (0..50).map(|_| sync.request().unwrap()).collect();
        assert_eq!(tickets, (1..=50).collect::<Vec<_>>());
        wait_for(&seen, 50);
        let seen = seen.lock().unwrap();
        assert!(seen.iter().all(|(_, result)| result.is_ok()), "{seen:?}");
        // Answers only grow, and the last is the last ticket asked for.
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        assert_eq!(seen.last().map(|(t, _)| *t), Some(50));
    }

    #[test]
    fn a_missing_wal_has_nothing_to_sync_and_a_bad_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(sync_wal(&dir.path().join("none.db-wal")), Ok(()));
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"x").unwrap();
        let error = sync_wal(&not_a_dir.join("hark.db-wal")).unwrap_err();
        assert!(error.starts_with("cannot open"), "{error}");
    }

    #[test]
    fn dropping_answers_what_was_asked_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hark.db");
        let (notify, seen) = answers();
        let mut sync = WalSync::start(&db, notify).unwrap();
        let last = (0..5).map(|_| sync.request().unwrap()).last().unwrap();
        drop(sync);
        assert_eq!(seen.lock().unwrap().last().map(|(t, _)| *t), Some(last));
    }
}
