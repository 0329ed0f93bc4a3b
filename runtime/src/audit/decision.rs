//! The records the gateway writes, from the decision core's values (never from a session or
//! a second evaluation): one per decision (before anything is forwarded), one
//! per forwarded call's upstream outcome (linked by `request_id`), one per filtered list.
//! Each decision also opens a tracing span named and attributed after the OpenTelemetry
//! conventions for MCP (`mcp.method.name`, `gen_ai.tool.name`, ...), closed at the outcome;
//! the span is made without an audit log too, while spans are exported.

use crate::audit::record::{Fields, now_rfc3339};
use crate::audit::{AUDIT_UNAVAILABLE, AuditLog};
pub use crate::decision::agent_of;
use crate::decision::{Caller, Decision, LoadedProgram, Outcome};
use crate::jsonrpc;
use mcpgate_compiler::{Request, Target, ToolAnnotations};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;

/// A fresh request id (random, 16 bytes hex).
pub fn new_request_id() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b[..]);
    crate::audit::record::hex(&b)
}

/// The kind and name of a target, as records write them.
pub fn target_json(target: Target<'_>) -> Value {
    let kind = match target {
        Target::Tool { .. } => "tool",
        Target::Prompt { .. } => "prompt",
        Target::Resource { .. } => "resource",
    };
    json!({"kind": kind, "name": target.name()})
}

/// Annotations that are known, as records write them.
pub fn annotations_json(a: ToolAnnotations) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in [
        ("read_only", a.read_only),
        ("destructive", a.destructive),
        ("idempotent", a.idempotent),
        ("open_world", a.open_world),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), Value::Bool(v));
        }
    }
    m
}

fn common(kind: &str, caller: &Caller<'_>, loaded: &LoadedProgram) -> Fields {
    let mut f = Fields::new();
    f.insert("type".into(), json!(kind));
    f.insert("time".into(), json!(now_rfc3339()));
    f.insert("session".into(), json!(caller.session));
    f.insert(
        "principal".into(),
        serde_json::to_value(caller.declared).unwrap_or(Value::Null),
    );
    if let Some(agent) = agent_of(caller.declared) {
        f.insert("agent".into(), json!(agent));
    }
    // A delegated call: who the agent acts for and under which delegation, on every record
    // (the principal's attributes hold the same, for re-evaluation).
    match crate::decision::delegation::Delegated::of(caller.declared) {
        Some(Ok(d)) => {
            f.insert("on_behalf_of".into(), json!(d.person.id));
            f.insert(
                "delegation".into(),
                json!({"id": d.id, "reason": d.reason, "expires": d.expires}),
            );
        }
        Some(Err(())) => {
            f.insert("on_behalf_of".into(), json!(caller.declared.on_behalf_of()));
        }
        None => {}
    }
    let mut client = Map::new();
    if let Some(n) = caller.client_name {
        client.insert("name".into(), json!(n));
    }
    if let Some(v) = caller.client_version {
        client.insert("version".into(), json!(v));
    }
    f.insert("client".into(), Value::Object(client));
    let mut policy = Map::new();
    policy.insert("hash".into(), json!(loaded.hash));
    if let Some(c) = loaded.program.commit() {
        policy.insert("commit".into(), json!(c));
    }
    f.insert("policy".into(), Value::Object(policy));
    f
}

/// Writes the decision record and waits until it is durable (see [`AuditLog::append`]). `Ok(Some(_))` for a call
/// that goes ahead: pass [`Pending::transform`] to the relay so its outcome is recorded.
/// `Ok(None)` when the call is refused anyway, or when the gateway keeps no audit log and
/// exports no spans (without a log but with spans, the pending call only closes its span).
///
/// # Errors
/// The JSON-RPC error to answer with, when the record cannot be written: the call must
/// not be forwarded.
pub async fn record_decision(
    log: Option<&Arc<AuditLog>>,
    loaded: &LoadedProgram,
    d: &Decision<'_>,
    method: &str,
    client_id: &Value,
) -> Result<Option<Pending>, Value> {
    let forwarded = matches!(d.outcome, Outcome::Allow | Outcome::Approve(_));
    let Some(log) = log else {
        // Without an audit log the call still has its span when spans are exported: made
        // here, closed at the outcome as with the log.
        if !crate::telemetry::exporting() {
            return Ok(None);
        }
        let request_id = new_request_id();
        let span = decision_span(loaded, d, method, client_id, &request_id);
        return Ok(forwarded.then(|| Pending {
            log: None,
            request_id,
            session: d.caller.session.to_owned(),
            server: d.target.server().to_owned(),
            started: Instant::now(),
            span,
            done: false,
        }));
    };
    let request_id = new_request_id();
    let fields = decision_fields(log, loaded, d, method, client_id, &request_id);
    let span = decision_span(loaded, d, method, client_id, &request_id);
    if let Err(e) = log.append(fields).await {
        tracing::error!(parent: &span, error = %e, "call refused: its audit record cannot be written");
        return Err(jsonrpc::error(
            client_id.clone(),
            AUDIT_UNAVAILABLE,
            &format!("{e}; the call was not forwarded"),
        ));
    }
    // A held call (`approve`) may be forwarded later: its outcome is recorded then.
    if !forwarded {
        return Ok(None);
    }
    Ok(Some(Pending {
        log: Some(log.clone()),
        request_id,
        session: d.caller.session.to_owned(),
        server: d.target.server().to_owned(),
        started: Instant::now(),
        span,
        done: false,
    }))
}

