//! Pauses in `state.db` (or, in a fleet, the shared database: `postgres.rs`), so a restart
//! keeps them and `mcpgate pauses` (another process) can list and lift them.

use crate::state::db::{self, Migration};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::Path;

/// The pauses table.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "responders.pauses.v1",
    sql: "CREATE TABLE responder_pauses (
            scope TEXT NOT NULL,
            subject TEXT NOT NULL,
            responder TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            until_ms INTEGER NOT NULL,
            PRIMARY KEY (scope, subject)
          )",
}];

/// A principal or session refused until `until_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pause {
    /// `principal` or `session`.
    pub scope: String,
    /// The principal id or session id.
    pub subject: String,
    /// The responder that paused it.
    pub responder: String,
    /// What fired: `5 denials within 1m by principal`.
    pub reason: String,
    pub created_ms: i64,
    pub until_ms: i64,
}

/// Where pauses are kept: [`PauseStore`] (`state.db`) or the fleet's shared table.
/// Errors are the store's message.
pub trait PauseTable: Send + std::fmt::Debug {
    /// Sets (or extends, or replaces) a pause; a shorter one never cuts a longer one short.
    ///
    /// # Errors
    /// When the row cannot be written.
    fn put(&self, p: &Pause) -> Result<(), String>;
    /// The pause of `subject` in `scope`, if it lasts past `now_ms`.
    ///
    /// # Errors
    /// When the table cannot be read.
    fn get(&self, scope: &str, subject: &str, now_ms: i64) -> Result<Option<Pause>, String>;
    /// Every pause lasting past `now_ms`, soonest end first.
    ///
    /// # Errors
    /// When the table cannot be read.
    fn active(&self, now_ms: i64) -> Result<Vec<Pause>, String>;
    /// Lifts every pause of `subject` (a principal id or a session id); how many there were.
    ///
    /// # Errors
    /// When the table cannot be written.
    fn remove(&self, subject: &str) -> Result<usize, String>;
    /// Drops pauses that ended before `now_ms`.
    ///
    /// # Errors
    /// When the table cannot be written.
    fn purge(&self, now_ms: i64) -> Result<usize, String>;
    /// Whether every replica of a fleet shares the table (then each looks for the others'
    /// pauses).
    fn shared(&self) -> bool {
        false
    }
}

/// The table in `state.db`, on one connection.
#[derive(Debug)]
pub struct PauseStore {
    conn: Connection,
}

impl PauseStore {
    /// Opens `state.db` in `state`.
    ///
    /// # Errors
    /// When the database cannot be opened or migrated.
    pub fn open(state: &Path) -> Result<PauseStore, db::DbError> {
        Ok(PauseStore {
            conn: db::open(state, MIGRATIONS)?,
        })
    }

    /// An in-memory table, for tests.
    ///
    /// # Errors
    /// When the migration fails.
    pub fn in_memory() -> Result<PauseStore, db::DbError> {
        Ok(PauseStore {
            conn: db::open_in_memory(MIGRATIONS)?,
        })
    }
}

impl PauseTable for PauseStore {
    fn put(&self, p: &Pause) -> Result<(), String> {
        self.conn.execute(
            "INSERT INTO responder_pauses (scope, subject, responder, reason, created_ms, until_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (scope, subject) DO UPDATE SET responder = ?3, reason = ?4,
               created_ms = ?5, until_ms = max(until_ms, ?6)",
            params![
                p.scope,
                p.subject,
                p.responder,
                p.reason,
                p.created_ms,
                p.until_ms
            ],
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    fn get(&self, scope: &str, subject: &str, now_ms: i64) -> Result<Option<Pause>, String> {
        self.conn
            .query_row(
                "SELECT scope, subject, responder, reason, created_ms, until_ms
                 FROM responder_pauses WHERE scope = ?1 AND subject = ?2 AND until_ms > ?3",
                params![scope, subject, now_ms],
                row,
            )
            .optional()
            .map_err(|e| e.to_string())
    }

    fn active(&self, now_ms: i64) -> Result<Vec<Pause>, String> {
        let read = || -> rusqlite::Result<Vec<Pause>> {
            let mut stmt = self.conn.prepare(
                "SELECT scope, subject, responder, reason, created_ms, until_ms
             FROM responder_pauses WHERE until_ms > ?1 ORDER BY until_ms, scope, subject",
            )?;
            stmt.query_map([now_ms], row)?.collect()
        };
        read().map_err(|e| e.to_string())
    }

    fn remove(&self, subject: &str) -> Result<usize, String> {
        self.conn
            .execute("DELETE FROM responder_pauses WHERE subject = ?1", [subject])
            .map_err(|e| e.to_string())
    }

    fn purge(&self, now_ms: i64) -> Result<usize, String> {
        self.conn
            .execute(
                "DELETE FROM responder_pauses WHERE until_ms <= ?1",
                [now_ms],
            )
            .map_err(|e| e.to_string())
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Pause> {
    Ok(Pause {
        scope: r.get(0)?,
        subject: r.get(1)?,
        responder: r.get(2)?,
        reason: r.get(3)?,
        created_ms: r.get(4)?,
        until_ms: r.get(5)?,
    })
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause(subject: &str, until_ms: i64) -> Pause {
        Pause {
            scope: "principal".into(),
            subject: subject.into(),
            responder: "too-many-denials".into(),
            reason: "5 denials within 1m by principal".into(),
            created_ms: 1,
            until_ms,
        }
    }

    #[test]
    fn pauses_persist_across_connections_until_they_end_or_are_lifted() {
        let dir = tempfile::tempdir().unwrap();
        let s = PauseStore::open(dir.path()).unwrap();
        s.put(&pause("bob", 1000)).unwrap();
        s.put(&pause("carol", 50)).unwrap();
        // A shorter pause never cuts a longer one short.
        s.put(&pause("bob", 500)).unwrap();
        drop(s);
        let s = PauseStore::open(dir.path()).unwrap();
        assert_eq!(
            s.get("principal", "bob", 100).unwrap().unwrap().until_ms,
            1000
        );
        assert!(s.get("principal", "carol", 100).unwrap().is_none());
        assert!(s.get("session", "bob", 100).unwrap().is_none());
        assert_eq!(s.active(10).unwrap().len(), 2);
        assert_eq!(s.purge(100).unwrap(), 1);
        assert_eq!(s.remove("bob").unwrap(), 1);
        assert_eq!(s.remove("bob").unwrap(), 0);
        assert!(s.active(0).unwrap().is_empty());
    }
}
