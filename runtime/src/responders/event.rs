//! The events the gateway hands to the responders, and what a responder that fired says
//! (in notifications and the log).

use serde::Serialize;
use serde_json::Value;

/// What happened, as the gateway reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A tool call was decided; `refused` when it was denied (by a rule, the default deny
    /// or the lock) or answered as unknown.
    Decided { refused: bool },
    /// A person refused a held call.
    ApprovalDenied,
    /// The lock held a call because the tool's definition changed since review.
    Held,
}

/// One event of the decision stream.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    pub kind: EventKind,
    /// The principal id.
    pub principal: &'a str,
    pub session: &'a str,
    /// The delegation the call was made under, when the caller acts for a person.
    pub delegation: Option<&'a str>,
    /// `server.tool`, when a tool is concerned.
    pub tool: Option<&'a str>,
}

/// A responder that fired, as notifications and the audit describe it.
#[derive(Clone, Debug, Serialize)]
pub struct Fired {
    pub responder: String,
    pub source: String,
    /// `5 denials within 1m by principal`.
    pub trigger: String,
    pub principal: String,
    pub session: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegation: Option<String>,
    pub tool: Option<String>,
    /// What was done: `paused principal `bob` for 15m`.
    pub actions: Vec<String>,
    pub time: String,
}

impl Fired {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// One line for a chat message or an incident title.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "mcpgate responder `{}` fired: {} (principal `{}`",
            self.responder, self.trigger, self.principal
        );
        if let Some(t) = &self.tool {
            s.push_str(&format!(", tool `{t}`"));
        }
        s.push(')');
        if !self.actions.is_empty() {
            s.push_str("; ");
            s.push_str(&self.actions.join("; "));
        }
        s
    }

    /// Who it is about: `principal:ID`.
    pub fn subject(&self) -> String {
        format!("principal:{}", self.principal)
    }
}
