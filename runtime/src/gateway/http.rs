//! The HTTP face of the gateway: routing, the Streamable HTTP checks (Host, Origin,
//! Accept, Content-Type, body size, protocol version, session id), and turning replies
//! into JSON or SSE responses.

use crate::gateway::dispatch;
use crate::gateway::relay::{self, Reply};
use crate::gateway::sessions::{self, SessionError};
use crate::gateway::{Gateway, version};
use crate::identity::{Authenticated, metadata};
use crate::jsonrpc::{self, Kind};
use crate::session::{Endpoint, Session};
use crate::sse;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A response body: a full buffer or an SSE stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// An HTTP face served on the gateway's port under its own path prefix (the web console):
/// the gateway defines it and routes to it, the module above implements it.
pub trait Mounted: Send + Sync + std::fmt::Debug {
    /// Whether `path` is this face's.
    fn owns(&self, path: &str) -> bool;
    /// Answers one request (the Host and Origin checks have passed).
    fn handle(
        &self,
        gw: Arc<Gateway>,
        req: Request<Incoming>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>>;
}

/// The session header.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// The protocol version header.
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// How often an idle SSE stream gets a comment line.
const KEEP_ALIVE: Duration = Duration::from_secs(20);

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub(crate) fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("{text}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    encoded_json_response(
        status,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

/// [`json_response`] for a body already encoded.
fn encoded_json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Lists are filtered for the caller: never cacheable for anyone else.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An HTTP error whose body is a JSON-RPC error, as MCP clients expect.
fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response<Body> {
    json_response(status, &jsonrpc::error(Value::Null, code, message))
}

/// An SSE response carrying `rx`. While it is open, the session counts as in use (a
/// client listening on a quiet stream is not idle).
pub(crate) fn sse_response(mut rx: mpsc::Receiver<Value>, session: Arc<Session>) -> Response<Body> {
    let (btx, mut brx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEEP_ALIVE);
        tick.tick().await;
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(v) => {
                        let text = serde_json::to_string(&v).unwrap_or_default();
                        if btx.send(sse::encode(&text, None)).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                _ = tick.tick() => {
                    session.touch();
                    if btx.send(sse::keep_alive()).await.is_err() {
                        return;
                    }
                }
                () = btx.closed() => return,
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        brx.poll_recv(cx)
            .map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    r
}

/// Whether the `Accept` header lists `wanted` (lowercase), `*/*` or `family/*`; media types
/// compare case-insensitively, parameters dropped. Allocates nothing: it runs on every request.
fn accepts(headers: &HeaderMap, wanted: &str) -> bool {
    let family = wanted.split('/').next().unwrap_or("");
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .any(|t| {
            t.eq_ignore_ascii_case(wanted)
                || t == "*/*"
                || t.strip_suffix("/*")
                    .is_some_and(|f| f.eq_ignore_ascii_case(family))
        })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The host part of a `Host` value or of an origin's authority (brackets kept for IPv6).
fn host_part(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(i) => authority.get(..=i).unwrap_or(authority),
            None => authority,
        };
    }
    authority.split(':').next().unwrap_or(authority)
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Gateway {
    /// Whether a `Host` header names this gateway (DNS rebinding protection).
    pub fn host_allowed(&self, host: &str) -> bool {
        // Case-insensitive compares instead of a lowercased copy: this runs on every request.
        let name = host_part(host);
        if !self.config.allowed_hosts.is_empty() {
            return self
                .config
                .allowed_hosts
                .iter()
                .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(name));
        }
        if ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            return true;
        }
        let listen = match self.listen.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        name.eq_ignore_ascii_case(&listen)
    }

    /// Whether a present `Origin` header is allowed.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        if self
            .config
            .allowed_origins
            .iter()
            .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
        {
            return true;
        }
        if !self.listen.ip().is_loopback() {
            return false;
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        matches!(scheme, "http" | "https") && is_loopback_host(host_part(authority))
    }

    fn status_json(&self) -> Value {
        let loaded = self.program.load_full();
        let mut lock = crate::lock::gate::status_json(&loaded.pins);
        if let Some(holds) = &self.held_pins {
            lock["fleet"] = holds.status_json(|h| {
                crate::lock::gate::watched_pin(&loaded.pins, &h.server, &h.tool)
                    .is_some_and(|p| mcpgate_compiler::lock::canonical::hex(&p) == h.pinned)
            });
        }
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "program": {
                "hash": loaded.hash,
                "commit": loaded.program.commit(),
                "rules": loaded.program.rules().len(),
            },
            "upstreams": self.upstreams.keys().collect::<Vec<_>>(),
            "sessions": self.sessions.len(),
            "policy": self.policy.get().map(|p| p.status_json()),
            "lock": lock,
            "state": crate::gateway::status::state_json(self),
        })
    }
}

