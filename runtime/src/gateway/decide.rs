//! Decisions: ask the program about one request, log the decision, and turn the verdict
//! into what the client sees.

use crate::gateway::LoadedProgram;
use crate::jsonrpc;
use crate::lock::gate::Refusal;
use crate::session::Session;
use mcpgate_compiler::vm::RuleIdx;
use mcpgate_compiler::{Principal, Request, Target, ToolAnnotations, Verdict, evaluate, visible};
use serde_json::{Value, json};
use std::time::Instant;

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

/// What the program is asked about a session's request.
pub fn request<'a>(
    principal: &'a Principal,
    session: &'a Session,
    target: Target<'a>,
    args: &'a Value,
    annotations: ToolAnnotations,
) -> Request<'a> {
    Request {
        principal,
        agent: crate::audit::decision::agent_of(principal),
        client_name: session.client_name.as_deref(),
        client_version: session.client_version.as_deref(),
        target,
        args,
        annotations,
    }
}

/// Takes one call from every `limit` matching an approved tool call when it is about to
/// run: approval does not bypass a budget, and a call waiting for a person takes nothing
/// while it waits. `Outcome::Allow` when every bucket had room.
pub fn take_quota_for_approved(
    loaded: &LoadedProgram,
    session: &Session,
    server: &str,
    tool: &str,
    args: &Value,
) -> Outcome {
    let principal = loaded.principal(&session.principal);
    let annotations = loaded
        .pins
        .enforced_annotations(server, tool)
        .unwrap_or_else(|| session.annotations(server, tool));
    let request = request(
        &principal,
        session,
        Target::Tool { server, tool },
        args,
        annotations,
    );
    let decision = evaluate(&loaded.program, &request);
    crate::quota::enforce(loaded.quotas.as_ref(), &loaded.program, &decision, &request)
}

/// Decides one request and logs the decision (argument keys only, never values). A
/// `refusal` from the lock (a tool held since review, or arguments that fail the pinned
/// schema) turns an allow or approve into a denial decided by its rule (`lock`, `schema`).
pub fn decide(
    loaded: &LoadedProgram,
    session: &Session,
    target: Target<'_>,
    args: &Value,
    annotations: ToolAnnotations,
    refusal: Option<&Refusal>,
) -> Outcome {
    let program = &loaded.program;
    let start = Instant::now();
    let principal = loaded.principal(&session.principal);
    let request = request(&principal, session, target, args, annotations);
    let decision = evaluate(program, &request);
    // What a caller may not see in a list answers as unknown, whatever the verdict
    // (LANGUAGE.md): an unconditional deny hides like `hide` does.
    let shown = visible(program, &principal, target);
    // The lock decides only what the policy would let through.
    let refused =
        refusal.filter(|_| shown && matches!(decision.verdict, Verdict::Allow | Verdict::Approve));
    let outcome = match decision.verdict {
        _ if !shown => Outcome::Unknown,
        _ if refused.is_some() => {
            Outcome::Deny(refused.map(|r| r.message.clone()).unwrap_or_default())
        }
        // Limits count allowed calls only.
        Verdict::Allow => {
            crate::quota::enforce(loaded.quotas.as_ref(), program, &decision, &request)
        }
        Verdict::Hide => Outcome::Unknown,
        Verdict::Deny if decision.rule == RuleIdx::DEFAULT => Outcome::Deny(format!(
            "denied: no rule allows {target} for `{}` (default deny)",
            session.principal.id
        )),
        Verdict::Deny => {
            let mut text = match program.rule(decision.rule) {
                Some(r) => format!("denied by rule {} ({})", r.id, r.source),
                None => format!("denied by rule {}", program.rule_id(decision.rule)),
            };
            if let Some(reason) = program.rule(decision.rule).and_then(|r| r.reason.as_ref()) {
                text.push_str(": ");
                text.push_str(reason);
            }
            Outcome::Deny(text)
        }
        Verdict::Approve => {
            let rule = program.rule(decision.rule);
            Outcome::Approve(Box::new(Hold {
                target: target.to_string(),
                rule: program.rule_id(decision.rule).to_owned(),
                source: rule.map(|r| r.source.to_string()).unwrap_or_default(),
                reason: rule.and_then(|r| r.reason.clone()),
                groups: rule.map(|r| r.approvers.clone()).unwrap_or_default(),
            }))
        }
    };
    let keys: Vec<&str> = args
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let (verdict, rule) = match refused {
        Some(r) => (Verdict::Deny, r.rule),
        None => (decision.verdict, program.rule_id(decision.rule)),
    };
    crate::gitops::metrics::count_decision(verdict.as_str());
    tracing::info!(
        target: "mcpgate::decision",
        principal = %session.principal.id,
        session = %session.sid,
        server = target.server(),
        name = target.name(),
        verdict = verdict.as_str(),
        rule,
        undecided = decision.undecided,
        listed = shown,
        program = %loaded.hash,
        commit = program.commit().unwrap_or_default(),
        arg_keys = ?keys,
        latency_ns = start.elapsed().as_nanos() as u64,
        "decision"
    );
    outcome
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

/// Tool annotations as a tool definition reports them.
pub fn annotations_of(tool: &Value) -> ToolAnnotations {
    let a = tool.get("annotations");
    let flag = |k: &str| a.and_then(|a| a.get(k)).and_then(Value::as_bool);
    ToolAnnotations {
        read_only: flag("readOnlyHint"),
        destructive: flag("destructiveHint"),
        idempotent: flag("idempotentHint"),
        open_world: flag("openWorldHint"),
    }
}

/// Which kind of list a result holds, and how its items are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    /// The list method's kind, if `method` is one.
    pub fn of_method(method: &str) -> Option<ListKind> {
        Some(match method {
            "tools/list" => ListKind::Tools,
            "prompts/list" => ListKind::Prompts,
            "resources/list" => ListKind::Resources,
            "resources/templates/list" => ListKind::Templates,
            _ => return None,
        })
    }

    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::Templates => "resources/templates/list",
        }
    }

    /// The result's array field.
    pub fn key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::Templates => "resourceTemplates",
        }
    }

    /// The item's name field.
    pub fn name_field(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::Templates => "uriTemplate",
        }
    }

    /// Whether `/mcp` prefixes names with the server (tools, prompts) or keeps them (URIs).
    pub fn namespaced(self) -> bool {
        matches!(self, ListKind::Tools | ListKind::Prompts)
    }

    pub fn target<'a>(self, server: &'a str, name: &'a str) -> Target<'a> {
        match self {
            ListKind::Tools => Target::Tool { server, tool: name },
            ListKind::Prompts => Target::Prompt { server, name },
            ListKind::Resources | ListKind::Templates => Target::Resource { server, uri: name },
        }
    }
}

