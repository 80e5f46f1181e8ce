//! Room history in SQLite: the Automerge chunks of every shard (the source of truth that is
//! synced), and an index of the messages they hold (for `history`, and search later).
//!
//! Rooms are keyed by their chat topic, which derives from the room key: leaving a private room
//! and joining another of the same name never mixes the two histories.

use hark_proto::{Hlc, MessageId, MessageKind};
use rusqlite::{params, Connection, OptionalExtension};

use super::{behind, Durability, Store, StoreError};

/// Rooms are numbered in `history_rooms` so that the index rows and their keys hold a small
/// integer, not the 44-byte topic. `message_index` is a rowid table (rows append at its end);
/// its two indexes carry the lookups. `message_search` indexes the text without a second copy
/// of it (external content), and may lag behind: see [`Store::index_for_search`].
/// Measured on 100k catch-up rows (docs/performance.md): the earlier layout, a `WITHOUT ROWID`
/// table keyed by (topic, random id) plus a full-text table holding the text again, took
/// 1.4 s to fill where this takes 0.5 s, and FTS5 another 0.5 s that now happens off the
/// catch-up's path.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS history_rooms (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS shard_chunks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    room INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    bytes BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS shard_chunks_by_shard ON shard_chunks (room, shard, seq);
CREATE TABLE IF NOT EXISTS message_index (
    seq INTEGER PRIMARY KEY,
    room INTEGER NOT NULL,
    id BLOB NOT NULL,
    hlc INTEGER NOT NULL,
    author TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS message_index_by_id ON message_index (room, id);
CREATE INDEX IF NOT EXISTS message_index_in_order ON message_index (room, hlc, id);
-- Full-text search of message text (`/search`).
CREATE VIRTUAL TABLE IF NOT EXISTS message_search USING fts5 (
    text, content = 'message_index', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);
-- How far `message_search` has indexed `message_index` (by seq).
CREATE TABLE IF NOT EXISTS message_search_done (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    upto INTEGER NOT NULL
);
INSERT OR IGNORE INTO message_search_done (id, upto) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS history_index_checked (
    room INTEGER PRIMARY KEY
);
";

/// The layout before `history_rooms` (never released; kept readable for data dirs of
/// development builds): copied over once, then dropped.
pub(super) const MIGRATE_FROM_TOPIC_KEYS: &str = "
INSERT OR IGNORE INTO history_rooms (topic)
    SELECT room FROM history_chunks UNION SELECT room FROM messages;
INSERT INTO shard_chunks (room, shard, bytes)
    SELECT r.id, c.shard, c.bytes FROM history_chunks c JOIN history_rooms r ON r.topic = c.room
    ORDER BY c.seq;
INSERT OR IGNORE INTO message_index (room, id, hlc, author, name, kind, text)
    SELECT r.id, m.id, m.hlc, m.author, m.name, m.kind, m.text
    FROM messages m JOIN history_rooms r ON r.topic = m.room ORDER BY m.hlc;
DROP TABLE history_chunks;
DROP TABLE messages;
DROP TABLE IF EXISTS messages_fts;
";

/// Search indexing done at a time, when the node is idle (≈ 10 ms of work).
pub const SEARCH_BATCH: usize = 2_000;

/// A shard and its stored chunks, in write order.
pub type ShardChunks = (u32, Vec<Vec<u8>>);

/// A message as the index keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: MessageId,
    pub hlc: Hlc,
    /// The author's peer id (base58).
    pub author: String,
    pub name: String,
    pub kind: MessageKind,
    pub text: String,
}

impl Store {
    /// Store one chunk of a shard (none when `bytes` is empty) and index its messages, in one
    /// transaction, durable now (one fsync).
    /// Returns, for each message, whether it was new to the index.
    pub fn append_history(
        &mut self,
        room: &str,
        shard: u32,
        bytes: &[u8],
        messages: &[StoredMessage],
    ) -> Result<Vec<bool>, StoreError> {
        let mut fresh =
            self.append_history_batch(room, &[(shard, bytes, messages)], Durability::Now)?;
        Ok(fresh.pop().unwrap_or_default())
    }

