//! Who owns which upstream task: (server, upstream task id) → principal, with the tool and
//! arguments of the call that created it. Kept in `state.db`, so ownership survives a
//! restart and every replica on the same state dir sees it. Entries expire with the task's
//! `ttl` (or [`DEFAULT_TTL_MS`]) and the table is bounded.

use crate::state::db::{self, DbError, Migration};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
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

/// How long a task stays reachable when its upstream gives no `ttl`.
pub const DEFAULT_TTL_MS: u64 = 24 * 3600 * 1000;
/// The longest a task stays reachable, whatever `ttl` the upstream gives.
pub const MAX_TTL_MS: u64 = 7 * 24 * 3600 * 1000;
/// Most live tasks one principal owns; beyond it, its oldest are forgotten.
pub const MAX_PER_PRINCIPAL: u64 = 1_000;
/// Most tasks in the table; beyond it, the oldest are forgotten.
pub const MAX_TASKS: u64 = 100_000;
/// The table-wide bound is enforced once every this many records.
const PRUNE_EVERY: u64 = 256;

/// A task being recorded for its creator.
#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    pub server: &'a str,
    pub task_id: &'a str,
    pub principal: &'a str,
    /// The upstream's name of the tool that created it.
    pub tool: &'a str,
    pub arguments: &'a Value,
    pub session: &'a str,
    /// The audit request id of the call that created it.
    pub request_id: Option<&'a str>,
    /// The task's `ttl` in milliseconds, as the upstream gave it.
    pub ttl_ms: Option<u64>,
}

/// A task the caller owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    pub server: String,
    pub task_id: String,
    pub tool: String,
    pub arguments: Value,
    pub request_id: Option<String>,
}

/// The registry, over one connection.
#[derive(Debug)]
pub struct Registry {
    conn: Mutex<Connection>,
    records: AtomicU64,
    max_tasks: u64,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

impl Registry {
    /// Opens the registry in `state_dir`'s `state.db`.
    ///
    /// # Errors
    /// When the database cannot be opened or migrated.
    pub fn open(state_dir: &Path) -> Result<Registry, DbError> {
        Ok(Registry::from_conn(db::open(state_dir, MIGRATIONS)?))
    }

    /// A registry that lives in memory only (a gateway without a state dir, tests).
    ///
    /// # Errors
    /// When the schema cannot be applied.
    pub fn in_memory() -> Result<Registry, DbError> {
        Ok(Registry::from_conn(db::open_in_memory(MIGRATIONS)?))
    }

    fn from_conn(conn: Connection) -> Registry {
        Registry {
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

    /// Records `task` as owned by its principal; an earlier record of the same upstream
    /// task is replaced. Drops expired entries and keeps the table within its bounds.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn record(&self, task: &NewTask<'_>, now_ms: u64) -> rusqlite::Result<()> {
        let ttl = task.ttl_ms.unwrap_or(DEFAULT_TTL_MS).min(MAX_TTL_MS);
        let expires = now_ms.saturating_add(ttl);
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
        tx.commit()
    }

    /// The task `task_id` of `server` if `principal` owns it and it has not expired. A
    /// database failure counts as not owned.
    pub fn owned(
        &self,
        principal: &str,
        server: &str,
        task_id: &str,
        now_ms: u64,
    ) -> Option<Owned> {
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
            .optional();
        match row {
            Ok(Some((tool, arguments, request_id))) => Some(Owned {
                server: server.to_owned(),
                task_id: task_id.to_owned(),
                tool,
                arguments: serde_json::from_str(&arguments).unwrap_or(Value::Null),
                request_id,
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "task registry unreadable; the task is refused");
                None
            }
        }
    }

    /// The first of `servers` (in order) on which `principal` owns `task_id`.
    pub fn find<'s>(
        &self,
        principal: &str,
        task_id: &str,
        servers: impl IntoIterator<Item = &'s String>,
        now_ms: u64,
    ) -> Option<Owned> {
        servers
            .into_iter()
            .find_map(|s| self.owned(principal, s, task_id, now_ms))
    }

