//! Calls made by an agent under a person's delegation. The gateway gives such a caller the
//! agent as principal and two reserved attributes: `on_behalf_of` (the person's id) and
//! `delegation` (its id, reason, expiry, scope and the person's kind and groups). A call goes
//! through only if the policy allows it for that principal, the tool is in the delegation's
//! scope, and the policy allows it for the person too: a delegation never reaches wider
//! than its person, even when the policy changes after it was made.

use super::lock::Refusal;
use mcpgate_compiler::{
    ATTR_DELEGATION, ATTR_ON_BEHALF_OF, Principal, PrincipalKind, Program, Request, Target,
    Verdict, evaluate,
};
use serde_json::{Map, Value, json};

/// Rule id of a delegated call refused by its delegation (scope, or the person's rules).
pub const RULE_DELEGATION: &str = "delegation";

/// What a delegated principal carries, as the gateway set it.
#[derive(Clone, Debug, PartialEq)]
pub struct Delegated {
    /// The delegation's id (`dlg_...`).
    pub id: String,
    /// The person the agent acts for.
    pub person: Principal,
    pub agent: String,
    pub reason: String,
    /// RFC 3339 UTC.
    pub expires: String,
    /// `server.tool` names the agent may call.
    pub tools: Vec<String>,
}

impl Delegated {
    /// The principal a delegated call is decided as: the agent, with the person's declared
    /// groups, `agent`, `on_behalf_of` and `delegation` attributes.
    pub fn principal(&self) -> Principal {
        let mut attrs = Map::new();
        attrs.insert("agent".into(), json!(self.agent));
        attrs.insert(ATTR_ON_BEHALF_OF.into(), json!(self.person.id));
        attrs.insert(
            ATTR_DELEGATION.into(),
            json!({
                "id": self.id,
                "reason": self.reason,
                "expires": self.expires,
                "tools": self.tools,
                "person": {"kind": self.person.kind, "groups": self.person.groups},
            }),
        );
        Principal {
            id: self.agent.clone(),
            kind: PrincipalKind::Agent,
            groups: self.person.groups.clone(),
            attrs,
        }
    }

    /// Reads the delegation back from a principal the gateway built with
    /// [`Delegated::principal`]. `None` for a principal not acting for anyone; `Some(Err)`
    /// when the attributes are there but unreadable (the call is then refused).
    pub fn of(principal: &Principal) -> Option<Result<Delegated, ()>> {
        let person_id = principal.attrs.get(ATTR_ON_BEHALF_OF)?;
        Some(read(principal, person_id).ok_or(()))
    }

    /// Whether `target` is in the delegation's scope (tools only).
    pub fn covers(&self, target: Target<'_>) -> bool {
        match target {
            Target::Tool { server, tool } => self.tools.iter().any(|t| {
                t.split_once('.')
                    .is_some_and(|(s, n)| s == server && n == tool)
            }),
            Target::Prompt { .. } | Target::Resource { .. } => false,
        }
    }
}

fn read(principal: &Principal, person_id: &Value) -> Option<Delegated> {
    let d = principal.attrs.get(ATTR_DELEGATION)?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let strings = |v: Option<&Value>| -> Option<Vec<String>> {
        v?.as_array()?
            .iter()
            .map(|x| x.as_str().map(str::to_owned))
            .collect()
    };
    let person = d.get("person")?;
    Some(Delegated {
        id: text(d.get("id"))?,
        person: Principal {
            id: person_id.as_str()?.to_owned(),
            kind: serde_json::from_value(person.get("kind")?.clone()).ok()?,
            groups: strings(person.get("groups"))?,
            attrs: Map::new(),
        },
        agent: text(principal.attrs.get("agent"))?,
        reason: text(d.get("reason"))?,
        expires: text(d.get("expires"))?,
        tools: strings(d.get("tools"))?,
    })
}

