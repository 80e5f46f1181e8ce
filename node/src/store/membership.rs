//! The membership state of private rooms (`engine/membership.rs`): one blob per room, written
//! whole on every change (a few KiB at most), read once at start.

use rusqlite::{params, OptionalExtension};

use super::{Durability, Store, StoreError};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS room_membership (
    name TEXT PRIMARY KEY,
    state BLOB NOT NULL
)";

impl Store {
    /// The membership state saved for room `name`, if any.
    pub fn membership(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn.execute(SCHEMA, []).map_err(self.sql_err())?;
        self.conn
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
        self.conn.execute(SCHEMA, []).map_err(self.sql_err())?;
        match state {
            Some(state) => self.conn.execute(
                "INSERT INTO room_membership (name, state) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET state = excluded.state",
                params![name, state],
            ),
            None => self
                .conn
                .execute("DELETE FROM room_membership WHERE name = ?1", params![name]),
        }
        .map_err(self.sql_err())?;
        Ok(())
    }
}
