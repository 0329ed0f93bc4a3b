//! Quota asks: the `limit` rules of the policy, enforced on calls the policy allows.
//!
//! Each `limit N per WINDOW` is a token bucket of `N` calls per (rule id, key) that refills
//! at `N` per window. The counts live behind [`QuotaStore`], implemented in `crate::quota`
//! (in process by default; a store shared by several replicas implements the same trait).

use super::outcome::Outcome;
use mcpgate_compiler::ir::{Limit, LimitKey};
use mcpgate_compiler::vm::{Decision, RuleIdx};
use mcpgate_compiler::{Program, Request};
use std::borrow::Cow;
use std::time::Duration;

/// One bucket to take a call from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask<'a> {
    /// The `limit` rule's id.
    pub rule: &'a str,
    /// What the rule counts separately: a principal id, an agent name, a server, a tool.
    pub key: Cow<'a, str>,
    pub limit: Limit,
}

/// Why a call was refused: the ask (by index) whose bucket is empty, and when it will
/// hold a call again; or a store that could not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub index: usize,
    pub retry_after: Duration,
    pub cause: Cause,
}

/// What refused a call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cause {
    /// The bucket of the ask at `index` has no call left.
    #[default]
    Empty,
    /// The store could not be read (a shared store unreachable): a counted call is refused,
    /// never let through uncounted.
    Unavailable,
}

/// Start of the denial text of a call refused because the quota store did not answer
/// (documented in docs/fleet.md).
pub const UNAVAILABLE: &str = "quota store unavailable";

/// Whether a store answers, for `/readyz` and `/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// `memory` or `redis`.
    pub store: &'static str,
    /// Why it does not answer; `None` when it does.
    pub error: Option<String>,
}

