//! An approval as the gateway, the CLI and the approvers' API see it: who asked for which
//! call, where it stands, and who decided it. Stored by [`super::store::Store`].

use mcpgate_compiler::Principal;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Where an approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for a decision.
    Pending,
    /// Approved; the call has not run yet (its caller may retry it, once, until
    /// `grant_until_ms`).
    Approved,
    Denied,
    /// Nobody decided in time.
    Expired,
    /// Approved and the call was forwarded.
    Executed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Executed => "executed",
        }
    }

    pub(super) fn parse(s: &str) -> Status {
        match s {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "denied" => Status::Denied,
            "executed" => Status::Executed,
            // The CHECK constraint admits nothing else; an unknown value is never approved.
            _ => Status::Expired,
        }
    }
}

/// Who asked for the held call.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Requester {
    pub id: String,
    pub kind: String,
    pub groups: Vec<String>,
}

/// One approval, as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Approval {
    pub id: String,
    pub status: Status,
    pub server: String,
    pub tool: String,
    pub arguments: Value,
    /// SHA-256 of the arguments' canonical JSON: with the principal, server and tool, the
    /// key a retry is matched by.
    pub args_hash: String,
    pub principal: Requester,
    pub agent: Option<String>,
    pub client: Option<String>,
    /// The gateway session the call came in on.
    pub session: String,
    /// The `approve` rule that held the call, its source location and reason.
    pub rule: String,
    pub rule_source: String,
    pub reason: Option<String>,
    /// The groups whose members may decide.
    pub approvers: Vec<String>,
    /// Hash of the program that decided.
    pub program: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub decided_ms: Option<i64>,
    pub decided_by: Option<String>,
    /// `cli` or `http`.
    pub decided_via: Option<String>,
    /// The OS user who ran `mcpgate approvals` (CLI decisions).
    pub operator: Option<String>,
    /// The denial's reason, or an approver's comment.
    pub note: Option<String>,
    pub grant_until_ms: Option<i64>,
    pub executed_ms: Option<i64>,
    /// The audit log's id of the held request (its decision record).
    pub request_id: Option<String>,
    /// The last status written to the audit log.
    #[serde(skip)]
    pub logged: Option<Status>,
    /// The person an agent acted for under a delegation (who may then not approve it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
}

/// What a new approval is made of.
#[derive(Clone, Debug)]
pub struct NewApproval {
    pub server: String,
    pub tool: String,
    pub arguments: Value,
    pub principal: Principal,
    pub agent: Option<String>,
    pub client: Option<String>,
    pub session: String,
    pub rule: String,
    pub rule_source: String,
    pub reason: Option<String>,
    pub approvers: Vec<String>,
    pub program: String,
    pub timeout: Duration,
    /// How long an approval not delivered to its caller stays usable by a retry.
    pub grant: Duration,
    /// The audit log's id of the held request.
    pub request_id: Option<String>,
    /// The person an agent acts for under a delegation.
    pub on_behalf_of: Option<String>,
}

/// A held call's identity across connections and restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallKey {
    pub principal: String,
    /// The person an agent acts for: the same agent acting for another is another caller.
    pub on_behalf_of: Option<String>,
    pub server: String,
    pub tool: String,
    pub args_hash: String,
}

/// A decision on a pending approval, already authorized.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub approve: bool,
    /// The approver's principal id (or the CLI's `--as`).
    pub by: String,
    /// `cli` or `http`.
    pub via: &'static str,
    pub operator: Option<String>,
    pub note: Option<String>,
}

/// Why a decision was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no approval `{0}`")]
    NotFound(String),
    #[error("approval `{id}` is already {}", status.as_str())]
    Closed { id: String, status: Status },
    #[error("approval `{0}` timed out")]
    TimedOut(String),
    #[error("state database: {0}")]
    Db(#[from] StoreError),
}

impl From<rusqlite::Error> for DecideError {
    fn from(e: rusqlite::Error) -> Self {
        DecideError::Db(e.into())
    }
}

/// A failure of the approvals table (`state.db` or PostgreSQL), as text: it never holds a
/// password or an argument value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl Approval {
    /// The key a retry of this call is matched by.
    pub fn key(&self) -> CallKey {
        CallKey {
            principal: self.principal.id.clone(),
            on_behalf_of: self.on_behalf_of.clone(),
            server: self.server.clone(),
            tool: self.tool.clone(),
            args_hash: self.args_hash.clone(),
        }
    }
}

/// SHA-256 (hex) of the canonical JSON of a call's arguments.
pub fn args_hash(arguments: &Value) -> String {
    // The audit log's encoding: keys sorted at every level, so equal arguments hash equally.
    let text = crate::audit::record::canonical(arguments);
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
