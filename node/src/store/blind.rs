//! `blind.db`: what a blind relay holds for rooms it cannot open, and the peers a member has
//! met (whose DM topics it asks relays about). A file of its own beside `hark.db`, 0600, WAL.
//!
//! The relay keeps each item as the exact sealed bytes a member handed it, with the topic, the
//! peer id of the member that stored it (the connection's, which the network shows anyway),
//! its size and when it came. Nothing in it opens without a room key.
//!
//! Bounds ([`Bounds`]), enforced in the same transaction as each store, oldest first:
//! 1. one sender in one topic, then one sender over all topics: its own oldest items go;
//! 2. one topic: the oldest item of the topic's heaviest sender goes;
//! 3. the whole file: the oldest item of the heaviest sender overall goes;
//! 4. age: items older than `max_age_ms` go (checked on every store and fetch).
//!
//! So an outsider who knows a topic and floods it evicts its own items first, and takes
//! others' only when it (or the identities it makes up) outweighs every honest sender.

use std::path::{Path, PathBuf};

use hark_proto::blind::{item_hash, Held, StoreResult, Want, MAX_BATCH_BYTES, MAX_FETCH_ITEMS};
use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;

/// What one item costs beside its sealed bytes (row, indexes, topic and sender text): a flood
/// of tiny items is bounded too.
pub const ITEM_OVERHEAD: u64 = 256;
/// Peers remembered as met (the newest); a member asks relays about the DMs of these.
pub const MAX_MET: usize = 4_096;
/// A member's own messages kept until a relay holds them (the newest).
pub const MAX_OUTBOX: usize = 1_024;

/// One of a member's own messages waiting for a relay: (chat topic, message id, sealed bytes).
pub type OutboxItem = (String, [u8; 16], Vec<u8>);

/// How much a blind relay keeps. Documented in docs/operations.md and docs/security.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// One sender's items in one topic.
    pub per_sender_topic: u64,
    /// One sender's items over all topics.
    pub per_sender: u64,
    /// One topic's items, all senders.
    pub per_topic: u64,
    /// Everything held.
    pub total: u64,
    /// Items older than this are dropped.
    pub max_age_ms: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        Self {
            per_sender_topic: MIB,
            per_sender: 16 * MIB,
            per_topic: 4 * MIB,
            total: 256 * MIB,
            max_age_ms: 14 * 24 * 3_600 * 1_000,
        }
    }
}

