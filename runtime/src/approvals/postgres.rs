//! Approvals in PostgreSQL (`state.postgres`), shared by every replica: a call held on one
//! replica can be decided through another's API or `mcpgate approvals --policy`, and the
//! replica holding it notices within one poll ([`super::POLL_EVERY`]): every change takes a
//! number from the sequence `mcpgate_approvals_changes`, whose last value is the change
//! marker the replicas poll.

use super::approval::{
    Approval, CallKey, DecideError, NewApproval, Requester, Status, StoreError, Verdict, args_hash,
};
use super::store::{ApprovalTable, Result};
use crate::state::db::Migration;
use crate::state::postgres::Pg;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The schema of the shared approvals table.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "approvals.v1",
        sql: "CREATE SEQUENCE mcpgate_approvals_changes;
          CREATE TABLE mcpgate_approvals (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL
              CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'executed')),
            server TEXT NOT NULL,
            tool TEXT NOT NULL,
            arguments TEXT NOT NULL,
            args_hash TEXT NOT NULL,
            principal_id TEXT NOT NULL,
            principal_kind TEXT NOT NULL,
            principal_groups TEXT NOT NULL,
            agent TEXT,
            client TEXT,
            session TEXT NOT NULL,
            rule TEXT NOT NULL,
            rule_source TEXT NOT NULL,
            reason TEXT,
            approvers TEXT NOT NULL,
            program TEXT NOT NULL,
            grant_ms BIGINT NOT NULL,
            created_ms BIGINT NOT NULL,
            expires_ms BIGINT NOT NULL,
            decided_ms BIGINT,
            decided_by TEXT,
            decided_via TEXT,
            operator TEXT,
            note TEXT,
            grant_until_ms BIGINT,
            executed_ms BIGINT,
            request_id TEXT,
            logged TEXT,
            change BIGINT NOT NULL DEFAULT nextval('mcpgate_approvals_changes')
          );
          CREATE INDEX mcpgate_approvals_by_status ON mcpgate_approvals (status, expires_ms);
          CREATE INDEX mcpgate_approvals_by_call
            ON mcpgate_approvals (principal_id, server, tool, args_hash, status);",
    },
    // The person an agent acted for under a delegation: their own approval is refused, and
    // an approval for Ada's agent never serves Bob's agent of the same name.
    Migration {
        name: "approvals.v2",
        sql: "ALTER TABLE mcpgate_approvals ADD COLUMN on_behalf_of TEXT;",
    },
];

const COLUMNS: &str = "id, status, server, tool, arguments, args_hash, principal_id, \
    principal_kind, principal_groups, agent, client, session, rule, rule_source, reason, \
    approvers, program, created_ms, expires_ms, decided_ms, decided_by, decided_via, \
    operator, note, grant_until_ms, executed_ms, request_id, logged, on_behalf_of";

/// Every statement that changes a row also moves the change marker.
const CHANGE: &str = "change = nextval('mcpgate_approvals_changes')";

/// The approvals table of a fleet.
#[derive(Debug)]
pub struct PgApprovals {
    pg: Arc<Pg>,
}

impl PgApprovals {
    /// Approvals in `pg`, opened with [`MIGRATIONS`].
    pub fn new(pg: Arc<Pg>) -> PgApprovals {
        PgApprovals { pg }
    }

    fn rows(&self, sql: String, params: Vec<Param>) -> Result<Vec<Approval>> {
        let rows = self
            .pg
            .run(async |c| {
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    params.iter().map(Param::as_sql).collect();
                let rows = c.query(&sql, &refs).await?;
                rows.iter()
                    .map(from_row)
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(rows)
    }

    fn one(&self, sql: String, params: Vec<Param>) -> Result<Option<Approval>> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    fn exec(&self, sql: &str, params: Vec<Param>) -> Result<u64> {
        self.pg
            .run(async |c| {
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    params.iter().map(Param::as_sql).collect();
                c.execute(sql, &refs).await
            })
            .map_err(|e| StoreError(e.to_string()))
    }
}

/// A statement parameter (owned, so the statement can run on the store's runtime).
enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i64),
}

impl Param {
    fn as_sql(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Param::Text(s) => s,
            Param::OptText(s) => s,
            Param::Int(i) => i,
        }
    }
}