    /// The ids of the live tasks `principal` owns on `server` (at most
    /// [`MAX_PER_PRINCIPAL`]). A database failure gives none.
    pub fn owned_ids(&self, principal: &str, server: &str, now_ms: u64) -> HashSet<String> {
        let conn = self.conn();
        let ids = conn
            .prepare_cached(
                "SELECT task_id FROM tasks
                 WHERE principal_id = ?1 AND server = ?2 AND expires_ms > ?3",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![principal, server, sql_ms(now_ms)], |r| {
                    r.get::<_, String>(0)
                })?
                .collect::<rusqlite::Result<HashSet<String>>>()
            });
        ids.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "task registry unreadable; no task is listed");
            HashSet::new()
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let r = Registry::in_memory().unwrap();
        r.record(&task("a", "t1", "alice"), 1_000).unwrap();
        let owned = r.owned("alice", "a", "t1", 2_000).unwrap();
        assert_eq!(owned.tool, "research");
        assert_eq!(owned.arguments, json!({"topic": "x"}));
        assert_eq!(owned.request_id.as_deref(), Some("r1"));
        assert_eq!(r.owned("bob", "a", "t1", 2_000), None);
        assert_eq!(r.owned("alice", "b", "t1", 2_000), None, "another server");
        assert_eq!(r.owned("alice", "a", "t2", 2_000), None, "unknown id");
    }

    #[test]
    fn find_routes_to_the_server_that_created_the_task() {
        let r = Registry::in_memory().unwrap();
        r.record(&task("b", "t1", "alice"), 1_000).unwrap();
        let servers = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(r.find("alice", "t1", &servers, 2_000).unwrap().server, "b");
        assert_eq!(r.find("bob", "t1", &servers, 2_000), None);
        assert_eq!(r.find("alice", "t1", &servers[..1], 2_000), None);
    }

    #[test]
    fn entries_expire_with_the_ttl_or_the_default() {
        let r = Registry::in_memory().unwrap();
        let mut t = task("a", "short", "alice");
        t.ttl_ms = Some(500);
        r.record(&t, 1_000).unwrap();
        r.record(&task("a", "default", "alice"), 1_000).unwrap();
        assert!(r.owned("alice", "a", "short", 1_499).is_some());
        assert!(r.owned("alice", "a", "short", 1_500).is_none());
        assert!(
            r.owned("alice", "a", "default", 1_000 + DEFAULT_TTL_MS - 1)
                .is_some()
        );
        assert!(
            r.owned("alice", "a", "default", 1_000 + DEFAULT_TTL_MS)
                .is_none()
        );
        let mut long = task("a", "long", "alice");
        long.ttl_ms = Some(u64::MAX);
        r.record(&long, 1_000).unwrap();
        assert!(r.owned("alice", "a", "long", 1_000 + MAX_TTL_MS).is_none());
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
        let r = Registry::in_memory().unwrap();
        r.record(&task("a", "t1", "alice"), 1_000).unwrap();
        r.record(&task("a", "t2", "bob"), 1_000).unwrap();
        r.record(&task("b", "t3", "alice"), 1_000).unwrap();
        let ids = r.owned_ids("alice", "a", 2_000);
        assert_eq!(ids, HashSet::from(["t1".to_owned()]));
        assert!(r.owned_ids("carol", "a", 2_000).is_empty());
    }

    #[test]
    fn a_principal_keeps_at_most_its_newest_tasks() {
        let r = Registry::in_memory().unwrap();
        r.record(&task("a", "other", "bob"), 1).unwrap();
        for i in 0..MAX_PER_PRINCIPAL + 5 {
            let id = format!("t{i}");
            r.record(&task("a", &id, "alice"), 10 + i).unwrap();
        }
        assert_eq!(
            r.owned_ids("alice", "a", 20).len() as u64,
            MAX_PER_PRINCIPAL
        );
        assert!(
            r.owned("alice", "a", "t0", 20).is_none(),
            "oldest forgotten"
        );
        let last = format!("t{}", MAX_PER_PRINCIPAL + 4);
        assert!(r.owned("alice", "a", &last, 20).is_some());
        assert!(
            r.owned("bob", "a", "other", 20).is_some(),
            "others untouched"
        );
    }

    #[test]
    fn the_table_keeps_at_most_its_newest_entries() {
        let mut r = Registry::in_memory().unwrap();
        r.max_tasks = 3;
        for i in 0..PRUNE_EVERY + 1 {
            let (id, who) = (format!("t{i}"), format!("p{i}"));
            r.record(&task("a", &id, &who), 10 + i).unwrap();
        }
        // Pruned on the first record and again on the one after `PRUNE_EVERY` more.
        assert_eq!(r.len(), 3);
        let newest = format!("t{PRUNE_EVERY}");
        let who = format!("p{PRUNE_EVERY}");
        assert!(r.owned(&who, "a", &newest, 20).is_some());
        assert!(r.owned("p1", "a", "t1", 20).is_none());
    }

    #[test]
    fn a_second_connection_sees_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let one = Registry::open(dir.path()).unwrap();
        let two = Registry::open(dir.path()).unwrap();
        one.record(&task("a", "t1", "alice"), 1_000).unwrap();
        assert!(two.owned("alice", "a", "t1", 2_000).is_some());
        drop(one);
        let reopened = Registry::open(dir.path()).unwrap();
        assert!(reopened.owned("alice", "a", "t1", 2_000).is_some());
    }
}
