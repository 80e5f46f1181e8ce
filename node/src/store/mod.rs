//! The node's persistent state in SQLite (`hark.db` in the data dir, WAL mode).
//!
//! Holds the identity key, the joined rooms with their keys, and room history ([`history`]), so the file is created with
//! mode 0600 inside a 0700 directory: only the owner can read it. A lock file keeps a second
//! process from using the same data dir (two nodes with one identity would fight).

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hark_proto::{RoomKey, RoomName};
use libp2p::identity::Keypair;
use rusqlite::{params, Connection, OptionalExtension};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot use data dir {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data dir {0} is in use by another hark process")]
    Locked(PathBuf),
    #[error("database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("stored identity key in {0} is damaged")]
    BadIdentity(PathBuf),
    #[error("database {0}: a catch-up of this room could not be written; it is loaded again")]
    LostWrite(PathBuf),
}

/// A joined room as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRoom {
    pub name: RoomName,
    pub key: RoomKey,
    pub private: bool,
}

pub struct Store {
    /// Reached through [`Store::conn`], which first waits for a write behind.
    conn: Connection,
    path: PathBuf,
    /// A catch-up being written by a thread of its own ([`behind`]).
    behind: RefCell<Option<behind::Behind>>,
    /// Writes behind that failed, for the engine to hear of ([`Store::lost_writes`]).
    lost: RefCell<Vec<LostWrite>>,
    /// The next writes behind fail.
    #[cfg(test)]
    fail_behind: bool,
    /// The `synchronous` level the connection is at now (see [`Durability`]).
    synchronous: Durability,
    /// Makes deferred writes durable soon after, off the caller's thread.
    flusher: flusher::Flusher,
    /// Makes [`Durability::Synced`] writes durable on request, off the caller's thread; until
    /// [`Store::sync_off_thread`] starts it, [`Store::request_sync`] fsyncs on the spot.
    wal_sync: Option<wal_sync::WalSync>,
    // Held for the life of the store; the OS drops the lock when the process ends, even on kill -9.
    _lock: File,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    keypair BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    name TEXT PRIMARY KEY,
    key BLOB NOT NULL,
    private INTEGER NOT NULL,
    joined_at INTEGER NOT NULL
);
-- Counted up by the flusher thread after each checkpoint, so that the write that restarts the
-- WAL (and fsyncs its new header) is the flusher's, not the event loop's (flusher.rs).
CREATE TABLE IF NOT EXISTS flusher_rounds (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rounds INTEGER NOT NULL
);
INSERT OR IGNORE INTO flusher_rounds (id, rounds) VALUES (1, 0);
";

mod behind;
pub mod blind;
mod flusher;
mod history;
mod membership;
mod verified;
pub mod wal_sync;
pub use behind::LostWrite;
pub use history::{ShardChunks, StoredMessage, SEARCH_BATCH};

/// How durable a write must be when the call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Survives power loss when the call returns (`synchronous = FULL`: the WAL is fsynced at
    /// commit). For what we report `sent`, and everything but received history.
    Now,
    /// Survives a crash of the process when the call returns (the WAL frames are written), and
    /// power loss within [`flusher::FLUSH_DELAY`] or so, when the flusher thread checkpoints
    /// (group commit: one fsync for every write in between). For history received from peers,
    /// which sync brings again if it is lost: a hop stores it without waiting for the disk.
    /// A catch-up into an empty room may be written behind ([`behind`]): it survives a crash
    /// only once that write is done, a fraction of a second later.
    Deferred,
    /// Survives a crash of the process when the call returns (the WAL frames are written), and
    /// power loss once the fsync that [`Store::request_sync`] then asks for is done. For the
    /// node's own messages: nothing about one leaves the node before that fsync, but the
    /// event loop does not wait for it ([`wal_sync`]).
    Synced,
}

/// Create a database file ourselves so it is 0600 from its first byte (SQLite gives its WAL and
/// shared-memory files the same mode), and make an existing one 0600.
fn create_private(path: &Path) -> std::io::Result<()> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