fn text(s: &str) -> Param {
    Param::Text(s.to_owned())
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn from_row(r: &tokio_postgres::Row) -> std::result::Result<Approval, tokio_postgres::Error> {
    let status: String = r.try_get(1)?;
    let arguments: String = r.try_get(4)?;
    let groups: String = r.try_get(8)?;
    let approvers: String = r.try_get(15)?;
    Ok(Approval {
        id: r.try_get(0)?,
        status: Status::parse(&status),
        server: r.try_get(2)?,
        tool: r.try_get(3)?,
        arguments: serde_json::from_str(&arguments).unwrap_or(Value::Null),
        args_hash: r.try_get(5)?,
        principal: Requester {
            id: r.try_get(6)?,
            kind: r.try_get(7)?,
            groups: json_list(&groups),
        },
        agent: r.try_get(9)?,
        client: r.try_get(10)?,
        session: r.try_get(11)?,
        rule: r.try_get(12)?,
        rule_source: r.try_get(13)?,
        reason: r.try_get(14)?,
        approvers: json_list(&approvers),
        program: r.try_get(16)?,
        created_ms: r.try_get(17)?,
        expires_ms: r.try_get(18)?,
        decided_ms: r.try_get(19)?,
        decided_by: r.try_get(20)?,
        decided_via: r.try_get(21)?,
        operator: r.try_get(22)?,
        note: r.try_get(23)?,
        grant_until_ms: r.try_get(24)?,
        executed_ms: r.try_get(25)?,
        request_id: r.try_get(26)?,
        logged: r
            .try_get::<_, Option<String>>(27)?
            .map(|s| Status::parse(&s)),
        on_behalf_of: r.try_get(28)?,
    })
}

/// A new approval id: 12 random hex digits, short enough to type.
fn new_id() -> String {
    let mut b = [0u8; 6];
    rand::fill(&mut b[..]);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn limit_of(n: usize) -> Param {
    Param::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn key_params(key: &CallKey, now: i64) -> Vec<Param> {
    vec![
        text(&key.principal),
        text(&key.server),
        text(&key.tool),
        text(&key.args_hash),
        Param::Int(now),
        Param::OptText(key.on_behalf_of.clone()),
    ]
}

impl ApprovalTable for PgApprovals {
    fn change_marker(&self) -> Result<i64> {
        self.pg
            .run(async |c| {
                let row = c
                    .query_one("SELECT last_value FROM mcpgate_approvals_changes", &[])
                    .await?;
                row.try_get::<_, i64>(0)
            })
            .map_err(|e| StoreError(e.to_string()))
    }

    fn create(&self, new: &NewApproval, now: i64) -> Result<Approval> {
        let id = new_id();
        let params = vec![
            text(&id),
            text(&new.server),
            text(&new.tool),
            Param::Text(serde_json::to_string(&new.arguments).unwrap_or_else(|_| "null".into())),
            Param::Text(args_hash(&new.arguments)),
            text(&new.principal.id),
            text(new.principal.kind.as_str()),
            Param::Text(
                serde_json::to_string(&new.principal.groups).unwrap_or_else(|_| "[]".into()),
            ),
            Param::OptText(new.agent.clone()),
            Param::OptText(new.client.clone()),
            text(&new.session),
            text(&new.rule),
            text(&new.rule_source),
            Param::OptText(new.reason.clone()),
            Param::Text(serde_json::to_string(&new.approvers).unwrap_or_else(|_| "[]".into())),
            text(&new.program),
            Param::Int(now),
            Param::Int(now.saturating_add(millis(new.timeout))),
            Param::Int(millis(new.grant)),
            Param::OptText(new.request_id.clone()),
            Param::OptText(new.on_behalf_of.clone()),
        ];
        self.one(
            format!(
                "INSERT INTO mcpgate_approvals (id, status, server, tool, arguments, args_hash,
                    principal_id, principal_kind, principal_groups, agent, client, session, rule,
                    rule_source, reason, approvers, program, created_ms, expires_ms, grant_ms,
                    request_id, on_behalf_of)
                 VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                    $15, $16, $17, $18, $19, $20, $21)
                 RETURNING {COLUMNS}"
            ),
            params,
        )?
        .ok_or_else(|| StoreError(format!("approval `{id}` was not stored")))
    }

    fn get(&self, id: &str) -> Result<Option<Approval>> {
        self.one(
            format!("SELECT {COLUMNS} FROM mcpgate_approvals WHERE id = $1"),
            vec![text(id)],
        )
    }

    fn list(&self, all: bool, limit: usize) -> Result<Vec<Approval>> {
        let filter = if all { "" } else { "WHERE status = 'pending'" };
        self.rows(
            format!(
                "SELECT {COLUMNS} FROM mcpgate_approvals {filter}
                 ORDER BY created_ms DESC, id LIMIT $1"
            ),
            vec![limit_of(limit)],
        )
    }

    fn pending_for(&self, key: &CallKey, now: i64) -> Result<Option<Approval>> {
        self.one(
            format!(
                "SELECT {COLUMNS} FROM mcpgate_approvals WHERE principal_id = $1 AND server = $2
                   AND tool = $3 AND args_hash = $4 AND status = 'pending' AND expires_ms > $5
                   AND on_behalf_of IS NOT DISTINCT FROM $6
                 ORDER BY created_ms LIMIT 1"
            ),
            key_params(key, now),
        )
    }

    fn decide(
        &self,
        id: &str,
        v: &Verdict,
        now: i64,
    ) -> std::result::Result<Approval, DecideError> {
        let status = if v.approve { "approved" } else { "denied" };
        let changed = self.exec(
            &format!(
                "UPDATE mcpgate_approvals SET status = $2, decided_ms = $3, decided_by = $4,
                    decided_via = $5, operator = $6, note = $7, {CHANGE},
                    grant_until_ms = CASE WHEN $2 = 'approved' THEN $3 + grant_ms END
                 WHERE id = $1 AND status = 'pending' AND expires_ms > $3"
            ),
            vec![
                text(id),
                text(status),
                Param::Int(now),
                text(&v.by),
                text(v.via),
                Param::OptText(v.operator.clone()),
                Param::OptText(v.note.clone()),
            ],
        )?;
        let current = self
            .get(id)?
            .ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
        if changed == 1 {
            return Ok(current);
        }
        match current.status {
            Status::Pending => {
                self.expire(id, now)?;
                Err(DecideError::TimedOut(id.to_owned()))
            }
            Status::Expired => Err(DecideError::TimedOut(id.to_owned())),
            status => Err(DecideError::Closed {
                id: id.to_owned(),
                status,
            }),
        }
    }

    fn expire(&self, id: &str, now: i64) -> Result<bool> {
        let n = self.exec(
            &format!(
                "UPDATE mcpgate_approvals SET status = 'expired', decided_ms = $2, {CHANGE}
                 WHERE id = $1 AND status = 'pending' AND expires_ms <= $2"
            ),
            vec![text(id), Param::Int(now)],
        )?;
        Ok(n == 1)
    }

    fn expire_overdue(&self, now: i64) -> Result<Vec<Approval>> {
        self.rows(
            format!(
                "UPDATE mcpgate_approvals SET status = 'expired', decided_ms = $1, {CHANGE}
                 WHERE status = 'pending' AND expires_ms <= $1 RETURNING {COLUMNS}"
            ),
            vec![Param::Int(now)],
        )
    }

    fn claim(&self, id: &str, now: i64) -> Result<bool> {
        let n = self.exec(
            &format!(
                "UPDATE mcpgate_approvals SET status = 'executed', executed_ms = $2, {CHANGE}
                 WHERE id = $1 AND status = 'approved'"
            ),
            vec![text(id), Param::Int(now)],
        )?;
        Ok(n == 1)
    }

    fn take_grant(&self, key: &CallKey, now: i64) -> Result<Option<Approval>> {
        self.one(
            format!(
                "UPDATE mcpgate_approvals SET status = 'executed', executed_ms = $5, {CHANGE}
                 WHERE id = (SELECT id FROM mcpgate_approvals WHERE principal_id = $1
                     AND server = $2 AND tool = $3 AND args_hash = $4 AND status = 'approved'
                     AND grant_until_ms > $5 AND on_behalf_of IS NOT DISTINCT FROM $6
                     ORDER BY decided_ms LIMIT 1 FOR UPDATE)
                   AND status = 'approved'
                 RETURNING {COLUMNS}"
            ),
            key_params(key, now),
        )
    }

    fn unlogged(&self, limit: usize) -> Result<Vec<Approval>> {
        self.rows(
            format!(
                "SELECT {COLUMNS} FROM mcpgate_approvals WHERE logged IS DISTINCT FROM status
                 ORDER BY created_ms LIMIT $1"
            ),
            vec![limit_of(limit)],
        )
    }

    fn mark_logged(&self, id: &str, status: Status) -> Result<()> {
        // Not a change the held calls wait for: the marker stays.
        self.exec(
            "UPDATE mcpgate_approvals SET logged = $2 WHERE id = $1",
            vec![text(id), text(status.as_str())],
        )?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}