    /// [`append_history`](Self::append_history) for several chunks in one transaction (a sync
    /// response carries one per shard), as durable as `durability` asks. Returns the
    /// new-to-the-index flags per chunk.
    ///
    /// A deferred batch of [`behind::BEHIND_FROM`] messages or more into a room whose index
    /// holds nothing yet (a catch-up) is written behind, by a thread of its own: the call
    /// returns its verdicts at once, and every later use of the store waits for the write.
    pub fn append_history_batch(
        &mut self,
        room: &str,
        chunks: &[(u32, &[u8], &[StoredMessage])],
        durability: Durability,
    ) -> Result<Vec<Vec<bool>>, StoreError> {
        self.refuse_after_lost_write(room)?;
        let messages: usize = chunks.iter().map(|(_, _, m)| m.len()).sum();
        if durability == Durability::Deferred
            && messages >= behind::BEHIND_FROM
            && !self.room_has_messages(room)?
        {
            if let Some(fresh) = self.append_behind(room, chunks) {
                return Ok(fresh);
            }
        }
        self.set_durability(durability)?;
        let path = self.path.clone();
        let sql_err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn_mut().transaction().map_err(sql_err)?;
        let all_fresh = insert_batch(&tx, room, chunks).map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        self.committed();
        Ok(all_fresh)
    }

