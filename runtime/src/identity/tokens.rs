//! Gateway-issued grant tokens: `mcpg_` and 256 random bits, shown once, stored only as
//! their SHA-256 hash in `state.db`. Each row is the consent record of one grant: who issued
//! it to whom, why, for which servers, until when, and whether and by whom it was revoked.
//!
//! The gateway checks a token on every request. The table lives behind [`TokenTable`]:
//! `state.db` by default, where lookups go through a small cache keyed by the hash, emptied
//! whenever SQLite's `PRAGMA data_version` says another connection (an operator running
//! `mcpgate token revoke`) changed the database, so a revocation takes effect on the next
//! request without a restart; or PostgreSQL for a fleet (`super::postgres`), read on every
//! lookup, so a revocation is seen by every replica on its next request.

use crate::state::db::{self, DbError, Migration};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgate_compiler::PrincipalKind;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use subtle::ConstantTimeEq;

/// Every gateway token starts with this (so scanners and people recognise one).
pub const TOKEN_PREFIX: &str = "mcpg_";
/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// Most token records the gateway keeps in memory between database changes.
const CACHE_MAX: usize = 10_000;

/// The schema of the token table.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "tokens.v1",
    sql: "CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            hash BLOB NOT NULL UNIQUE,
            issuer TEXT NOT NULL,
            subject TEXT NOT NULL,
            kind TEXT NOT NULL,
            agent TEXT,
            groups TEXT NOT NULL,
            servers TEXT,
            reason TEXT NOT NULL,
            created INTEGER NOT NULL,
            expires INTEGER,
            revoked_at INTEGER,
            revoked_by TEXT
          );
          CREATE INDEX tokens_subject ON tokens (subject);",
}];

/// One grant: the consent record. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// Public id (`tok_` and 16 hex digits), used to list and revoke.
    pub id: String,
    /// Who issued it (the operator's user name or `--issuer`).
    pub issuer: String,
    /// The principal id the token acts as.
    pub subject: String,
    pub kind: PrincipalKind,
    /// The agent acting for the subject (`principal.attrs.agent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub groups: Vec<String>,
    /// The servers the token may reach; `None`: every server the policy allows.
    pub servers: Option<Vec<String>>,
    /// Why it was issued (a ticket, a request).
    pub reason: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Seconds since the Unix epoch; `None`: never expires.
    pub expires: Option<u64>,
    pub revoked_at: Option<u64>,
    pub revoked_by: Option<String>,
}

/// Where a token stands at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Expired,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }
}

impl TokenRecord {
    /// The token's status at `now` (seconds since the epoch).
    pub fn status(&self, now: u64) -> Status {
        if self.revoked_at.is_some() {
            Status::Revoked
        } else if self.expires.is_some_and(|e| now >= e) {
            Status::Expired
        } else {
            Status::Active
        }
    }

    /// Whether the token may reach `server`.
    pub fn allows_server(&self, server: &str) -> bool {
        self.servers
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == server))
    }
}

/// What `issue` needs.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub issuer: String,
    pub subject: String,
    pub kind: PrincipalKind,
    pub agent: Option<String>,
    pub groups: Vec<String>,
    pub servers: Option<Vec<String>>,
    pub reason: String,
    /// Lifetime in seconds; `None`: never expires.
    pub ttl_secs: Option<u64>,
}

/// Why a presented token was refused, or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this gateway (unknown, malformed): never says which.
    #[error("unknown token")]
    Unknown,
    #[error("the token expired")]
    Expired,
    #[error("the token was revoked")]
    Revoked,
    #[error(transparent)]
    Open(#[from] DbError),
    #[error("token store: {0}")]
    Db(#[from] rusqlite::Error),
    /// The shared store failed (PostgreSQL).
    #[error("token store: {0}")]
    Store(String),
}

/// Where the token records live: the rows, found by the hash of the token.
pub trait TokenTable: Send + Sync + std::fmt::Debug {
    /// Stores a new record under `hash`.
    ///
    /// # Errors
    /// When the write fails.
    fn insert(&self, record: &TokenRecord, hash: &[u8; 32]) -> Result<(), TokenError>;

    /// Every record, newest first.
    ///
    /// # Errors
    /// When the read fails.
    fn list(&self) -> Result<Vec<TokenRecord>, TokenError>;

    /// Marks the unrevoked token `id` revoked; whether there was one.
    ///
    /// # Errors
    /// When the write fails.
    fn revoke(&self, id: &str, by: &str, now: u64) -> Result<bool, TokenError>;

    /// Marks every unrevoked token of `subject` revoked; how many.
    ///
    /// # Errors
    /// When the write fails.
    fn revoke_subject(&self, subject: &str, by: &str, now: u64) -> Result<usize, TokenError>;

    /// The record stored under `hash` as it is now (a revocation made anywhere included);
    /// the stored hash is compared to `hash` in constant time.
    ///
    /// # Errors
    /// When the read fails (the caller is then refused, never let in).
    fn find(&self, hash: &[u8; 32]) -> Result<Option<Arc<TokenRecord>>, TokenError>;

    /// The record of token `id`; `None` when no token has that id.
    ///
    /// # Errors
    /// When the read fails.
    fn get(&self, id: &str) -> Result<Option<TokenRecord>, TokenError>;

    /// `state.db` or `postgres`.
    fn kind(&self) -> &'static str {
        "state.db"
    }

    /// Why the table cannot be read, if it cannot (a round trip for a shared store).
    fn probe(&self) -> Option<String> {
        None
    }
}

