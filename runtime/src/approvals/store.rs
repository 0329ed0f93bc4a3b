//! Pending approvals: one row per held call, from `pending` to `approved`, `denied` or
//! `expired`, and from `approved` to `executed` once the call ran. Every change is one
//! conditional statement, so the gateway, another replica and `mcpgate approvals` (another
//! process) can never both decide the same approval. The rows live behind
//! [`ApprovalTable`]: `state.db` here, or PostgreSQL for a fleet (`super::postgres`).

pub use super::approval::{
    Approval, CallKey, DecideError, NewApproval, Requester, Status, StoreError, Verdict, args_hash,
    now_ms,
};
use crate::state::db::{self, DbError, Migration};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The approvals schema.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "approvals.v1",
        sql: "CREATE TABLE approvals (
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
            grant_ms INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL,
            decided_ms INTEGER,
            decided_by TEXT,
            decided_via TEXT,
            operator TEXT,
            note TEXT,
            grant_until_ms INTEGER,
            executed_ms INTEGER,
            request_id TEXT,
            logged TEXT
          );
          CREATE INDEX approvals_by_status ON approvals (status, expires_ms);
          CREATE INDEX approvals_unlogged ON approvals (logged, status);
          CREATE INDEX approvals_by_call
            ON approvals (principal_id, server, tool, args_hash, status);",
    },
    // The person an agent acted for under a delegation: their own approval is refused, and
    // an approval for Ada's agent never serves Bob's agent of the same name.
    Migration {
        name: "approvals.v2",
        sql: "ALTER TABLE approvals ADD COLUMN on_behalf_of TEXT;",
    },
];

/// What a table operation returns.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Where approvals live. Each method is one statement (or one conditional update followed
/// by a read), so concurrent writers never both win.
pub trait ApprovalTable: Send + std::fmt::Debug {
    /// A number that changes whenever another connection (process, replica) changed the
    /// table: the held calls look again when it moves.
    fn change_marker(&self) -> Result<i64>;
    fn create(&self, new: &NewApproval, now: i64) -> Result<Approval>;
    fn get(&self, id: &str) -> Result<Option<Approval>>;
    fn list(&self, all: bool, limit: usize) -> Result<Vec<Approval>>;
    fn pending_for(&self, key: &CallKey, now: i64) -> Result<Option<Approval>>;
    /// # Errors
    /// [`DecideError`]: unknown id, already decided, timed out, or a table error.
    fn decide(&self, id: &str, v: &Verdict, now: i64)
    -> std::result::Result<Approval, DecideError>;
    fn expire(&self, id: &str, now: i64) -> Result<bool>;
    fn expire_overdue(&self, now: i64) -> Result<Vec<Approval>>;
    fn claim(&self, id: &str, now: i64) -> Result<bool>;
    fn take_grant(&self, key: &CallKey, now: i64) -> Result<Option<Approval>>;
    fn unlogged(&self, limit: usize) -> Result<Vec<Approval>>;
    fn mark_logged(&self, id: &str, status: Status) -> Result<()>;
    /// `state.db` or `postgres`.
    fn kind(&self) -> &'static str {
        "state.db"
    }
}

/// The approvals table.
#[derive(Debug)]
pub struct Store {
    table: Box<dyn ApprovalTable>,
}

/// The approvals table in `state.db`, over one connection.
#[derive(Debug)]
struct Sqlite {
    conn: Connection,
}

