//! One delegation: the consent record of a person letting an agent act for them.

use crate::decision::delegation::Delegated;
use crate::identity::time::rfc3339;
use mcpgate_compiler::{Principal, PrincipalKind};
use serde::Serialize;

/// A delegation as stored. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delegation {
    /// Public id (`dlg_` and 16 hex digits).
    pub id: String,
    /// The person's principal id (`principal.on_behalf_of`).
    pub person: String,
    pub person_kind: PrincipalKind,
    /// The groups the person's credential carried when they delegated.
    pub person_groups: Vec<String>,
    /// The gateway token the person delegated with: revoking it ends the delegation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_token: Option<String>,
    /// The agent (client) the delegation is for (`principal.id` of its calls).
    pub agent: String,
    /// `server.tool` names the agent may call.
    pub tools: Vec<String>,
    /// Why (free text or a ticket), readable as `delegation.reason`.
    pub reason: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub expires: u64,
    pub revoked_at: Option<u64>,
    pub revoked_by: Option<String>,
}

/// What creating a delegation needs.
#[derive(Clone, Debug)]
pub struct NewDelegation {
    /// The person as their credential declares them (no `principals.yaml` merge).
    pub person: Principal,
    pub parent_token: Option<String>,
    pub agent: String,
    pub tools: Vec<String>,
    pub reason: String,
    pub ttl_secs: u64,
}

/// Where a delegation stands at a given time.
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

impl Delegation {
    /// The delegation's status at `now` (its own: the person's token is checked apart).
    pub fn status(&self, now: u64) -> Status {
        if self.revoked_at.is_some() {
            Status::Revoked
        } else if now >= self.expires {
            Status::Expired
        } else {
            Status::Active
        }
    }

    /// What the decision core reads from a delegated call's principal.
    pub fn delegated(&self) -> Delegated {
        Delegated {
            id: self.id.clone(),
            person: Principal {
                id: self.person.clone(),
                kind: self.person_kind,
                groups: self.person_groups.clone(),
                attrs: serde_json::Map::new(),
            },
            agent: self.agent.clone(),
            reason: self.reason.clone(),
            expires: rfc3339(self.expires),
            tools: self.tools.clone(),
        }
    }
}
