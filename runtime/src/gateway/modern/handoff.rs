//! Retries of parked calls across the replicas of a fleet. The replica that parks a call
//! records it in the shared database with its own URL ([`crate::parked`]); a replica that
//! gets a retry whose `requestState` it does not hold finds the owner there and forwards
//! the client's request to it, signed with a key every replica derives from the shared
//! session key, then relays the owner's answer to the client unchanged. The owner checks
//! the signature, authenticates the client again from the forwarded headers, and resumes
//! the call as if the retry had reached it directly: the decision stays with it.
//!
//! A legacy client's answer to a request the gateway sent it (an upstream's sampling or
//! elicitation request) travels the same way to the replica waiting for it: each request
//! sent to the client is recorded under its session and id.
//!
//! An owner that does not answer (the replica is gone, and the call with it) gives the
//! client a clear JSON-RPC error, never a hang. Without `state.postgres` none of this runs.

use super::answer;
use crate::gateway::Gateway;
use crate::gateway::http::{Body, plain};
use crate::http_client::{self, HttpClient};
use crate::identity::{Authenticated, metadata};
use crate::jsonrpc;
use crate::parked::envelope::{Envelope, PATH, SIGNATURE_HEADER};
use crate::parked::{Owner, ParkedStore, Record};
use crate::session::Endpoint;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// Label of the key the replicas sign forwarded retries with.
const KEY_LABEL: &[u8] = b"mcpgate fleet retry v1";
/// Longest wait for the owner's response head (it answers once the retry is decided).
const OWNER_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a client's answer is looked for on another replica (no upstream waits longer by
/// default).
const ANSWER_WAIT_SECS: u64 = 600;
/// Headers of a hop, never forwarded or relayed.
const HOP: [&str; 8] = [
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// What a replica of a fleet needs to hand retries to the replica holding their call.
pub struct Handoff {
    store: Arc<dyn ParkedStore>,
    me: Owner,
    key: [u8; 32],
    client: HttpClient,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("me", &self.me)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Handoff {
    /// This replica, reachable at `url` and named `replica`, records its parked calls in
    /// `store`; forwarded retries are signed under a key derived from `sealer`'s.
    ///
    /// # Errors
    /// When `url` is not an `http(s)://` URL or the HTTP client cannot be built.
    pub fn new(
        store: Arc<dyn ParkedStore>,
        url: &str,
        replica: String,
        sealer: &crate::session::seal::Sealer,
    ) -> Result<Handoff, String> {
        http_client::parse_url(url).map_err(|e| format!("state.advertise: {e}"))?;
        Ok(Handoff {
            store,
            me: Owner {
                url: url.trim_end_matches('/').to_owned(),
                replica,
            },
            key: sealer.derive(KEY_LABEL),
            client: http_client::build_client()?,
        })
    }

    /// This replica's URL, as recorded for its parked calls.
    pub fn url(&self) -> &str {
        &self.me.url
    }

    /// Records that this replica holds the call `token` of `principal` until `expires`. A
    /// call that cannot be recorded still waits here, for a retry that reaches this replica.
    pub fn record(&self, token: &str, principal: &str, expires: u64) {
        let record = Record {
            owner: self.me.clone(),
            principal: principal.to_owned(),
        };
        if let Err(e) = crate::state::blocking(|| self.store.record(token, &record, expires)) {
            tracing::warn!(error = %e, "a parked call could not be recorded in the shared database; its retry must reach this replica");
        }
    }

    /// Forgets `token`, in the background (its call was resumed here).
    pub fn forget(self: &Arc<Self>, token: &str) {
        let this = self.clone();
        let token = token.to_owned();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = this.store.forget(&token) {
                tracing::debug!(error = %e, "a resumed call's record was not removed; it expires");
            }
        });
    }
}

/// The key a client's answer to the request `id` of session `sid` is recorded under.
fn answer_key(sid: &str, id: &Value) -> String {
    format!(
        "answer\u{0}{sid}\u{0}{}",
        crate::session::inputs::id_key(id)
    )
}

impl crate::session::AnswerRoutes for Handoff {
    fn asked(&self, session: &crate::session::Session, id: &Value) {
        // A stateless client's bridge session: its answers come as retries of the parked
        // call, recorded when it is parked.
        if !session.inputs.enabled() {
            return;
        }
        let expires = crate::clock::now_secs() + ANSWER_WAIT_SECS;
        self.record(
            &answer_key(&session.sid, id),
            &session.principal.id,
            expires,
        );
    }
}