impl Bounds {
    /// The defaults with a different total (`--blind-max-mb`); the others never exceed it.
    pub fn with_total(total: u64) -> Self {
        let d = Self::default();
        Self {
            per_sender_topic: d.per_sender_topic.min(total),
            per_sender: d.per_sender.min(total),
            per_topic: d.per_topic.min(total),
            total,
            max_age_ms: d.max_age_ms,
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS held (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    sender TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    sealed BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    stored_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS held_topic ON held (topic, seq);
CREATE INDEX IF NOT EXISTS held_sender ON held (sender, topic, seq);
CREATE INDEX IF NOT EXISTS held_age ON held (stored_ms);
CREATE TABLE IF NOT EXISTS met (
    peer TEXT PRIMARY KEY,
    seen_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id BLOB PRIMARY KEY,
    topic TEXT NOT NULL,
    sealed BLOB NOT NULL,
    added_ms INTEGER NOT NULL
);
";

pub struct BlindDb {
    conn: Connection,
    path: PathBuf,
    bounds: Bounds,
    /// Bytes held, as [`Bounds::total`] counts them (kept here: summing every store is slow).
    total: u64,
}

impl BlindDb {
    /// Open (or create) `DATA_DIR/blind.db`.
    pub fn open(data_dir: &Path, bounds: Bounds) -> Result<Self, StoreError> {
        let path = data_dir.join("blind.db");
        let dir_err = |source| StoreError::Dir {
            path: data_dir.to_owned(),
            source,
        };
        super::create_private(&path).map_err(dir_err)?;
        let conn = Connection::open(&path).map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        Self::with(conn, path, bounds)
    }

    /// In memory (tests).
    pub fn in_memory(bounds: Bounds) -> Result<Self, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        Self::with(conn, path, bounds)
    }

    fn with(conn: Connection, path: PathBuf, bounds: Bounds) -> Result<Self, StoreError> {
        let sql_err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err)?;
        // What a relay holds is a copy: the members keep the originals.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql_err)?;
        conn.execute_batch(SCHEMA).map_err(sql_err)?;
        let mut db = Self {
            conn,
            path,
            bounds,
            total: 0,
        };
        db.total = db.sum("SELECT COALESCE(SUM(bytes), 0) FROM held", [])?;
        Ok(db)
    }

    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    fn sql_err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn sum(&self, sql: &str, args: impl rusqlite::Params) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row(sql, args, |row| row.get(0))
            .map_err(self.sql_err())?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Keep `sealed` for `topic`, handed over by `sender`, evicting what the bounds ask.
    /// `Refused` when the bounds leave no room even for it.
    pub fn put(
        &mut self,
        topic: &str,
        sender: &str,
        sealed: &[u8],
        now_ms: u64,
    ) -> Result<StoreResult, StoreError> {
        self.expire(now_ms)?;
        let hash = item_hash(sealed);
        let known = self
            .conn
            .query_row("SELECT 1 FROM held WHERE hash = ?1", params![hash], |_| {
                Ok(())
            })
            .optional()
            .map_err(self.sql_err())?
            .is_some();
        if known {
            return Ok(StoreResult::Known);
        }
        let bytes = sealed.len() as u64 + ITEM_OVERHEAD;
        if bytes > self.bounds.per_sender_topic {
            return Ok(StoreResult::Refused);
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.sql_err())?;
        let result = self.put_in_transaction(topic, sender, sealed, &hash, bytes, now_ms);
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.conn.execute_batch(end).map_err(self.sql_err());
        if result.is_err() || ended.is_err() {
            // Recount: the transaction may have moved bytes we counted.
            self.total = self.sum("SELECT COALESCE(SUM(bytes), 0) FROM held", [])?;
        }
        let result = result?;
        ended?;
        Ok(result)
    }

    fn put_in_transaction(
        &mut self,
        topic: &str,
        sender: &str,
        sealed: &[u8],
        hash: &[u8; 32],
        bytes: u64,
        now_ms: u64,
    ) -> Result<StoreResult, StoreError> {
        self.conn
            .execute(
                "INSERT INTO held (topic, sender, hash, sealed, bytes, stored_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![topic, sender, hash, sealed, bytes as i64, now_ms as i64],
            )
            .map_err(self.sql_err())?;
        let seq = self.conn.last_insert_rowid();
        self.total += bytes;
        let b = self.bounds;
        // 1. The sender's own oldest, in this topic and then anywhere.
        while self.sum(
            "SELECT COALESCE(SUM(bytes), 0) FROM held WHERE topic = ?1 AND sender = ?2",
            params![topic, sender],
        )? > b.per_sender_topic
        {
            self.evict_oldest("topic = ?1 AND sender = ?2", params![topic, sender])?;
        }
        while self.sum(
            "SELECT COALESCE(SUM(bytes), 0) FROM held WHERE sender = ?1",
            params![sender],
        )? > b.per_sender
        {
            self.evict_oldest("sender = ?1", params![sender])?;
        }
        // 2. The topic: its heaviest sender's oldest.
        while self.sum(
            "SELECT COALESCE(SUM(bytes), 0) FROM held WHERE topic = ?1",
            params![topic],
        )? > b.per_topic
        {
            let heaviest = self.heaviest_sender(Some(topic))?;
            self.evict_oldest("topic = ?1 AND sender = ?2", params![topic, heaviest])?;
        }
        // 3. Everything: the heaviest sender's oldest.
        while self.total > b.total {
            let heaviest = self.heaviest_sender(None)?;
            self.evict_oldest("sender = ?1", params![heaviest])?;
        }
        let kept = self
            .conn
            .query_row(
                "SELECT 1 FROM held WHERE seq = ?1",
                params![seq],
                |_| Ok(()),
            )
            .optional()
            .map_err(self.sql_err())?
            .is_some();
        Ok(if kept {
            StoreResult::Stored
        } else {
            StoreResult::Refused
        })
    }

    fn heaviest_sender(&self, topic: Option<&str>) -> Result<String, StoreError> {
        let row = match topic {
            Some(topic) => self.conn.query_row(
                "SELECT sender FROM held WHERE topic = ?1 GROUP BY sender
                 ORDER BY SUM(bytes) DESC, MIN(seq) LIMIT 1",
                params![topic],
                |row| row.get(0),
            ),
            None => self.conn.query_row(
                "SELECT sender FROM held GROUP BY sender ORDER BY SUM(bytes) DESC, MIN(seq) LIMIT 1",
                [],
                |row| row.get(0),
            ),
        };
        row.map_err(self.sql_err())
    }

    /// Delete the oldest item matching `filter` (SQL over `held`); a filter that matches
    /// nothing is a bug in the bounds, so it stops the loop with an error, never spins.
    fn evict_oldest(
        &mut self,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "DELETE FROM held WHERE seq = (SELECT seq FROM held WHERE {filter} ORDER BY seq LIMIT 1)
             RETURNING bytes"
        );
        let freed: Option<i64> = self
            .conn
            .query_row(&sql, args, |row| row.get(0))
            .optional()
            .map_err(self.sql_err())?;
        match freed {
            Some(bytes) => {
                self.total = self.total.saturating_sub(u64::try_from(bytes).unwrap_or(0));
                Ok(())
            }
            None => Err(StoreError::Sqlite {
                path: self.path.clone(),
                source: rusqlite::Error::QueryReturnedNoRows,
            }),
        }
    }

    /// Drop items past the age bound.
    pub fn expire(&mut self, now_ms: u64) -> Result<usize, StoreError> {
        let cutoff = now_ms.saturating_sub(self.bounds.max_age_ms);
        // What goes is subtracted from the running total, as eviction does: recounting the
        // table after each expiry would scan it on most stores of a long-running relay.
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM held WHERE stored_ms < ?1 RETURNING bytes")
            .map_err(self.sql_err())?;
        let freed: Vec<i64> = stmt
            .query_map(params![cutoff as i64], |row| row.get(0))
            .map_err(self.sql_err())?
            .collect::<Result<_, _>>()
            .map_err(self.sql_err())?;
        drop(stmt);
        let bytes: u64 = freed.iter().map(|b| u64::try_from(*b).unwrap_or(0)).sum();
        self.total = self.total.saturating_sub(bytes);
        Ok(freed.len())
    }

    /// Items of the wanted topics after each one's cursor, in the relay's order per topic,
    /// up to [`MAX_FETCH_ITEMS`] and [`MAX_BATCH_BYTES`]; `true` when more were left.
    pub fn fetch(&mut self, wants: &[Want], now_ms: u64) -> Result<(Vec<Held>, bool), StoreError> {
        self.expire(now_ms)?;
        let mut items = Vec::new();
        let mut bytes = 0usize;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, sealed FROM held WHERE topic = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )
            .map_err(self.sql_err())?;
        for want in wants {
            let room = MAX_FETCH_ITEMS - items.len();
            let after = i64::try_from(want.after).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(params![want.topic, after, room as i64 + 1], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
                })
                .map_err(self.sql_err())?;
            for row in rows {
                let (seq, sealed) = row.map_err(self.sql_err())?;
                if items.len() >= MAX_FETCH_ITEMS || bytes + sealed.len() > MAX_BATCH_BYTES {
                    return Ok((items, true));
                }
                bytes += sealed.len();
                items.push(Held {
                    topic: want.topic.clone(),
                    seq: u64::try_from(seq).unwrap_or(0),
                    sealed,
                });
            }
        }
        Ok((items, false))
    }

    /// Bytes held (as the bounds count them) for `topic`, and of `sender` in it when given.
    pub fn held_bytes(&self, topic: &str, sender: Option<&str>) -> Result<u64, StoreError> {
        match sender {
            Some(sender) => self.sum(
                "SELECT COALESCE(SUM(bytes), 0) FROM held WHERE topic = ?1 AND sender = ?2",
                params![topic, sender],
            ),
            None => self.sum(
                "SELECT COALESCE(SUM(bytes), 0) FROM held WHERE topic = ?1",
                params![topic],
            ),
        }
    }

    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    // ----- a member's side: peers met -----

    /// Remember that we met `peer` (its DM topic is worth asking relays about).
    pub fn note_met(&mut self, peer: &str, now_ms: u64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO met (peer, seen_ms) VALUES (?1, ?2)
                 ON CONFLICT(peer) DO UPDATE SET seen_ms = excluded.seen_ms",
                params![peer, now_ms as i64],
            )
            .map_err(self.sql_err())?;
        self.conn
            .execute(
                "DELETE FROM met WHERE peer NOT IN
                 (SELECT peer FROM met ORDER BY seen_ms DESC LIMIT ?1)",
                params![MAX_MET as i64],
            )
            .map_err(self.sql_err())?;
        Ok(())
    }

    /// Peers met, the most recent first.
    pub fn met(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT peer FROM met ORDER BY seen_ms DESC LIMIT ?1")
            .map_err(self.sql_err())?;
        let rows = stmt
            .query_map(params![MAX_MET as i64], |row| row.get(0))
            .map_err(self.sql_err())?;
        rows.collect::<Result<_, _>>().map_err(self.sql_err())
    }

    // ----- a member's side: its own messages no relay holds yet -----

    /// Keep our sealed message `id` until a relay holds it; the oldest past [`MAX_OUTBOX`] and
    /// those past the age bound go.
    pub fn outbox_put(
        &mut self,
        topic: &str,
        id: &[u8; 16],
        sealed: &[u8],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let cutoff = now_ms.saturating_sub(self.bounds.max_age_ms);
        self.conn
            .execute(
                "INSERT OR IGNORE INTO outbox (id, topic, sealed, added_ms) VALUES (?1, ?2, ?3, ?4)",
                params![&id[..], topic, sealed, now_ms as i64],
            )
            .map_err(self.sql_err())?;
        self.conn
            .execute(
                "DELETE FROM outbox WHERE added_ms < ?1 OR id NOT IN
                 (SELECT id FROM outbox ORDER BY added_ms DESC, rowid DESC LIMIT ?2)",
                params![cutoff as i64, MAX_OUTBOX as i64],
            )
            .map_err(self.sql_err())?;
        Ok(())
    }

    /// A relay holds `id`.
    pub fn outbox_remove(&mut self, id: &[u8; 16]) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM outbox WHERE id = ?1", params![&id[..]])
            .map_err(self.sql_err())?;
        Ok(())
    }

    /// What waits, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT topic, id, sealed FROM outbox ORDER BY added_ms, rowid LIMIT ?1")
            .map_err(self.sql_err())?;
        let rows = stmt
            .query_map(params![MAX_OUTBOX as i64], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(self.sql_err())?;
        let mut items = Vec::new();
        for row in rows {
            let (topic, id, sealed) = row.map_err(self.sql_err())?;
            // A row that is not ours to read (a damaged file) is skipped, not fatal.
            if let Ok(id) = <[u8; 16]>::try_from(id) {
                items.push((topic, id, sealed));
            }
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    fn topic(n: u8) -> String {
        format!("hark/1/chat/{}", hex::encode([n; 16]))
    }

    fn small() -> Bounds {
        Bounds {
            per_sender_topic: 10 * KIB,
            per_sender: 25 * KIB,
            per_topic: 30 * KIB,
            total: 50 * KIB,
            max_age_ms: 1_000_000,
        }
    }

    /// An item of about 1 KiB as the bounds count it, distinct per `n`.
    fn item(n: u32) -> Vec<u8> {
        let mut v = vec![0u8; 1024 - ITEM_OVERHEAD as usize];
        v[..4].copy_from_slice(&n.to_le_bytes());
        v
    }

    fn all(db: &mut BlindDb, t: &str) -> Vec<Held> {
        db.fetch(
            &[Want {
                topic: t.into(),
                after: 0,
            }],
            0,
        )
        .unwrap()
        .0
    }

    #[test]
    fn duplicates_are_known_and_cursors_page() {
        let mut db = BlindDb::in_memory(small()).unwrap();
        let t = topic(1);
        assert_eq!(db.put(&t, "a", &item(1), 0).unwrap(), StoreResult::Stored);
        assert_eq!(db.put(&t, "b", &item(1), 0).unwrap(), StoreResult::Known);
        assert_eq!(db.put(&t, "a", &item(2), 0).unwrap(), StoreResult::Stored);
        let held = all(&mut db, &t);
        assert_eq!(held.len(), 2);
        let after = Want {
            topic: t.clone(),
            after: held[0].seq,
        };
        let (rest, more) = db.fetch(&[after], 0).unwrap();
        assert_eq!((rest.len(), more), (1, false));
        assert_eq!(rest[0].sealed, item(2));
        assert!(all(&mut db, &topic(2)).is_empty());
    }

    #[test]
    fn a_flooding_sender_evicts_its_own_oldest_and_not_others() {
        let mut db = BlindDb::in_memory(small()).unwrap();
        let t = topic(1);
        for n in 0..3 {
            db.put(&t, "honest", &item(n), 0).unwrap();
        }
        for n in 100..200 {
            assert_eq!(
                db.put(&t, "flood", &item(n), 0).unwrap(),
                StoreResult::Stored
            );
            assert!(db.held_bytes(&t, Some("flood")).unwrap() <= small().per_sender_topic);
        }
        assert_eq!(db.held_bytes(&t, Some("honest")).unwrap(), 3 * KIB);
        // The flood kept its newest ten.
        let held = all(&mut db, &t);
        assert_eq!(held.len(), 13);
        assert_eq!(held.last().unwrap().sealed, item(199));
        assert_eq!(held[3].sealed, item(190));
    }

    #[test]
    fn over_all_topics_a_sender_is_bounded_too() {
        let mut db = BlindDb::in_memory(small()).unwrap();
        for n in 0..40u8 {
            db.put(&topic(n), "flood", &item(u32::from(n)), 0).unwrap();
        }
        let held: u64 = (0..40)
            .map(|n| db.held_bytes(&topic(n), None).unwrap())
            .sum();
        assert_eq!(held, 25 * KIB);
        // The oldest topics lost theirs.
        assert_eq!(db.held_bytes(&topic(0), None).unwrap(), 0);
        assert_eq!(db.held_bytes(&topic(39), None).unwrap(), KIB);
    }

    #[test]
    fn a_full_topic_evicts_its_heaviest_sender() {
        let mut db = BlindDb::in_memory(small()).unwrap();
        let t = topic(1);
        // Three senders near their cap: 9 + 9 + 9 = 27 KiB.
        for (s, base) in [("a", 0), ("b", 100), ("c", 200)] {
            for n in 0..9 {
                db.put(&t, s, &item(base + n), 0).unwrap();
            }
        }
        db.put(&t, "d", &item(300), 0).unwrap();
        db.put(&t, "d", &item(301), 0).unwrap();
        db.put(&t, "a", &item(9), 0).unwrap();
        assert_eq!(db.held_bytes(&t, None).unwrap(), 30 * KIB);
        // One more from "d" makes 31: "a" (the heaviest, 10) loses its oldest, not "d".
        db.put(&t, "d", &item(302), 0).unwrap();
        assert_eq!(db.held_bytes(&t, None).unwrap(), 30 * KIB);
        assert_eq!(db.held_bytes(&t, Some("a")).unwrap(), 9 * KIB);
        assert_eq!(db.held_bytes(&t, Some("d")).unwrap(), 3 * KIB);
        assert!(!all(&mut db, &t).iter().any(|h| h.sealed == item(0)));
    }

    #[test]
    fn the_total_is_bounded_by_evicting_the_heaviest_sender() {
        let mut db = BlindDb::in_memory(small()).unwrap();
        for n in 0..60u32 {
            let sender = format!("s{}", n % 6);
            db.put(&topic((n % 20) as u8), &sender, &item(n), 0)
                .unwrap();
            assert!(db.total_bytes() <= 50 * KIB);
        }
        assert_eq!(db.total_bytes(), 50 * KIB);
        let counted: u64 = (0..20)
            .map(|n| db.held_bytes(&topic(n), None).unwrap())
            .sum();
        assert_eq!(counted, db.total_bytes());
    }

    #[test]
    fn old_items_expire_and_too_large_ones_are_refused() {
        let mut db = BlindDb::in_memory(small()).unwrap();
        let t = topic(1);
        db.put(&t, "a", &item(1), 0).unwrap();
        db.put(&t, "a", &item(2), 600_000).unwrap();
        assert_eq!(all(&mut db, &t).len(), 2);
        db.expire(1_200_000).unwrap();
        let left = all(&mut db, &t);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].sealed, item(2));
        assert_eq!(db.total_bytes(), KIB);
        let big = vec![0u8; 11 * 1024];
        assert_eq!(
            db.put(&t, "a", &big, 600_000).unwrap(),
            StoreResult::Refused
        );
    }

    #[test]
    fn fetches_are_bounded_and_say_more() {
        let mut db = BlindDb::in_memory(Bounds::default()).unwrap();
        let t = topic(1);
        for n in 0..(MAX_FETCH_ITEMS as u32 + 10) {
            db.put(&t, "a", &n.to_le_bytes().repeat(16), 0).unwrap();
        }
        let (first, more) = db
            .fetch(
                &[Want {
                    topic: t.clone(),
                    after: 0,
                }],
                0,
            )
            .unwrap();
        assert_eq!((first.len(), more), (MAX_FETCH_ITEMS, true));
        let after = first.last().unwrap().seq;
        let (rest, more) = db.fetch(&[Want { topic: t, after }], 0).unwrap();
        assert_eq!((rest.len(), more), (10, false));
    }

    #[test]
    fn the_outbox_keeps_what_no_relay_holds_yet() {
        let mut db = BlindDb::in_memory(small()).unwrap();
        db.outbox_put(&topic(1), &[1; 16], b"one", 0).unwrap();
        db.outbox_put(&topic(2), &[2; 16], b"two", 1).unwrap();
        db.outbox_put(&topic(2), &[2; 16], b"two again", 2).unwrap();
        let kept = db.outbox().unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0], (topic(1), [1; 16], b"one".to_vec()));
        db.outbox_remove(&[1; 16]).unwrap();
        assert_eq!(db.outbox().unwrap().len(), 1);
        // Past the age bound it goes with the next write.
        db.outbox_put(&topic(3), &[3; 16], b"three", 2_000_000)
            .unwrap();
        let kept = db.outbox().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].1, [3; 16]);
        for n in 0..(MAX_OUTBOX as u32 + 5) {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&n.to_le_bytes());
            db.outbox_put(&topic(4), &id, b"x", 2_000_000 + u64::from(n))
                .unwrap();
        }
        assert_eq!(db.outbox().unwrap().len(), MAX_OUTBOX);
    }

    #[test]
    fn met_peers_are_remembered_newest_first() {
        let mut db = BlindDb::in_memory(Bounds::default()).unwrap();
        db.note_met("p1", 1).unwrap();
        db.note_met("p2", 2).unwrap();
        db.note_met("p1", 3).unwrap();
        assert_eq!(db.met().unwrap(), vec!["p1".to_owned(), "p2".to_owned()]);
    }
}
