//! What the gateway does with each request of a session: decision points (`tools/call`,
//! `prompts/get`, `resources/read` and subscriptions) are decided once and recorded, lists
//! are filtered, everything else is relayed. Opening and finding sessions is
//! `gateway::sessions`.

use crate::audit::decision as audit;
use crate::decision::quota::Claim;
use crate::gateway::aggregate;
use crate::gateway::decide::{self, ListKind, Outcome};
use crate::gateway::hold::{Call, Quotas, hold};
use crate::gateway::lock_gate;
use crate::gateway::pages;
use crate::gateway::redact;
use crate::gateway::relay::{self, Reply, Transform};
use crate::gateway::tasks;
use crate::gateway::{Gateway, LoadedProgram};
use crate::jsonrpc;
use crate::session::{Endpoint, Session};
use mcpgate_compiler::Target;
use mcpgate_compiler::vm::RuleIdx;
use serde_json::{Value, json};
use std::sync::Arc;
use tracing::Instrument;

/// Handles one client request in a session.
pub async fn request(
    gw: &Arc<Gateway>,
    session: &Arc<Session>,
    client_id: Value,
    method: &str,
    message: Value,
) -> Reply {
    if let Some(refusal) = oversized_uri(&client_id, method, &message) {
        return Reply::Json(refusal);
    }
    let loaded = gw.program.load_full();
    if tasks::handles(method) {
        return tasks::request(gw, &loaded, session, client_id, method, message).await;
    }
    match &session.endpoint {
        Endpoint::Server(server) => {
            single(gw, loaded, session, server, client_id, method, message).await
        }
        Endpoint::Aggregate => aggregated(gw, loaded, session, client_id, method, message).await,
    }
}

/// The longest resource URI a request may name. Far above any URI a server lists, and it
/// bounds the work of matching one against the policy's globs.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The refusal of a resource request whose URI is longer than [`MAX_URI_BYTES`].
fn oversized_uri(id: &Value, method: &str, message: &Value) -> Option<Value> {
    if !method.starts_with("resources/") {
        return None;
    }
    let uri = jsonrpc::params(message)
        .get("uri")
        .and_then(Value::as_str)?;
    (uri.len() > MAX_URI_BYTES).then(|| {
        jsonrpc::error(
            id.clone(),
            jsonrpc::INVALID_PARAMS,
            &format!(
                "the resource URI is {} bytes long; the gateway takes at most {MAX_URI_BYTES}",
                uri.len()
            ),
        )
    })
}