impl Store {
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let dir_err = |source| StoreError::Dir {
            path: data_dir.to_owned(),
            source,
        };
        if data_dir.exists() && !data_dir.is_dir() {
            // create_dir_all would say only "File exists".
            return Err(dir_err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "it is a file, not a directory",
            )));
        }
        fs::create_dir_all(data_dir).map_err(dir_err)?;
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700)).map_err(dir_err)?;

        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(data_dir.join("lock"))
            .map_err(dir_err)?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Locked(data_dir.to_owned()));
        }

        let path = data_dir.join("hark.db");
        create_private(&path).map_err(dir_err)?;

        let sql_err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sql_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err)?;
        // FULL: a row reported written survives power loss, not just a process crash. Received
        // history is written under NORMAL instead ([`Durability::Deferred`]).
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql_err)?;
        // Checkpoints (which fsync) run on the flusher thread, never inside a commit on the
        // event loop.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sql_err)?;
        // A page cache of up to 32 MiB (the default is 2 MiB): indexing a large catch-up into
        // `messages` (random ids) and FTS5 otherwise rewrites the same pages many times over
        // (measured: 1.24 GB written to store 28 MB, docs/performance.md).
        conn.pragma_update(None, "cache_size", -32_768)
            .map_err(sql_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql_err)?;
        // One transaction: a fresh data dir costs one fsync, not one per statement.
        let schema = format!("BEGIN; {SCHEMA} {} COMMIT;", history::SCHEMA);
        conn.execute_batch(&schema).map_err(sql_err)?;
        let old_layout: bool = conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'messages'",
                [],
                |row| row.get(0),
            )
            .map_err(sql_err)?;
        if old_layout {
            let migrate = format!("BEGIN; {} COMMIT;", history::MIGRATE_FROM_TOPIC_KEYS);
            conn.execute_batch(&migrate).map_err(sql_err)?;
        }
        let flusher = flusher::Flusher::start(&path).map_err(sql_err)?;
        // A crash may have left our last messages committed but not fsynced (`sent` was never
        // said of them): made durable now, before this run can send them to anyone by sync.
        wal_sync::sync_wal(&wal_sync::wal_path(&path)).map_err(|reason| StoreError::Dir {
            path: path.clone(),
            source: std::io::Error::other(reason),
        })?;
        Ok(Self {
            conn,
            path,
            behind: RefCell::new(None),
            lost: RefCell::new(Vec::new()),
            #[cfg(test)]
            fail_behind: false,
            synchronous: Durability::Now,
            flusher,
            wal_sync: None,
            _lock: lock,
        })
    }

    /// The connection, once a write behind (if any) is done: every use of the store goes
    /// through here, so it sees that write and never meets its writer.
    fn conn(&self) -> &Connection {
        self.settle_behind();
        &self.conn
    }

    fn conn_mut(&mut self) -> &mut Connection {
        self.settle_behind();
        &mut self.conn
    }

    /// Wait for the write behind, if any; a failed one is kept for [`Self::lost_writes`].
    fn settle_behind(&self) {
        let Some(behind) = self.behind.borrow_mut().take() else {
            return;
        };
        let failed = match behind.thread.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("the writer thread panicked".to_owned()),
        };
        match failed {
            None => self.flusher.dirty(),
            Some(why) => {
                tracing::error!(
                    room = behind.room,
                    messages = behind.ids.len(),
                    "cannot store history received: {why}"
                );
                self.lost.borrow_mut().push(LostWrite {
                    room: behind.room,
                    ids: behind.ids,
                });
            }
        }
    }

    /// Writes behind that failed since last asked; never waits for one still running (a
    /// finished one is settled, so the flusher hears of it soon).
    pub fn lost_writes(&mut self) -> Vec<LostWrite> {
        let finished = self
            .behind
            .borrow()
            .as_ref()
            .is_some_and(|b| b.thread.is_finished());
        if finished {
            self.settle_behind();
        }
        std::mem::take(self.lost.get_mut())
    }

    /// Put the connection at the `synchronous` level `durability` needs (outside a transaction).
    fn set_durability(&mut self, durability: Durability) -> Result<(), StoreError> {
        if self.synchronous != durability {
            let level = match durability {
                Durability::Now => "FULL",
                Durability::Deferred | Durability::Synced => "NORMAL",
            };
            self.conn()
                .pragma_update(None, "synchronous", level)
                .map_err(self.sql_err())?;
            self.synchronous = durability;
        }
        Ok(())
    }

    /// fsync the WAL from now on on a thread of its own, which calls `notify` with each
    /// ticket [`Store::request_sync`] hands out once it is durable.
    pub fn sync_off_thread(&mut self, notify: wal_sync::SyncNotify) -> Result<(), StoreError> {
        let started =
            wal_sync::WalSync::start(&self.path, notify).map_err(|source| StoreError::Dir {
                path: self.path.clone(),
                source,
            })?;
        self.wal_sync = Some(started);
        Ok(())
    }

    /// Make every commit so far durable ([`Durability::Synced`] ones included): `Some(ticket)`
    /// when the fsync thread will report it; `None` when it is durable already (no thread, so
    /// the fsync ran here).
    pub fn request_sync(&mut self) -> Result<Option<u64>, StoreError> {
        // A write behind commits on its own connection: it must be in the WAL first.
        self.settle_behind();
        if let Some(ticket) = self.wal_sync.as_mut().and_then(|sync| sync.request()) {
            return Ok(Some(ticket));
        }
        wal_sync::sync_wal(&wal_sync::wal_path(&self.path)).map_err(|reason| StoreError::Dir {
            path: self.path.clone(),
            source: std::io::Error::other(reason),
        })?;
        Ok(None)
    }

    /// After a commit: deferred writes (this one or earlier ones) wait for the flusher; a
    /// FULL commit has just made every earlier one durable too, but the WAL still needs a
    /// checkpoint now and then to stay small.
    fn committed(&mut self) {
        self.flusher.dirty();
    }

    fn sql_err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The node's identity, created on first use.
    pub fn identity(&self) -> Result<Keypair, StoreError> {
        let stored: Option<Vec<u8>> = self
            .conn()
            .query_row("SELECT keypair FROM identity WHERE id = 1", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(self.sql_err())?;
        if let Some(bytes) = stored {
            return Keypair::from_protobuf_encoding(&bytes)
                .map_err(|_| StoreError::BadIdentity(self.path.clone()));
        }
        let keypair = Keypair::generate_ed25519();
        let bytes = keypair
            .to_protobuf_encoding()
            .map_err(|_| StoreError::BadIdentity(self.path.clone()))?;
        self.conn()
            .execute(
                "INSERT INTO identity (id, keypair) VALUES (1, ?1)",
                params![bytes],
            )
            .map_err(self.sql_err())?;
        Ok(keypair)
    }

    pub fn rooms(&self) -> Result<Vec<StoredRoom>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare("SELECT name, key, private FROM rooms ORDER BY joined_at, name")
            .map_err(self.sql_err())?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, bool>(2)?,
                ))
            })
            .map_err(self.sql_err())?;
        let mut rooms = Vec::new();
        for row in rows {
            let (name, key, private) = row.map_err(self.sql_err())?;
            // A row we cannot read is skipped with a warning rather than failing the start.
            // A direct-message room is stored as `@PEER`.
            let parsed = RoomName::parse(&name)
                .ok()
                .or_else(|| RoomName::parse_direct(&name));
            match (parsed, <[u8; 32]>::try_from(key.as_slice())) {
                (Some(name), Ok(key)) => rooms.push(StoredRoom {
                    name,
                    key: RoomKey::from_bytes(key),
                    private,
                }),
                _ => tracing::warn!(room = %name, "skipping a damaged room row in the store"),
            }
        }
        Ok(rooms)
    }

    pub fn save_room(&mut self, room: &StoredRoom, now_ms: u64) -> Result<(), StoreError> {
        self.set_durability(Durability::Now)?;
        self.conn()
            .execute(
                "INSERT INTO rooms (name, key, private, joined_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET key = excluded.key, private = excluded.private",
                params![
                    room.name.as_str(),
                    room.key.as_bytes().as_slice(),
                    room.private,
                    now_ms as i64
                ],
            )
            .map_err(self.sql_err())?;
        Ok(())
    }

    pub fn forget_room(&mut self, name: &RoomName) -> Result<(), StoreError> {
        self.set_durability(Durability::Now)?;
        self.conn()
            .execute("DELETE FROM rooms WHERE name = ?1", params![name.as_str()])
            .map_err(self.sql_err())?;
        Ok(())
    }
}