/// Handles one HTTP request.
pub async fn handle(
    gw: Arc<Gateway>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let _in_flight = crate::busy_poll::InFlight::enter();
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        return Ok(plain(StatusCode::OK, "ok"));
    }
    // Like `/healthz`, answered before the Host check: probes come by the pod's address.
    if path == "/readyz" {
        let (status, value) = crate::gateway::status::readyz(&gw);
        return Ok(json_response(status, &value));
    }
    // Another replica forwarding a retry, by this replica's own address: the signature is
    // the check, not the Host.
    if path == crate::parked::envelope::PATH && *req.method() == Method::POST {
        return Ok(crate::gateway::handoff::serve(&gw, req).await);
    }
    match header_str(req.headers(), header::HOST.as_str()) {
        Some(host) if gw.host_allowed(host) => {}
        Some(_) => return Ok(plain(StatusCode::MISDIRECTED_REQUEST, "host not allowed")),
        None => return Ok(plain(StatusCode::BAD_REQUEST, "missing Host header")),
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin.to_str().is_ok_and(|o| gw.origin_allowed(o));
        if !ok {
            return Ok(plain(StatusCode::FORBIDDEN, "origin not allowed"));
        }
    }
    if let Some(face) = gw.mounted.get().cloned()
        && face.owns(&path)
    {
        return Ok(face.handle(gw, req).await);
    }
    if path == "/status" || path == "/metrics" {
        if let Err(refused) = super::status_access::check(&gw, req.headers(), &path).await {
            return Ok(refused);
        }
        if path == "/status" {
            return Ok(json_response(StatusCode::OK, &gw.status_json()));
        }
        return Ok(crate::gateway::status::metrics(&gw));
    }
    if crate::approvals::api::owns(&path) {
        let (status, value) = crate::gateway::approvers::handle(&gw, req).await;
        return Ok(json_response(status, &value));
    }
    if crate::gateway::delegations::owns(&path) {
        let (status, value) = crate::gateway::delegations::handle(&gw, req).await;
        return Ok(json_response(status, &value));
    }
    if path == "/admin/sync" {
        let (status, value) = crate::gateway::status::admin_sync(&gw, req).await;
        return Ok(json_response(status, &value));
    }
    if path == crate::gateway::assertion::JWKS_PATH {
        return Ok(match &gw.assertions {
            None => plain(StatusCode::NOT_FOUND, "no assertions are signed here"),
            Some(a) => match a.jwks(crate::clock::now_secs()) {
                Ok(jwks) => json_response(StatusCode::OK, &jwks),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the assertion keys");
                    plain(StatusCode::SERVICE_UNAVAILABLE, "the keys cannot be read")
                }
            },
        });
    }
    if path.starts_with(metadata::WELL_KNOWN) {
        let known = |s: &str| gw.upstreams.contains_key(s);
        return Ok(metadata::serve(&gw.identity, req.headers(), &path, known)
            .unwrap_or_else(|| plain(StatusCode::NOT_FOUND, "not found")));
    }
    let Some(endpoint) = gw.endpoint(&path) else {
        let text = match path.strip_prefix("/mcp/") {
            Some(name) => format!("no server named `{name}`"),
            None => "not found".to_owned(),
        };
        return Ok(plain(StatusCode::NOT_FOUND, &text));
    };
    if let Some(v) = header_str(req.headers(), VERSION_HEADER)
        && !version::acceptable(v)
    {
        return Ok(rpc_error(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            &format!(
                "unsupported protocol version `{v}` (known: {})",
                version::KNOWN.join(", ")
            ),
        ));
    }
    // Every request, not only `initialize`: a revoked token fails on its next request.
    let auth = match gw.identity.authenticate(req.headers()).await {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(path = %endpoint.path(), error = %e, "request refused: not authenticated");
            return Ok(metadata::unauthorized(
                &gw.identity,
                req.headers(),
                &endpoint.path(),
                &e,
            ));
        }
    };
    if let Endpoint::Server(server) = &endpoint
        && !auth.allows_server(server)
    {
        tracing::info!(principal = %auth.principal.id, server = %server, "request refused: server outside the token's scope");
        return Ok(metadata::out_of_scope(
            &gw.identity,
            req.headers(),
            &endpoint.path(),
            server,
        ));
    }
    if *req.method() != Method::POST && crate::gateway::modern::is_modern_get(req.headers()) {
        return Ok(crate::gateway::modern::method_not_allowed());
    }
    let response = match *req.method() {
        Method::POST => {
            let trace = crate::telemetry::client_trace(req.headers());
            crate::telemetry::with_client_trace(trace, post(&gw, &endpoint, auth, req)).await
        }
        Method::GET => get(&gw, &endpoint, &auth, req.headers()).await,
        Method::DELETE => delete(&gw, &endpoint, &auth, req.headers()).await,
        _ => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            r
        }
    };
    Ok(response)
}

