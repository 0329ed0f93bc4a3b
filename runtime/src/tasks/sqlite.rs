//! Task owners in `state.db`, so ownership survives a restart and every replica on the same
//! state dir sees it. Entries expire with the task's `ttl` (or [`DEFAULT_TTL_MS`]) and the
//! table is bounded.

#[cfg(test)]
use super::{DEFAULT_TTL_MS, MAX_TTL_MS};
use super::{
    MAX_PER_PRINCIPAL, MAX_TASKS, NewTask, Owned, PRUNE_EVERY, TaskStore, TaskStoreError,
    arguments_from, sql_ms,
};
use crate::state::db::{self, DbError, Migration};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The task registry schema.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "tasks.v1",
    sql: "CREATE TABLE tasks (
            server TEXT NOT NULL,
            task_id TEXT NOT NULL,
            principal_id TEXT NOT NULL,
            tool TEXT NOT NULL,
            arguments TEXT NOT NULL,
            session TEXT NOT NULL,
            request_id TEXT,
            created_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL,
            PRIMARY KEY (server, task_id)
          );
          CREATE INDEX tasks_by_principal ON tasks (principal_id, server, expires_ms);
          CREATE INDEX tasks_by_expiry ON tasks (expires_ms);
          CREATE INDEX tasks_by_age ON tasks (created_ms);",
}];

/// The `state.db` store, over one connection.
#[derive(Debug)]
pub struct SqliteTasks {
    conn: Mutex<Connection>,
    records: AtomicU64,
    max_tasks: u64,
}

impl SqliteTasks {
    /// Opens the registry in `state_dir`'s `state.db`.
    ///
    /// # Errors
    /// When the database cannot be opened or migrated.
    pub fn open(state_dir: &Path) -> Result<SqliteTasks, DbError> {
        Ok(SqliteTasks::from_conn(db::open(state_dir, MIGRATIONS)?))
    }

    /// A registry that lives in memory only (a gateway without a state dir, tests).
    ///
    /// # Errors
    /// When the schema cannot be applied.
    pub fn in_memory() -> Result<SqliteTasks, DbError> {
        Ok(SqliteTasks::from_conn(db::open_in_memory(MIGRATIONS)?))
    }

    fn from_conn(conn: Connection) -> SqliteTasks {
        SqliteTasks {
            conn: Mutex::new(conn),
            records: AtomicU64::new(0),
            max_tasks: MAX_TASKS,
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-done statement behind.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many entries the table holds, expired ones included.
    pub fn len(&self) -> u64 {
        self.conn()
            .query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .unwrap_or(0)
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TaskStore for SqliteTasks {
    fn record(&self, task: &NewTask<'_>, now_ms: u64) -> Result<(), TaskStoreError> {
        let expires = task.expires(now_ms);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM tasks WHERE expires_ms <= ?1",
            params![sql_ms(now_ms)],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO tasks (server, task_id, principal_id, tool, arguments,
               session, request_id, created_ms, expires_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                task.server,
                task.task_id,
                task.principal,
                task.tool,
                task.arguments.to_string(),
                task.session,
                task.request_id,
                sql_ms(now_ms),
                sql_ms(expires),
            ],
        )?;
        tx.execute(
            "DELETE FROM tasks WHERE principal_id = ?1 AND rowid NOT IN (
               SELECT rowid FROM tasks WHERE principal_id = ?1
               ORDER BY created_ms DESC, rowid DESC LIMIT ?2)",
            params![task.principal, sql_ms(MAX_PER_PRINCIPAL)],
        )?;
        if self
            .records
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY)
        {
            tx.execute(
                "DELETE FROM tasks WHERE rowid NOT IN (
                   SELECT rowid FROM tasks ORDER BY created_ms DESC, rowid DESC LIMIT ?1)",
                params![sql_ms(self.max_tasks)],
            )?;
        }
        Ok(tx.commit()?)
    }

