//! The records the gateway writes, from the decision core's values (never from a session or
//! a second evaluation): one per decision (before anything is forwarded), one
//! per forwarded call's upstream outcome (linked by `request_id`), one per filtered list.
//! Each decision also opens a tracing span named and attributed after the OpenTelemetry
//! conventions for MCP (`mcp.method.name`, `gen_ai.tool.name`, ...), closed at the outcome;
//! the span is made without an audit log too, while spans are exported.

use crate::audit::body::Record;
use crate::audit::record::now_rfc3339;
use crate::audit::{AUDIT_UNAVAILABLE, AuditLog};
pub use crate::decision::agent_of;
use crate::decision::{Caller, Decision, LoadedProgram, Outcome};
use crate::jsonrpc;
use mcpgate_compiler::{Request, Target};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

/// A fresh request id (random, 16 bytes hex).
pub fn new_request_id() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b[..]);
    crate::audit::record::hex(&b)
}

/// The members every record of a call has. `principal`: the principal as the decision
/// saw it, when that is not the declared one.
fn common(
    kind: &'static str,
    caller: &Caller<'_>,
    principal: Option<&mcpgate_compiler::Principal>,
    loaded: &LoadedProgram,
) -> Record {
    let mut r = Record::of_type(kind);
    r.str("time", &now_rfc3339())
        .str("session", caller.session)
        .serialized("principal", principal.unwrap_or(caller.declared))
        .opt_str("agent", agent_of(caller.declared));
    // A delegated call: who the agent acts for and under which delegation, on every record
    // (the principal's attributes hold the same, for re-evaluation).
    match crate::decision::delegation::Delegated::of(caller.declared) {
        Some(Ok(d)) => {
            r.str("on_behalf_of", &d.person.id);
            r.object("delegation")
                .str("expires", &d.expires)
                .str("id", &d.id)
                .str("reason", &d.reason);
        }
        Some(Err(())) => {
            r.value("on_behalf_of", &json!(caller.declared.on_behalf_of()));
        }
        None => {}
    }
    r.object("client")
        .opt_str("name", caller.client_name)
        .opt_str("version", caller.client_version);
    r.object("policy")
        .opt_str("commit", loaded.program.commit())
        .str("hash", &loaded.hash);
    r
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
) -> Record {
    let program = &loaded.program;
    let args = d.args;
    let request = d.request();
    let decision = d.vm;
    let rule = program.rule(decision.rule);
    // The principal the decision saw: with the groups `principals.yaml` declares.
    let merged = match &d.caller.principal {
        Cow::Owned(merged) => Some(merged),
        Cow::Borrowed(_) => None,
    };
    let mut r = common("decision", d.caller, merged, loaded);
    r.str("request_id", request_id)
        .value("jsonrpc_id", client_id)
        .str("server", d.target.server())
        .str("method", method);
    target_member(&mut r, d.target);
    if !args.is_null() {
        let (recorded, redacted) = redact_args(log, program, &request, args);
        r.value("arguments", &recorded);
        if !redacted.is_empty() {
            r.value("redacted", &json!(redacted));
        }
    }
    let a = d.annotations;
    if [a.destructive, a.idempotent, a.open_world, a.read_only]
        .iter()
        .any(Option::is_some)
    {
        r.object("annotations")
            .opt_bool("destructive", a.destructive)
            .opt_bool("idempotent", a.idempotent)
            .opt_bool("open_world", a.open_world)
            .opt_bool("read_only", a.read_only);
    }
    r.str("verdict", decision.verdict.as_str())
        .str("rule", program.rule_id(decision.rule));
    if let Some(rule) = rule {
        r.str("source", &rule.source.to_string())
            .opt_str("reason", rule.reason.as_deref());
    }
    r.bool("undecided", decision.undecided)
        .bool("listed", d.listed)
        .str("action", action(&d.outcome));
    // The policy's verdict stays as evaluated; a held tool or invalid arguments are the
    // lock's doing, recorded apart so a replay of the program still agrees.
    if let Some(l) = d
        .lock
        .as_ref()
        .filter(|_| matches!(d.outcome, Outcome::Deny(_)))
    {
        r.str("gate", l.rule);
    }
    if let Outcome::Deny(text) = &d.outcome {
        r.str("message", text);
    }
    r.u64("decision_ns", decision_ns(d));
    r
}

/// The `target` member: the kind and name of a target, as records write them.
fn target_member(r: &mut Record, target: Target<'_>) {
    let kind = match target {
        Target::Tool { .. } => "tool",
        Target::Prompt { .. } => "prompt",
        Target::Resource { .. } => "resource",
    };
    r.object("target")
        .str("kind", kind)
        .str("name", target.name());
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
pub fn redact_args<'a>(
    log: &AuditLog,
    program: &mcpgate_compiler::Program,
    request: &Request<'_>,
    args: &'a Value,
) -> (Cow<'a, Value>, Vec<String>) {
    let mut out = Cow::Borrowed(args);
    let mut paths = Vec::new();
    for r in program.redactions(request) {
        for path in r.args() {
            let Some(v) = mcpgate_compiler::ir::value_at_mut(out.to_mut(), path) else {
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
        let mut r = Record::of_type("outcome");
        r.str("time", &now_rfc3339())
            .str("request_id", &self.request_id)
            .str("session", &self.session)
            .str("server", &self.server)
            .str("status", status)
            .u64("upstream_ns", ns);
        if let Some(d) = detail {
            r.value("error", &d);
        }
        log.append_nowait(r);
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
    let mut r = Record::of_type("outcome");
    r.str("time", &now_rfc3339())
        .str("request_id", request_id)
        .str("session", session)
        .str("server", server)
        .str("task", task_id)
        .str("status", status)
        .u64("upstream_ns", ns);
    if let Some(d) = detail {
        r.value("error", &d);
    }
    log.append_nowait(r);
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
    let mut r = common("list", caller, None, loaded);
    r.str("request_id", &new_request_id())
        .opt_str("server", server)
        .str("method", method)
        .u64("shown", shown as u64)
        .u64("hidden", hidden as u64);
    log.append_nowait(r);
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