/// The decision record of `d`: written from the decision itself (the request it was
/// asked about, the VM's answer), never from a second evaluation.
fn decision_fields(
    log: &AuditLog,
    loaded: &LoadedProgram,
    d: &Decision<'_>,
    method: &str,
    client_id: &Value,
    request_id: &str,
) -> Fields {
    let program = &loaded.program;
    let args = d.args;
    let annotations = d.annotations;
    let request = d.request();
    let decision = d.vm;
    let listed = d.listed;
    let rule = program.rule(decision.rule);
    let mut f = common("decision", d.caller, loaded);
    // The principal the decision saw: with the groups `principals.yaml` declares.
    if let std::borrow::Cow::Owned(merged) = &d.caller.principal {
        f.insert(
            "principal".into(),
            serde_json::to_value(merged).unwrap_or(Value::Null),
        );
    }
    f.insert("request_id".into(), json!(request_id));
    f.insert("jsonrpc_id".into(), client_id.clone());
    f.insert("server".into(), json!(d.target.server()));
    f.insert("method".into(), json!(method));
    f.insert("target".into(), target_json(d.target));
    if !args.is_null() {
        let (recorded, redacted) = redact_args(log, program, &request, args);
        f.insert("arguments".into(), recorded);
        if !redacted.is_empty() {
            f.insert("redacted".into(), json!(redacted));
        }
    }
    let ann = annotations_json(annotations);
    if !ann.is_empty() {
        f.insert("annotations".into(), Value::Object(ann));
    }
    f.insert("verdict".into(), json!(decision.verdict.as_str()));
    f.insert("rule".into(), json!(program.rule_id(decision.rule)));
    if let Some(r) = rule {
        f.insert("source".into(), json!(r.source.to_string()));
        if let Some(reason) = &r.reason {
            f.insert("reason".into(), json!(reason));
        }
    }
    f.insert("undecided".into(), json!(decision.undecided));
    f.insert("listed".into(), json!(listed));
    f.insert("action".into(), json!(action(&d.outcome)));
    // The policy's verdict stays as evaluated; a held tool or invalid arguments are the
    // lock's doing, recorded apart so a replay of the program still agrees.
    if let Some(r) = d
        .lock
        .as_ref()
        .filter(|_| matches!(d.outcome, Outcome::Deny(_)))
    {
        f.insert("gate".into(), json!(r.rule));
    }
    if let Outcome::Deny(text) = &d.outcome {
        f.insert("message".into(), json!(text));
    }
    f.insert("decision_ns".into(), json!(decision_ns(d)));
    f
}

/// What the gateway does with a decided call, as records and spans name it.
fn action(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "forward",
        Outcome::Deny(_) => "deny",
        Outcome::Unknown => "unknown",
        Outcome::Approve(_) => "hold",
    }
}

fn decision_ns(d: &Decision<'_>) -> u64 {
    u64::try_from(d.latency.as_nanos()).unwrap_or(u64::MAX)
}

