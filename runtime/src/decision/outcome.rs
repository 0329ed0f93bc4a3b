//! The verdict's effect on one request ([`Outcome`]: forward, refuse, answer as unknown,
//! hold for approval) and the JSON-RPC answers a refused request gets.

use crate::jsonrpc;
use serde_json::{Value, json};

/// What the gateway does with a request after the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Forward it.
    Allow,
    /// Refuse it, with a message naming the rule.
    Deny(String),
    /// Answer as if the tool, prompt or resource did not exist.
    Unknown,
    /// Hold it for a person's decision (`approve`).
    Approve(Box<Hold>),
}

/// What an `approve` verdict holds a call for: the rule and who may decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The target as messages name it (`demo.send_payment`).
    pub target: String,
    pub rule: String,
    /// `file:line:col` of the rule.
    pub source: String,
    pub reason: Option<String>,
    /// The rule's `by` groups.
    pub groups: Vec<String>,
}

impl Hold {
    /// The refusal when the call cannot be held: approvals are off, or the target is a
    /// prompt or resource (only tool calls are held).
    pub fn refusal(&self, why: &str) -> String {
        let approvers = if self.groups.is_empty() {
            "an approver".to_owned()
        } else {
            self.groups.join(", ")
        };
        format!(
            "{} requires approval by {approvers} (rule {}); {why}",
            self.target, self.rule
        )
    }
}

/// The answer to a refused `tools/call`: a tool result the agent can read.
pub fn denied_tool_result(id: Value, text: &str) -> Value {
    jsonrpc::result(
        id,
        json!({"content": [{"type": "text", "text": text}], "isError": true}),
    )
}

/// The answer for a tool the caller may not see: what an unknown tool gets.
pub fn unknown_tool(id: Value, name: &str) -> Value {
    jsonrpc::error(
        id,
        jsonrpc::INVALID_PARAMS,
        &format!("Unknown tool: {name}"),
    )
}

/// The answer for a prompt the caller may not see.
pub fn unknown_prompt(id: Value, name: &str) -> Value {
    jsonrpc::error(
        id,
        jsonrpc::INVALID_PARAMS,
        &format!("Unknown prompt: {name}"),
    )
}

/// The answer for a resource the caller may not see.
pub fn unknown_resource(id: Value, uri: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {
        "code": jsonrpc::RESOURCE_NOT_FOUND, "message": "Resource not found", "data": {"uri": uri}
    }})
}

/// The answer to a refused prompt or resource request (MCP has no error result there).
pub fn denied_error(id: Value, text: &str) -> Value {
    jsonrpc::error(id, jsonrpc::DENIED, text)
}
