//! Who owns which upstream task: (server, upstream task id) → principal, with the tool and
//! arguments of the call that created it. The gateway records a task when a task-augmented
//! call creates one and reads it back before relaying `tasks/get`, `tasks/result`,
//! `tasks/cancel` or filtering `tasks/list`. Two stores keep it: `state.db` (one gateway, or
//! replicas on one state dir) and PostgreSQL (`state.postgres`, every replica of a fleet).
//! Both check ownership the same way: a task is the caller's only when its principal key
//! (a delegated agent's key names the agent and the person) is the one recorded.

pub mod postgres;
mod sqlite;

pub use sqlite::{MIGRATIONS, SqliteTasks};

use serde_json::Value;
use std::collections::HashSet;

/// How long a task stays reachable when its upstream gives no `ttl`.
pub const DEFAULT_TTL_MS: u64 = 24 * 3600 * 1000;
/// The longest a task stays reachable, whatever `ttl` the upstream gives.
pub const MAX_TTL_MS: u64 = 7 * 24 * 3600 * 1000;
/// Most live tasks one principal owns; beyond it, its oldest are forgotten.
pub const MAX_PER_PRINCIPAL: u64 = 1_000;
/// Most tasks in the table; beyond it, the oldest are forgotten.
pub const MAX_TASKS: u64 = 100_000;
/// The table-wide bound is enforced once every this many records (per process).
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

impl NewTask<'_> {
    /// When the record stops being reachable, recorded at `now_ms`.
    fn expires(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.ttl_ms.unwrap_or(DEFAULT_TTL_MS).min(MAX_TTL_MS))
    }
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

/// The store could not be read or written: the caller is refused, never served unchecked.
#[derive(Debug, thiserror::Error)]
pub enum TaskStoreError {
    #[error("task store: {0}")]
    Local(#[from] rusqlite::Error),
    #[error("task store: {0}")]
    Shared(#[from] crate::state::postgres::PgError),
}

/// Keeps task owners; the gateway holds one (`state.db`'s, or the fleet's PostgreSQL).
pub trait TaskStore: Send + Sync + std::fmt::Debug {
    /// Records `task` as owned by its principal; an earlier record of the same upstream
    /// task is replaced. Drops expired entries and keeps the table within its bounds.
    ///
    /// # Errors
    /// When the store cannot be written.
    fn record(&self, task: &NewTask<'_>, now_ms: u64) -> Result<(), TaskStoreError>;

    /// The task `task_id` of `server` if `principal` owns it and it has not expired.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn owned(
        &self,
        principal: &str,
        server: &str,
        task_id: &str,
        now_ms: u64,
    ) -> Result<Option<Owned>, TaskStoreError>;

    /// The ids of the live tasks `principal` owns on `server` (at most
    /// [`MAX_PER_PRINCIPAL`]).
    ///
    /// # Errors
    /// When the store cannot be read.
    fn owned_ids(
        &self,
        principal: &str,
        server: &str,
        now_ms: u64,
    ) -> Result<HashSet<String>, TaskStoreError>;

    /// `"sqlite"` or `"postgres"`, for `/status`.
    fn kind(&self) -> &'static str;

    /// Whether a shared store answers: the error when it does not (`/readyz`). The
    /// embedded store is not probed.
    fn probe(&self) -> Option<String> {
        None
    }

    /// The first of `servers` (in order) on which `principal` owns `task_id`.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn find(
        &self,
        principal: &str,
        task_id: &str,
        servers: &mut dyn Iterator<Item = &String>,
        now_ms: u64,
    ) -> Result<Option<Owned>, TaskStoreError> {
        for s in servers {
            if let Some(owned) = self.owned(principal, s, task_id, now_ms)? {
                return Ok(Some(owned));
            }
        }
        Ok(None)
    }
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

/// The arguments as stored; a value that cannot be read back is `null` (redaction
/// conditions then see no arguments, as for a call without any).
fn arguments_from(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}