/// Makes `session` announce the requests it sends its client, in a fleet: a legacy client's
/// answer that lands on another replica is then forwarded here. Each replica's copy of a
/// session takes its own random range of ids.
pub fn attach(gw: &Gateway, session: &crate::session::Session) {
    if let Some(h) = &gw.handoff {
        // Below 2^52: ids stay exact in clients that read numbers as doubles.
        let base = u64::from(rand::random::<u32>()) << 20;
        session.route_answers(h.clone(), base.max(1));
    }
}

/// Forwards a legacy client's answer (a JSON-RPC response) to the replica waiting for it;
/// `None` when this replica is the one, or none is known.
pub async fn answer_elsewhere(
    gw: &Gateway,
    endpoint: &Endpoint,
    auth: &Authenticated,
    headers: &HeaderMap,
    session: &crate::session::Session,
    message: &Value,
) -> Option<Response<Body>> {
    let handoff = gw.handoff.as_ref()?;
    let id = message.get("id")?;
    if session.awaits_answer(id) {
        return None;
    }
    let key = answer_key(&session.sid, id);
    let now = crate::clock::now_secs();
    let record = match crate::state::blocking(|| handoff.store.find(&key, now)) {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look up the replica waiting for a client's answer");
            return None;
        }
    };
    if record.owner.url == handoff.me.url || record.principal != auth.principal.id {
        return None;
    }
    let body = Bytes::from(message.to_string());
    Some(
        forward(
            handoff,
            &record.owner,
            endpoint,
            auth,
            headers,
            &body,
            &key,
            Value::Null,
        )
        .await,
    )
}

/// Forwards `message`, a retry of a call parked on another replica, to that replica and
/// relays its answer; `None` when the retry is this replica's to handle (no fleet, not a
/// gateway `requestState`, a call held here, or one nobody holds: the usual path refuses).
pub async fn elsewhere(
    gw: &Gateway,
    endpoint: &Endpoint,
    auth: &Authenticated,
    headers: &HeaderMap,
    body: &Bytes,
    message: &Value,
) -> Option<Response<Body>> {
    let handoff = gw.handoff.as_ref()?;
    let token = super::input::parked_token(message)?;
    if gw.modern.parked.holds(token) {
        return None;
    }
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let now = crate::clock::now_secs();
    let record = match crate::state::blocking(|| handoff.store.find(token, now)) {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look up the replica holding a parked call");
            return Some(answer(&jsonrpc::error(
                id,
                jsonrpc::INTERNAL_ERROR,
                "the replica holding this call cannot be looked up: the shared state store does not answer; retry shortly",
            )));
        }
    };
    // Another principal's call, or one this replica held and lost: the usual refusal.
    if record.owner.url == handoff.me.url || record.principal != auth.principal.id {
        return None;
    }
    Some(
        forward(
            handoff,
            &record.owner,
            endpoint,
            auth,
            headers,
            body,
            token,
            id,
        )
        .await,
    )
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    handoff: &Handoff,
    owner: &Owner,
    endpoint: &Endpoint,
    auth: &Authenticated,
    headers: &HeaderMap,
    body: &Bytes,
    token: &str,
    id: Value,
) -> Response<Body> {
    let carried = headers
        .iter()
        .filter(|(n, _)| !HOP.contains(&n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let envelope = Envelope::new(
        crate::clock::now_secs(),
        endpoint.path(),
        auth.principal.id.clone(),
        handoff.me.replica.clone(),
        carried,
        String::from_utf8_lossy(body).into_owned(),
    );
    let (bytes, signature) = envelope.seal(&handoff.key);
    let url = format!("{}{PATH}", owner.url);
    let req = Request::post(url.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(Full::new(Bytes::from(bytes)));
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(owner = %owner.url, error = %e, "cannot build the request to a replica");
            return lost(handoff, owner, token, id);
        }
    };
    let response = match http_client::send(&handoff.client, req, OWNER_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(owner = %owner.replica, url = %owner.url, error = %e, "the replica holding a parked call does not answer; the call is lost");
            return lost(handoff, owner, token, id);
        }
    };
    if response.status() == StatusCode::FORBIDDEN
        && response.headers().get(SIGNATURE_HEADER).is_some()
    {
        tracing::error!(owner = %owner.replica, "a replica refused a forwarded retry: do the replicas share `session.key`?");
        return answer(&jsonrpc::error(
            id,
            jsonrpc::INTERNAL_ERROR,
            &format!(
                "replica `{}` holding this call refused to resume it from here; send the call again without `requestState`",
                owner.replica
            ),
        ));
    }
    tracing::info!(owner = %owner.replica, principal = %auth.principal.id, "forwarded to the replica holding its call");
    relay(response)
}

