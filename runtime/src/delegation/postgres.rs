//! Delegations in PostgreSQL (`state.postgres`): the same records as `state.db`, shared by
//! every replica. An agent's token is checked by reading its row on every request (one
//! indexed read by hash), so a delegation made through one replica works on all of them,
//! and one revoked through any replica or `mcpgate delegate revoke --policy DIR` is refused
//! by every replica on its next request; nothing is cached.

use super::record::{Delegation, NewDelegation};
use super::store::{
    COLUMNS, DelegationStore, StoreError, hash, kind_from_str, mint, to_i64, to_u64,
};
use crate::state::db::Migration;
use crate::state::postgres::Pg;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The schema of the shared delegation table.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "delegations.v1",
    sql: "CREATE TABLE mcpgate_delegations (
            id TEXT PRIMARY KEY,
            hash BYTEA NOT NULL UNIQUE,
            person TEXT NOT NULL,
            person_kind TEXT NOT NULL,
            person_groups TEXT NOT NULL,
            parent_token TEXT,
            agent TEXT NOT NULL,
            tools TEXT NOT NULL,
            reason TEXT NOT NULL,
            created BIGINT NOT NULL,
            expires BIGINT NOT NULL,
            revoked_at BIGINT,
            revoked_by TEXT
          );
          CREATE INDEX mcpgate_delegations_person ON mcpgate_delegations (person);",
}];

/// The delegation table of a fleet.
#[derive(Debug)]
pub struct PgStore {
    pg: Arc<Pg>,
}

impl PgStore {
    /// Delegations in `pg`, opened with [`MIGRATIONS`].
    pub fn new(pg: Arc<Pg>) -> PgStore {
        PgStore { pg }
    }
}

fn row(r: &tokio_postgres::Row) -> Result<(Delegation, Vec<u8>), tokio_postgres::Error> {
    let kind: String = r.try_get(2)?;
    let groups: String = r.try_get(3)?;
    let tools: String = r.try_get(6)?;
    let d = Delegation {
        id: r.try_get(0)?,
        person: r.try_get(1)?,
        person_kind: kind_from_str(&kind),
        person_groups: serde_json::from_str(&groups).unwrap_or_default(),
        parent_token: r.try_get(4)?,
        agent: r.try_get(5)?,
        // A scope that cannot be read reaches nothing, never everything.
        tools: serde_json::from_str(&tools).unwrap_or_default(),
        reason: r.try_get(7)?,
        created: to_u64(r.try_get(8)?),
        expires: to_u64(r.try_get(9)?),
        revoked_at: r.try_get::<_, Option<i64>>(10)?.map(to_u64),
        revoked_by: r.try_get(11)?,
    };
    Ok((d, r.try_get(12)?))
}

impl PgStore {
    /// The one row `filter` (`id = $1` or `hash = $1`) selects.
    fn one<P: tokio_postgres::types::ToSql + Sync>(
        &self,
        filter: &str,
        key: &P,
    ) -> Result<Option<(Delegation, Vec<u8>)>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM mcpgate_delegations WHERE {filter}");
        Ok(self.pg.run(async |c| {
            let found = c.query_opt(&sql, &[key]).await?;
            found.as_ref().map(row).transpose()
        })?)
    }
}

impl DelegationStore for PgStore {
    fn insert(&self, new: NewDelegation, now: u64) -> Result<(String, Delegation), StoreError> {
        let (token, d) = mint(new, now);
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let h = hash(&token).to_vec();
        let (groups, tools) = (json(&d.person_groups), json(&d.tools));
        let kind = d.person_kind.as_str();
        let (created, expires) = (to_i64(d.created), to_i64(d.expires));
        self.pg.run(async |c| {
            c.execute(
                "INSERT INTO mcpgate_delegations (id, hash, person, person_kind, person_groups,
                                                  parent_token, agent, tools, reason, created,
                                                  expires)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    &d.id,
                    &h,
                    &d.person,
                    &kind,
                    &groups,
                    &d.parent_token,
                    &d.agent,
                    &tools,
                    &d.reason,
                    &created,
                    &expires,
                ],
            )
            .await
        })?;
        Ok((token, d))
    }

    fn get(&self, id: &str) -> Result<Option<Delegation>, StoreError> {
        Ok(self.one("id = $1", &id)?.map(|(d, _)| d))
    }

    fn by_token(&self, token: &str) -> Result<Option<Delegation>, StoreError> {
        let h = hash(token);
        let found = self.one("hash = $1", &h.to_vec())?;
        // Found by its hash; compare again without an early exit anyway.
        Ok(found.and_then(|(d, stored)| bool::from(stored.as_slice().ct_eq(&h[..])).then_some(d)))
    }

    fn list(&self) -> Result<Vec<Delegation>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM mcpgate_delegations ORDER BY created DESC, id");
        Ok(self.pg.run(async |c| {
            let rows = c.query(&sql, &[]).await?;
            rows.iter()
                .map(|r| row(r).map(|(d, _)| d))
                .collect::<Result<Vec<_>, _>>()
        })?)
    }

    fn revoke(&self, id: &str, by: &str, now: u64) -> Result<bool, StoreError> {
        let now = to_i64(now);
        let n = self.pg.run(async |c| {
            c.execute(
                "UPDATE mcpgate_delegations SET revoked_at = $1, revoked_by = $2
                 WHERE id = $3 AND revoked_at IS NULL",
                &[&now, &by, &id],
            )
            .await
        })?;
        Ok(n > 0)
    }

    fn revoke_person(&self, person: &str, by: &str, now: u64) -> Result<usize, StoreError> {
        let now = to_i64(now);
        let n = self.pg.run(async |c| {
            c.execute(
                "UPDATE mcpgate_delegations SET revoked_at = $1, revoked_by = $2
                 WHERE person = $3 AND revoked_at IS NULL",
                &[&now, &by, &person],
            )
            .await
        })?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