    /// Whether the index holds any message of `room`.
    fn room_has_messages(&self, room: &str) -> Result<bool, StoreError> {
        self.conn()
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM message_index
                 WHERE room = (SELECT id FROM history_rooms WHERE topic = ?1))",
            )
            .and_then(|mut stmt| stmt.query_row(params![room], |row| row.get(0)))
            .map_err(self.sql_err())
    }

    /// Write `chunks` behind and return their verdicts; None if no thread could be started
    /// (then the caller writes them itself).
    fn append_behind(
        &mut self,
        room: &str,
        chunks: &[(u32, &[u8], &[StoredMessage])],
    ) -> Option<Vec<Vec<bool>>> {
        let fresh = behind::verdicts(chunks);
        let owned = chunks
            .iter()
            .map(|(shard, bytes, messages)| (*shard, bytes.to_vec(), messages.to_vec()))
            .collect();
        #[cfg(test)]
        let fail = self.fail_behind;
        #[cfg(not(test))]
        let fail = false;
        match behind::start(&self.path, room, owned, fail) {
            Ok(started) => {
                *self.behind.borrow_mut() = Some(started);
                Some(fresh)
            }
            Err(e) => {
                tracing::warn!("cannot start a thread to store a catch-up, storing it now: {e}");
                None
            }
        }
    }

    /// A room whose catch-up could not be written takes no more writes until the engine has
    /// heard of it ([`Store::lost_writes`]) and reloaded the room: later changes depend on the
    /// lost ones.
    fn refuse_after_lost_write(&self, room: &str) -> Result<(), StoreError> {
        self.settle_behind();
        if self.lost.borrow().iter().any(|lost| lost.room == room) {
            return Err(StoreError::LostWrite(self.path.clone()));
        }
        Ok(())
    }

    /// Index for search up to `limit` messages not yet in `message_search` (all of them with
    /// `usize::MAX`), in one transaction. Storing a message does not wait for this: a catch-up
    /// of thousands of messages is shown first and made searchable while the node is idle,
    /// and a search first indexes whatever is left. Returns how many were indexed.
    pub fn index_for_search(&mut self, limit: usize) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let sql_err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let limit = limit.min(i64::MAX as usize) as i64;
        let tx = self.conn_mut().transaction().map_err(sql_err)?;
        let upto: i64 = tx
            .prepare_cached("SELECT upto FROM message_search_done WHERE id = 1")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
            .map_err(sql_err)?;
        let last: Option<i64> = tx
            .prepare_cached(
                "SELECT MAX(seq) FROM (SELECT seq FROM message_index WHERE seq > ?1
                 ORDER BY seq LIMIT ?2)",
            )
            .and_then(|mut stmt| stmt.query_row(params![upto, limit], |r| r.get(0)))
            .map_err(sql_err)?;
        let Some(last) = last else {
            return Ok(0);
        };
        // Cached: preparing an insert into an FTS5 table connects to it each time.
        let indexed = tx
            .prepare_cached(
                "INSERT INTO message_search (rowid, text)
                 SELECT seq, text FROM message_index WHERE seq > ?1 AND seq <= ?2",
            )
            .and_then(|mut stmt| stmt.execute(params![upto, last]))
            .map_err(sql_err)?;
        tx.prepare_cached("UPDATE message_search_done SET upto = ?1 WHERE id = 1")
            .and_then(|mut stmt| stmt.execute(params![last]))
            .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        self.committed();
        Ok(indexed)
    }

    /// Every stored chunk of a room, by shard, in the order they were written.
    pub fn history_chunks(&self, room: &str) -> Result<Vec<ShardChunks>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT shard, bytes FROM shard_chunks
                 WHERE room = (SELECT id FROM history_rooms WHERE topic = ?1)
                 ORDER BY shard, seq",
            )
            .map_err(self.sql_err())?;
        let rows = stmt
            .query_map(params![room], |row| {
                Ok((row.get::<_, u32>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .map_err(self.sql_err())?;
        let mut out: Vec<ShardChunks> = Vec::new();
        for row in rows {
            let (shard, bytes) = row.map_err(self.sql_err())?;
            match out.last_mut() {
                Some((last, chunks)) if *last == shard => chunks.push(bytes),
                _ => out.push((shard, vec![bytes])),
            }
        }
        Ok(out)
    }

    /// Replace a shard's chunks with one saved document.
    pub fn compact_shard(
        &mut self,
        room: &str,
        shard: u32,
        saved: &[u8],
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql_err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn_mut().transaction().map_err(sql_err)?;
        let room_id = room_number(&tx, room).map_err(sql_err)?;
        tx.execute(
            "DELETE FROM shard_chunks WHERE room = ?1 AND shard = ?2",
            params![room_id, shard],
        )
        .map_err(sql_err)?;
        tx.execute(
            "INSERT INTO shard_chunks (room, shard, bytes) VALUES (?1, ?2, ?3)",
            params![room_id, shard, saved],
        )
        .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        self.committed();
        Ok(())
    }

    /// The newest `limit` messages of a room, oldest first, in (HLC, id) order.
    pub fn recent_messages(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut out = self.query_messages(
            "SELECT id, hlc, author, name, kind, text FROM message_index
             WHERE room = (SELECT id FROM history_rooms WHERE topic = ?1)
             ORDER BY hlc DESC, id DESC LIMIT ?2",
            params![room, limit.min(i64::MAX as usize) as i64],
        )?;
        out.reverse();
        Ok(out)
    }

    /// The newest `limit` messages of a room that come before message `before` in (HLC, id)
    /// order, oldest first: the next page back. An id the room does not hold gives nothing.
    pub fn messages_before(
        &self,
        room: &str,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut out = self.query_messages(
            "SELECT m.id, m.hlc, m.author, m.name, m.kind, m.text
             FROM message_index m, message_index b
             WHERE b.room = (SELECT id FROM history_rooms WHERE topic = ?1) AND b.id = ?2
               AND m.room = b.room AND (m.hlc, m.id) < (b.hlc, b.id)
             ORDER BY m.hlc DESC, m.id DESC LIMIT ?3",
            params![
                room,
                before.0.as_slice(),
                limit.min(i64::MAX as usize) as i64
            ],
        )?;
        out.reverse();
        Ok(out)
    }

    /// The newest `limit` messages of a room whose text holds every word of `words` (case and
    /// accents ignored, whole words or prefixes of them), oldest first.
    pub fn search_messages(
        &mut self,
        room: &str,
        words: &str,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let Some(query) = fts_query(words) else {
            return Ok(Vec::new());
        };
        // Whatever idle time has not indexed yet, so that every stored message can be found.
        self.index_for_search(usize::MAX)?;
        let mut out = self.query_messages(
            "SELECT m.id, m.hlc, m.author, m.name, m.kind, m.text
             FROM message_search s JOIN message_index m ON m.seq = s.rowid
             WHERE message_search MATCH ?1
               AND m.room = (SELECT id FROM history_rooms WHERE topic = ?2)
             ORDER BY m.hlc DESC, m.id DESC LIMIT ?3",
            params![query, room, limit.min(i64::MAX as usize) as i64],
        )?;
        out.reverse();
        Ok(out)
    }

    pub(super) fn query_messages(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut stmt = self.conn().prepare_cached(sql).map_err(self.sql_err())?;
        let rows = stmt
            .query_map(params, |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                ))
            })
            .map_err(self.sql_err())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, hlc, author, name, kind, text) = row.map_err(self.sql_err())?;
            // Rows are written only by this node from checked records; a damaged one is skipped.
            let (Ok(id), Some(kind)) = (
                <[u8; 16]>::try_from(id.as_slice()),
                MessageKind::parse(&kind),
            ) else {
                tracing::warn!("skipping a damaged message row");
                continue;
            };
            out.push(StoredMessage {
                id: MessageId(id),
                hlc: Hlc(hlc as u64),
                author,
                name,
                kind,
                text,
            });
        }
        Ok(out)
    }

    /// The newest timestamp stored in any room (to start the clock past it after a restart).
    pub fn newest_hlc(&self) -> Result<Option<Hlc>, StoreError> {
        self.conn()
            // Per room, each a lookup in (room, hlc, id): a MAX over the whole table would walk
            // the index (13 ms at 100k messages).
            .query_row(
                "SELECT MAX((SELECT MAX(hlc) FROM message_index WHERE room = r.id))
                 FROM history_rooms r",
                [],
                |row| row.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(|v| v.flatten().map(|h| Hlc(h as u64)))
            .map_err(self.sql_err())
    }

    /// Whether the room's message index was checked against its documents (see
    /// `Engine::index_what_the_documents_hold`): once per room and data dir, for rooms stored
    /// by builds before 2026-12-04 (a room first stored since is born checked). A room with
    /// nothing stored counts as unchecked, and is marked when first loaded.
    pub fn index_checked(&self, room: &str) -> Result<bool, StoreError> {
        self.conn()
            .query_row(
                "SELECT 1 FROM history_index_checked
                 WHERE room = (SELECT id FROM history_rooms WHERE topic = ?1)",
                params![room],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(self.sql_err())
    }

    pub fn set_index_checked(&self, room: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        room_number(conn, room)
            .and_then(|number| {
                conn.execute(
                    "INSERT OR IGNORE INTO history_index_checked (room) VALUES (?1)",
                    params![number],
                )
            })
            .map(|_| ())
            .map_err(self.sql_err())
    }

    pub fn message_count(&self, room: &str) -> Result<u64, StoreError> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM message_index
                 WHERE room = (SELECT id FROM history_rooms WHERE topic = ?1)",
                params![room],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.sql_err())
    }
}

