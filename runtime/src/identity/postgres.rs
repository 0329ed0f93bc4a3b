//! Gateway tokens in PostgreSQL (`state.postgres`): the same consent records as `state.db`,
//! shared by every replica. A lookup reads the row on every request (one indexed read by
//! hash), so a token revoked through any replica or `mcpgate token revoke` is refused by
//! every replica on its next request; nothing is cached.

use super::tokens::{TokenError, TokenRecord, TokenTable, same_hash};
use crate::state::db::Migration;
use crate::state::postgres::{Pg, PgError};
use mcpgate_compiler::PrincipalKind;
use std::sync::Arc;

/// The schema of the shared token table.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "tokens.v1",
    sql: "CREATE TABLE mcpgate_tokens (
            id TEXT PRIMARY KEY,
            hash BYTEA NOT NULL UNIQUE,
            issuer TEXT NOT NULL,
            subject TEXT NOT NULL,
            kind TEXT NOT NULL,
            agent TEXT,
            groups TEXT NOT NULL,
            servers TEXT,
            reason TEXT NOT NULL,
            created BIGINT NOT NULL,
            expires BIGINT,
            revoked_at BIGINT,
            revoked_by TEXT
          );
          CREATE INDEX mcpgate_tokens_subject ON mcpgate_tokens (subject);",
}];

const COLUMNS: &str = "id, issuer, subject, kind, agent, groups, servers, reason, created, \
                       expires, revoked_at, revoked_by, hash";

/// The token table of a fleet.
#[derive(Debug)]
pub struct PgTokens {
    pg: Arc<Pg>,
}

impl PgTokens {
    /// Tokens in `pg`, opened with [`MIGRATIONS`].
    pub fn new(pg: Arc<Pg>) -> PgTokens {
        PgTokens { pg }
    }
}

fn store_err(e: PgError) -> TokenError {
    TokenError::Store(e.to_string())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn kind_from_str(s: &str) -> PrincipalKind {
    match s {
        "human" => PrincipalKind::Human,
        "agent" => PrincipalKind::Agent,
        "service" => PrincipalKind::Service,
        _ => PrincipalKind::Anonymous,
    }
}

fn row_to_record(r: &tokio_postgres::Row) -> Result<(TokenRecord, Vec<u8>), tokio_postgres::Error> {
    let groups: String = r.try_get(5)?;
    let servers: Option<String> = r.try_get(6)?;
    let kind: String = r.try_get(3)?;
    let record = TokenRecord {
        id: r.try_get(0)?,
        issuer: r.try_get(1)?,
        subject: r.try_get(2)?,
        kind: kind_from_str(&kind),
        agent: r.try_get(4)?,
        groups: serde_json::from_str(&groups).unwrap_or_default(),
        // A scope that cannot be read reaches nothing, never everything.
        servers: servers.map(|s| serde_json::from_str(&s).unwrap_or_default()),
        reason: r.try_get(7)?,
        created: to_u64(r.try_get(8)?),
        expires: r.try_get::<_, Option<i64>>(9)?.map(to_u64),
        revoked_at: r.try_get::<_, Option<i64>>(10)?.map(to_u64),
        revoked_by: r.try_get(11)?,
    };
    Ok((record, r.try_get(12)?))
}

impl TokenTable for PgTokens {
    fn insert(&self, record: &TokenRecord, hash: &[u8; 32]) -> Result<(), TokenError> {
        let groups = serde_json::to_string(&record.groups).unwrap_or_else(|_| "[]".into());
        let servers = record
            .servers
            .as_ref()
            .map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into()));
        let hash = hash.to_vec();
        let kind = record.kind.as_str();
        let created = to_i64(record.created);
        let expires = record.expires.map(to_i64);
        self.pg
            .run(async |c| {
                c.execute(
                    "INSERT INTO mcpgate_tokens (id, hash, issuer, subject, kind, agent, groups,
                                                 servers, reason, created, expires)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    &[
                        &record.id,
                        &hash,
                        &record.issuer,
                        &record.subject,
                        &kind,
                        &record.agent,
                        &groups,
                        &servers,
                        &record.reason,
                        &created,
                        &expires,
                    ],
                )
                .await
            })
            .map(|_| ())
            .map_err(store_err)
    }

    fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        let rows = self
            .pg
            .run(async |c| {
                let rows = c
                    .query(
                        &format!("SELECT {COLUMNS} FROM mcpgate_tokens ORDER BY created DESC, id"),
                        &[],
                    )
                    .await?;
                rows.iter()
                    .map(|r| row_to_record(r).map(|(rec, _)| rec))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(store_err)?;
        Ok(rows)
    }

    fn revoke(&self, id: &str, by: &str, now: u64) -> Result<bool, TokenError> {
        let now = to_i64(now);
        self.pg
            .run(async |c| {
                c.execute(
                    "UPDATE mcpgate_tokens SET revoked_at = $1, revoked_by = $2
                     WHERE id = $3 AND revoked_at IS NULL",
                    &[&now, &by, &id],
                )
                .await
            })
            .map(|n| n > 0)
            .map_err(store_err)
    }

    fn revoke_subject(&self, subject: &str, by: &str, now: u64) -> Result<usize, TokenError> {
        let now = to_i64(now);
        self.pg
            .run(async |c| {
                c.execute(
                    "UPDATE mcpgate_tokens SET revoked_at = $1, revoked_by = $2
                     WHERE subject = $3 AND revoked_at IS NULL",
                    &[&now, &by, &subject],
                )
                .await
            })
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .map_err(store_err)
    }

    fn find(&self, hash: &[u8; 32]) -> Result<Option<Arc<TokenRecord>>, TokenError> {
        let key = hash.to_vec();
        let found = self
            .pg
            .run(async |c| {
                let row = c
                    .query_opt(
                        &format!("SELECT {COLUMNS} FROM mcpgate_tokens WHERE hash = $1"),
                        &[&key],
                    )
                    .await?;
                row.as_ref().map(row_to_record).transpose()
            })
            .map_err(store_err)?;
        Ok(found
            .filter(|(_, stored)| same_hash(stored, hash))
            .map(|(record, _)| Arc::new(record)))
    }

    fn get(&self, id: &str) -> Result<Option<TokenRecord>, TokenError> {
        let found = self
            .pg
            .run(async |c| {
                let row = c
                    .query_opt(
                        &format!("SELECT {COLUMNS} FROM mcpgate_tokens WHERE id = $1"),
                        &[&id],
                    )
                    .await?;
                row.as_ref().map(row_to_record).transpose()
            })
            .map_err(store_err)?;
        Ok(found.map(|(record, _)| record))
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn probe(&self) -> Option<String> {
        self.pg.probe()
    }
}
