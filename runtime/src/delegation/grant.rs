//! The check made when a person opens a delegation: well-formed, and never wider than what
//! the compiled policy lets the person do.

use super::record::NewDelegation;
use crate::identity::{Authenticated, Credential};
use mcpgate_compiler::{Program, Target, visible};

/// The longest a delegation may live: agents get short-lived access.
pub const MAX_TTL_SECS: u64 = 30 * 86_400;

/// What a person asks for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The agent (client) name the delegation is for.
    pub agent: String,
    /// `server.tool` names.
    pub tools: Vec<String>,
    pub ttl_secs: u64,
    /// Free text or a ticket reference.
    pub reason: String,
}

/// Why a delegation was not created. The text is safe to show.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    Invalid(String),
    /// Only a person's own credential may delegate.
    #[error("{0}")]
    NotAllowed(String),
    /// Tools outside the person's rights.
    #[error("the delegation is wider than what `{person}` may do: {}", .tools.join("; "))]
    Wider { person: String, tools: Vec<String> },
    #[error("delegation store: {0}")]
    Store(String),
}

fn valid_agent(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':' | '/'))
}

/// Checks a request from `person` against `program`: the person must be authenticated by
/// a gateway token or OIDC, each tool a `server.tool` within their token's servers that
/// the policy lists to them (some `allow` or `approve` rule can apply, no unconditional
/// `deny` or `hide` does). Each call is still decided for the person too.
///
/// # Errors
/// [`GrantError::Invalid`] for a malformed request, [`GrantError::NotAllowed`] for a caller
/// that may not delegate, [`GrantError::Wider`] naming every tool beyond the person.
pub fn check(
    program: &Program,
    person: &Authenticated,
    req: Request,
) -> Result<NewDelegation, GrantError> {
    let parent_token = match &person.credential {
        Credential::Token { id } => Some(id.clone()),
        Credential::Oidc { .. } => None,
        Credential::Anonymous => {
            return Err(GrantError::NotAllowed(
                "an anonymous caller cannot delegate: authenticate with a gateway token or OIDC"
                    .into(),
            ));
        }
        Credential::Delegation { .. } => {
            return Err(GrantError::NotAllowed(
                "an agent acting under a delegation cannot delegate further".into(),
            ));
        }
    };
    let agent = req.agent.trim().to_owned();
    if !valid_agent(&agent) {
        return Err(GrantError::Invalid(format!(
            "invalid agent name `{agent}`: use letters, digits and `-_.@:/`, at most 128"
        )));
    }
    let reason = req.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(GrantError::Invalid(
            "the reason is empty: say why the agent acts for you (a ticket or a sentence)".into(),
        ));
    }
    if req.ttl_secs == 0 || req.ttl_secs > MAX_TTL_SECS {
        return Err(GrantError::Invalid(format!(
            "the lifetime must be between 1 second and {} days",
            MAX_TTL_SECS / 86_400
        )));
    }
    if req.tools.is_empty() {
        return Err(GrantError::Invalid(
            "no tools: name the `server.tool`s the agent may call".into(),
        ));
    }
    let principal = program.principal(&person.principal);
    let mut tools = Vec::new();
    let mut wider = Vec::new();
    for t in &req.tools {
        let t = t.trim();
        let Some((server, tool)) = t
            .split_once('.')
            .filter(|(s, n)| mcpgate_compiler::testing::valid_server(s) && !n.is_empty())
        else {
            return Err(GrantError::Invalid(format!(
                "`{t}` is not a tool: write `server.tool`, e.g. `github.get_me`"
            )));
        };
        if tool.contains('*') {
            return Err(GrantError::Invalid(format!(
                "`{t}`: name each tool; patterns are not delegated"
            )));
        }
        if !person.allows_server(server) {
            wider.push(format!("{t} (the token does not reach server `{server}`)"));
        } else if !visible(program, &principal, Target::Tool { server, tool }) {
            wider.push(format!("{t} (no rule lets `{}` call it)", principal.id));
        }
        if !tools.iter().any(|x| x == t) {
            tools.push(t.to_owned());
        }
    }
    if !wider.is_empty() {
        return Err(GrantError::Wider {
            person: principal.id.clone(),
            tools: wider,
        });
    }
    let mut declared = person.principal.clone();
    declared.strip_reserved();
    Ok(NewDelegation {
        person: declared,
        parent_token,
        agent,
        tools,
        reason,
        ttl_secs: req.ttl_secs,
    })
}
