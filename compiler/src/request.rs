//! What a decision is made about: a borrowed view of one MCP request, and the verdict.
//! The gateway builds a [`Request`] from the JSON-RPC message without copying arguments.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The principal attribute holding the delegating person's id for a call made under a
/// delegation (`principal.on_behalf_of`). Reserved: only the gateway sets it, and it removes
/// it from every credential's own attributes.
pub const ATTR_ON_BEHALF_OF: &str = "on_behalf_of";
/// The principal attribute holding the delegation of a delegated call (`delegation.id`,
/// `delegation.reason`, `delegation.expires`). Reserved like [`ATTR_ON_BEHALF_OF`].
pub const ATTR_DELEGATION: &str = "delegation";

/// Who is calling. Owned by the session; requests borrow it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    pub id: String,
    #[serde(default)]
    pub kind: PrincipalKind,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub attrs: Map<String, Value>,
}

impl Principal {
    /// Removes the attributes only the gateway may set ([`ATTR_ON_BEHALF_OF`],
    /// [`ATTR_DELEGATION`]), so no credential can claim to act for someone.
    pub fn strip_reserved(&mut self) {
        self.attrs.remove(ATTR_ON_BEHALF_OF);
        self.attrs.remove(ATTR_DELEGATION);
    }

    /// The person a delegated principal acts for.
    pub fn on_behalf_of(&self) -> Option<&str> {
        self.attrs.get(ATTR_ON_BEHALF_OF).and_then(Value::as_str)
    }

    /// The id of the delegation a delegated principal acts under (`dlg_...`).
    pub fn delegation_id(&self) -> Option<&str> {
        self.attrs.get(ATTR_DELEGATION)?.get("id")?.as_str()
    }

    /// The principal of a gateway without identity configured.
    pub fn anonymous() -> Self {
        Principal {
            id: "anonymous".into(),
            kind: PrincipalKind::Anonymous,
            ..Default::default()
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    Human,
    Agent,
    Service,
    #[default]
    Anonymous,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Human => "human",
            PrincipalKind::Agent => "agent",
            PrincipalKind::Service => "service",
            PrincipalKind::Anonymous => "anonymous",
        }
    }
}

/// What is being asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target<'a> {
    Tool { server: &'a str, tool: &'a str },
    Prompt { server: &'a str, name: &'a str },
    Resource { server: &'a str, uri: &'a str },
}

impl Target<'_> {
    pub fn server(&self) -> &str {
        match self {
            Target::Tool { server, .. }
            | Target::Prompt { server, .. }
            | Target::Resource { server, .. } => server,
        }
    }

    /// The tool name, prompt name or resource URI.
    pub fn name(&self) -> &str {
        match self {
            Target::Tool { tool, .. } => tool,
            Target::Prompt { name, .. } => name,
            Target::Resource { uri, .. } => uri,
        }
    }
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tool { server, tool } => write!(f, "{server}.{tool}"),
            Target::Prompt { server, name } => write!(f, "prompt:{server}.{name}"),
            Target::Resource { server, uri } => write!(f, "resource:{server}:{uri}"),
        }
    }
}

/// Pinned tool annotations; `None` = unknown (a condition on it is then a missing path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ToolAnnotations {
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
    pub idempotent: Option<bool>,
    pub open_world: Option<bool>,
}

/// One request to decide. Everything is borrowed: building one allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub principal: &'a Principal,
    pub agent: Option<&'a str>,
    pub client_name: Option<&'a str>,
    pub client_version: Option<&'a str>,
    pub target: Target<'a>,
    /// The call's `arguments` (`Value::Null` when absent).
    pub args: &'a Value,
    pub annotations: ToolAnnotations,
}

/// The outcome before quotas: what the policy says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
    Hide,
    Approve,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Hide => "hide",
            Verdict::Approve => "approve",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        Some(match s {
            "allow" => Verdict::Allow,
            "deny" => Verdict::Deny,
            "hide" => Verdict::Hide,
            "approve" => Verdict::Approve,
            _ => return None,
        })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_attributes_are_removed_and_others_kept() {
        let mut p: Principal = serde_json::from_value(serde_json::json!({
            "id": "eve", "kind": "human",
            "attrs": {"on_behalf_of": "ada", "delegation": {"reason": "x"}, "team": "red"}
        }))
        .unwrap();
        assert_eq!(p.on_behalf_of(), Some("ada"));
        p.strip_reserved();
        assert_eq!(p.on_behalf_of(), None);
        assert_eq!(p.attrs.keys().collect::<Vec<_>>(), ["team"]);
    }
}
