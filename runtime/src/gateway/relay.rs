//! Relaying one client request to one upstream: ids mapped both ways, every related
//! message (progress, logging, server-to-client requests) passed on in order, the final
//! response optionally transformed (list filtering), cancellation sent upstream when the
//! client goes away or the upstream stalls.

use crate::gateway::Gateway;
use crate::gateway::input_bridge;
use crate::gateway::resource_updates::deliverable;
use crate::jsonrpc;
use crate::session::Session;

use crate::upstream::{Exchange, ExtraHeader, Message, UpstreamError, UpstreamSession};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How the gateway answers one client message.
#[derive(Debug)]
pub enum Reply {
    /// One JSON response.
    Json(Value),
    /// One JSON response, already encoded (the upstream's answer with the client's id).
    Raw(Bytes),
    /// An SSE stream: related messages, then the response.
    Stream(mpsc::Receiver<Value>),
    /// 202: a notification or response was accepted.
    Accepted,
    /// The upstream forgot the session: 404 so the client re-initializes.
    SessionGone,
}

/// A [`Reply::Raw`] response parsed back, for the callers that read or change it (it was
/// checked when it came from upstream, so this does not fail in practice).
pub fn decode(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        jsonrpc::error(
            Value::Null,
            jsonrpc::INTERNAL_ERROR,
            &format!("cannot read the response: {e}"),
        )
    })
}

/// What happens to a call's final response before it reaches the client: the audit's
/// outcome record is written from it, then it may be rewritten (masks, task bookkeeping,
/// list filtering).
pub struct Transform {
    outcome: Option<crate::audit::decision::Pending>,
    rewrite: Option<Box<dyn FnOnce(Value) -> Value + Send>>,
}

impl Transform {
    /// A rewrite of the response.
    pub fn new(rewrite: impl FnOnce(Value) -> Value + Send + 'static) -> Transform {
        Transform {
            outcome: None,
            rewrite: Some(Box::new(rewrite)),
        }
    }

    /// Records the outcome of `pending` from the response (first), then applies the
    /// rewrite of `then`.
    pub fn recording(
        pending: crate::audit::decision::Pending,
        then: Option<Transform>,
    ) -> Transform {
        Transform {
            outcome: Some(pending),
            rewrite: then.and_then(|t| t.rewrite),
        }
    }

    /// Records the outcome, then rewrites.
    pub fn apply(self, m: Value) -> Value {
        if let Some(mut pending) = self.outcome {
            pending.finish(&m);
        }
        match self.rewrite {
            Some(f) => f(m),
            None => m,
        }
    }

    /// Whether the response goes out as it came (only its outcome is recorded): an
    /// upstream's JSON answer may then be passed through unparsed.
    fn passes_unchanged(&self) -> bool {
        self.rewrite.is_none()
    }

    /// Records the outcome of a response passed through as the encoded `body`.
    fn finish_encoded(self, body: &[u8]) {
        if let Some(mut pending) = self.outcome {
            pending.finish_encoded(body);
        }
    }
}

/// Rewrites a message arriving from `server` for the client. Returns `None` for messages
/// the client must not see (a stray response).
pub fn from_upstream(session: &Session, server: &str, mut message: Value) -> Option<Value> {
    if jsonrpc::is_request(&message) {
        let uid = message.get("id").cloned().unwrap_or(Value::Null);
        let gid = session.map_server_request(server, &uid);
        return Some(jsonrpc::with_id(message, gid));
    }
    if jsonrpc::method(&message) == Some("notifications/cancelled")
        && let Some(rid) = message.pointer("/params/requestId").cloned()
    {
        // The server cancels one of its own requests: name it by the id the client knows.
        match session.server_request_id(server, &rid) {
            Some(gid) => message["params"]["requestId"] = gid,
            None => return None,
        }
    }
    if jsonrpc::is_response(&message) {
        return None;
    }
    Some(message)
}

/// Sends `notifications/cancelled` for an upstream request, in the background.
fn cancel_upstream(upstream: &UpstreamSession, gid: Value, reason: &str) {
    let upstream = upstream.clone();
    let note = jsonrpc::notification(
        "notifications/cancelled",
        json!({"requestId": gid, "reason": reason}),
    );
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let _ = upstream.notify(note).await;
        });
    }
}

/// Cancels the upstream request if the relay is dropped before the response arrived
/// (the client disconnected), and forgets the in-flight id either way.
struct InFlight {
    session: Arc<Session>,
    upstream: UpstreamSession,
    client_id: Value,
    gid: Value,
    done: bool,
}

impl InFlight {
    /// The request finished (or can no longer be cancelled): nothing to cancel on drop.
    fn disarm(&mut self) {
        self.done = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.session.end_call(&self.client_id);
        if !self.done {
            cancel_upstream(&self.upstream, self.gid.clone(), "client disconnected");
        }
    }
}

fn upstream_error(id: Value, server: &str, e: &UpstreamError) -> Value {
    crate::metrics::upstream(server).error(e.kind());
    jsonrpc::error(
        id,
        jsonrpc::INTERNAL_ERROR,
        &format!("server `{server}`: {e}"),
    )
}

