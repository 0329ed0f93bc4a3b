//! `subscriptions/listen`: a long-lived POST whose SSE stream first acknowledges the
//! notifications the gateway will deliver (the list changes asked for, and the resources
//! the caller may read, see [`super::resources`]), then carries each upstream's list
//! changes and resource updates as they come (merged on `/mcp`), every one stamped with the
//! subscription's id. Legacy upstreams are heard on their server-initiated stream, modern
//! ones through their own listen stream. A resource update is decided again on delivery,
//! under the policy in force.

use super::resources;
use crate::gateway::Gateway;
use crate::gateway::http::{Body, sse_response};
use crate::gateway::resource_updates::{may_read, updated_uri};
use crate::jsonrpc;
use crate::session::Session;
use crate::upstream::era::META_SUBSCRIPTION;
use http::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The filter keys the gateway honors, and the notification each one asks for.
const KINDS: [(&str, &str); 3] = [
    ("toolsListChanged", "notifications/tools/list_changed"),
    ("promptsListChanged", "notifications/prompts/list_changed"),
    (
        "resourcesListChanged",
        "notifications/resources/list_changed",
    ),
];

/// The honored list changes of a client's filter.
pub fn honored(message: &Value) -> Map<String, Value> {
    let asked = message.pointer("/params/notifications");
    KINDS
        .iter()
        .filter(|(k, _)| asked.and_then(|a| a.get(*k)).and_then(Value::as_bool) == Some(true))
        .map(|(k, _)| ((*k).to_owned(), Value::Bool(true)))
        .collect()
}

/// Opens the subscription stream for `session` (a bridge session).
pub async fn open(
    gw: &Arc<Gateway>,
    session: &Arc<Session>,
    id: Value,
    message: &Value,
) -> Response<Body> {
    let mut filter = honored(message);
    let wanted: Vec<&'static str> = KINDS
        .iter()
        .filter(|(k, _)| filter.contains_key(*k))
        .map(|(_, m)| *m)
        .collect();
    let uris = match resources::requested(message) {
        Ok(u) => u,
        Err(e) => {
            return super::answer(&jsonrpc::error(id, jsonrpc::INVALID_PARAMS, &e));
        }
    };
    let subs = resources::decide(gw, session, &id, uris).await;
    if !subs.honored().is_empty() {
        filter.insert("resourceSubscriptions".into(), json!(subs.honored()));
    }
    let (upstream, held) = if wanted.is_empty() && subs.honored().is_empty() {
        (None, None)
    } else {
        let (rx, held) = resources::streams(gw, session, &subs, !wanted.is_empty()).await;
        (rx, Some(held))
    };
    let (tx, rx) = mpsc::channel(64);
    let shutdown = gw.shutdown.clone();
    let gw = gw.clone();
    let subscriber = session.clone();
    tokio::spawn(async move {
        // Unsubscribes upstream when the stream ends, however it ends.
        let _held = held;
        let stamp = json!({ META_SUBSCRIPTION: id });
        let ack = jsonrpc::notification(
            "notifications/subscriptions/acknowledged",
            json!({"notifications": filter, "_meta": stamp}),
        );
        if tx.send(ack).await.is_err() {
            return;
        }
        let Some(mut upstream) = upstream else {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tx.closed() => return,
            }
            let _ = tx.send(end(&id)).await;
            return;
        };
        loop {
            let m = tokio::select! {
                m = upstream.recv() => m,
                () = shutdown.cancelled() => None,
                () = tx.closed() => return,
            };
            let Some((server, m)) = m else { break };
            let Some(method) = jsonrpc::method(&m) else {
                continue;
            };
            let pass = match updated_uri(&m) {
                Some(uri) => {
                    subs.covers(&server, uri)
                        && may_read(&gw.program.load(), &subscriber, &server, uri)
                }
                None => wanted.contains(&method),
            };
            if !pass {
                continue;
            }
            let mut params = m.get("params").cloned().unwrap_or_else(|| json!({}));
            if !params.is_object() {
                params = json!({});
            }
            params["_meta"] = stamp.clone();
            if tx
                .send(jsonrpc::notification(method, params))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = tx.send(end(&id)).await;
    });
    sse_response(rx, session.clone())
}

/// The result that ends a subscription gracefully.
fn end(id: &Value) -> Value {
    jsonrpc::result(
        id.clone(),
        json!({"resultType": "complete", "_meta": { META_SUBSCRIPTION: id }}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honors_list_changes_asked_for() {
        let m = json!({"params": {"notifications": {"toolsListChanged": true,
            "promptsListChanged": false, "resourceSubscriptions": ["file:///a"]}}});
        let h = honored(&m);
        assert_eq!(Value::Object(h), json!({"toolsListChanged": true}));
    }
}