/// What a decision point asks about, read from the message.
fn decision_point(method: &str, message: &Value) -> Option<(ListOrItem, String)> {
    let params = jsonrpc::params(message);
    let field = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(match method {
        "tools/call" => (ListOrItem::Tool, field("name").unwrap_or_default()),
        "prompts/get" => (ListOrItem::Prompt, field("name").unwrap_or_default()),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            (ListOrItem::Resource, field("uri").unwrap_or_default())
        }
        _ => return None,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListOrItem {
    Tool,
    Prompt,
    Resource,
}

impl ListOrItem {
    fn target<'a>(self, server: &'a str, name: &'a str) -> Target<'a> {
        match self {
            ListOrItem::Tool => Target::Tool { server, tool: name },
            ListOrItem::Prompt => Target::Prompt { server, name },
            ListOrItem::Resource => Target::Resource { server, uri: name },
        }
    }

    /// The answer when the caller may not see the thing, or is denied it.
    fn refusal(self, id: Value, outcome: &Outcome, shown_name: &str) -> Value {
        match (self, outcome) {
            (ListOrItem::Tool, Outcome::Deny(t)) => decide::denied_tool_result(id, t),
            (_, Outcome::Deny(t)) => decide::denied_error(id, t),
            (ListOrItem::Tool, Outcome::Approve(h)) => decide::denied_tool_result(
                id,
                &h.refusal("approvals are not enabled on this gateway"),
            ),
            (_, Outcome::Approve(h)) => {
                decide::denied_error(id, &h.refusal("only tool calls can be held for approval"))
            }
            (ListOrItem::Tool, _) => decide::unknown_tool(id, shown_name),
            (ListOrItem::Prompt, _) => decide::unknown_prompt(id, shown_name),
            (ListOrItem::Resource, _) => decide::unknown_resource(id, shown_name),
        }
    }
}

/// A decided request, owned: what the rest of the call needs once the decision is made
/// and recorded.
struct Decided {
    outcome: Outcome,
    pending: Option<audit::Pending>,
    /// The `redact` rules that mask the result (the decision's redaction plan).
    masks: Vec<RuleIdx>,
    /// For a held call: the `limit` buckets it takes from when it runs.
    claims: Vec<Claim>,
    /// For an allowed tool call to a server that asks for it: the signed assertion header.
    assertion: Option<crate::upstream::ExtraHeader>,
    /// For a held call to such a server: its assertion, signed when it is approved.
    held_assertion: Option<super::assertion::Prepared>,
}

/// Decides a request once and writes its audit record before anything is forwarded; the
/// record, the redaction plan and the quota claims all come from that one decision. `Err`
/// is the reply when the record cannot be written (the call is refused).
#[allow(clippy::too_many_arguments)]
async fn decide_recorded(
    gw: &Gateway,
    loaded: &LoadedProgram,
    session: &Session,
    kind: ListOrItem,
    server: &str,
    name: &str,
    method: &str,
    message: &Value,
    client_id: &Value,
) -> Result<Decided, Reply> {
    let started = std::time::Instant::now();
    let null = Value::Null;
    let args = jsonrpc::params(message).get("arguments").unwrap_or(&null);
    let target = kind.target(server, name);
    // A paused caller is refused before anything is asked, the lock and upstreams included.
    if let Some(text) = decide::paused(gw, session, target) {
        return Err(Reply::Json(kind.refusal(
            client_id.clone(),
            &Outcome::Deny(text),
            name,
        )));
    }
    let refusal = match kind {
        ListOrItem::Tool => lock_gate::check_call(gw, loaded, session, server, name, args).await,
        _ => None,
    };
    let caller = decide::caller(loaded, session);
    let mut d = decide::decide(gw, loaded, &caller, session, target, args, refusal);
    d.latency = started.elapsed();
    let pending = audit::record_decision(gw.audit.get(), loaded, &d, method, client_id)
        .await
        .map_err(Reply::Json)?;
    decide::observe(gw, loaded, &d);
    let goes_on = matches!(d.outcome, Outcome::Allow | Outcome::Approve(_));
    let masks = if goes_on {
        d.result_masks(loaded)
    } else {
        Vec::new()
    };
    let claims = if matches!(d.outcome, Outcome::Approve(_)) {
        d.quota_claims(loaded)
    } else {
        Vec::new()
    };
    // Never forwarded without the assertion its server expects.
    let unsigned = |e: String| {
        tracing::error!(server, error = %e, "call refused: its assertion cannot be signed");
        Reply::Json(jsonrpc::error(
            client_id.clone(),
            jsonrpc::INTERNAL_ERROR,
            "the gateway could not sign this call's assertion; it was not forwarded",
        ))
    };
    // The request id is drawn only for a server that asks for assertions: it costs a random
    // draw and an encoding, on every call.
    let prepared = if matches!(d.outcome, Outcome::Allow | Outcome::Approve(_))
        && gw.assertion_settings.contains_key(d.target.server())
    {
        let request_id = pending
            .as_ref()
            .map_or_else(audit::new_request_id, |p| p.request_id().to_owned());
        super::assertion::prepare(gw, loaded, &d, &request_id).map_err(unsigned)?
    } else {
        None
    };
    let (assertion, held_assertion) = match (prepared, &d.outcome) {
        (Some(p), Outcome::Allow) => (Some(p.sign().map_err(unsigned)?), None),
        (p, _) => (None, p),
    };
    Ok(Decided {
        outcome: d.outcome,
        pending,
        masks,
        claims,
        assertion,
        held_assertion,
    })
}

fn filter_transform(
    gw: Arc<Gateway>,
    loaded: Arc<LoadedProgram>,
    session: Arc<Session>,
    server: String,
    kind: ListKind,
) -> Transform {
    Transform::new(move |mut m: Value| {
        if let Some(result) = m.get_mut("result") {
            let (shown, hidden) = decide::filter_page(
                gw.held_pins.as_deref(),
                &loaded,
                &session,
                &server,
                kind,
                result,
                None,
            );
            audit::record_list(
                gw.audit.get(),
                &loaded,
                &decide::caller(&loaded, &session),
                Some(&server),
                kind.method(),
                shown,
                hidden,
            );
        }
        m
    })
}

async fn single(
    gw: &Arc<Gateway>,
    loaded: Arc<LoadedProgram>,
    session: &Arc<Session>,
    server: &str,
    client_id: Value,
    method: &str,
    message: Value,
) -> Reply {
    if !session.upstreams.contains_key(server) {
        return Reply::SessionGone;
    }
    if let Some(kind) = ListKind::of_method(method) {
        let t = filter_transform(gw.clone(), loaded, session.clone(), server.to_owned(), kind);
        return forward_to(gw, session, server, message, client_id, Some(t), None).await;
    }
    let mut pending = None;
    let mut masks = None;
    let mut assertion = None;
    if let Some((kind, name)) = decision_point(method, &message) {
        let d = match decide_recorded(
            gw, &loaded, session, kind, server, &name, method, &message, &client_id,
        )
        .await
        {
            Ok(x) => x,
            Err(reply) => return reply,
        };
        let plan = redact::transform(&loaded, d.masks);
        if let (ListOrItem::Tool, Outcome::Approve(h)) = (kind, &d.outcome)
            && let Some(approvals) = gw.approvals.get()
        {
            let p = d.pending;
            let masks = tasks::on_call(gw, session, server, &name, &message, p.as_ref(), plan);
            let call = Call::new(session, server, &name, message, client_id, p)
                .assertion(d.held_assertion);
            return hold_call(gw, approvals, &loaded, call, masks, d.claims, h).await;
        }
        if d.outcome != Outcome::Allow {
            return Reply::Json(kind.refusal(client_id, &d.outcome, &name));
        }
        masks = tasks::on_call(
            gw,
            session,
            server,
            &name,
            &message,
            d.pending.as_ref(),
            plan,
        );
        pending = d.pending;
        assertion = d.assertion;
    }
    let span = call_span(pending.as_ref());
    let t = redact::with_audit(pending, masks);
    forward_to(gw, session, server, message, client_id, t, assertion)
        .instrument(span)
        .await
}

/// The span the upstream request runs in: the call's `mcp.request` span (none when neither
/// an audit log is kept nor spans are exported), so telemetry links the upstream's trace to it.
fn call_span(pending: Option<&audit::Pending>) -> tracing::Span {
    pending.map_or_else(tracing::Span::none, |p| p.span().clone())
}

/// Holds a tool call for approval, with its result masks; counted against the deciding
/// program's limits when it runs, forwarded under the server's timeout.
#[allow(clippy::too_many_arguments)]
async fn hold_call(
    gw: &Gateway,
    approvals: &Arc<crate::approvals::Approvals>,
    loaded: &Arc<LoadedProgram>,
    call: Call,
    masks: Option<Transform>,
    claims: Vec<Claim>,
    h: &decide::Hold,
) -> Reply {
    let timeout = gw.timeout(&call.server);
    let quotas = Quotas {
        loaded: loaded.clone(),
        store: gw.quotas.clone(),
        claims,
    };
    let call = call.masks(masks).quotas(quotas).timeout(timeout);
    hold(approvals.clone(), call, h, &loaded.hash).await
}

/// Forwards `message` to the session's upstream `server` under that server's timeout, with
/// the call's signed assertion when its server asks for one.
async fn forward_to(
    gw: &Arc<Gateway>,
    session: &Arc<Session>,
    server: &str,
    message: Value,
    client_id: Value,
    transform: Option<Transform>,
    assertion: Option<crate::upstream::ExtraHeader>,
) -> Reply {
    let Some(up) = session.upstreams.get(server) else {
        return Reply::SessionGone;
    };
    let timeout = gw.timeout(server);
    relay::forward_with(
        session.clone(),
        server,
        up,
        message,
        client_id,
        transform,
        timeout,
        assertion,
    )
    .await
}

async fn aggregated(
    gw: &Arc<Gateway>,
    loaded: Arc<LoadedProgram>,
    session: &Arc<Session>,
    client_id: Value,
    method: &str,
    message: Value,
) -> Reply {
    let sep = gw.config.namespace_separator.as_str();
    if let Some(kind) = ListKind::of_method(method) {
        return Reply::Json(list(gw, &loaded, session, kind, client_id, &message).await);
    }
    match decision_point(method, &message) {
        Some((kind @ (ListOrItem::Tool | ListOrItem::Prompt), shown)) => {
            let Some((server, name)) = aggregate::split_name(&shown, sep, session.upstreams.keys())
            else {
                return Reply::Json(kind.refusal(client_id, &Outcome::Unknown, &shown));
            };
            let d = match decide_recorded(
                gw, &loaded, session, kind, server, name, method, &message, &client_id,
            )
            .await
            {
                Ok(x) => x,
                Err(reply) => return reply,
            };
            let mut message = message;
            let plan = redact::transform(&loaded, d.masks);
            let pending = d.pending;
            if let (ListOrItem::Tool, Outcome::Approve(h)) = (kind, &d.outcome)
                && let Some(approvals) = gw.approvals.get()
            {
                let masks =
                    tasks::on_call(gw, session, server, name, &message, pending.as_ref(), plan);
                message["params"]["name"] = Value::String(name.to_owned());
                let call = Call::new(session, server, name, message, client_id, pending)
                    .assertion(d.held_assertion);
                return hold_call(gw, approvals, &loaded, call, masks, d.claims, h).await;
            }
            if d.outcome != Outcome::Allow {
                return Reply::Json(kind.refusal(client_id, &d.outcome, &shown));
            }
            let masks = tasks::on_call(gw, session, server, name, &message, pending.as_ref(), plan);
            message["params"]["name"] = Value::String(name.to_owned());
            let span = call_span(pending.as_ref());
            let t = redact::with_audit(pending, masks);
            forward_to(gw, session, server, message, client_id, t, d.assertion)
                .instrument(span)
                .await
        }
        Some((ListOrItem::Resource, uri)) => {
            resource(gw, &loaded, session, client_id, &uri, message).await
        }
        None => other(gw, session, client_id, method, message).await,
    }
}

/// Resource requests on `/mcp`: routed to the server that listed the URI, else tried on
/// each server whose policy allows it until one knows it.
async fn resource(
    gw: &Arc<Gateway>,
    loaded: &Arc<LoadedProgram>,
    session: &Arc<Session>,
    client_id: Value,
    uri: &str,
    message: Value,
) -> Reply {
    let kind = ListOrItem::Resource;
    let method = jsonrpc::method(&message)
        .unwrap_or("resources/read")
        .to_owned();
    if let Some(server) = session.resource_route(uri) {
        let d = match decide_recorded(
            gw, loaded, session, kind, &server, uri, &method, &message, &client_id,
        )
        .await
        {
            Ok(x) => x,
            Err(reply) => return reply,
        };
        if d.outcome != Outcome::Allow {
            return Reply::Json(kind.refusal(client_id, &d.outcome, uri));
        }
        let masks = redact::transform(loaded, d.masks);
        let t = redact::with_audit(d.pending, masks);
        return forward_to(gw, session, &server, message, client_id, t, None).await;
    }
    let mut last = Outcome::Unknown;
    let params = message.get("params").cloned().unwrap_or(json!({}));
    for (server, up) in &session.upstreams {
        let Decided {
            outcome,
            mut pending,
            masks,
            ..
        } = match decide_recorded(
            gw, loaded, session, kind, server, uri, &method, &message, &client_id,
        )
        .await
        {
            Ok(x) => x,
            Err(reply) => return reply,
        };
        if outcome != Outcome::Allow {
            if matches!(outcome, Outcome::Deny(_)) {
                last = outcome;
            }
            continue;
        }
        match relay::call(
            session,
            server,
            up,
            &method,
            params.clone(),
            gw.timeout(server),
        )
        .await
        {
            Ok(result) => {
                if let Some(p) = pending.as_mut() {
                    p.finish(&json!({ "result": result }));
                }
                session.set_resource_route(uri, server);
                let reply = jsonrpc::result(client_id, result);
                let masks = redact::transform(loaded, masks);
                return Reply::Json(match masks {
                    Some(t) => t.apply(reply),
                    None => reply,
                });
            }
            Err(e) => {
                if let Some(p) = pending.as_mut() {
                    p.finish(&json!({ "error": { "message": e.to_string() } }));
                }
                tracing::debug!(server = %server, uri, error = %e, "resource not served here")
            }
        }
    }
    Reply::Json(kind.refusal(client_id, &last, uri))
}

/// Methods on `/mcp` that are no decision point.
async fn other(
    gw: &Arc<Gateway>,
    session: &Arc<Session>,
    client_id: Value,
    method: &str,
    mut message: Value,
) -> Reply {
    match method {
        "ping" => return Reply::Json(jsonrpc::result(client_id, json!({}))),
        "logging/setLevel" => {
            let params = message.get("params").cloned().unwrap_or(json!({}));
            let calls = session.upstreams.iter().map(|(server, up)| {
                relay::call(
                    session,
                    server,
                    up,
                    method,
                    params.clone(),
                    gw.timeout(server),
                )
            });
            futures_util::future::join_all(calls).await;
            return Reply::Json(jsonrpc::result(client_id, json!({})));
        }
        "completion/complete" => {
            let sep = gw.config.namespace_separator.as_str();
            let r = message
                .pointer("/params/ref")
                .cloned()
                .unwrap_or(Value::Null);
            let target = match r.get("type").and_then(Value::as_str) {
                Some("ref/prompt") => r
                    .get("name")
                    .and_then(Value::as_str)
                    .and_then(|n| aggregate::split_name(n, sep, session.upstreams.keys()))
                    .map(|(s, n)| (s.to_owned(), Some(n.to_owned()))),
                Some("ref/resource") => r
                    .get("uri")
                    .and_then(Value::as_str)
                    .and_then(|u| session.resource_route(u))
                    .map(|s| (s, None)),
                _ => None,
            };
            let Some((server, rename)) = target else {
                return Reply::Json(jsonrpc::result(
                    client_id,
                    json!({"completion": {"values": [], "hasMore": false}}),
                ));
            };
            if let Some(n) = rename {
                message["params"]["ref"]["name"] = Value::String(n);
            }
            return forward_to(gw, session, &server, message, client_id, None, None).await;
        }
        _ => {}
    }
    // Anything else can only be relayed where it is unambiguous.
    if session.upstreams.len() == 1
        && let Some(server) = session.upstreams.keys().next()
    {
        return forward_to(gw, session, server, message, client_id, None, None).await;
    }
    Reply::Json(jsonrpc::error(
        client_id,
        jsonrpc::METHOD_NOT_FOUND,
        &format!("Method not found: {method} (not routable on the aggregated endpoint)"),
    ))
}

/// An aggregated list page: the upstreams' pages filtered and namespaced for the caller
/// ([`pages::walk`]), with one audit record for what was shown and hidden.
async fn list(
    gw: &Arc<Gateway>,
    loaded: &LoadedProgram,
    session: &Arc<Session>,
    kind: ListKind,
    client_id: Value,
    message: &Value,
) -> Value {
    let (mut shown, mut hidden) = (0, 0);
    let sep = gw.config.namespace_separator.as_str();
    let walked = pages::walk(
        gw,
        session,
        message,
        kind.method(),
        kind.key(),
        |server, result| {
            let (s, h) = decide::filter_page(
                gw.held_pins.as_deref(),
                loaded,
                session,
                server,
                kind,
                result,
                Some(sep),
            );
            (shown, hidden) = (shown + s, hidden + h);
        },
    )
    .await;
    let Ok((items, next)) = walked else {
        return jsonrpc::error(client_id, jsonrpc::INVALID_PARAMS, "invalid cursor");
    };
    let caller = decide::caller(loaded, session);
    audit::record_list(
        gw.audit.get(),
        loaded,
        &caller,
        None,
        kind.method(),
        shown,
        hidden,
    );
    pages::answer(client_id, kind.key(), items, next)
}
