//! Where delegations are kept: the [`DelegationStore`] trait and its embedded SQLite
//! implementation (table `delegations` in `state.db`, beside the tokens). An agent's token is
//! stored only as its SHA-256 hash, like a gateway token.

use super::record::{Delegation, NewDelegation};
use crate::state::db::{self, DbError, Migration};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgate_compiler::PrincipalKind;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use subtle::ConstantTimeEq;

/// The schema of the delegation table.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "delegations.v1",
    sql: "CREATE TABLE delegations (
            id TEXT PRIMARY KEY,
            hash BLOB NOT NULL UNIQUE,
            person TEXT NOT NULL,
            person_kind TEXT NOT NULL,
            person_groups TEXT NOT NULL,
            parent_token TEXT,
            agent TEXT NOT NULL,
            tools TEXT NOT NULL,
            reason TEXT NOT NULL,
            created INTEGER NOT NULL,
            expires INTEGER NOT NULL,
            revoked_at INTEGER,
            revoked_by TEXT
          );
          CREATE INDEX delegations_person ON delegations (person);",
}];

/// Random bytes in an agent's delegation token.
const TOKEN_BYTES: usize = 32;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Open(#[from] DbError),
    #[error("delegation store: {0}")]
    Db(#[from] rusqlite::Error),
    /// The person's token could not be read.
    #[error("token store: {0}")]
    Tokens(String),
    /// The shared database of a fleet failed.
    #[error("delegation store: {0}")]
    Shared(#[from] crate::state::postgres::PgError),
}

/// Keeps delegations. The gateway, `mcpgate delegate` and other services (a responder
/// pausing an agent) share one through this trait.
pub trait DelegationStore: Send + Sync + std::fmt::Debug {
    /// Stores a new delegation; returns the agent's token (shown once) and the record.
    ///
    /// # Errors
    /// When the write fails.
    fn insert(&self, new: NewDelegation, now: u64) -> Result<(String, Delegation), StoreError>;
    /// The delegation with this id.
    ///
    /// # Errors
    /// When the read fails.
    fn get(&self, id: &str) -> Result<Option<Delegation>, StoreError>;
    /// The delegation an agent's token stands for.
    ///
    /// # Errors
    /// When the read fails.
    fn by_token(&self, token: &str) -> Result<Option<Delegation>, StoreError>;
    /// Every delegation, newest first.
    ///
    /// # Errors
    /// When the read fails.
    fn list(&self) -> Result<Vec<Delegation>, StoreError>;
    /// Revokes one delegation; `false` when none unrevoked has that id.
    ///
    /// # Errors
    /// When the write fails.
    fn revoke(&self, id: &str, by: &str, now: u64) -> Result<bool, StoreError>;
    /// Revokes every unrevoked delegation `person` made; returns how many.
    ///
    /// # Errors
    /// When the write fails.
    fn revoke_person(&self, person: &str, by: &str, now: u64) -> Result<usize, StoreError>;
}

/// The embedded store: `state.db`.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::fill(&mut b[..]);
    b
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A new agent token and the record it stands for (not yet stored).
pub(super) fn mint(new: NewDelegation, now: u64) -> (String, Delegation) {
    let token = format!(
        "{}{}",
        crate::identity::DELEGATION_TOKEN_PREFIX,
        URL_SAFE_NO_PAD.encode(random(TOKEN_BYTES))
    );
    let id = format!("dlg_{}", crate::audit::record::hex(&random(8)));
    let d = Delegation {
        id,
        person: new.person.id,
        person_kind: new.person.kind,
        person_groups: new.person.groups,
        parent_token: new.parent_token,
        agent: new.agent,
        tools: new.tools,
        reason: new.reason,
        created: now,
        expires: now.saturating_add(new.ttl_secs),
        revoked_at: None,
        revoked_by: None,
    };
    (token, d)
}

pub(super) fn kind_from_str(s: &str) -> PrincipalKind {
    match s {
        "human" => PrincipalKind::Human,
        "agent" => PrincipalKind::Agent,
        "service" => PrincipalKind::Service,
        _ => PrincipalKind::Anonymous,
    }
}

pub(super) const COLUMNS: &str = "id, person, person_kind, person_groups, parent_token, agent, tools, \
                       reason, created, expires, revoked_at, revoked_by, hash";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Delegation, Vec<u8>)> {
    let kind: String = r.get(2)?;
    let groups: String = r.get(3)?;
    let tools: String = r.get(6)?;
    let d = Delegation {
        id: r.get(0)?,
        person: r.get(1)?,
        person_kind: kind_from_str(&kind),
        person_groups: serde_json::from_str(&groups).unwrap_or_default(),
        parent_token: r.get(4)?,
        agent: r.get(5)?,
        // A scope that cannot be read reaches nothing, never everything.
        tools: serde_json::from_str(&tools).unwrap_or_default(),
        reason: r.get(7)?,
        created: to_u64(r.get(8)?),
        expires: to_u64(r.get(9)?),
        revoked_at: r.get::<_, Option<i64>>(10)?.map(to_u64),
        revoked_by: r.get(11)?,
    };
    Ok((d, r.get(12)?))
}

impl SqliteStore {
    /// Opens the table in `state_dir/state.db` (with the token table, which a delegation's
    /// person may hold a token of).
    ///
    /// # Errors
    /// When the database cannot be opened or migrated.
    pub fn open(state_dir: &Path) -> Result<SqliteStore, StoreError> {
        let migrations = [crate::identity::tokens::MIGRATIONS, MIGRATIONS].concat();
        Ok(SqliteStore {
            conn: Mutex::new(db::open(state_dir, &migrations)?),
        })
    }

    /// An in-memory store, for tests.
    ///
    /// # Errors
    /// When the schema cannot be applied.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Ok(SqliteStore {
            conn: Mutex::new(db::open_in_memory(MIGRATIONS)?),
        })
    }
}

