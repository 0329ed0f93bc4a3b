//! Task owners in PostgreSQL (`state.postgres`): the same records as `state.db`, shared by
//! every replica, so a task created through one replica is reached through any other by
//! its owner, and by nobody else. Every owner check is one indexed read; nothing is cached.

use super::{
    MAX_PER_PRINCIPAL, MAX_TASKS, NewTask, Owned, PRUNE_EVERY, TaskStore, TaskStoreError,
    arguments_from, sql_ms,
};
use crate::state::db::Migration;
use crate::state::postgres::Pg;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The schema of the shared task table. `seq` orders records made in the same millisecond
/// (SQLite's `rowid` does that in `state.db`).
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "tasks.v1",
    sql: "CREATE TABLE mcpgate_tasks (
            server TEXT NOT NULL,
            task_id TEXT NOT NULL,
            principal_id TEXT NOT NULL,
            tool TEXT NOT NULL,
            arguments TEXT NOT NULL,
            session TEXT NOT NULL,
            request_id TEXT,
            created_ms BIGINT NOT NULL,
            expires_ms BIGINT NOT NULL,
            seq BIGSERIAL NOT NULL,
            PRIMARY KEY (server, task_id)
          );
          CREATE INDEX mcpgate_tasks_by_principal
            ON mcpgate_tasks (principal_id, server, expires_ms);
          CREATE INDEX mcpgate_tasks_by_expiry ON mcpgate_tasks (expires_ms);
          CREATE INDEX mcpgate_tasks_by_age ON mcpgate_tasks (created_ms, seq);",
}];

/// The task table of a fleet.
#[derive(Debug)]
pub struct PgTasks {
    pg: Arc<Pg>,
    records: AtomicU64,
    max_tasks: i64,
}

impl PgTasks {
    /// Task owners in `pg`, opened with [`MIGRATIONS`].
    pub fn new(pg: Arc<Pg>) -> PgTasks {
        PgTasks {
            pg,
            records: AtomicU64::new(0),
            max_tasks: sql_ms(MAX_TASKS),
        }
    }
}

impl TaskStore for PgTasks {
    fn record(&self, task: &NewTask<'_>, now_ms: u64) -> Result<(), TaskStoreError> {
        let (now, expires) = (sql_ms(now_ms), sql_ms(task.expires(now_ms)));
        let arguments = task.arguments.to_string();
        let per_principal = sql_ms(MAX_PER_PRINCIPAL);
        let prune_all = self
            .records
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY);
        let max_tasks = self.max_tasks;
        self.pg.run(async |c| {
            let tx = c.transaction().await?;
            tx.execute("DELETE FROM mcpgate_tasks WHERE expires_ms <= $1", &[&now])
                .await?;
            tx.execute(
                "INSERT INTO mcpgate_tasks (server, task_id, principal_id, tool, arguments,
                   session, request_id, created_ms, expires_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (server, task_id) DO UPDATE SET
                   principal_id = EXCLUDED.principal_id, tool = EXCLUDED.tool,
                   arguments = EXCLUDED.arguments, session = EXCLUDED.session,
                   request_id = EXCLUDED.request_id, created_ms = EXCLUDED.created_ms,
                   expires_ms = EXCLUDED.expires_ms, seq = DEFAULT",
                &[
                    &task.server,
                    &task.task_id,
                    &task.principal,
                    &task.tool,
                    &arguments,
                    &task.session,
                    &task.request_id,
                    &now,
                    &expires,
                ],
            )
            .await?;
            tx.execute(
                "DELETE FROM mcpgate_tasks WHERE principal_id = $1 AND seq NOT IN (
                   SELECT seq FROM mcpgate_tasks WHERE principal_id = $1
                   ORDER BY created_ms DESC, seq DESC LIMIT $2)",
                &[&task.principal, &per_principal],
            )
            .await?;
            if prune_all {
                tx.execute(
                    "DELETE FROM mcpgate_tasks WHERE seq NOT IN (
                       SELECT seq FROM mcpgate_tasks ORDER BY created_ms DESC, seq DESC
                       LIMIT $1)",
                    &[&max_tasks],
                )
                .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    fn owned(
        &self,
        principal: &str,
        server: &str,
        task_id: &str,
        now_ms: u64,
    ) -> Result<Option<Owned>, TaskStoreError> {
        let now = sql_ms(now_ms);
        let row = self.pg.run(async |c| {
            let found = c
                .query_opt(
                    "SELECT tool, arguments, request_id FROM mcpgate_tasks
                     WHERE server = $1 AND task_id = $2 AND principal_id = $3
                       AND expires_ms > $4",
                    &[&server, &task_id, &principal, &now],
                )
                .await?;
            found
                .map(|r| {
                    Ok::<_, tokio_postgres::Error>((
                        r.try_get::<_, String>(0)?,
                        r.try_get::<_, String>(1)?,
                        r.try_get::<_, Option<String>>(2)?,
                    ))
                })
                .transpose()
        })?;
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
        let now = sql_ms(now_ms);
        let ids = self.pg.run(async |c| {
            let rows = c
                .query(
                    "SELECT task_id FROM mcpgate_tasks
                     WHERE principal_id = $1 AND server = $2 AND expires_ms > $3",
                    &[&principal, &server, &now],
                )
                .await?;
            rows.iter()
                .map(|r| r.try_get::<_, String>(0))
                .collect::<Result<HashSet<_>, _>>()
        })?;
        Ok(ids)
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn probe(&self) -> Option<String> {
        self.pg.probe()
    }
}