/// Whether the hash a row was found by is the one presented, without an early exit.
pub fn same_hash(stored: &[u8], hash: &[u8; 32]) -> bool {
    bool::from(stored.ct_eq(&hash[..]))
}

#[derive(Debug)]
struct Cache {
    /// `PRAGMA data_version` when the entries were read.
    version: i64,
    entries: HashMap<[u8; 32], Arc<TokenRecord>>,
}

/// The tokens, shared by the gateway (lookups) and `mcpgate token` (issue, list, revoke).
#[derive(Debug)]
pub struct TokenStore {
    table: Box<dyn TokenTable>,
}

/// The token table in `state.db`.
#[derive(Debug)]
struct SqliteTokens {
    conn: Mutex<Connection>,
    cache: Mutex<Cache>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// SHA-256 of a presented token, the only form the database knows.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `s` has the shape of a gateway token (cheap, before any lookup).
pub fn looks_like_token(s: &str) -> bool {
    s.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn new_secret() -> String {
    let mut b = [0u8; TOKEN_BYTES];
    rand::fill(&mut b[..]);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(b))
}

fn new_id() -> String {
    let mut b = [0u8; 8];
    rand::fill(&mut b[..]);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("tok_{hex}")
}

fn kind_from_str(s: &str) -> PrincipalKind {
    match s {
        "human" => PrincipalKind::Human,
        "agent" => PrincipalKind::Agent,
        "service" => PrincipalKind::Service,
        _ => PrincipalKind::Anonymous,
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

const COLUMNS: &str = "id, issuer, subject, kind, agent, groups, servers, reason, created, \
                       expires, revoked_at, revoked_by, hash";

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<(TokenRecord, Vec<u8>)> {
    let groups: String = r.get(5)?;
    let servers: Option<String> = r.get(6)?;
    let kind: String = r.get(3)?;
    let record = TokenRecord {
        id: r.get(0)?,
        issuer: r.get(1)?,
        subject: r.get(2)?,
        kind: kind_from_str(&kind),
        agent: r.get(4)?,
        groups: serde_json::from_str(&groups).unwrap_or_default(),
        // A scope that cannot be read reaches nothing, never everything.
        servers: servers.map(|s| serde_json::from_str(&s).unwrap_or_default()),
        reason: r.get(7)?,
        created: to_u64(r.get(8)?),
        expires: r.get::<_, Option<i64>>(9)?.map(to_u64),
        revoked_at: r.get::<_, Option<i64>>(10)?.map(to_u64),
        revoked_by: r.get(11)?,
    };
    Ok((record, r.get(12)?))
}

impl TokenStore {
    /// Opens the token table in `state_dir/state.db` (creating it if needed).
    ///
    /// # Errors
    /// When the database cannot be opened or migrated.
    pub fn open(state_dir: &Path) -> Result<TokenStore, TokenError> {
        Ok(TokenStore::from_conn(db::open(state_dir, MIGRATIONS)?))
    }

    /// An in-memory store, for tests.
    ///
    /// # Errors
    /// When the schema cannot be applied.
    pub fn in_memory() -> Result<TokenStore, TokenError> {
        Ok(TokenStore::from_conn(db::open_in_memory(MIGRATIONS)?))
    }

    fn from_conn(conn: Connection) -> TokenStore {
        TokenStore::over(Box::new(SqliteTokens {
            conn: Mutex::new(conn),
            cache: Mutex::new(Cache {
                version: -1,
                entries: HashMap::new(),
            }),
        }))
    }

    /// A store over another table (PostgreSQL for a fleet).
    pub fn over(table: Box<dyn TokenTable>) -> TokenStore {
        TokenStore { table }
    }

    /// Where the records live: `state.db` or `postgres`.
    pub fn kind(&self) -> &'static str {
        self.table.kind()
    }

    /// Why the table cannot be read, if it cannot.
    pub fn probe(&self) -> Option<String> {
        self.table.probe()
    }

    /// Issues a token: returns the secret (shown once, never stored) and its record.
    ///
    /// # Errors
    /// When the database write fails.
    pub fn issue(&self, t: NewToken, now: u64) -> Result<(String, TokenRecord), TokenError> {
        let secret = new_secret();
        let hash = hash_token(&secret);
        let record = TokenRecord {
            id: new_id(),
            issuer: t.issuer,
            subject: t.subject,
            kind: t.kind,
            agent: t.agent,
            groups: t.groups,
            servers: t.servers,
            reason: t.reason,
            created: now,
            expires: t.ttl_secs.map(|s| now.saturating_add(s)),
            revoked_at: None,
            revoked_by: None,
        };
        self.table.insert(&record, &hash)?;
        Ok((secret, record))
    }

    /// Every token, newest first.
    ///
    /// # Errors
    /// When the database read fails.
    pub fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        self.table.list()
    }

    /// Revokes one token by id; `false` when no active token has that id.
    ///
    /// # Errors
    /// When the database write fails.
    pub fn revoke(&self, id: &str, by: &str, now: u64) -> Result<bool, TokenError> {
        self.table.revoke(id, by, now)
    }

    /// Revokes every unrevoked token of `subject`; returns how many.
    ///
    /// # Errors
    /// When the database write fails.
    pub fn revoke_subject(&self, subject: &str, by: &str, now: u64) -> Result<usize, TokenError> {
        self.table.revoke_subject(subject, by, now)
    }

    /// The record of token `id`; `None` when no token has that id.
    ///
    /// # Errors
    /// When the database read fails.
    pub fn get(&self, id: &str) -> Result<Option<TokenRecord>, TokenError> {
        self.table.get(id)
    }

    /// The status of token `id` at `now`; `None` when no token has that id.
    ///
    /// # Errors
    /// When the database read fails.
    pub fn status_of(&self, id: &str, now: u64) -> Result<Option<Status>, TokenError> {
        Ok(self.get(id)?.map(|r| r.status(now)))
    }

    /// Checks a presented token at `now`: its record when it is active.
    ///
    /// # Errors
    /// [`TokenError::Unknown`] for anything that is not an issued token, `Expired`,
    /// `Revoked`, or a database failure (which refuses the caller: never fail open).
    pub fn verify(&self, presented: &str, now: u64) -> Result<Arc<TokenRecord>, TokenError> {
        if !looks_like_token(presented) {
            return Err(TokenError::Unknown);
        }
        let hash = hash_token(presented);
        let record = self.table.find(&hash)?.ok_or(TokenError::Unknown)?;
        match record.status(now) {
            Status::Active => Ok(record),
            Status::Expired => Err(TokenError::Expired),
            Status::Revoked => Err(TokenError::Revoked),
        }
    }
}

impl SqliteTokens {
    fn clear_cache(&self) {
        let mut c = lock(&self.cache);
        c.entries.clear();
        c.version = -1;
    }
}

impl TokenTable for SqliteTokens {
    fn insert(&self, record: &TokenRecord, hash: &[u8; 32]) -> Result<(), TokenError> {
        let groups = serde_json::to_string(&record.groups).unwrap_or_else(|_| "[]".into());
        let servers = record
            .servers
            .as_ref()
            .map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into()));
        lock(&self.conn).execute(
            "INSERT INTO tokens (id, hash, issuer, subject, kind, agent, groups, servers, reason,
                                 created, expires)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                record.id,
                &hash[..],
                record.issuer,
                record.subject,
                record.kind.as_str(),
                record.agent,
                groups,
                servers,
                record.reason,
                to_i64(record.created),
                record.expires.map(to_i64),
            ],
        )?;
        Ok(())
    }

    /// Every token, newest first.
    ///
    /// # Errors
    /// When the database read fails.
    fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM tokens ORDER BY created DESC, id"
        ))?;
        let rows = stmt.query_map([], row_to_record)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?.0);
        }
        Ok(out)
    }

    /// Revokes one token by id; `false` when no active token has that id.
    ///
    /// # Errors
    /// When the database write fails.
    fn revoke(&self, id: &str, by: &str, now: u64) -> Result<bool, TokenError> {
        let n = lock(&self.conn).execute(
            "UPDATE tokens SET revoked_at = ?1, revoked_by = ?2
             WHERE id = ?3 AND revoked_at IS NULL",
            params![to_i64(now), by, id],
        )?;
        self.clear_cache();
        Ok(n > 0)
    }

    /// Revokes every unrevoked token of `subject`; returns how many.
    ///
    /// # Errors
    /// When the database write fails.
    fn revoke_subject(&self, subject: &str, by: &str, now: u64) -> Result<usize, TokenError> {
        let n = lock(&self.conn).execute(
            "UPDATE tokens SET revoked_at = ?1, revoked_by = ?2
             WHERE subject = ?3 AND revoked_at IS NULL",
            params![to_i64(now), by, subject],
        )?;
        self.clear_cache();
        Ok(n)
    }

    fn get(&self, id: &str) -> Result<Option<TokenRecord>, TokenError> {
        let conn = lock(&self.conn);
        let found = conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"))?
            .query_row([id], row_to_record)
            .optional()?;
        Ok(found.map(|(r, _)| r))
    }

    fn find(&self, hash: &[u8; 32]) -> Result<Option<Arc<TokenRecord>>, TokenError> {
        let conn = lock(&self.conn);
        // Changes only when another connection commits: the CLI revoking or issuing.
        let version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        {
            let mut cache = lock(&self.cache);
            if cache.version != version {
                cache.entries.clear();
                cache.version = version;
            }
            if let Some(r) = cache.entries.get(hash) {
                return Ok(Some(r.clone()));
            }
        }
        let found = conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM tokens WHERE hash = ?1"))?
            .query_row([&hash[..]], row_to_record)
            .optional()?;
        drop(conn);
        let Some((record, stored)) = found else {
            return Ok(None);
        };
        // The row was found by its hash; compare again without an early exit anyway.
        if !same_hash(&stored, hash) {
            return Ok(None);
        }
        let record = Arc::new(record);
        let mut cache = lock(&self.cache);
        if cache.version == version {
            if cache.entries.len() >= CACHE_MAX {
                cache.entries.clear();
            }
            cache.entries.insert(*hash, record.clone());
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(subject: &str, servers: Option<&[&str]>, ttl: Option<u64>) -> NewToken {
        NewToken {
            issuer: "ops".into(),
            subject: subject.into(),
            kind: PrincipalKind::Human,
            agent: Some("claude-code".into()),
            groups: vec!["eng".into()],
            servers: servers.map(|s| s.iter().map(|x| (*x).to_owned()).collect()),
            reason: "TICKET-1".into(),
            ttl_secs: ttl,
        }
    }

    #[test]
    fn issued_tokens_verify_and_only_their_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let (secret, rec) = store
            .issue(
                new("alice@example.com", Some(&["github"]), Some(3600)),
                1000,
            )
            .unwrap();
        assert!(looks_like_token(&secret), "{secret}");
        assert!(rec.id.starts_with("tok_"));
        let got = store.verify(&secret, 1001).unwrap();
        assert_eq!(got.subject, "alice@example.com");
        assert_eq!(got.servers.as_deref(), Some(&["github".to_owned()][..]));
        assert!(got.allows_server("github") && !got.allows_server("stripe"));
        drop(store);
        let bytes = std::fs::read(dir.path().join(db::DB_FILE)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&secret[TOKEN_PREFIX.len()..]));
    }

    #[test]
    fn unknown_malformed_expired_and_revoked_tokens_are_refused() {
        let store = TokenStore::in_memory().unwrap();
        let (secret, rec) = store.issue(new("a", None, Some(10)), 100).unwrap();
        assert!(matches!(
            store.verify("nope", 100),
            Err(TokenError::Unknown)
        ));
        let mut other = secret.clone();
        other.pop();
        other.push(if secret.ends_with('A') { 'B' } else { 'A' });
        assert!(matches!(
            store.verify(&other, 100),
            Err(TokenError::Unknown)
        ));
        assert!(store.verify(&secret, 109).is_ok());
        assert!(matches!(
            store.verify(&secret, 110),
            Err(TokenError::Expired)
        ));
        assert!(store.revoke(&rec.id, "ops", 105).unwrap());
        assert!(!store.revoke(&rec.id, "ops", 106).unwrap());
        assert!(matches!(
            store.verify(&secret, 105),
            Err(TokenError::Revoked)
        ));
        let listed = store.list().unwrap();
        assert_eq!(listed[0].revoked_by.as_deref(), Some("ops"));
        assert_eq!(listed[0].status(105), Status::Revoked);
    }

    #[test]
    fn a_revocation_by_another_connection_is_seen_on_the_next_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let gateway = TokenStore::open(dir.path()).unwrap();
        let cli = TokenStore::open(dir.path()).unwrap();
        let (s1, _) = cli.issue(new("bob", None, None), 1).unwrap();
        let (s2, _) = cli.issue(new("bob", None, None), 1).unwrap();
        let (s3, _) = cli.issue(new("carol", None, None), 1).unwrap();
        // Warm the gateway's cache.
        assert!(gateway.verify(&s1, 2).is_ok());
        assert!(gateway.verify(&s1, 2).is_ok());
        assert_eq!(cli.revoke_subject("bob", "ops", 3).unwrap(), 2);
        assert!(matches!(gateway.verify(&s1, 4), Err(TokenError::Revoked)));
        assert!(matches!(gateway.verify(&s2, 4), Err(TokenError::Revoked)));
        assert!(gateway.verify(&s3, 4).is_ok());
    }
}