impl DelegationStore for SqliteStore {
    fn insert(&self, new: NewDelegation, now: u64) -> Result<(String, Delegation), StoreError> {
        let (token, d) = mint(new, now);
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        lock(&self.conn).execute(
            "INSERT INTO delegations (id, hash, person, person_kind, person_groups, parent_token,
                                      agent, tools, reason, created, expires)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                d.id,
                &hash(&token)[..],
                d.person,
                d.person_kind.as_str(),
                json(&d.person_groups),
                d.parent_token,
                d.agent,
                json(&d.tools),
                d.reason,
                to_i64(d.created),
                to_i64(d.expires),
            ],
        )?;
        Ok((token, d))
    }

    fn get(&self, id: &str) -> Result<Option<Delegation>, StoreError> {
        let conn = lock(&self.conn);
        let found = conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM delegations WHERE id = ?1"))?
            .query_row([id], row)
            .optional()?;
        Ok(found.map(|(d, _)| d))
    }

    fn by_token(&self, token: &str) -> Result<Option<Delegation>, StoreError> {
        let h = hash(token);
        let conn = lock(&self.conn);
        let found = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM delegations WHERE hash = ?1"
            ))?
            .query_row([&h[..]], row)
            .optional()?;
        // Found by its hash; compare again without an early exit anyway.
        Ok(found.and_then(|(d, stored)| bool::from(stored.as_slice().ct_eq(&h[..])).then_some(d)))
    }

    fn list(&self) -> Result<Vec<Delegation>, StoreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM delegations ORDER BY created DESC, id"
        ))?;
        let rows = stmt.query_map([], row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?.0);
        }
        Ok(out)
    }

    fn revoke(&self, id: &str, by: &str, now: u64) -> Result<bool, StoreError> {
        let n = lock(&self.conn).execute(
            "UPDATE delegations SET revoked_at = ?1, revoked_by = ?2
             WHERE id = ?3 AND revoked_at IS NULL",
            params![to_i64(now), by, id],
        )?;
        Ok(n > 0)
    }

    fn revoke_person(&self, person: &str, by: &str, now: u64) -> Result<usize, StoreError> {
        Ok(lock(&self.conn).execute(
            "UPDATE delegations SET revoked_at = ?1, revoked_by = ?2
             WHERE person = ?3 AND revoked_at IS NULL",
            params![to_i64(now), by, person],
        )?)
    }
}