// An error here is the response itself, built once per request: its size does not matter.
#[allow(clippy::result_large_err)]
fn session_of(
    gw: &Gateway,
    endpoint: &Endpoint,
    auth: &Authenticated,
    headers: &HeaderMap,
) -> Result<Arc<Session>, Response<Body>> {
    let Some(token) = headers.get(SESSION_HEADER) else {
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "missing Mcp-Session-Id header",
        ));
    };
    let token = token.to_str().unwrap_or("");
    sessions::find_session(gw, endpoint, auth, token).map_err(|SessionError::NotFound| {
        rpc_error(
            StatusCode::NOT_FOUND,
            jsonrpc::INVALID_REQUEST,
            "session not found",
        )
    })
}

async fn get(
    gw: &Arc<Gateway>,
    endpoint: &Endpoint,
    auth: &Authenticated,
    headers: &HeaderMap,
) -> Response<Body> {
    if !accepts(headers, "text/event-stream") {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "Accept must include text/event-stream",
        );
    }
    let session = match session_of(gw, endpoint, auth, headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match relay::listen(gw.clone(), session.clone()).await {
        Some(rx) => sse_response(rx, session),
        None => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "no server-initiated stream");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, DELETE"));
            r
        }
    }
}

async fn delete(
    gw: &Arc<Gateway>,
    endpoint: &Endpoint,
    auth: &Authenticated,
    headers: &HeaderMap,
) -> Response<Body> {
    match session_of(gw, endpoint, auth, headers) {
        Ok(session) => {
            sessions::end_session(gw, &session).await;
            plain(StatusCode::OK, "session ended")
        }
        Err(r) => r,
    }
}

#[allow(clippy::result_large_err)]
async fn read_body(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Bytes, Response<Body>> {
    let max = gw.config.max_body_bytes;
    let too_large = || {
        rpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            &format!("request body larger than {max} bytes"),
        )
    };
    if let Some(len) =
        header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(|l| l.parse::<u64>().ok())
        && len > max as u64
    {
        return Err(too_large());
    }
    match Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(plain(
            StatusCode::BAD_REQUEST,
            "could not read the request body",
        )),
    }
}

async fn post(
    gw: &Arc<Gateway>,
    endpoint: &Endpoint,
    auth: Authenticated,
    req: Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    if !accepts(&headers, "application/json") || !accepts(&headers, "text/event-stream") {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "Accept must include application/json and text/event-stream",
        );
    }
    let json_body = header_str(&headers, header::CONTENT_TYPE.as_str()).is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json_body {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    }
    let body = match read_body(gw, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let version = header_str(&headers, VERSION_HEADER).unwrap_or(version::DEFAULT);
    let parsed = match jsonrpc::parse(&body, version) {
        Ok(p) => p,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &e),
    };
    match parsed {
        jsonrpc::Body::Single(message) if crate::gateway::modern::is_modern(&message, &headers) => {
            let elsewhere =
                crate::gateway::handoff::elsewhere(gw, endpoint, &auth, &headers, &body, &message);
            if let Some(forwarded) = elsewhere.await {
                return forwarded;
            }
            crate::gateway::modern::post(gw, endpoint, auth, &headers, message).await
        }
        jsonrpc::Body::Single(message) => single(gw, endpoint, auth, &headers, message).await,
        jsonrpc::Body::Batch(items) => batch(gw, endpoint, auth, &headers, items).await,
    }
}