impl Drop for Store {
    /// A catch-up being written is finished before the flusher's last checkpoint.
    fn drop(&mut self) {
        self.settle_behind();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_rooms_survive_reopen_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("hark");
        let room = StoredRoom {
            name: RoomName::parse("ops").unwrap(),
            key: RoomKey::from_bytes([3; 32]),
            private: true,
        };
        let peer = {
            let mut store = Store::open(&data).unwrap();
            store.save_room(&room, 1).unwrap();
            store.identity().unwrap().public().to_peer_id()
        };
        let mut store = Store::open(&data).unwrap();
        assert_eq!(store.identity().unwrap().public().to_peer_id(), peer);
        assert_eq!(store.rooms().unwrap(), vec![room.clone()]);
        store.forget_room(&room.name).unwrap();
        assert!(store.rooms().unwrap().is_empty());

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("hark.db")), 0o600);
    }

    #[test]
    fn a_data_dir_that_is_a_file_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hark");
        fs::write(&file, b"not a directory").unwrap();
        let Err(error) = Store::open(&file) else {
            panic!("a file is no data dir");
        };
        assert!(
            error.to_string().ends_with("it is a file, not a directory"),
            "{error}"
        );
    }

    /// Message `n` of alice's, for the store's tests.
    fn message(n: u8) -> StoredMessage {
        use hark_proto::{Hlc, MessageId, MessageKind};
        StoredMessage {
            id: MessageId([n; 16]),
            hlc: Hlc::new(1_000 + n as u64, 0),
            author: "alice".into(),
            name: "alice".into(),
            kind: MessageKind::Text,
            text: format!("m{n}"),
        }
    }

    #[test]
    fn deferred_writes_are_kept_and_interleave_with_durable_ones() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = Store::open(dir.path()).unwrap();
            for n in 0..50u8 {
                let durability = if n % 10 == 0 {
                    Durability::Now
                } else {
                    Durability::Deferred
                };
                let fresh = store
                    .append_history_batch("room", &[(1, b"chunk", &[message(n)])], durability)
                    .unwrap();
                assert_eq!(fresh, vec![vec![true]]);
            }
            // A room saved after deferred writes is durable again (FULL).
            let room = StoredRoom {
                name: RoomName::parse("ops").unwrap(),
                key: RoomKey::from_bytes([3; 32]),
                private: false,
            };
            store.save_room(&room, 1).unwrap();
            assert_eq!(store.synchronous, Durability::Now);
            // Let the flusher run at least once while the store is open.
            std::thread::sleep(flusher::FLUSH_DELAY * 2);
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.recent_messages("room", 100).unwrap().len(), 50);
        assert_eq!(store.history_chunks("room").unwrap()[0].1.len(), 50);
    }

    /// A flusher round, not the node's connection, starts the WAL over after a checkpoint:
    /// the WAL's checkpoint sequence number (bytes 12..16 of its header, bumped at each
    /// restart) moves during the round and not at the node's next commit, which would
    /// otherwise wait for the new header's fsync on the event loop. The round runs here, on
    /// the test's own connection, as the flusher thread runs it.
    #[test]
    fn a_flusher_round_restarts_the_wal_so_the_nodes_next_write_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut n = 0u8;
        let mut write = |store: &mut Store| {
            n += 1;
            store
                .append_history_batch(
                    "room",
                    &[(1, b"chunk", &[message(n)])],
                    Durability::Deferred,
                )
                .unwrap();
        };
        let flusher = Connection::open(dir.path().join("hark.db")).unwrap();
        let rounds = || -> i64 {
            flusher
                .query_row("SELECT rounds FROM flusher_rounds", [], |r| r.get(0))
                .unwrap()
        };
        let wal_sequence = || -> u32 {
            let header = fs::read(dir.path().join("hark.db-wal")).unwrap();
            u32::from_be_bytes(header[12..16].try_into().unwrap())
        };
        // The store's own flusher thread runs its round a second after a write: a pass that
        // it overlapped (a stalled machine) proves nothing, and the next one is taken.
        for _ in 0..10 {
            let before = rounds();
            write(&mut store);
            let started = wal_sequence();
            flusher::round(&flusher);
            let restarted = wal_sequence();
            write(&mut store);
            if rounds() != before + 1 {
                continue;
            }
            assert_ne!(restarted, started, "the round did not restart the WAL");
            assert_eq!(
                wal_sequence(),
                restarted,
                "the node's write restarted the WAL"
            );
            return;
        }
        panic!("the store's flusher thread overlapped every pass");
    }

    #[test]
    fn a_second_process_cannot_share_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Locked(_))
        ));
    }
}