/// The call's `mcp.request` span (made with or without an audit log), a child of the
/// client's span when the client sent a `traceparent`.
fn decision_span(
    loaded: &LoadedProgram,
    d: &Decision<'_>,
    method: &str,
    client_id: &Value,
    request_id: &str,
) -> tracing::Span {
    let program = &loaded.program;
    let decision = d.vm;
    let action = action(&d.outcome);
    let ns = decision_ns(d);
    let name = d.target.name();
    let span = tracing::info_span!(
        target: "mcpgate::audit",
        "mcp.request",
        otel.name = %format!("{} {}", method, if matches!(d.target, Target::Resource { .. }) { d.target.server() } else { name }),
        "mcp.method.name" = method,
        "mcp.session.id" = %d.caller.session,
        "mcp.protocol.version" = %d.caller.protocol_version,
        "jsonrpc.request.id" = %client_id,
        "gen_ai.operation.name" = if matches!(d.target, Target::Tool { .. }) { "execute_tool" } else { method },
        "gen_ai.tool.name" = if matches!(d.target, Target::Tool { .. }) { Some(name) } else { None },
        "gen_ai.prompt.name" = if matches!(d.target, Target::Prompt { .. }) { Some(name) } else { None },
        "mcp.resource.uri" = if matches!(d.target, Target::Resource { .. }) { Some(name) } else { None },
        "server.name" = d.target.server(),
        "enduser.id" = %d.caller.declared.id,
        "mcpgate.request_id" = request_id,
        "mcpgate.verdict" = decision.verdict.as_str(),
        "mcpgate.action" = action,
        "mcpgate.rule" = program.rule_id(decision.rule),
        "mcpgate.policy.hash" = %loaded.hash,
        "mcpgate.policy.commit" = program.commit().unwrap_or_default(),
        // Signed: exporters send an unsigned 64-bit value as text.
        "mcpgate.decision_ns" = i64::try_from(ns).unwrap_or(i64::MAX),
        "error.type" = tracing::field::Empty,
        "mcpgate.outcome" = tracing::field::Empty,
        "mcpgate.upstream_ns" = tracing::field::Empty,
    );
    crate::telemetry::adopt_client_trace(&span);
    span
}

/// The arguments as the record keeps them: the values that `redact` rules name replaced by
/// their salted hash (`hmac-sha256:HEX`); and the paths replaced (`args.card.number`).
pub fn redact_args(
    log: &AuditLog,
    program: &mcpgate_compiler::Program,
    request: &Request<'_>,
    args: &Value,
) -> (Value, Vec<String>) {
    let mut out = args.clone();
    let mut paths = Vec::new();
    for r in program.redactions(request) {
        for path in r.args() {
            let Some(v) = mcpgate_compiler::ir::value_at_mut(&mut out, path) else {
                continue;
            };
            let text = path_text(path);
            if !paths.contains(&text) {
                *v = Value::String(log.seal_value(v));
                paths.push(text);
            }
        }
    }
    (out, paths)
}

