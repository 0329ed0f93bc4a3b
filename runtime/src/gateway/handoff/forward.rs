//! The forwarding side: a retry or an answer this replica does not hold goes to the replica
//! that does, and that replica's response comes back to the client unchanged.

use super::{HOP, Handoff, answer_key};
use crate::gateway::Gateway;
use crate::gateway::http::Body;
use crate::gateway::modern::answer;
use crate::http_client;
use crate::identity::Authenticated;
use crate::jsonrpc;
use crate::parked::Owner;
use crate::parked::envelope::{Envelope, PATH, SIGNATURE_HEADER};
use crate::session::Endpoint;
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use std::convert::Infallible;
use std::time::Duration;

/// Longest wait for the owner's response head (it answers once the retry is decided).
const OWNER_TIMEOUT: Duration = Duration::from_secs(30);

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
    let token = crate::gateway::modern::input::parked_token(message)?;
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