    fn owned(
        &self,
        principal: &str,
        server: &str,
        task_id: &str,
        now_ms: u64,
    ) -> Result<Option<Owned>, TaskStoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT tool, arguments, request_id FROM tasks
                 WHERE server = ?1 AND task_id = ?2 AND principal_id = ?3 AND expires_ms > ?4",
                params![server, task_id, principal, sql_ms(now_ms)],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.map(|(tool, arguments, request_id)| Owned {
            server: server.to_owned(),
            task_id: task_id.to_owned(),
            tool,
            arguments: arguments_from(&arguments),
            request_id,
        }))
    }

    fn owned_ids(
        &self,
        principal: &str,
        server: &str,
        now_ms: u64,
    ) -> Result<HashSet<String>, TaskStoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT task_id FROM tasks
             WHERE principal_id = ?1 AND server = ?2 AND expires_ms > ?3",
        )?;
        let ids = stmt
            .query_map(params![principal, server, sql_ms(now_ms)], |r| {
                r.get::<_, String>(0)
            })?
            .collect::<rusqlite::Result<HashSet<String>>>()?;
        Ok(ids)
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn task<'a>(server: &'a str, id: &'a str, principal: &'a str) -> NewTask<'a> {
        static ARGS: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
        NewTask {
            server,
            task_id: id,
            principal,
            tool: "research",
            arguments: ARGS.get_or_init(|| json!({"topic": "x"})),
            session: "s1",
            request_id: Some("r1"),
            ttl_ms: None,
        }
    }

    #[test]
    fn only_the_creator_owns_a_task() {
        let r = SqliteTasks::in_memory().unwrap();
        r.record(&task("a", "t1", "alice"), 1_000).unwrap();
        let owned = r.owned("alice", "a", "t1", 2_000).unwrap().unwrap();
        assert_eq!(owned.tool, "research");
        assert_eq!(owned.arguments, json!({"topic": "x"}));
        assert_eq!(owned.request_id.as_deref(), Some("r1"));
        assert_eq!(r.owned("bob", "a", "t1", 2_000).unwrap(), None);
        assert_eq!(
            r.owned("alice", "b", "t1", 2_000).unwrap(),
            None,
            "another server"
        );
        assert_eq!(
            r.owned("alice", "a", "t2", 2_000).unwrap(),
            None,
            "unknown id"
        );
    }

    #[test]
    fn find_routes_to_the_server_that_created_the_task() {
        let r = SqliteTasks::in_memory().unwrap();
        r.record(&task("b", "t1", "alice"), 1_000).unwrap();
        let servers = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            r.find("alice", "t1", &mut servers.iter(), 2_000)
                .unwrap()
                .unwrap()
                .server,
            "b"
        );
        assert_eq!(
            r.find("bob", "t1", &mut servers.iter(), 2_000).unwrap(),
            None
        );
        assert_eq!(
            r.find("alice", "t1", &mut servers[..1].iter(), 2_000)
                .unwrap(),
            None
        );
    }

    #[test]
    fn entries_expire_with_the_ttl_or_the_default() {
        let r = SqliteTasks::in_memory().unwrap();
        let mut t = task("a", "short", "alice");
        t.ttl_ms = Some(500);
        r.record(&t, 1_000).unwrap();
        r.record(&task("a", "default", "alice"), 1_000).unwrap();
        assert!(r.owned("alice", "a", "short", 1_499).unwrap().is_some());
        assert!(r.owned("alice", "a", "short", 1_500).unwrap().is_none());
        assert!(
            r.owned("alice", "a", "default", 1_000 + DEFAULT_TTL_MS - 1)
                .unwrap()
                .is_some()
        );
        assert!(
            r.owned("alice", "a", "default", 1_000 + DEFAULT_TTL_MS)
                .unwrap()
                .is_none()
        );
        let mut long = task("a", "long", "alice");
        long.ttl_ms = Some(u64::MAX);
        r.record(&long, 1_000).unwrap();
        assert!(
            r.owned("alice", "a", "long", 1_000 + MAX_TTL_MS)
                .unwrap()
                .is_none()
        );
        // Recording prunes what has expired.
        r.record(&task("a", "later", "bob"), 1_000 + DEFAULT_TTL_MS)
            .unwrap();
        assert_eq!(
            r.len(),
            2,
            "short and default are gone: long and later remain"
        );
    }

    #[test]
    fn owned_ids_lists_only_the_callers_live_tasks() {
        let r = SqliteTasks::in_memory().unwrap();
        r.record(&task("a", "t1", "alice"), 1_000).unwrap();
        r.record(&task("a", "t2", "bob"), 1_000).unwrap();
        r.record(&task("b", "t3", "alice"), 1_000).unwrap();
        let ids = r.owned_ids("alice", "a", 2_000).unwrap();
        assert_eq!(ids, HashSet::from(["t1".to_owned()]));
        assert!(r.owned_ids("carol", "a", 2_000).unwrap().is_empty());
    }

    #[test]
    fn a_principal_keeps_at_most_its_newest_tasks() {
        let r = SqliteTasks::in_memory().unwrap();
        r.record(&task("a", "other", "bob"), 1).unwrap();
        for i in 0..MAX_PER_PRINCIPAL + 5 {
            let id = format!("t{i}");
            r.record(&task("a", &id, "alice"), 10 + i).unwrap();
        }
        assert_eq!(
            r.owned_ids("alice", "a", 20).unwrap().len() as u64,
            MAX_PER_PRINCIPAL
        );
        assert!(
            r.owned("alice", "a", "t0", 20).unwrap().is_none(),
            "oldest forgotten"
        );
        let last = format!("t{}", MAX_PER_PRINCIPAL + 4);
        assert!(r.owned("alice", "a", &last, 20).unwrap().is_some());
        assert!(
            r.owned("bob", "a", "other", 20).unwrap().is_some(),
            "others untouched"
        );
    }

    #[test]
    fn the_table_keeps_at_most_its_newest_entries() {
        let mut r = SqliteTasks::in_memory().unwrap();
        r.max_tasks = 3;
        for i in 0..PRUNE_EVERY + 1 {
            let (id, who) = (format!("t{i}"), format!("p{i}"));
            r.record(&task("a", &id, &who), 10 + i).unwrap();
        }
        // Pruned on the first record and again on the one after `PRUNE_EVERY` more.
        assert_eq!(r.len(), 3);
        let newest = format!("t{PRUNE_EVERY}");
        let who = format!("p{PRUNE_EVERY}");
        assert!(r.owned(&who, "a", &newest, 20).unwrap().is_some());
        assert!(r.owned("p1", "a", "t1", 20).unwrap().is_none());
    }

    #[test]
    fn a_second_connection_sees_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let one = SqliteTasks::open(dir.path()).unwrap();
        let two = SqliteTasks::open(dir.path()).unwrap();
        one.record(&task("a", "t1", "alice"), 1_000).unwrap();
        assert!(two.owned("alice", "a", "t1", 2_000).unwrap().is_some());
        drop(one);
        let reopened = SqliteTasks::open(dir.path()).unwrap();
        assert!(reopened.owned("alice", "a", "t1", 2_000).unwrap().is_some());
    }
}
