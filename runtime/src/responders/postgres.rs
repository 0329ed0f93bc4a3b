//! Pauses in PostgreSQL (`state.postgres`): one table for every replica of a fleet, so a
//! principal a responder paused on one replica is refused by the others, and `mcpgate pauses
//! unpause --policy DIR` lifts it for all. Each replica reads the whole table of pauses in
//! force once per sweep (every second), see [`super::Responders::sweep`].

use super::pauses::{Pause, PauseTable};
use crate::state::db::Migration;
use crate::state::postgres::Pg;
use std::sync::Arc;

/// The schema of the shared pauses table.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "pauses.v1",
    sql: "CREATE TABLE mcpgate_pauses (
            scope TEXT NOT NULL,
            subject TEXT NOT NULL,
            responder TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            until_ms BIGINT NOT NULL,
            PRIMARY KEY (scope, subject)
          );
          CREATE INDEX mcpgate_pauses_until ON mcpgate_pauses (until_ms);",
}];

const COLUMNS: &str = "scope, subject, responder, reason, created_ms, until_ms";

/// The pauses table of a fleet.
#[derive(Debug)]
pub struct PgPauses {
    pg: Arc<Pg>,
}

impl PgPauses {
    /// Pauses in `pg`, opened with [`MIGRATIONS`].
    pub fn new(pg: Arc<Pg>) -> PgPauses {
        PgPauses { pg }
    }
}

fn row(r: &tokio_postgres::Row) -> Result<Pause, tokio_postgres::Error> {
    Ok(Pause {
        scope: r.try_get(0)?,
        subject: r.try_get(1)?,
        responder: r.try_get(2)?,
        reason: r.try_get(3)?,
        created_ms: r.try_get(4)?,
        until_ms: r.try_get(5)?,
    })
}

impl PauseTable for PgPauses {
    fn put(&self, p: &Pause) -> Result<(), String> {
        self.pg
            .run(async |c| {
                c.execute(
                    "INSERT INTO mcpgate_pauses (scope, subject, responder, reason, created_ms,
                                                 until_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (scope, subject) DO UPDATE SET responder = $3, reason = $4,
                       created_ms = $5, until_ms = GREATEST(mcpgate_pauses.until_ms, $6)",
                    &[
                        &p.scope,
                        &p.subject,
                        &p.responder,
                        &p.reason,
                        &p.created_ms,
                        &p.until_ms,
                    ],
                )
                .await
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn get(&self, scope: &str, subject: &str, now_ms: i64) -> Result<Option<Pause>, String> {
        self.pg
            .run(async |c| {
                let found = c
                    .query_opt(
                        &format!(
                            "SELECT {COLUMNS} FROM mcpgate_pauses
                             WHERE scope = $1 AND subject = $2 AND until_ms > $3"
                        ),
                        &[&scope, &subject, &now_ms],
                    )
                    .await?;
                found.as_ref().map(row).transpose()
            })
            .map_err(|e| e.to_string())
    }

    fn active(&self, now_ms: i64) -> Result<Vec<Pause>, String> {
        self.pg
            .run(async |c| {
                let rows = c
                    .query(
                        &format!(
                            "SELECT {COLUMNS} FROM mcpgate_pauses WHERE until_ms > $1
                             ORDER BY until_ms, scope, subject"
                        ),
                        &[&now_ms],
                    )
                    .await?;
                rows.iter().map(row).collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| e.to_string())
    }

    fn remove(&self, subject: &str) -> Result<usize, String> {
        self.pg
            .run(async |c| {
                c.execute("DELETE FROM mcpgate_pauses WHERE subject = $1", &[&subject])
                    .await
            })
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .map_err(|e| e.to_string())
    }

    fn purge(&self, now_ms: i64) -> Result<usize, String> {
        self.pg
            .run(async |c| {
                c.execute(
                    "DELETE FROM mcpgate_pauses WHERE until_ms <= $1",
                    &[&now_ms],
                )
                .await
            })
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .map_err(|e| e.to_string())
    }

    fn shared(&self) -> bool {
        true
    }
}