/// The number of the room with chat topic `topic`, given one on first use. A room first
/// stored by this build needs no check of its index against its documents (see
/// [`Store::index_checked`]): it is born checked.
fn room_number(tx: &Connection, topic: &str) -> rusqlite::Result<i64> {
    // Cached statements: this runs in every transaction that stores a message, and parsing
    // the SQL each time was a visible share of a receiving node's CPU.
    let new = tx
        .prepare_cached("INSERT OR IGNORE INTO history_rooms (topic) VALUES (?1)")?
        .execute(params![topic])?;
    let number = tx
        .prepare_cached("SELECT id FROM history_rooms WHERE topic = ?1")?
        .query_row(params![topic], |row| row.get(0))?;
    if new > 0 {
        tx.execute(
            "INSERT OR IGNORE INTO history_index_checked (room) VALUES (?1)",
            params![number],
        )?;
    }
    Ok(number)
}

/// Typed words as an FTS5 query: each word quoted (so `AND`, `*`, `"` and other syntax are
/// plain text) and matched as a prefix; every word must occur. None when nothing is left.
fn fts_query(words: &str) -> Option<String> {
    let terms: Vec<String> = words
        .split_whitespace()
        .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// A chunk as a thread that writes it behind owns it.
pub(super) type OwnedChunk = (u32, Vec<u8>, Vec<StoredMessage>);

/// Owned chunks as [`insert_batch`] takes them.
pub(super) fn as_chunks(chunks: &[OwnedChunk]) -> Vec<(u32, &[u8], &[StoredMessage])> {
    chunks
        .iter()
        .map(|(shard, bytes, messages)| (*shard, bytes.as_slice(), messages.as_slice()))
        .collect()
}

/// Insert chunks and index their messages in `conn`'s open transaction; returns whether each
/// message was new to the index.
pub(super) fn insert_batch(
    conn: &Connection,
    room: &str,
    chunks: &[(u32, &[u8], &[StoredMessage])],
) -> Result<Vec<Vec<bool>>, rusqlite::Error> {
    let room_id = room_number(conn, room)?;
    let mut chunk_insert =
        conn.prepare_cached("INSERT INTO shard_chunks (room, shard, bytes) VALUES (?1, ?2, ?3)")?;
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO message_index (room, id, hlc, author, name, kind, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut all_fresh = Vec::with_capacity(chunks.len());
    for (shard, bytes, messages) in chunks {
        if !bytes.is_empty() {
            chunk_insert.execute(params![room_id, shard, bytes])?;
        }
        let mut fresh = vec![false; messages.len()];
        for i in insert_order(messages) {
            let m = &messages[i];
            let n = insert.execute(params![
                room_id,
                m.id.0.as_slice(),
                m.hlc.0 as i64,
                m.author,
                m.name,
                m.kind.as_str(),
                m.text
            ])?;
            fresh[i] = n == 1;
        }
        all_fresh.push(fresh);
    }
    Ok(all_fresh)
}

/// The order a chunk's messages are indexed in: by time, so that the (room, hlc, id) index
/// grows at its end, which cut a 100k catch-up's store by 10-15 % against the documents' id
/// order.
pub(super) fn insert_order(messages: &[StoredMessage]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..messages.len()).collect();
    order.sort_by_key(|&i| (messages[i].hlc, messages[i].id));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8, hlc: u64) -> StoredMessage {
        StoredMessage {
            id: MessageId([n; 16]),
            hlc: Hlc(hlc),
            author: "12D3KooWabc".into(),
            name: "alice".into(),
            kind: MessageKind::Text,
            text: format!("message {n}"),
        }
    }

    fn numbered(n: u32, hlc: u64) -> StoredMessage {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        StoredMessage {
            id: MessageId(id),
            text: format!("number {n}"),
            ..message(0, hlc)
        }
    }

    /// Two shards' worth of a catch-up: the second repeats ten of the first's ids and one
    /// of its own.
    fn catch_up() -> Vec<OwnedChunk> {
        let first: Vec<StoredMessage> = (0..600)
            .map(|n| numbered(n, 1_000 - u64::from(n)))
            .collect();
        let mut second: Vec<StoredMessage> =
            (600..1_200).map(|n| numbered(n, u64::from(n))).collect();
        second.extend((0..10).map(|n| numbered(n, 5)));
        second.push(numbered(700, 3));
        vec![
            (1, b"doc one".to_vec(), first),
            (2, b"doc two".to_vec(), second),
        ]
    }

    #[test]
    fn a_catch_up_into_an_empty_room_is_written_behind_with_the_indexs_own_verdicts() {
        let chunks = catch_up();
        let dir = tempfile::tempdir().unwrap();
        let mut at_once = Store::open(dir.path()).unwrap();
        let expected = at_once
            .append_history_batch("room", &as_chunks(&chunks), Durability::Now)
            .unwrap();
        assert!(at_once.behind.borrow().is_none());
        assert_eq!(expected.iter().flatten().filter(|new| **new).count(), 1_200);

        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let fresh = store
            .append_history_batch("room", &as_chunks(&chunks), Durability::Deferred)
            .unwrap();
        assert!(store.behind.borrow().is_some(), "written behind");
        assert_eq!(fresh, expected);
        // Any read waits for the write.
        assert_eq!(store.recent_messages("room", 10_000).unwrap().len(), 1_200);
        assert!(store.lost_writes().is_empty());
        assert_eq!(store.history_chunks("room").unwrap().len(), 2);
        // Now the room has messages: the next batch is written at once, its verdicts the index's.
        let again = store
            .append_history_batch("room", &as_chunks(&chunks), Durability::Deferred)
            .unwrap();
        assert!(store.behind.borrow().is_none());
        assert!(again.iter().flatten().all(|new| !new));

        // Closing the store finishes a write still under way.
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = Store::open(dir.path()).unwrap();
            store
                .append_history_batch("other", &as_chunks(&chunks), Durability::Deferred)
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.recent_messages("other", 10_000).unwrap().len(), 1_200);
    }

    #[test]
    fn a_write_behind_that_fails_is_reported_once_and_stores_nothing() {
        let chunks = catch_up();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.fail_behind = true;
        let fresh = store
            .append_history_batch("room", &as_chunks(&chunks), Durability::Deferred)
            .unwrap();
        assert_eq!(fresh.iter().flatten().filter(|new| **new).count(), 1_200);
        assert!(store.recent_messages("room", 10).unwrap().is_empty());
        // Until the engine has heard of it, the room takes no writes (later changes would
        // depend on the lost ones); other rooms do.
        assert!(matches!(
            store.append_history_batch("room", &as_chunks(&chunks[..1]), Durability::Now),
            Err(StoreError::LostWrite(_))
        ));
        store
            .append_history_batch("elsewhere", &as_chunks(&chunks[..1]), Durability::Now)
            .unwrap();
        let lost = store.lost_writes();
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].room, "room");
        assert_eq!(lost[0].ids.len(), 1_211);
        assert!(store.lost_writes().is_empty(), "reported once");
        // The store goes on: the same catch-up again is stored.
        store.fail_behind = false;
        store
            .append_history_batch("room", &as_chunks(&chunks), Durability::Deferred)
            .unwrap();
        assert_eq!(store.recent_messages("room", 10_000).unwrap().len(), 1_200);
        assert!(store.lost_writes().is_empty());
    }

    #[test]
    fn messages_are_indexed_once_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let fresh = store
            .append_history("room", 7, b"chunk1", &[message(2, 20), message(1, 10)])
            .unwrap();
        assert_eq!(fresh, vec![true, true]);
        let fresh = store
            .append_history("room", 7, b"chunk2", &[message(1, 10), message(3, 20)])
            .unwrap();
        assert_eq!(fresh, vec![false, true]);
        // Stored in time order, answered in the caller's: new, known, new again, repeated.
        let fresh = store
            .append_history(
                "room",
                7,
                b"chunk3",
                &[
                    message(5, 50),
                    message(3, 20),
                    message(4, 5),
                    message(5, 50),
                ],
            )
            .unwrap();
        assert_eq!(fresh, vec![true, false, true, false]);
        let texts: Vec<String> = store
            .recent_messages("room", 10)
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(
            texts,
            [
                "message 4",
                "message 1",
                "message 2",
                "message 3",
                "message 5"
            ]
        );
        assert_eq!(
            store.recent_messages("room", 1).unwrap()[0].text,
            "message 5"
        );
        assert_eq!(store.message_count("room").unwrap(), 5);
        assert_eq!(store.newest_hlc().unwrap(), Some(Hlc(50)));

        assert_eq!(
            store.history_chunks("room").unwrap(),
            vec![(
                7,
                vec![b"chunk1".to_vec(), b"chunk2".to_vec(), b"chunk3".to_vec()]
            )]
        );
        store.compact_shard("room", 7, b"saved").unwrap();
        assert_eq!(
            store.history_chunks("room").unwrap(),
            vec![(7, vec![b"saved".to_vec()])]
        );
        assert!(store.history_chunks("other").unwrap().is_empty());
    }

    #[test]
    fn search_finds_words_and_prefixes_and_treats_syntax_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut pump = message(1, 10);
        pump.text = "Pump 4 is running HOT".into();
        let mut deck = message(2, 20);
        deck.text = "fire on deck 2 near the pump".into();
        let mut odd = message(3, 30);
        odd.text = "say \"AND\" OR* NOT".into();
        store
            .append_history("room", 1, b"c", &[pump, deck, odd])
            .unwrap();
        store
            .append_history("other", 1, b"c", &[message(4, 5)])
            .unwrap();
        let mut texts = |q: &str| -> Vec<String> {
            store
                .search_messages("room", q, 10)
                .unwrap()
                .into_iter()
                .map(|m| m.text)
                .collect()
        };
        assert_eq!(
            texts("pump"),
            ["Pump 4 is running HOT", "fire on deck 2 near the pump"]
        );
        assert_eq!(texts("run hot"), ["Pump 4 is running HOT"]);
        assert_eq!(texts("\"AND\" OR*"), ["say \"AND\" OR* NOT"]);
        assert!(texts("message").is_empty(), "other rooms are not searched");
        assert!(texts("   ").is_empty());
        assert!(texts("nothing-like-this").is_empty());
    }

    #[test]
    fn search_indexing_lags_in_batches_and_a_search_catches_it_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let batch: Vec<StoredMessage> = (0..5).map(|n| message(n, 10 + n as u64)).collect();
        store.append_history("room", 1, b"c", &batch).unwrap();
        assert_eq!(store.index_for_search(2).unwrap(), 2);
        assert_eq!(store.index_for_search(2).unwrap(), 2);
        // The search finds the fifth although idle indexing has not reached it yet.
        let found = store.search_messages("room", "message", 10).unwrap();
        assert_eq!(found.len(), 5);
        assert_eq!(store.index_for_search(2).unwrap(), 0, "nothing left");
        // Reopened (as after a crash), nothing is indexed twice.
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.index_for_search(usize::MAX).unwrap(), 0);
        assert_eq!(
            store.search_messages("room", "message", 10).unwrap().len(),
            5
        );
    }

    #[test]
    fn a_data_dir_of_the_topic_keyed_layout_is_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = rusqlite::Connection::open(dir.path().join("hark.db")).unwrap();
            conn.execute_batch(
                "CREATE TABLE history_chunks (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                     room TEXT NOT NULL, shard INTEGER NOT NULL, bytes BLOB NOT NULL);
                 CREATE TABLE messages (room TEXT NOT NULL, id BLOB NOT NULL,
                     hlc INTEGER NOT NULL, author TEXT NOT NULL, name TEXT NOT NULL,
                     kind TEXT NOT NULL, text TEXT NOT NULL, PRIMARY KEY (room, id)) WITHOUT ROWID;
                 CREATE VIRTUAL TABLE messages_fts USING fts5 (text, room UNINDEXED, id UNINDEXED);
                 INSERT INTO history_chunks (room, shard, bytes) VALUES ('room', 7, x'01'), ('room', 7, x'02');
                 INSERT INTO messages VALUES ('room', x'01010101010101010101010101010101', 10,
                     '12D3KooWabc', 'alice', 'text', 'old pump message');",
            )
            .unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.history_chunks("room").unwrap(),
            vec![(7, vec![vec![1], vec![2]])]
        );
        assert_eq!(store.message_count("room").unwrap(), 1);
        assert_eq!(store.search_messages("room", "pump", 10).unwrap().len(), 1);
        assert_eq!(store.newest_hlc().unwrap(), Some(Hlc(10)));
    }

    #[test]
    fn a_room_marked_index_checked_stays_marked_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.index_checked("room").unwrap(), "a room never seen");
        store.set_index_checked("room").unwrap();
        store.set_index_checked("room").unwrap();
        assert!(store.index_checked("room").unwrap());
        assert!(!store.index_checked("other").unwrap());
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(
            store.index_checked("room").unwrap(),
            "kept across a restart"
        );

        // A room whose first messages this build stores is born checked.
        let mut store = store;
        store
            .append_history("fresh", 1, b"doc", &[message(1, 10)])
            .unwrap();
        assert!(store.index_checked("fresh").unwrap());
    }
}
