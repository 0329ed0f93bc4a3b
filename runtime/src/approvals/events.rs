//! Every step of an approval, recorded in the audit log (and logged, target
//! `mcpgate::approvals`): requested, approved, denied, timed out, executed. The gateway
//! records them from the database, whoever made the change (itself, the HTTP API, or
//! `mcpgate approvals` in another process), so no step is missed across processes and
//! restarts.

use super::approval::{Approval, Status};
use serde_json::{Value, json};

/// One step in an approval's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Requested,
    Approved,
    Denied,
    TimedOut,
    /// The approved call was forwarded (by its held call, or by a retry using the grant).
    Executed,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Requested => "approval.requested",
            Step::Approved => "approval.approved",
            Step::Denied => "approval.denied",
            Step::TimedOut => "approval.timed_out",
            Step::Executed => "approval.executed",
        }
    }
}

/// The steps from the last recorded status to the current one (an approval moves
/// pending -> approved -> executed, or pending -> denied or expired).
pub fn steps(from: Option<Status>, to: Status) -> Vec<Step> {
    let order = |s: Option<Status>| match s {
        None => 0,
        Some(Status::Pending) => 1,
        Some(Status::Approved | Status::Denied | Status::Expired) => 2,
        Some(Status::Executed) => 3,
    };
    let mut out = Vec::new();
    let (a, b) = (order(from), order(Some(to)));
    if a < 1 && b >= 1 {
        out.push(Step::Requested);
    }
    if a < 2 && b >= 2 {
        out.push(match to {
            Status::Denied => Step::Denied,
            Status::Expired => Step::TimedOut,
            _ => Step::Approved,
        });
    }
    if a < 3 && b >= 3 {
        out.push(Step::Executed);
    }
    out
}

/// The audit record's data for one step: who asked, for what (argument keys; the
/// decision record linked by `request_id` holds the arguments under the audit log's
/// redaction), under which rule, and who decided.
pub fn data(step: Step, a: &Approval) -> Value {
    let keys: Vec<&str> = a
        .arguments
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut d = json!({
        "approval": a.id,
        "principal": a.principal.id,
        "principal_kind": a.principal.kind,
        "server": a.server,
        "tool": a.tool,
        "arg_keys": keys,
        "args_hash": a.args_hash,
        "rule": a.rule,
        "source": a.rule_source,
        "approvers": a.approvers,
        "program": a.program,
    });
    if matches!(step, Step::Approved | Step::Denied) {
        d["decided_by"] = json!(a.decided_by);
        d["via"] = json!(a.decided_via);
        d["operator"] = json!(a.operator);
        d["note"] = json!(a.note);
    }
    if step == Step::Requested {
        d["expires_ms"] = json!(a.expires_ms);
    }
    d
}

/// Logs one step.
pub fn log(step: Step, a: &Approval) {
    tracing::info!(
        target: "mcpgate::approvals",
        event = step.as_str(),
        approval = %a.id,
        principal = %a.principal.id,
        server = %a.server,
        tool = %a.tool,
        rule = %a.rule,
        decided_by = a.decided_by.as_deref().unwrap_or("-"),
        via = a.decided_via.as_deref().unwrap_or("-"),
        operator = a.operator.as_deref().unwrap_or("-"),
        "{}",
        step.as_str()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transition_names_its_steps() {
        assert_eq!(steps(None, Status::Pending), [Step::Requested]);
        assert_eq!(
            steps(None, Status::Executed),
            [Step::Requested, Step::Approved, Step::Executed]
        );
        assert_eq!(
            steps(Some(Status::Pending), Status::Expired),
            [Step::TimedOut]
        );
        assert_eq!(steps(Some(Status::Pending), Status::Denied), [Step::Denied]);
        assert_eq!(
            steps(Some(Status::Approved), Status::Executed),
            [Step::Executed]
        );
        assert!(steps(Some(Status::Denied), Status::Denied).is_empty());
    }
}
