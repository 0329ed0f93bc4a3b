//! The stateless protocol era (2026-07-28) on the client side: no `initialize`, no session;
//! every request carries its protocol version and client capabilities in `_meta`, and its
//! HTTP headers mirror the body. The gateway checks the headers against the body (the body
//! decides, never the headers), answers `server/discover` itself, relays
//! `subscriptions/listen`, and passes everything else through a bridge session
//! ([`bridge`]) to the same decision code legacy sessions use.

pub mod bridge;
pub mod discover;
pub mod input;
pub mod ladder;
pub mod listen;
pub mod params;
pub mod resources;

use crate::gateway::Gateway;
use crate::gateway::http::{Body, json_response, plain, sse_response};
use crate::gateway::relay::{self, Reply};
use crate::gateway::{dispatch, sessions, version};
use crate::identity::Authenticated;
use crate::jsonrpc::{self, Kind};
use crate::session::{Endpoint, Session};
use crate::upstream::era::{self, META_CAPABILITIES, META_CLIENT_INFO, META_VERSION};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Methods a modern client may send through the gateway; anything else is 404 `-32601`.
const METHODS: [&str; 14] = [
    "server/discover",
    "subscriptions/listen",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "completion/complete",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
];

/// What the modern side of the gateway keeps.
#[derive(Debug, Default)]
pub struct State {
    pub bridges: bridge::Bridges,
    pub parked: input::Parked,
    pub holders: resources::Holders,
}

/// Whether a POSTed message is of the stateless era: its `_meta` names a protocol version,
/// or (to report what is missing) it comes without a session under a version header that is
/// not a legacy one.
pub fn is_modern(message: &Value, headers: &HeaderMap) -> bool {
    // `get` chains, not `pointer`: a pointer allocates per segment, and this runs per call.
    if message
        .get("params")
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(META_VERSION))
        .is_some()
    {
        return true;
    }
    headers.get(crate::gateway::http::SESSION_HEADER).is_none()
        && jsonrpc::method(message) != Some("initialize")
        && message.get("method").is_some()
        && message.get("id").is_some()
        && header_version(headers).is_some_and(|v| !version::KNOWN.contains(&v))
}

/// Whether a GET or DELETE is of the stateless era (a modern version header, no session):
/// answered 405.
pub fn is_modern_get(headers: &HeaderMap) -> bool {
    headers.get(crate::gateway::http::SESSION_HEADER).is_none()
        && header_version(headers).is_some_and(era::is_modern_version)
}