const COLUMNS: &str = "id, status, server, tool, arguments, args_hash, principal_id, \
    principal_kind, principal_groups, agent, client, session, rule, rule_source, reason, \
    approvers, program, created_ms, expires_ms, decided_ms, decided_by, decided_via, \
    operator, note, grant_until_ms, executed_ms, request_id, logged, on_behalf_of";

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Approval> {
    let status: String = r.get(1)?;
    let arguments: String = r.get(4)?;
    let groups: String = r.get(8)?;
    let approvers: String = r.get(15)?;
    Ok(Approval {
        id: r.get(0)?,
        status: Status::parse(&status),
        server: r.get(2)?,
        tool: r.get(3)?,
        arguments: serde_json::from_str(&arguments).unwrap_or(Value::Null),
        args_hash: r.get(5)?,
        principal: Requester {
            id: r.get(6)?,
            kind: r.get(7)?,
            groups: json_list(&groups),
        },
        agent: r.get(9)?,
        client: r.get(10)?,
        session: r.get(11)?,
        rule: r.get(12)?,
        rule_source: r.get(13)?,
        reason: r.get(14)?,
        approvers: json_list(&approvers),
        program: r.get(16)?,
        created_ms: r.get(17)?,
        expires_ms: r.get(18)?,
        decided_ms: r.get(19)?,
        decided_by: r.get(20)?,
        decided_via: r.get(21)?,
        operator: r.get(22)?,
        note: r.get(23)?,
        grant_until_ms: r.get(24)?,
        executed_ms: r.get(25)?,
        request_id: r.get(26)?,
        logged: r.get::<_, Option<String>>(27)?.map(|s| Status::parse(&s)),
        on_behalf_of: r.get(28)?,
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

impl Store {
    /// Opens `state.db` in `state_dir` with the approvals schema.
    ///
    /// # Errors
    /// When the database cannot be opened or migrated.
    pub fn open(state_dir: &Path) -> std::result::Result<Store, DbError> {
        Ok(Store::over(Box::new(Sqlite {
            conn: db::open(state_dir, MIGRATIONS)?,
        })))
    }

    /// An in-memory store, for tests.
    ///
    /// # Errors
    /// When the schema cannot be applied.
    pub fn in_memory() -> std::result::Result<Store, DbError> {
        Ok(Store::over(Box::new(Sqlite {
            conn: db::open_in_memory(MIGRATIONS)?,
        })))
    }

    /// A store over another table (PostgreSQL for a fleet).
    pub fn over(table: Box<dyn ApprovalTable>) -> Store {
        Store { table }
    }

    /// `state.db` or `postgres`.
    pub fn kind(&self) -> &'static str {
        self.table.kind()
    }

    /// Changes whenever another connection commits: how the gateway notices decisions made
    /// by `mcpgate approvals` in another process, or by another replica.
    ///
    /// # Errors
    /// A table error.
    pub fn data_version(&self) -> Result<i64> {
        self.table.change_marker()
    }

    /// Records a new pending approval.
    ///
    /// # Errors
    /// A table error.
    pub fn create(&self, new: &NewApproval, now: i64) -> Result<Approval> {
        self.table.create(new, now)
    }

    /// One approval by id.
    ///
    /// # Errors
    /// A table error.
    pub fn get(&self, id: &str) -> Result<Option<Approval>> {
        self.table.get(id)
    }

    /// Approvals, newest first: only pending ones unless `all`.
    ///
    /// # Errors
    /// A table error.
    pub fn list(&self, all: bool, limit: usize) -> Result<Vec<Approval>> {
        self.table.list(all, limit)
    }

    /// The oldest approval of the same call still pending, if any (a retry waits on it
    /// instead of asking again).
    ///
    /// # Errors
    /// A table error.
    pub fn pending_for(&self, key: &CallKey, now: i64) -> Result<Option<Approval>> {
        self.table.pending_for(key, now)
    }

    /// Records a decision on a pending approval that has not timed out.
    ///
    /// # Errors
    /// [`DecideError`]: unknown id, already decided, timed out, or a table error.
    pub fn decide(
        &self,
        id: &str,
        v: &Verdict,
        now: i64,
    ) -> std::result::Result<Approval, DecideError> {
        self.table.decide(id, v, now)
    }

    /// Marks one approval expired if it is still pending past its deadline; true if it was.
    ///
    /// # Errors
    /// A table error.
    pub fn expire(&self, id: &str, now: i64) -> Result<bool> {
        self.table.expire(id, now)
    }

    /// Marks every pending approval past its deadline expired; returns them.
    ///
    /// # Errors
    /// A table error.
    pub fn expire_overdue(&self, now: i64) -> Result<Vec<Approval>> {
        self.table.expire_overdue(now)
    }

    /// Takes an approved approval for its held call: true if this caller got it (it is
    /// now `executed`), false if it was used already.
    ///
    /// # Errors
    /// A table error.
    pub fn claim(&self, id: &str, now: i64) -> Result<bool> {
        self.table.claim(id, now)
    }

    /// Uses, once, an approval of the same call that its caller never received (the
    /// connection was gone): the oldest one still within its grant.
    ///
    /// # Errors
    /// A table error.
    pub fn take_grant(&self, key: &CallKey, now: i64) -> Result<Option<Approval>> {
        self.table.take_grant(key, now)
    }

    /// Approvals whose current status is not yet in the audit log, oldest first.
    ///
    /// # Errors
    /// A table error.
    pub fn unlogged(&self, limit: usize) -> Result<Vec<Approval>> {
        self.table.unlogged(limit)
    }

    /// Notes that `status` of approval `id` is in the audit log.
    ///
    /// # Errors
    /// A table error.
    pub fn mark_logged(&self, id: &str, status: Status) -> Result<()> {
        self.table.mark_logged(id, status)
    }
}

impl ApprovalTable for Sqlite {
    fn change_marker(&self) -> Result<i64> {
        Ok(Sqlite::data_version(self)?)
    }
    fn create(&self, new: &NewApproval, now: i64) -> Result<Approval> {
        Ok(Sqlite::create(self, new, now)?)
    }
    fn get(&self, id: &str) -> Result<Option<Approval>> {
        Ok(Sqlite::get(self, id)?)
    }
    fn list(&self, all: bool, limit: usize) -> Result<Vec<Approval>> {
        Ok(Sqlite::list(self, all, limit)?)
    }
    fn pending_for(&self, key: &CallKey, now: i64) -> Result<Option<Approval>> {
        Ok(Sqlite::pending_for(self, key, now)?)
    }
    fn decide(
        &self,
        id: &str,
        v: &Verdict,
        now: i64,
    ) -> std::result::Result<Approval, DecideError> {
        Sqlite::decide(self, id, v, now)
    }
    fn expire(&self, id: &str, now: i64) -> Result<bool> {
        Ok(Sqlite::expire(self, id, now)?)
    }
    fn expire_overdue(&self, now: i64) -> Result<Vec<Approval>> {
        Ok(Sqlite::expire_overdue(self, now)?)
    }
    fn claim(&self, id: &str, now: i64) -> Result<bool> {
        Ok(Sqlite::claim(self, id, now)?)
    }
    fn take_grant(&self, key: &CallKey, now: i64) -> Result<Option<Approval>> {
        Ok(Sqlite::take_grant(self, key, now)?)
    }
    fn unlogged(&self, limit: usize) -> Result<Vec<Approval>> {
        Ok(Sqlite::unlogged(self, limit)?)
    }
    fn mark_logged(&self, id: &str, status: Status) -> Result<()> {
        Ok(Sqlite::mark_logged(self, id, status)?)
    }
}

impl Sqlite {
    /// Changes whenever another connection commits: a cheap way to notice decisions made
    /// by `mcpgate approvals` in another process.
    ///
    /// # Errors
    /// A database error.
    pub fn data_version(&self) -> rusqlite::Result<i64> {
        self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))
    }

    /// Records a new pending approval.
    ///
    /// # Errors
    /// A database error.
    pub fn create(&self, new: &NewApproval, now: i64) -> rusqlite::Result<Approval> {
        let id = new_id();
        let arguments = serde_json::to_string(&new.arguments).unwrap_or_else(|_| "null".into());
        let groups = serde_json::to_string(&new.principal.groups).unwrap_or_else(|_| "[]".into());
        let approvers = serde_json::to_string(&new.approvers).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            "INSERT INTO approvals (id, status, server, tool, arguments, args_hash,
                principal_id, principal_kind, principal_groups, agent, client, session, rule,
                rule_source, reason, approvers, program, created_ms, expires_ms, grant_ms,
                request_id, on_behalf_of)
             VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
            params![
                id,
                new.server,
                new.tool,
                arguments,
                args_hash(&new.arguments),
                new.principal.id,
                new.principal.kind.as_str(),
                groups,
                new.agent,
                new.client,
                new.session,
                new.rule,
                new.rule_source,
                new.reason,
                approvers,
                new.program,
                now,
                now.saturating_add(millis(new.timeout)),
                millis(new.grant),
                new.request_id,
                new.on_behalf_of,
            ],
        )?;
        self.get(&id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
    }

    /// One approval by id.
    ///
    /// # Errors
    /// A database error.
    pub fn get(&self, id: &str) -> rusqlite::Result<Option<Approval>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()
    }

    /// Approvals, newest first: only pending ones unless `all`.
    ///
    /// # Errors
    /// A database error.
    pub fn list(&self, all: bool, limit: usize) -> rusqlite::Result<Vec<Approval>> {
        let filter = if all { "" } else { "WHERE status = 'pending'" };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM approvals {filter} ORDER BY created_ms DESC, id LIMIT ?1"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([limit], from_row)?;
        rows.collect()
    }

    /// The oldest approval of the same call still pending, if any (a retry waits on it
    /// instead of asking again).
    ///
    /// # Errors
    /// A database error.
    pub fn pending_for(&self, key: &CallKey, now: i64) -> rusqlite::Result<Option<Approval>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM approvals WHERE principal_id = ?1 AND server = ?2
                       AND tool = ?3 AND args_hash = ?4 AND status = 'pending'
                       AND expires_ms > ?5 AND on_behalf_of IS ?6
                     ORDER BY created_ms LIMIT 1"
                ),
                params![
                    key.principal,
                    key.server,
                    key.tool,
                    key.args_hash,
                    now,
                    key.on_behalf_of
                ],
                from_row,
            )
            .optional()
    }

    /// Records a decision on a pending approval that has not timed out.
    ///
    /// # Errors
    /// [`DecideError`]: unknown id, already decided, timed out, or a database error.
    pub fn decide(
        &self,
        id: &str,
        v: &Verdict,
        now: i64,
    ) -> std::result::Result<Approval, DecideError> {
        let status = if v.approve { "approved" } else { "denied" };
        let changed = self.conn.execute(
            "UPDATE approvals SET status = ?2, decided_ms = ?3, decided_by = ?4,
                decided_via = ?5, operator = ?6, note = ?7,
                grant_until_ms = CASE WHEN ?2 = 'approved' THEN ?3 + grant_ms END
             WHERE id = ?1 AND status = 'pending' AND expires_ms > ?3",
            params![id, status, now, v.by, v.via, v.operator, v.note],
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

    /// Marks one approval expired if it is still pending past its deadline; true if it was.
    ///
    /// # Errors
    /// A database error.
    pub fn expire(&self, id: &str, now: i64) -> rusqlite::Result<bool> {
        let n = self.conn.execute(
            "UPDATE approvals SET status = 'expired', decided_ms = ?2
             WHERE id = ?1 AND status = 'pending' AND expires_ms <= ?2",
            params![id, now],
        )?;
        Ok(n == 1)
    }

    /// Marks every pending approval past its deadline expired; returns them.
    ///
    /// # Errors
    /// A database error.
    pub fn expire_overdue(&self, now: i64) -> rusqlite::Result<Vec<Approval>> {
        let ids: Vec<String> = {
            let mut stmt = self.conn.prepare(
                "UPDATE approvals SET status = 'expired', decided_ms = ?1
                 WHERE status = 'pending' AND expires_ms <= ?1 RETURNING id",
            )?;
            let rows = stmt.query_map([now], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.get(&id)?);
        }
        Ok(out)
    }

    /// Takes an approved approval for its held call: true if this caller got it (it is
    /// now `executed`), false if it was used already.
    ///
    /// # Errors
    /// A database error.
    pub fn claim(&self, id: &str, now: i64) -> rusqlite::Result<bool> {
        let n = self.conn.execute(
            "UPDATE approvals SET status = 'executed', executed_ms = ?2
             WHERE id = ?1 AND status = 'approved'",
            params![id, now],
        )?;
        Ok(n == 1)
    }

    /// Uses, once, an approval of the same call that its caller never received (the
    /// connection was gone): the oldest one still within its grant.
    ///
    /// # Errors
    /// A database error.
    pub fn take_grant(&self, key: &CallKey, now: i64) -> rusqlite::Result<Option<Approval>> {
        let id: Option<String> = self
            .conn
            .query_row(
                "UPDATE approvals SET status = 'executed', executed_ms = ?5
                 WHERE id = (SELECT id FROM approvals WHERE principal_id = ?1 AND server = ?2
                     AND tool = ?3 AND args_hash = ?4 AND status = 'approved'
                     AND grant_until_ms > ?5 AND on_behalf_of IS ?6
                     ORDER BY decided_ms LIMIT 1)
                 RETURNING id",
                params![
                    key.principal,
                    key.server,
                    key.tool,
                    key.args_hash,
                    now,
                    key.on_behalf_of
                ],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => self.get(&id),
            None => Ok(None),
        }
    }
}

impl Sqlite {
    /// Approvals whose current status is not yet in the audit log, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub fn unlogged(&self, limit: usize) -> rusqlite::Result<Vec<Approval>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE logged IS NOT status
             ORDER BY created_ms LIMIT ?1"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([limit], from_row)?;
        rows.collect()
    }

    /// Notes that `status` of approval `id` is in the audit log.
    ///
    /// # Errors
    /// A database error.
    pub fn mark_logged(&self, id: &str, status: Status) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE approvals SET logged = ?2 WHERE id = ?1",
            params![id, status.as_str()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgate_compiler::Principal;
    use mcpgate_compiler::PrincipalKind;
    use serde_json::json;

    fn new(amount: i64) -> NewApproval {
        NewApproval {
            server: "demo".into(),
            tool: "send_payment".into(),
            arguments: json!({"to": "bob", "amount": amount}),
            principal: Principal {
                id: "bot-7".into(),
                kind: PrincipalKind::Agent,
                groups: vec!["agents".into()],
                ..Default::default()
            },
            agent: Some("claude-code".into()),
            client: Some("cli".into()),
            session: "s1".into(),
            rule: "payments-need-finance".into(),
            rule_source: "policies/demo.mcpg:3:1".into(),
            reason: Some("money leaves".into()),
            approvers: vec!["finance".into()],
            program: "abc".into(),
            timeout: Duration::from_secs(60),
            grant: Duration::from_secs(30),
            request_id: Some("req-1".into()),
            on_behalf_of: None,
        }
    }

    fn verdict(approve: bool) -> Verdict {
        Verdict {
            approve,
            by: "alice@example.com".into(),
            via: "cli",
            operator: Some("root".into()),
            note: (!approve).then(|| "not today".into()),
        }
    }

    #[test]
    fn an_approval_round_trips_with_the_whole_request() {
        let s = Store::in_memory().unwrap();
        let a = s.create(&new(500), 1_000).unwrap();
        assert_eq!(a.status, Status::Pending);
        assert_eq!(a.expires_ms, 61_000);
        assert_eq!(a.arguments, json!({"amount": 500, "to": "bob"}));
        assert_eq!(a.principal.kind, "agent");
        assert_eq!(a.principal.groups, ["agents"]);
        assert_eq!(a.approvers, ["finance"]);
        assert_eq!(s.get(&a.id).unwrap().unwrap(), a);
        assert_eq!(s.list(false, 10).unwrap(), vec![a.clone()]);
        assert_eq!(a.id.len(), 12);
        assert_eq!(a.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn each_status_is_logged_once() {
        let s = Store::in_memory().unwrap();
        let a = s.create(&new(500), 1_000).unwrap();
        assert_eq!(s.unlogged(10).unwrap().len(), 1);
        s.mark_logged(&a.id, Status::Pending).unwrap();
        assert!(s.unlogged(10).unwrap().is_empty());
        s.decide(&a.id, &verdict(true), 2_000).unwrap();
        let due = s.unlogged(10).unwrap();
        assert_eq!(due[0].status, Status::Approved);
        assert_eq!(due[0].logged, Some(Status::Pending));
    }

    #[test]
    fn a_decision_is_recorded_once() {
        let s = Store::in_memory().unwrap();
        let a = s.create(&new(500), 1_000).unwrap();
        let done = s.decide(&a.id, &verdict(true), 2_000).unwrap();
        assert_eq!(done.status, Status::Approved);
        assert_eq!(done.decided_by.as_deref(), Some("alice@example.com"));
        assert_eq!(done.grant_until_ms, Some(32_000));
        let again = s.decide(&a.id, &verdict(false), 2_500).unwrap_err();
        assert!(
            matches!(
                again,
                DecideError::Closed {
                    status: Status::Approved,
                    ..
                }
            ),
            "{again}"
        );
        assert!(s.list(false, 10).unwrap().is_empty());
        assert!(matches!(
            s.decide("nope", &verdict(true), 2_000),
            Err(DecideError::NotFound(_))
        ));
    }

    #[test]
    fn a_late_decision_finds_the_approval_timed_out() {
        let s = Store::in_memory().unwrap();
        let a = s.create(&new(500), 1_000).unwrap();
        let err = s.decide(&a.id, &verdict(true), 61_000).unwrap_err();
        assert!(matches!(err, DecideError::TimedOut(_)), "{err}");
        assert_eq!(s.get(&a.id).unwrap().unwrap().status, Status::Expired);
    }

    #[test]
    fn overdue_approvals_expire_together() {
        let s = Store::in_memory().unwrap();
        let a = s.create(&new(1), 1_000).unwrap();
        let b = s.create(&new(2), 50_000).unwrap();
        let gone = s.expire_overdue(70_000).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].id, a.id);
        assert_eq!(gone[0].status, Status::Expired);
        assert_eq!(s.get(&b.id).unwrap().unwrap().status, Status::Pending);
    }

    #[test]
    fn an_approved_call_runs_once() {
        let s = Store::in_memory().unwrap();
        let a = s.create(&new(500), 1_000).unwrap();
        s.decide(&a.id, &verdict(true), 2_000).unwrap();
        assert!(s.claim(&a.id, 2_100).unwrap());
        assert!(!s.claim(&a.id, 2_200).unwrap());
        assert_eq!(s.get(&a.id).unwrap().unwrap().status, Status::Executed);
        // Used by its held call: nothing is left for a retry.
        assert!(s.take_grant(&a.key(), 2_300).unwrap().is_none());
    }

    #[test]
    fn a_retry_takes_an_undelivered_approval_once_within_its_grant() {
        let s = Store::in_memory().unwrap();
        let a = s.create(&new(500), 1_000).unwrap();
        let other = s.create(&new(501), 1_000).unwrap();
        assert_ne!(a.args_hash, other.args_hash);
        assert_eq!(s.pending_for(&a.key(), 1_500).unwrap().unwrap().id, a.id);
        s.decide(&a.id, &verdict(true), 2_000).unwrap();
        s.decide(&other.id, &verdict(true), 2_000).unwrap();
        // Past the grant: refused.
        assert!(s.take_grant(&a.key(), 40_000).unwrap().is_none());
        // Not by the same agent acting for someone else.
        let mut theirs = a.key();
        theirs.on_behalf_of = Some("ada@example.com".into());
        assert!(s.take_grant(&theirs, 3_000).unwrap().is_none());
        let got = s.take_grant(&a.key(), 3_000).unwrap().unwrap();
        assert_eq!(got.id, a.id);
        assert_eq!(got.status, Status::Executed);
        assert!(s.take_grant(&a.key(), 3_001).unwrap().is_none());
        // Another principal's identical call is not covered.
        let mut stranger = a.key();
        stranger.principal = "mallory".into();
        assert!(s.take_grant(&stranger, 3_000).unwrap().is_none());
    }

    #[test]
    fn a_denied_approval_leaves_no_grant() {
        let s = Store::in_memory().unwrap();
        let a = s.create(&new(500), 1_000).unwrap();
        let d = s.decide(&a.id, &verdict(false), 2_000).unwrap();
        assert_eq!(d.status, Status::Denied);
        assert_eq!(d.note.as_deref(), Some("not today"));
        assert!(s.take_grant(&a.key(), 3_000).unwrap().is_none());
        assert!(!s.claim(&a.id, 3_000).unwrap());
    }

    #[test]
    fn argument_order_does_not_change_the_hash() {
        let a = args_hash(&json!({"a": 1, "b": {"y": [1, 2], "x": "s"}}));
        let b = args_hash(&json!({"b": {"x": "s", "y": [1, 2]}, "a": 1}));
        assert_eq!(a, b);
        assert_ne!(a, args_hash(&json!({"a": 1, "b": {"y": [2, 1], "x": "s"}})));
        assert_ne!(args_hash(&json!({"a": 1})), args_hash(&json!({"a": 1.5})));
    }

    #[test]
    fn another_connection_sees_decisions_through_data_version() {
        let dir = tempfile::tempdir().unwrap();
        let gateway = Store::open(dir.path()).unwrap();
        let cli = Store::open(dir.path()).unwrap();
        let a = gateway.create(&new(500), now_ms()).unwrap();
        let before = gateway.data_version().unwrap();
        cli.decide(&a.id, &verdict(false), now_ms()).unwrap();
        assert_ne!(gateway.data_version().unwrap(), before);
        assert_eq!(gateway.get(&a.id).unwrap().unwrap().status, Status::Denied);
    }
}