/// Filters one page of a list result in place: items the caller may not see are removed;
/// tool annotations and resource routes are remembered; with `namespace`, names get the
/// `server{sep}` prefix. Returns (shown, hidden).
pub fn filter_page(
    loaded: &LoadedProgram,
    session: &Session,
    server: &str,
    kind: ListKind,
    result: &mut Value,
    namespace: Option<&str>,
) -> (usize, usize) {
    let Some(items) = result.get_mut(kind.key()).and_then(Value::as_array_mut) else {
        return (0, 0);
    };
    let before = items.len();
    let principal = loaded.principal(&session.principal);
    items.retain(|item| {
        let Some(name) = item.get(kind.name_field()).and_then(Value::as_str) else {
            return false;
        };
        if !visible(&loaded.program, &principal, kind.target(server, name)) {
            return false;
        }
        // Under `lock: enforce`, a tool that is new or changed since review is held.
        if kind == ListKind::Tools
            && !crate::lock::gate::list_item(&loaded.pins, session, server, name, item)
        {
            return false;
        }
        match kind {
            ListKind::Tools => {
                session.set_annotations(server, name, annotations_of(item));
                let marks = item
                    .get("inputSchema")
                    .map(crate::mcp_headers::marks)
                    .unwrap_or_default();
                session.set_param_marks(server, name, marks);
            }
            ListKind::Resources => session.set_resource_route(name, server),
            ListKind::Prompts | ListKind::Templates => {}
        }
        true
    });
    if let Some(sep) = namespace.filter(|_| kind.namespaced()) {
        for item in items.iter_mut() {
            if let Some(name) = item.get(kind.name_field()).and_then(Value::as_str) {
                let full = format!("{server}{sep}{name}");
                item[kind.name_field()] = Value::String(full);
            }
        }
    }
    let shown = items.len();
    tracing::debug!(
        target: "mcpgate::decision",
        principal = %session.principal.id,
        server,
        list = kind.method(),
        shown,
        hidden = before - shown,
        program = %loaded.hash,
        "list filtered"
    );
    (shown, before - shown)
}
