//! Parked calls in PostgreSQL (`state.postgres`): one row per call waiting on a replica,
//! read when a retry lands on a replica that does not hold its call.

use super::{Owner, ParkedStore, Record, key_hash};
use crate::state::db::Migration;
use crate::state::postgres::Pg;
use std::sync::Arc;

/// The schema of the parked-call table.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "parked.v1",
    sql: "CREATE TABLE mcpgate_parked (
            key BYTEA PRIMARY KEY,
            owner_url TEXT NOT NULL,
            replica TEXT NOT NULL,
            principal TEXT NOT NULL,
            expires BIGINT NOT NULL
          );
          CREATE INDEX mcpgate_parked_expires ON mcpgate_parked (expires);",
}];

/// The parked-call table of a fleet.
#[derive(Debug)]
pub struct PgParked {
    pg: Arc<Pg>,
}

impl PgParked {
    /// Parked calls in `pg`, opened with [`MIGRATIONS`].
    pub fn new(pg: Arc<Pg>) -> PgParked {
        PgParked { pg }
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl ParkedStore for PgParked {
    fn record(&self, key: &str, record: &Record, expires: u64) -> Result<(), String> {
        let k = key_hash(key);
        let expires = to_i64(expires);
        let now = to_i64(crate::clock::now_secs());
        self.pg
            .run(async |c| {
                // Expired rows go with each new one: the table stays as small as the
                // fleet's waiting calls.
                c.execute("DELETE FROM mcpgate_parked WHERE expires < $1", &[&now])
                    .await?;
                c.execute(
                    "INSERT INTO mcpgate_parked (key, owner_url, replica, principal, expires)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (key) DO UPDATE SET owner_url = $2, replica = $3,
                       principal = $4, expires = $5",
                    &[
                        &k,
                        &record.owner.url,
                        &record.owner.replica,
                        &record.principal,
                        &expires,
                    ],
                )
                .await
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn find(&self, key: &str, now: u64) -> Result<Option<Record>, String> {
        let k = key_hash(key);
        let now = to_i64(now);
        self.pg
            .run(async |c| {
                let row = c
                    .query_opt(
                        "SELECT owner_url, replica, principal FROM mcpgate_parked
                         WHERE key = $1 AND expires >= $2",
                        &[&k, &now],
                    )
                    .await?;
                row.map(|r| {
                    Ok(Record {
                        owner: Owner {
                            url: r.try_get(0)?,
                            replica: r.try_get(1)?,
                        },
                        principal: r.try_get(2)?,
                    })
                })
                .transpose()
            })
            .map_err(|e| e.to_string())
    }

    fn forget(&self, key: &str) -> Result<(), String> {
        let k = key_hash(key);
        self.pg
            .run(async |c| {
                c.execute("DELETE FROM mcpgate_parked WHERE key = $1", &[&k])
                    .await
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