pub(crate) async fn single(
    gw: &Arc<Gateway>,
    endpoint: &Endpoint,
    auth: Authenticated,
    headers: &HeaderMap,
    message: Value,
) -> Response<Body> {
    let kind = match jsonrpc::classify(&message) {
        Ok(k) => k,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &e),
    };
    if let Kind::Request { id, method } = &kind
        && method == "initialize"
    {
        if gw.sessions.len() >= crate::gateway::MAX_SESSIONS {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "too many sessions");
        }
        let init = sessions::initialize(gw, endpoint, auth, message, id.clone()).await;
        let mut r = json_response(StatusCode::OK, &init.response);
        if let Some(s) = init.session
            && let Ok(v) = HeaderValue::from_str(&s.token)
        {
            r.headers_mut().insert(SESSION_HEADER, v);
        }
        return r;
    }
    let session = match session_of(gw, endpoint, &auth, headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let reply = match kind {
        Kind::Request { id, method } => dispatch::request(gw, &session, id, &method, message).await,
        Kind::Notification { .. } => {
            relay::client_notification(&session, message).await;
            Reply::Accepted
        }
        Kind::Response { .. } => {
            let elsewhere = crate::gateway::handoff::answer_elsewhere(
                gw, endpoint, &auth, headers, &session, &message,
            );
            if let Some(forwarded) = elsewhere.await {
                return forwarded;
            }
            relay::answer_server_request(&session, message).await;
            Reply::Accepted
        }
    };
    respond(gw, &session, reply).await
}

async fn respond(gw: &Gateway, session: &Arc<Session>, reply: Reply) -> Response<Body> {
    match reply {
        Reply::Json(v) => json_response(StatusCode::OK, &v),
        Reply::Raw(bytes) => encoded_json_response(StatusCode::OK, bytes),
        Reply::Stream(rx) => sse_response(rx, session.clone()),
        Reply::Accepted => {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::ACCEPTED;
            r
        }
        Reply::SessionGone => {
            sessions::end_session(gw, session).await;
            rpc_error(
                StatusCode::NOT_FOUND,
                jsonrpc::INVALID_REQUEST,
                "session not found upstream; initialize again",
            )
        }
    }
}

/// A JSON-RPC batch (protocol 2025-03-26): each item in turn, answers collected into one
/// JSON array; related messages of streamed answers are not relayed in a batch.
async fn batch(
    gw: &Arc<Gateway>,
    endpoint: &Endpoint,
    auth: Authenticated,
    headers: &HeaderMap,
    items: Vec<Value>,
) -> Response<Body> {
    let mut session: Option<Arc<Session>> = None;
    let mut answers = Vec::new();
    for item in items {
        let kind = match jsonrpc::classify(&item) {
            Ok(k) => k,
            Err(e) => {
                answers.push(e);
                continue;
            }
        };
        if let Kind::Request { id, method } = &kind
            && method == "initialize"
        {
            answers.push(jsonrpc::error(
                id.clone(),
                jsonrpc::INVALID_REQUEST,
                "initialize cannot be part of a batch",
            ));
            continue;
        }
        let s = match &session {
            Some(s) => s.clone(),
            None => match session_of(gw, endpoint, &auth, headers) {
                Ok(s) => {
                    session = Some(s.clone());
                    s
                }
                Err(r) => return r,
            },
        };
        match kind {
            Kind::Request { id, method } => {
                match dispatch::request(gw, &s, id, &method, item).await {
                    Reply::Json(v) => answers.push(v),
                    Reply::Raw(bytes) => answers.push(relay::decode(&bytes)),
                    Reply::Stream(mut rx) => {
                        let mut last = None;
                        while let Some(m) = rx.recv().await {
                            last = Some(m);
                        }
                        answers.extend(last.filter(jsonrpc::is_response));
                    }
                    Reply::Accepted => {}
                    gone @ Reply::SessionGone => return respond(gw, &s, gone).await,
                }
            }
            Kind::Notification { .. } => relay::client_notification(&s, item).await,
            Kind::Response { .. } => relay::answer_server_request(&s, item).await,
        }
    }
    if answers.is_empty() {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::ACCEPTED;
        return r;
    }
    json_response(StatusCode::OK, &Value::Array(answers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_parts() {
        assert_eq!(host_part("example.com:80"), "example.com");
        assert_eq!(host_part("[::1]:8080"), "[::1]");
        assert_eq!(host_part("localhost"), "localhost");
        assert!(is_loopback_host("[::1]"));
        assert!(is_loopback_host("127.0.0.2"));
        assert!(!is_loopback_host("evil.example"));
    }

    #[test]
    fn accept_lists() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;q=0.9, text/event-stream"),
        );
        assert!(accepts(&h, "application/json") && accepts(&h, "text/event-stream"));
        h.insert(header::ACCEPT, HeaderValue::from_static("TEXT/*"));
        assert!(!accepts(&h, "application/json") && accepts(&h, "text/event-stream"));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("Application/JSON; q=1"),
        );
        assert!(accepts(&h, "application/json") && !accepts(&h, "text/event-stream"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(accepts(&h, "application/json") && accepts(&h, "text/event-stream"));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/*"));
        assert!(accepts(&h, "application/json") && !accepts(&h, "text/event-stream"));
    }
}