/// Where the counts live.
pub trait QuotaStore: Send + Sync + std::fmt::Debug {
    /// Takes one call from every bucket of `asks`, or from none: when one is empty, the
    /// calls already taken are given back and the refusal names that ask. A store that
    /// cannot answer refuses (never fails open).
    ///
    /// # Errors
    /// [`Refusal`] when some bucket has no call left.
    fn acquire(&self, asks: &[Ask<'_>]) -> Result<(), Refusal>;

    /// Asks the store whether it answers (a round trip for a shared store; it may block
    /// for the store's timeout, so call it off the async workers).
    fn probe(&self) -> Health {
        Health {
            store: "memory",
            error: None,
        }
    }
}

/// The key value a limit counts by for `request`.
pub fn key_of<'a>(key: LimitKey, request: &'a Request<'a>) -> Cow<'a, str> {
    match key {
        // An agent acting for a person counts apart from the same agent acting for another.
        LimitKey::Principal => super::delegation::caller_key(request.principal),
        LimitKey::Agent => Cow::Borrowed(request.agent.or(request.client_name).unwrap_or("-")),
        LimitKey::Server => Cow::Borrowed(request.target.server()),
        LimitKey::Tool => Cow::Owned(format!(
            "{}.{}",
            request.target.server(),
            request.target.name()
        )),
    }
}

/// Applies the limits of an allowed request: `Outcome::Allow` when every matching limit
/// has room (one call is taken from each), else a denial naming the limit with a retry
/// hint. Allocates nothing when no limit matches.
pub fn enforce<'a>(
    store: &dyn QuotaStore,
    program: &'a Program,
    decision: &Decision,
    request: &'a Request<'a>,
) -> Outcome {
    let mut limits = program.limits(decision, request).peekable();
    if limits.peek().is_none() {
        return Outcome::Allow;
    }
    let asks: Vec<(RuleIdx, Ask<'_>)> = limits
        .filter_map(|idx| {
            let info = program.rule(idx)?;
            let limit = info.limit?;
            Some((
                idx,
                Ask {
                    rule: info.id.as_str(),
                    key: key_of(limit.key, request),
                    limit,
                },
            ))
        })
        .collect();
    acquire(store, program, &asks)
}

/// A call's place in one bucket, kept while the call waits for approval: the `limit`
/// rule and the key it counts the call under, as decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub rule: RuleIdx,
    pub key: String,
}

/// The buckets a decided request would take a call from, kept to be taken later (a held
/// call counts when it runs, not while it waits).
pub fn claims(program: &Program, decision: &Decision, request: &Request<'_>) -> Vec<Claim> {
    program
        .limits(decision, request)
        .filter_map(|idx| {
            let limit = program.rule(idx)?.limit?;
            Some(Claim {
                rule: idx,
                key: key_of(limit.key, request).into_owned(),
            })
        })
        .collect()
}

/// Takes one call from each bucket `claims` name, under `program`'s limits: what
/// [`enforce`] does at decision time, for a call that runs later.
pub fn take(store: &dyn QuotaStore, program: &Program, claims: &[Claim]) -> Outcome {
    let asks: Vec<(RuleIdx, Ask<'_>)> = claims
        .iter()
        .filter_map(|c| {
            let info = program.rule(c.rule)?;
            Some((
                c.rule,
                Ask {
                    rule: info.id.as_str(),
                    key: Cow::Borrowed(c.key.as_str()),
                    limit: info.limit?,
                },
            ))
        })
        .collect();
    if asks.is_empty() {
        return Outcome::Allow;
    }
    acquire(store, program, &asks)
}

fn acquire(store: &dyn QuotaStore, program: &Program, asks: &[(RuleIdx, Ask<'_>)]) -> Outcome {
    let only: Vec<Ask<'_>> = asks.iter().map(|(_, a)| a.clone()).collect();
    match store.acquire(&only) {
        Ok(()) => Outcome::Allow,
        Err(refusal) => {
            let Some((idx, ask)) = asks.get(refusal.index) else {
                return Outcome::Deny("denied: quota exceeded".into());
            };
            match refusal.cause {
                Cause::Empty => Outcome::Deny(denial_text(program, *idx, ask, refusal.retry_after)),
                Cause::Unavailable => Outcome::Deny(unavailable_text(program, *idx, ask)),
            }
        }
    }
}

/// `denied by limit ID (file:line:col): quota store unavailable; ...`: the store holding
/// the counts did not answer, so the call cannot be counted.
pub fn unavailable_text(program: &Program, idx: RuleIdx, ask: &Ask<'_>) -> String {
    let source = program
        .rule(idx)
        .map(|r| format!(" ({})", r.source))
        .unwrap_or_default();
    format!(
        "denied by limit {}{source}: {UNAVAILABLE}; calls this limit counts are refused until it answers; retry in 1s",
        ask.rule
    )
}

/// `denied by limit ID (file:line:col): N per WINDOW per KEY; retry in Ns`.
pub fn denial_text(program: &Program, idx: RuleIdx, ask: &Ask<'_>, retry: Duration) -> String {
    let l = ask.limit;
    let source = program
        .rule(idx)
        .map(|r| format!(" ({})", r.source))
        .unwrap_or_default();
    let secs = retry.as_secs() + u64::from(retry.subsec_nanos() > 0);
    let mut text = format!(
        "denied by limit {}{source}: {} per {} per {} exceeded; retry in {}s",
        ask.rule,
        l.count,
        l.window.keyword(),
        l.key.keyword(),
        secs.max(1)
    );
    if let Some(reason) = program.rule(idx).and_then(|r| r.reason.as_ref()) {
        text.push_str(": ");
        text.push_str(reason);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::delegation::Delegated;
    use mcpgate_compiler::{Principal, PrincipalKind, Target, ToolAnnotations};
    use serde_json::Value;

    fn agent_of(person: &str) -> Principal {
        Delegated {
            id: "dlg_1".into(),
            person: Principal {
                id: person.into(),
                kind: PrincipalKind::Human,
                ..Principal::default()
            },
            agent: "claude-code".into(),
            reason: "r".into(),
            expires: "2030-01-01T00:00:00Z".into(),
            tools: vec![],
        }
        .principal()
    }

    #[test]
    fn the_same_agent_for_two_people_counts_as_two_principals() {
        let (ada, bob) = (agent_of("ada"), agent_of("bob"));
        let plain = Principal {
            id: "claude-code".into(),
            ..Principal::default()
        };
        let key = |p: &Principal| {
            let request = Request {
                principal: p,
                agent: Some("claude-code"),
                client_name: None,
                client_version: None,
                target: Target::Tool {
                    server: "s",
                    tool: "t",
                },
                args: &Value::Null,
                annotations: ToolAnnotations::default(),
            };
            key_of(LimitKey::Principal, &request).into_owned()
        };
        assert_ne!(key(&ada), key(&bob));
        assert_ne!(key(&ada), key(&plain));
        assert_eq!(key(&plain), "claude-code");
    }
}