/// `args.a.b[0]` for a path of argument keys and indexes.
fn path_text(path: &[mcpgate_compiler::ir::PathSeg]) -> String {
    use mcpgate_compiler::ir::PathSeg;
    let mut s = String::from("args");
    for seg in path {
        match seg {
            PathSeg::Key(k)
                if !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_') =>
            {
                s.push('.');
                s.push_str(k);
            }
            PathSeg::Key(k) => s.push_str(&format!("[{}]", Value::String(k.clone()))),
            PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A forwarded call whose upstream outcome is still to be recorded. Dropped without an
/// answer (timeout, transport failure, client gone), it records `transport_error`.
pub struct Pending {
    /// None when the gateway keeps no audit log: the pending call then only closes its span.
    log: Option<Arc<AuditLog>>,
    request_id: String,
    session: String,
    server: String,
    started: Instant,
    span: tracing::Span,
    done: bool,
}

impl Pending {
    /// The request id its records share.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The call's `mcp.request` span: the upstream request runs inside it (its
    /// `traceparent` names it).
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Records the outcome `response` shows.
    pub fn finish(&mut self, response: &Value) {
        let (status, detail) = outcome_status(response);
        self.record(status, detail);
    }

    /// Records the outcome the encoded response `body` shows (one passed through as it
    /// came): the same status as [`Pending::finish`] on the parsed response, read from
    /// the top level and `result`'s top level without building the rest.
    pub fn finish_encoded(&mut self, body: &[u8]) {
        let (status, detail) = encoded_outcome_status(body);
        self.record(status, detail);
    }

    fn record(&mut self, status: &str, detail: Option<Value>) {
        self.done = true;
        let ns = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.span.record("mcpgate.outcome", status);
        self.span
            .record("mcpgate.upstream_ns", i64::try_from(ns).unwrap_or(i64::MAX));
        if status != "ok" {
            self.span.record("error.type", status);
        }
        let Some(log) = &self.log else {
            return;
        };
        let mut f = Fields::new();
        f.insert("type".into(), json!("outcome"));
        f.insert("time".into(), json!(now_rfc3339()));
        f.insert("request_id".into(), json!(self.request_id));
        f.insert("session".into(), json!(self.session));
        f.insert("server".into(), json!(self.server));
        f.insert("status".into(), json!(status));
        if let Some(d) = detail {
            f.insert("error".into(), d);
        }
        f.insert("upstream_ns".into(), json!(ns));
        log.append_nowait(f);
    }
}

/// The outcome `status` a final response shows, and the error detail.
fn outcome_status(response: &Value) -> (&'static str, Option<Value>) {
    if let Some(e) = response.get("error") {
        ("rpc_error", e.get("message").cloned())
    } else if response.pointer("/result/isError") == Some(&Value::Bool(true)) {
        ("tool_error", None)
    } else {
        ("ok", None)
    }
}

/// [`outcome_status`] of an encoded response, reading only what it needs: the `error`
/// member, and `isError` at the top of `result`. A member given twice counts by its last
/// value, as in a parsed object.
fn encoded_outcome_status(body: &[u8]) -> (&'static str, Option<Value>) {
    type Members<'a> = std::collections::BTreeMap<String, &'a serde_json::value::RawValue>;
    let Ok(top) = serde_json::from_slice::<Members<'_>>(body) else {
        return ("ok", None);
    };
    if let Some(error) = top.get("error") {
        let error: Value = serde_json::from_str(error.get()).unwrap_or(Value::Null);
        return ("rpc_error", error.get("message").cloned());
    }
    let is_error = top
        .get("result")
        .and_then(|r| serde_json::from_str::<Members<'_>>(r.get()).ok())
        .and_then(|r| r.get("isError").map(|v| v.get() == "true"));
    if is_error == Some(true) {
        ("tool_error", None)
    } else {
        ("ok", None)
    }
}

/// Records the outcome of a task-augmented call when `tasks/result` delivers it: an
/// outcome record under the creating call's `request_id`, with `task` set, without waiting.
pub fn record_task_outcome(
    log: Option<&Arc<AuditLog>>,
    session: &str,
    server: &str,
    request_id: &str,
    task_id: &str,
    response: &Value,
    started: Instant,
) {
    let Some(log) = log else {
        return;
    };
    let (status, detail) = outcome_status(response);
    let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let mut f = Fields::new();
    f.insert("type".into(), json!("outcome"));
    f.insert("time".into(), json!(now_rfc3339()));
    f.insert("request_id".into(), json!(request_id));
    f.insert("session".into(), json!(session));
    f.insert("server".into(), json!(server));
    f.insert("task".into(), json!(task_id));
    f.insert("status".into(), json!(status));
    if let Some(d) = detail {
        f.insert("error".into(), d);
    }
    f.insert("upstream_ns".into(), json!(ns));
    log.append_nowait(f);
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.record(
                "transport_error",
                Some(json!("no response from the upstream")),
            );
        }
    }
}

/// Records a filtered list (one record per list request, with counts), without waiting.
pub fn record_list(
    log: Option<&Arc<AuditLog>>,
    loaded: &LoadedProgram,
    caller: &Caller<'_>,
    server: Option<&str>,
    method: &str,
    shown: usize,
    hidden: usize,
) {
    let Some(log) = log else {
        return;
    };
    let mut f = common("list", caller, loaded);
    f.insert("request_id".into(), json!(new_request_id()));
    if let Some(s) = server {
        f.insert("server".into(), json!(s));
    }
    f.insert("method".into(), json!(method));
    f.insert("shown".into(), json!(shown));
    f.insert("hidden".into(), json!(hidden));
    log.append_nowait(f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_response_shows_the_outcome_its_parsed_form_shows() {
        let bodies = [
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"isError":false}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"isError":"true"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"isError": true , "x":[{"isError":false}]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"isError":true,"isError":false}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"isError":false,"isError":true}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":[true]}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":"isError"}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool: x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":{"nested":["m"]}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":null}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":"boom","result":{"isError":true}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"text":"\"isError\":true \u00e9"}]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"res\u0075lt":{"is\u0045rror":true}}"#,
        ];
        for body in bodies {
            let parsed: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                encoded_outcome_status(body.as_bytes()),
                outcome_status(&parsed),
                "{body}"
            );
        }
    }
}