/// Who a caller is for what it owns or counts (quota buckets, approvals it may reuse,
/// tasks it may read): its id, and for an agent acting under a delegation its id with the
/// person's, so Ada's `claude-code` never shares with Bob's.
pub fn caller_key(principal: &Principal) -> std::borrow::Cow<'_, str> {
    match principal.on_behalf_of() {
        Some(person) => std::borrow::Cow::Owned(format!("{}\u{1f}{person}", principal.id)),
        None => std::borrow::Cow::Borrowed(principal.id.as_str()),
    }
}

/// Whether a caller may see `target` in a list: always for a principal acting for no one;
/// for a delegated one, only the tools of its scope.
pub fn lists(principal: &Principal, target: Target<'_>) -> bool {
    match Delegated::of(principal) {
        None => true,
        Some(Ok(d)) => d.covers(target),
        Some(Err(())) => false,
    }
}

/// The refusal of a delegated call whose policy verdict (`verdict`, for the agent) would
/// let it through: outside the scope, or not allowed to the person by the same program.
/// `None` for a caller acting for no one, or a call the delegation permits.
pub fn refusal(program: &Program, request: &Request<'_>, verdict: Verdict) -> Option<Refusal> {
    let d = match Delegated::of(request.principal)? {
        Ok(d) => d,
        Err(()) => {
            return Some(refuse(
                "denied: the delegation of this session cannot be read".into(),
            ));
        }
    };
    let target = request.target;
    if !d.covers(target) {
        return Some(refuse(format!(
            "denied: {target} is outside delegation {} (it allows {})",
            d.id,
            if d.tools.is_empty() {
                "nothing".to_owned()
            } else {
                d.tools.join(", ")
            }
        )));
    }
    let person = program.principal(&d.person);
    let as_person = Request {
        principal: &person,
        ..*request
    };
    let theirs = evaluate(program, &as_person);
    let passes = match theirs.verdict {
        Verdict::Allow => true,
        // The person's call would wait for approval: so does the agent's, or it is refused.
        Verdict::Approve => verdict == Verdict::Approve,
        Verdict::Deny | Verdict::Hide => false,
    };
    if passes {
        return None;
    }
    Some(refuse(format!(
        "denied: `{}` may not make this call ({} by rule {}), so delegation {} may not either",
        d.person.id,
        theirs.verdict,
        program.rule_id(theirs.rule),
        d.id
    )))
}

fn refuse(message: String) -> Refusal {
    Refusal {
        rule: RULE_DELEGATION,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Delegated {
        Delegated {
            id: "dlg_1".into(),
            person: Principal {
                id: "ada@example.com".into(),
                kind: PrincipalKind::Human,
                groups: vec!["eng".into()],
                attrs: Map::new(),
            },
            agent: "claude-code".into(),
            reason: "TICKET-9".into(),
            expires: "2030-01-01T00:00:00Z".into(),
            tools: vec!["github.get_me".into()],
        }
    }

    #[test]
    fn a_delegation_round_trips_through_its_principal_and_covers_only_its_tools() {
        let d = sample();
        let p = d.principal();
        assert_eq!(p.id, "claude-code");
        assert_eq!(p.kind, PrincipalKind::Agent);
        assert_eq!(p.on_behalf_of(), Some("ada@example.com"));
        assert_eq!(Delegated::of(&p), Some(Ok(d.clone())));
        let get = Target::Tool {
            server: "github",
            tool: "get_me",
        };
        let other = Target::Tool {
            server: "github",
            tool: "delete_repo",
        };
        assert!(d.covers(get) && lists(&p, get));
        assert!(!d.covers(other) && !lists(&p, other));
        assert!(lists(&Principal::anonymous(), other));
    }

    #[test]
    fn unreadable_delegation_attributes_list_nothing() {
        let mut p = sample().principal();
        p.attrs.insert(ATTR_DELEGATION.into(), json!("garbage"));
        assert_eq!(Delegated::of(&p), Some(Err(())));
        let t = Target::Tool {
            server: "github",
            tool: "get_me",
        };
        assert!(!lists(&p, t));
    }
}
