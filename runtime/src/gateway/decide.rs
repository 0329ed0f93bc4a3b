//! Decisions in a session: the caller and annotations a request is decided with, the
//! decision itself (by the decision core), and the filtering of list results.

use crate::decision::lock::Refusal;
pub use crate::decision::outcome::{
    Hold, Outcome, denied_error, denied_tool_result, unknown_prompt, unknown_resource, unknown_tool,
};
use crate::decision::{self, Caller, Decision, LoadedProgram};
use crate::gateway::Gateway;
use crate::session::Session;
use mcpgate_compiler::{Target, ToolAnnotations, visible};
use serde_json::Value;

/// The caller of a session's requests as `loaded` sees it.
pub fn caller<'a>(loaded: &LoadedProgram, session: &'a Session) -> Caller<'a> {
    Caller::new(
        loaded,
        &session.sid,
        &session.principal,
        (
            session.client_name.as_deref(),
            session.client_version.as_deref(),
        ),
        &session.protocol_version,
    )
}

/// The annotations a target is decided with: for a tool under `lock: enforce` the pinned
/// ones, not what the server claims now; else what the session's last list showed.
pub fn annotations(
    loaded: &LoadedProgram,
    session: &Session,
    target: Target<'_>,
) -> ToolAnnotations {
    match target {
        Target::Tool { server, tool } => loaded
            .pins
            .enforced_annotations(server, tool)
            .unwrap_or_else(|| session.annotations(server, tool)),
        _ => ToolAnnotations::default(),
    }
}

/// Decides one request of a session (see [`decision::decide`]).
pub fn decide<'a>(
    gw: &Gateway,
    loaded: &LoadedProgram,
    caller: &'a Caller<'a>,
    session: &Session,
    target: Target<'a>,
    args: &'a Value,
    refusal: Option<Refusal>,
) -> Decision<'a> {
    let annotations = annotations(loaded, session, target);
    decision::decide(
        loaded,
        gw.quotas.as_ref(),
        caller,
        target,
        args,
        annotations,
        refusal,
    )
}

/// The refusal of a call by a session whose principal or session a responder paused (see
/// `responders/`), recorded in the audit; `None` when nothing is paused.
pub fn paused(gw: &Gateway, session: &Session, target: Target<'_>) -> Option<String> {
    let pause = gw.responders.paused(
        &session.principal.id,
        &session.sid,
        session.principal.delegation_id(),
    )?;
    gw.responders.record_refusal(
        &pause,
        &session.principal.id,
        &session.sid,
        &target.to_string(),
    );
    tracing::info!(
        target: "mcpgate::decision",
        principal = %session.principal.id,
        responder = %pause.responder,
        %target,
        "refused: paused by a responder"
    );
    Some(crate::responders::Responders::refusal(&pause))
}

/// Hands a decided tool call to the responders: a refusal (or an unknown-tool answer)
/// counts as a denial, a tool held by the lock as a held change.
pub fn observe(gw: &Gateway, loaded: &LoadedProgram, d: &Decision<'_>) {
    if loaded.responders.is_empty() {
        return;
    }
    let Target::Tool { server, tool } = d.target else {
        return;
    };
    let name = format!("{server}.{tool}");
    let principal = d.caller.declared.id.as_str();
    let session = d.caller.session;
    let delegation = d.caller.declared.delegation_id();
    let ev = |kind| crate::responders::Event {
        kind,
        principal,
        session,
        delegation,
        tool: Some(&name),
    };
    // Answered as unknown counts too: probing for tools one may not see is what a
    // denials trigger is for.
    let refused = matches!(d.outcome, Outcome::Deny(_) | Outcome::Unknown);
    gw.responders.observe(
        &loaded.responders,
        &ev(crate::responders::EventKind::Decided { refused }),
    );
    if d.lock
        .as_ref()
        .is_some_and(|r| r.rule == crate::decision::lock::RULE_LOCK)
    {
        gw.responders
            .observe(&loaded.responders, &ev(crate::responders::EventKind::Held));
    }
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
    holds: Option<&crate::lock::fleet::FleetHolds>,
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
        let target = kind.target(server, name);
        // A delegated caller sees only its delegation's tools.
        if !visible(&loaded.program, &principal, target)
            || !decision::delegation::lists(&principal, target)
        {
            return false;
        }
        // Under `lock: enforce`, a tool that is new or changed since review is held.
        if kind == ListKind::Tools
            && !crate::gateway::lock_gate::list_item(holds, loaded, session, server, name, item)
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
