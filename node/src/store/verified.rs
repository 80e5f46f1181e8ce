//! Peers the user marked verified (their safety number was compared), with the name they had
//! then. A table of its own, made on first use: stores from before it simply have none.

use rusqlite::params;

use super::{Durability, Store, StoreError};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS verified_peers (
    peer TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    verified_at INTEGER NOT NULL
)";

impl Store {
    fn ensure_verified_table(&self) -> Result<(), StoreError> {
        self.conn().execute(SCHEMA, []).map_err(self.sql_err())?;
        Ok(())
    }

    /// (peer id, name when marked), oldest mark first.
    pub fn verified_peers(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.ensure_verified_table()?;
        let mut stmt = self
            .conn()
            .prepare("SELECT peer, name FROM verified_peers ORDER BY verified_at, peer")
            .map_err(self.sql_err())?;
        let rows = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(self.sql_err())?;
        rows.collect::<Result<_, _>>().map_err(self.sql_err())
    }

    /// Mark `peer` verified under `name`, or take the mark away (`None`): durable when this
    /// returns, like every setting a user makes (not at whatever level the last write left).
    pub fn set_verified(
        &mut self,
        peer: &str,
        name: Option<&str>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.ensure_verified_table()?;
        self.set_durability(Durability::Now)?;
        match name {
            Some(name) => self.conn().execute(
                "INSERT INTO verified_peers (peer, name, verified_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(peer) DO UPDATE SET name = excluded.name",
                params![peer, name, now_ms as i64],
            ),
            None => self
                .conn()
                .execute("DELETE FROM verified_peers WHERE peer = ?1", params![peer]),
        }
        .map_err(self.sql_err())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_reopen_and_can_be_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = Store::open(dir.path()).unwrap();
            assert!(store.verified_peers().unwrap().is_empty());
            // After received history (deferred), a mark is still durable at once.
            store.set_durability(Durability::Deferred).unwrap();
            store.set_verified("12D3KooWbob", Some("bob"), 1).unwrap();
            assert_eq!(store.synchronous, Durability::Now);
            store
                .set_verified("12D3KooWcarol", Some("carol"), 2)
                .unwrap();
            store.set_verified("12D3KooWcarol", None, 3).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.verified_peers().unwrap(),
            vec![("12D3KooWbob".to_owned(), "bob".to_owned())]
        );
    }
}