enum Step {
    Final(Value),
    Relay(Value),
    Skip,
    Failed(UpstreamError),
}

async fn next_step(
    exchange: &mut Exchange,
    session: &Session,
    server: &str,
    gid: &Value,
    timeout: Duration,
) -> Step {
    match tokio::time::timeout(timeout, exchange.recv()).await {
        Err(_) => Step::Failed(UpstreamError::Timeout),
        Ok(None) => Step::Failed(UpstreamError::Protocol(
            "the exchange ended without a response".into(),
        )),
        Ok(Some(Err(e))) => Step::Failed(e),
        Ok(Some(Ok(m))) => {
            if jsonrpc::is_response(&m) && m.get("id") == Some(gid) {
                Step::Final(m)
            } else {
                match from_upstream(session, server, m) {
                    Some(m) => Step::Relay(m),
                    None => Step::Skip,
                }
            }
        }
    }
}

/// Forwards a client request to `server` and relays everything back.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    session: Arc<Session>,
    server: &str,
    upstream: &UpstreamSession,
    message: Value,
    client_id: Value,
    transform: Option<Transform>,
    timeout: Duration,
) -> Reply {
    forward_with(
        session, server, upstream, message, client_id, transform, timeout, None,
    )
    .await
}

/// As [`forward`], with one more header on the upstream HTTP request (the call's signed
/// assertion).
#[allow(clippy::too_many_arguments)]
pub async fn forward_with(
    session: Arc<Session>,
    server: &str,
    upstream: &UpstreamSession,
    message: Value,
    client_id: Value,
    transform: Option<Transform>,
    timeout: Duration,
    extra: Option<ExtraHeader>,
) -> Reply {
    if input_bridge::applies(&session, upstream, &message) {
        return input_bridge::forward(
            session, server, upstream, message, client_id, transform, timeout, extra,
        )
        .await;
    }
    let stats = crate::metrics::upstream(server);
    let started = std::time::Instant::now();
    let gid = session.begin_call(&client_id, server);
    let mut guard = InFlight {
        session: session.clone(),
        upstream: upstream.clone(),
        client_id: client_id.clone(),
        gid: gid.clone(),
        done: false,
    };
    let mut exchange = match upstream
        .request_with(jsonrpc::with_id(message, gid.clone()), extra.as_ref())
        .await
    {
        Ok(x) => x,
        Err(UpstreamError::SessionExpired) => {
            guard.disarm();
            stats.error(UpstreamError::SessionExpired.kind());
            return Reply::SessionGone;
        }
        Err(e) => {
            guard.disarm();
            return Reply::Json(upstream_error(client_id, server, &e));
        }
    };
    // Nothing to change but the id: the upstream's answer goes out as it came, unparsed
    // (its outcome, when audited, read from its top level).
    if transform.as_ref().is_none_or(Transform::passes_unchanged)
        && let Some(raw) = exchange.take_raw()
    {
        guard.disarm();
        return match raw.with_id(&client_id) {
            Ok(bytes) => {
                stats.observe(started.elapsed());
                if let Some(t) = transform {
                    t.finish_encoded(&bytes);
                }
                Reply::Raw(Bytes::from(bytes))
            }
            Err(e) => Reply::Json(upstream_error(client_id, server, &e)),
        };
    }
    let finish = move |m: Value, client_id: Value| {
        stats.observe(started.elapsed());
        let m = jsonrpc::with_id(m, client_id);
        match transform {
            Some(t) => t.apply(m),
            None => m,
        }
    };
    // Answer with plain JSON when the response comes first; switch to a stream as soon as
    // anything else arrives.
    let first = loop {
        match next_step(&mut exchange, &session, server, &gid, timeout).await {
            Step::Skip => continue,
            Step::Final(m) => {
                guard.disarm();
                return Reply::Json(finish(m, client_id));
            }
            Step::Failed(UpstreamError::SessionExpired) => {
                guard.disarm();
                return Reply::SessionGone;
            }
            Step::Failed(e) => {
                if e != UpstreamError::Timeout {
                    guard.disarm();
                }
                return Reply::Json(upstream_error(client_id, server, &e));
            }
            Step::Relay(m) => break m,
        }
    };
    let (tx, rx) = mpsc::channel(64);
    let server = server.to_owned();
    tokio::spawn(async move {
        if tx.send(first).await.is_err() {
            return;
        }
        loop {
            let out = match next_step(&mut exchange, &session, &server, &gid, timeout).await {
                Step::Skip => continue,
                Step::Relay(m) => m,
                Step::Final(m) => {
                    guard.disarm();
                    let _ = tx.send(finish(m, client_id)).await;
                    return;
                }
                Step::Failed(e) => {
                    if e != UpstreamError::Timeout {
                        guard.disarm();
                    }
                    let _ = tx.send(upstream_error(client_id, &server, &e)).await;
                    return;
                }
            };
            // The client went away: the guard cancels upstream.
            if tx.send(out).await.is_err() {
                return;
            }
        }
    });
    Reply::Stream(rx)
}