/// The answer for a retry whose owner is gone, which forgets the call.
fn lost(handoff: &Handoff, owner: &Owner, token: &str, id: Value) -> Response<Body> {
    if let Err(e) = crate::state::blocking(|| handoff.store.forget(token)) {
        tracing::debug!(error = %e, "a lost call's record was not removed; it expires");
    }
    answer(&jsonrpc::error(
        id,
        jsonrpc::INTERNAL_ERROR,
        &format!(
            "the call this retry continues was lost: replica `{}` that held it does not answer; send the call again without `requestState`",
            owner.replica
        ),
    ))
}

/// The owner's response, status, headers and body (a stream is relayed as it comes).
fn relay(response: Response<hyper::body::Incoming>) -> Response<Body> {
    let (parts, mut incoming) = response.into_parts();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        while let Some(frame) = incoming.frame().await {
            // The owner went away mid-stream: the client's stream ends there.
            let Ok(frame) = frame else { return };
            if let Ok(data) = frame.into_data()
                && tx.send(data).await.is_err()
            {
                return;
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    let mut out = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    *out.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if !HOP.contains(&name.as_str()) {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

/// Serves [`PATH`]: a retry another replica forwarded here, checked (signature, time,
/// client credential, principal) and then handled as if the client had sent it here.
pub async fn serve(gw: &Arc<Gateway>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let Some(handoff) = gw.handoff.as_ref() else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let (parts, body) = req.into_parts();
    // The envelope carries the client's body and headers: room for both.
    let max = gw.config.max_body_bytes.saturating_mul(2) + 64 * 1024;
    let bytes = match http_body_util::Limited::new(body, max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "forwarded request too large"),
    };
    let signature = parts
        .headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let envelope = match Envelope::open(&handoff.key, &bytes, signature, crate::clock::now_secs()) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "a forwarded retry was refused");
            let mut r = plain(
                StatusCode::FORBIDDEN,
                &format!("forwarded request refused: {e}"),
            );
            r.headers_mut()
                .insert(SIGNATURE_HEADER, HeaderValue::from_static("refused"));
            return r;
        }
    };
    let Some(endpoint) = gw.endpoint(&envelope.endpoint) else {
        return plain(StatusCode::NOT_FOUND, "no such endpoint");
    };
    let mut headers = HeaderMap::new();
    for (n, v) in &envelope.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(n, v);
        }
    }
    let auth = match gw.identity.authenticate(&headers).await {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(from = %envelope.from, error = %e, "forwarded retry refused: not authenticated");
            return metadata::unauthorized(&gw.identity, &headers, &endpoint.path(), &e);
        }
    };
    if let Endpoint::Server(server) = &endpoint
        && !auth.allows_server(server)
    {
        return metadata::out_of_scope(&gw.identity, &headers, &endpoint.path(), server);
    }
    if auth.principal.id != envelope.principal {
        tracing::warn!(from = %envelope.from, "forwarded retry refused: the credential is not the forwarded principal's");
        return plain(StatusCode::FORBIDDEN, "the principal does not match");
    }
    let version = headers
        .get(crate::gateway::http::VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(crate::gateway::version::DEFAULT);
    match jsonrpc::parse(envelope.body.as_bytes(), version) {
        Ok(jsonrpc::Body::Single(message)) if super::is_modern(&message, &headers) => {
            super::post(gw, &endpoint, auth, &headers, message).await
        }
        // A legacy client's answer, with its session header.
        Ok(jsonrpc::Body::Single(message)) if jsonrpc::is_response(&message) => {
            crate::gateway::http::single(gw, &endpoint, auth, &headers, message).await
        }
        Ok(_) => plain(StatusCode::BAD_REQUEST, "not a forwarded retry or answer"),
        Err(e) => crate::gateway::http::json_response(StatusCode::BAD_REQUEST, &e),
    }
}
