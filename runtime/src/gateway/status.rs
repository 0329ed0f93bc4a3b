//! The gateway endpoints of the policy follower (`POST /admin/sync`, `/metrics`) and of
//! the stores (`/readyz`, the `state` part of `/status`).

use crate::gateway::Gateway;
use crate::gateway::http::Body;
use crate::gitops::admin::Refusal;
use crate::metrics;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::sync::Arc;

/// `/metrics` in the Prometheus text format.
pub fn metrics(gw: &Gateway) -> Response<Body> {
    let syncer = gw.policy.get();
    let gauges = syncer.map(|s| s.gauges()).unwrap_or_default();
    let mut text = metrics::render(syncer.map(|s| &s.metrics), &gauges);
    text.push_str(&crate::lock::gate::metrics_text(&gw.program.load().pins));
    let mut r = Response::new(Full::new(bytes::Bytes::from(text)).boxed_unsync());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// Whether each store answers: (name, store kind, error).
fn stores(gw: &Gateway) -> Vec<(&'static str, &'static str, Option<String>)> {
    let quota = gw.quotas.probe();
    let mut out = vec![("quota", quota.store, quota.error)];
    if let Some(tokens) = gw.identity.tokens() {
        out.push(("tokens", tokens.kind(), tokens.probe()));
    }
    if let Some(approvals) = gw.approvals.get() {
        let kind = approvals.kind();
        // A shared table is read by the same check as the tokens': one probe is enough
        // when both are in PostgreSQL, but approvals may be there without tokens.
        let error = (kind == "postgres").then(|| approvals.probe()).flatten();
        out.push(("approvals", kind, error));
    }
    // The embedded task store is the state dir's, like the gateway itself: only a shared
    // one can be down while the gateway runs.
    if gw.tasks.kind() == "postgres" {
        out.push(("tasks", gw.tasks.kind(), gw.tasks.probe()));
    }
    out
}

/// `/readyz`: 200 when every store answers, else 503 naming the store that does not. The
/// error itself (an address) is only in `/status`, which may be access-controlled.
pub fn readyz(gw: &Gateway) -> (StatusCode, Value) {
    let stores = stores(gw);
    let ready = stores.iter().all(|(_, _, e)| e.is_none());
    let listed: serde_json::Map<String, Value> = stores
        .into_iter()
        .map(|(name, store, e)| (name.to_owned(), json!({"store": store, "up": e.is_none()})))
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, json!({"ready": ready, "stores": listed}))
}

/// The `state` part of `/status`: this replica and whether each store answers.
pub fn state_json(gw: &Gateway) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("replica".into(), json!(gw.replica));
    if let Some(h) = &gw.handoff {
        // Where the other replicas forward retries of the calls parked here.
        out.insert("advertise".into(), json!(h.url()));
    }
    for (name, store, e) in stores(gw) {
        out.insert(
            name.into(),
            json!({"store": store, "up": e.is_none(), "error": e}),
        );
    }
    Value::Object(out)
}

/// `POST /admin/sync`: checks the token or webhook signature, then syncs and answers with
/// the policy status. Refused requests change nothing.
pub async fn admin_sync(gw: &Arc<Gateway>, req: Request<Incoming>) -> (StatusCode, Value) {
    if req.method() != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, json!({"error": "use POST"}));
    }
    let Some(syncer) = gw.policy.get().cloned() else {
        return (
            StatusCode::NOT_FOUND,
            json!({"error": "this gateway has no policy source to sync"}),
        );
    };
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = header(header::AUTHORIZATION.as_str());
    let signature = header("x-hub-signature-256");
    let event = header("x-github-event");
    let limit = gw.config.max_body_bytes;
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "request body too large or cut short"}),
            );
        }
    };
    match syncer
        .admin
        .check(authorization.as_deref(), signature.as_deref(), &body)
    {
        Ok(()) => {}
        Err(Refusal::NotConfigured) => {
            return (
                StatusCode::FORBIDDEN,
                json!({
                    "error": "admin sync is not configured",
                    "help": "set MCPGATE_ADMIN_TOKEN or MCPGATE_WEBHOOK_SECRET, or write the state dir's admin.token",
                }),
            );
        }
        Err(Refusal::Unauthorized) => {
            tracing::warn!(
                webhook = signature.is_some(),
                "admin sync refused: bad token or signature"
            );
            return (
                StatusCode::UNAUTHORIZED,
                json!({"error": "bad token or signature"}),
            );
        }
    }
    if event.as_deref() == Some("ping") {
        return (StatusCode::OK, json!({"ok": true, "event": "ping"}));
    }
    tracing::info!(webhook = signature.is_some(), "admin sync requested");
    (StatusCode::OK, syncer.sync().await)
}