/// Sends a request the gateway makes on its own (a page of an aggregated list, a probe)
/// and waits for its response. Related notifications are dropped; server-to-client
/// requests are refused, since no client stream carries them.
///
/// # Errors
/// The JSON-RPC `error` object of the response, or one describing the upstream failure.
pub async fn call(
    session: &Session,
    server: &str,
    upstream: &UpstreamSession,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, Value> {
    let gid = session.next_id();
    let message = json!({"jsonrpc": "2.0", "id": gid, "method": method, "params": params});
    let mut exchange = upstream.request(message).await.map_err(
        |e| json!({"code": jsonrpc::INTERNAL_ERROR, "message": format!("server `{server}`: {e}")}),
    )?;
    loop {
        let item = match tokio::time::timeout(timeout, exchange.recv()).await {
            Err(_) => {
                cancel_upstream(upstream, gid, "timed out");
                return Err(
                    json!({"code": jsonrpc::INTERNAL_ERROR, "message": format!("server `{server}`: upstream timed out")}),
                );
            }
            Ok(None) => {
                return Err(
                    json!({"code": jsonrpc::INTERNAL_ERROR, "message": format!("server `{server}`: no response")}),
                );
            }
            Ok(Some(Err(e))) => {
                return Err(
                    json!({"code": jsonrpc::INTERNAL_ERROR, "message": format!("server `{server}`: {e}")}),
                );
            }
            Ok(Some(Ok(m))) => m,
        };
        if jsonrpc::is_response(&item) && item.get("id") == Some(&gid) {
            if let Some(e) = item.get("error") {
                return Err(e.clone());
            }
            return Ok(item.get("result").cloned().unwrap_or(Value::Null));
        }
        if jsonrpc::is_request(&item) {
            let id = item.get("id").cloned().unwrap_or(Value::Null);
            let refusal = jsonrpc::error(
                id,
                jsonrpc::METHOD_NOT_FOUND,
                "the gateway cannot relay this request here",
            );
            let _ = upstream.notify(refusal).await;
        }
    }
}

/// Relays a client's answer to a server-to-client request back to its upstream.
pub async fn answer_server_request(session: &Session, message: Message) {
    let Some(message) = input_bridge::deliver(session, message) else {
        return;
    };
    let Some(gid) = message.get("id").cloned() else {
        return;
    };
    let Some((server, uid)) = session.take_server_request(&gid) else {
        tracing::debug!(session = %session.sid, "answer to an unknown server request dropped");
        return;
    };
    if let Some(up) = session.upstreams.get(&server)
        && let Err(e) = up.notify(jsonrpc::with_id(message, uid)).await
    {
        tracing::warn!(server, error = %e, "could not relay an answer upstream");
    }
}

/// Relays a client notification: cancellations go to the upstream running the request
/// (with the gateway's id), everything else to every upstream of the session.
pub async fn client_notification(session: &Session, mut message: Message) {
    if jsonrpc::method(&message) == Some("notifications/cancelled") {
        let Some(rid) = message.pointer("/params/requestId").cloned() else {
            return;
        };
        if input_bridge::cancel(session, &rid) {
            return;
        }
        let Some((server, gid)) = session.in_flight(&rid) else {
            return;
        };
        message["params"]["requestId"] = gid;
        if let Some(up) = session.upstreams.get(&server) {
            let _ = up.notify(message).await;
        }
        return;
    }
    let sends = session.upstreams.iter().map(|(name, up)| {
        let m = message.clone();
        async move {
            if let Err(e) = up.notify(m).await {
                tracing::warn!(server = %name, error = %e, "could not relay a notification upstream");
            }
        }
    });
    futures_util::future::join_all(sends).await;
}

/// Merges the server-initiated streams of every upstream of a session into one channel;
/// a resource update passes only while the client may read the resource. `None` when no
/// upstream offers a stream.
pub async fn listen(gw: Arc<Gateway>, session: Arc<Session>) -> Option<mpsc::Receiver<Value>> {
    let shutdown = gw.shutdown.clone();
    let (tx, rx) = mpsc::channel(64);
    let mut any = false;
    for (name, up) in &session.upstreams {
        match up.listen().await {
            Ok(Some(mut stream)) => {
                any = true;
                let tx = tx.clone();
                let session = session.clone();
                let name = name.clone();
                let shutdown = shutdown.clone();
                let gw = gw.clone();
                tokio::spawn(async move {
                    loop {
                        let m = tokio::select! {
                            m = stream.recv() => m,
                            () = shutdown.cancelled() => None,
                            () = tx.closed() => None,
                        };
                        let Some(m) = m else { return };
                        if !deliverable(&gw.program.load(), &session, &name, &m) {
                            continue;
                        }
                        if let Some(m) = from_upstream(&session, &name, m)
                            && tx.send(m).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(server = %name, error = %e, "could not open the server stream")
            }
        }
    }
    any.then_some(rx)
}