/// The 405 a modern GET or DELETE gets.
pub fn method_not_allowed() -> Response<Body> {
    let mut r = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "protocol 2026-07-28 has no GET stream or session to delete; POST requests",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

fn header_version(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(crate::gateway::http::VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
}

/// The HTTP status of a JSON-RPC error code on the modern wire.
pub fn status_for(code: i64) -> StatusCode {
    match code {
        jsonrpc::PARSE_ERROR
        | jsonrpc::INVALID_REQUEST
        | jsonrpc::INVALID_PARAMS
        | ladder::HEADER_MISMATCH
        | ladder::MISSING_CAPABILITY
        | ladder::UNSUPPORTED_VERSION => StatusCode::BAD_REQUEST,
        jsonrpc::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// A JSON answer with the status its error code calls for.
pub fn answer(value: &Value) -> Response<Body> {
    let status = value
        .pointer("/error/code")
        .and_then(Value::as_i64)
        .map_or(StatusCode::OK, status_for);
    json_response(status, value)
}

/// Handles one POSTed message of the stateless era.
pub async fn post(
    gw: &Arc<Gateway>,
    endpoint: &Endpoint,
    auth: Authenticated,
    headers: &HeaderMap,
    message: Value,
) -> Response<Body> {
    let (id, method) = match jsonrpc::classify(&message) {
        Ok(Kind::Request { id, method }) => (id, method),
        // No client-to-server notifications exist in this era: accepted and dropped.
        Ok(Kind::Notification { .. } | Kind::Response { .. }) => {
            let mut r = Response::new(Full::new(Bytes::new()).boxed_unsync());
            *r.status_mut() = StatusCode::ACCEPTED;
            return r;
        }
        Err(e) => return answer(&e),
    };
    let envelope = match ladder::check(&message, headers, &era::MODERN_VERSIONS) {
        Ok(e) => e,
        Err(e) => return answer(&jsonrpc::with_id(e, id)),
    };
    if !METHODS.contains(&method.as_str()) {
        return answer(&jsonrpc::error(
            id,
            jsonrpc::METHOD_NOT_FOUND,
            &format!("Method not found: {method}"),
        ));
    }
    let meta = message.pointer("/params/_meta");
    let capabilities = meta
        .and_then(|m| m.get(META_CAPABILITIES))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let client_info = meta.and_then(|m| m.get(META_CLIENT_INFO)).cloned();
    // Checked on every request: the bridge session may have been opened by another name.
    let client_name = client_info
        .as_ref()
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str);
    if let Some(why) = sessions::delegated_client_refused(&auth, client_name) {
        tracing::warn!(principal = %auth.principal.id, client = client_name.unwrap_or("-"), "request refused: the client is not the delegation's agent");
        return answer(&jsonrpc::error(id, jsonrpc::INVALID_PARAMS, &why));
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (session, init) =
            match bridge::session(gw, endpoint, &auth, &capabilities, client_info.as_ref()).await {
                Ok(s) => s,
                Err(e) => return answer(&jsonrpc::with_id(e, id)),
            };
        if let Err(e) = params::check(gw, &session, &method, &message, headers) {
            return answer(&jsonrpc::with_id(e, id));
        }
        let mut msg = message.clone();
        era::strip_envelope(&mut msg);
        let mut audit = None;
        let reply = match method.as_str() {
            "server/discover" => {
                return answer(&jsonrpc::result(
                    id,
                    discover::result(gw, endpoint, &init, &envelope.version),
                ));
            }
            "subscriptions/listen" => {
                return listen::open(gw, &session, id, &msg).await;
            }
            _ => match input::retry(gw, &session, &auth.principal, &id, &method, &msg).await {
                Some((resumed, pending)) => {
                    audit = pending;
                    resumed
                }
                None => dispatch::request(gw, &session, id.clone(), &method, msg).await,
            },
        };
        match reply {
            Reply::Json(v) => {
                if v.get("id").is_none() || jsonrpc::method(&v).is_some() {
                    return answer(&v);
                }
                let v = finish(gw, &method, v);
                return answer(&v);
            }
            // The stateless answer is rewritten: an encoded one is parsed first.
            Reply::Raw(bytes) => {
                let v = finish(gw, &method, relay::decode(&bytes));
                return answer(&v);
            }
            Reply::Stream(rx) => {
                let name = ladder::name_field(&method)
                    .and_then(|f| jsonrpc::params(&message).get(f))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let rx = pump(gw.clone(), session.clone(), method, name, id, rx, audit);
                return sse_response(rx, session);
            }
            Reply::Accepted => {
                return json_response(StatusCode::OK, &jsonrpc::result(id, json!({})));
            }
            Reply::SessionGone => {
                sessions::end_session(gw, &session).await;
                gw.modern.bridges.forget(&session.token);
                if attempts >= 2 {
                    return answer(&jsonrpc::error(
                        id,
                        jsonrpc::INTERNAL_ERROR,
                        "the upstream session ended; try again",
                    ));
                }
            }
        }
    }
}

/// The final response of a modern request: list results get `cacheScope: "private"` and a
/// `ttlMs` no longer than the policy may stay unchanged; results get a `resultType`.
pub fn finish(gw: &Gateway, method: &str, mut response: Value) -> Value {
    let Some(result) = response.get_mut("result").and_then(Value::as_object_mut) else {
        return response;
    };
    if crate::gateway::decide::ListKind::of_method(method).is_some() {
        mark_private(gw, result);
    }
    result
        .entry("resultType")
        .or_insert_with(|| Value::String("complete".into()));
    response
}

/// Marks a result cacheable only by the caller, for at most the policy's lifetime.
pub fn mark_private(gw: &Gateway, result: &mut serde_json::Map<String, Value>) {
    let ttl = policy_ttl_ms(gw);
    let upstream = result.get("ttlMs").and_then(Value::as_u64).unwrap_or(ttl);
    result.insert("ttlMs".into(), Value::from(upstream.min(ttl)));
    result.insert("cacheScope".into(), Value::String("private".into()));
}

/// How long a filtered list stays true: the policy can change at the next poll of the
/// policy repository; a watched folder can change at any time (0).
pub fn policy_ttl_ms(gw: &Gateway) -> u64 {
    gw.policy
        .get()
        .and_then(|p| p.poll_interval())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Relays a streamed reply to a modern client: notifications pass, the final response is
/// finished, and a server-to-client request (sampling, elicitation, roots) ends the stream
/// with an `input_required` result while the upstream call waits for the client's retry.
pub fn pump(
    gw: Arc<Gateway>,
    session: Arc<Session>,
    method: String,
    name: Option<String>,
    client_id: Value,
    mut rx: mpsc::Receiver<Value>,
    mut audit: Option<crate::audit::decision::Pending>,
) -> mpsc::Receiver<Value> {
    let (tx, out) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if jsonrpc::is_request(&m) {
                let result = input::park(&gw, &session, &method, name, m, rx);
                let _ = tx.send(jsonrpc::result(client_id, result)).await;
                return;
            }
            if jsonrpc::is_response(&m) {
                if let Some(p) = audit.as_mut() {
                    p.finish(&m);
                }
                let m = jsonrpc::with_id(m, client_id);
                let _ = tx.send(finish(&gw, &method, m)).await;
                return;
            }
            if tx.send(m).await.is_err() {
                return;
            }
        }
    });
    out
}
