//! The membership state of private rooms (`engine/membership.rs`): one blob per room, written
//! whole on every change (a few KiB at most), read once at start.

use hark_proto::{Hlc, MessageId};
use rusqlite::{params, OptionalExtension};

use super::{Durability, Store, StoreError, StoredMessage};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS room_membership (
    name TEXT PRIMARY KEY,
    state BLOB NOT NULL
)";

impl Store {
    /// The membership state saved for room `name`, if any.
    pub fn membership(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn().execute(SCHEMA, []).map_err(self.sql_err())?;
        self.conn()
            .query_row(
                "SELECT state FROM room_membership WHERE name = ?1",
                params![name],
                |row| row.get::<_, Vec<u8>>(0),
            )
            .optional()
            .map_err(self.sql_err())
    }

    /// Save (or with `None` forget) room `name`'s membership state, durable at once: it holds
    /// the keys of the room's epochs.
    pub fn set_membership(&mut self, name: &str, state: Option<&[u8]>) -> Result<(), StoreError> {
        self.set_durability(Durability::Now)?;
        self.conn().execute(SCHEMA, []).map_err(self.sql_err())?;
        match state {
            Some(state) => self.conn().execute(
                "INSERT INTO room_membership (name, state) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET state = excluded.state",
                params![name, state],
            ),
            None => self
                .conn()
                .execute("DELETE FROM room_membership WHERE name = ?1", params![name]),
        }
        .map_err(self.sql_err())?;
        Ok(())
    }

    /// The clock of message `id` in the room of chat topic `room`, if it holds it (paging
    /// back through a room whose epochs are several rooms in the store).
    pub fn message_clock(&self, room: &str, id: MessageId) -> Result<Option<Hlc>, StoreError> {
        // Asked for every message shown from gossip (engine/held.rs): a cached statement.
        self.conn()
            .prepare_cached(
                "SELECT hlc FROM message_index
                 WHERE room = (SELECT id FROM history_rooms WHERE topic = ?1) AND id = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![room, id.0.as_slice()], |row| row.get::<_, i64>(0))
                    .optional()
            })
            .map(|hlc| hlc.map(|hlc| Hlc(hlc as u64)))
            .map_err(self.sql_err())
    }

    /// The newest `limit` messages of a room before `(hlc, id)` in (HLC, id) order, oldest
    /// first.
    pub fn messages_older(
        &self,
        room: &str,
        hlc: Hlc,
        id: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut out = self.query_messages(
            "SELECT id, hlc, author, name, kind, text FROM message_index
             WHERE room = (SELECT id FROM history_rooms WHERE topic = ?1)
               AND (hlc, id) < (?2, ?3)
             ORDER BY hlc DESC, id DESC LIMIT ?4",
            params![
                room,
                hlc.0 as i64,
                id.0.as_slice(),
                limit.min(i64::MAX as usize) as i64
            ],
        )?;
        out.reverse();
        Ok(out)
    }
}
