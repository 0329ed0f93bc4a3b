//! Sessions the gateway keeps on a modern client's behalf. A modern (2026-07-28) client has
//! no session, but a legacy upstream needs one: the gateway opens a gateway session for the
//! principal, endpoint and client capabilities (sending `initialize` to legacy upstreams and
//! `server/discover` to modern ones), keeps its sealed token, and reuses it for every modern
//! request of that principal. The session is an ordinary one (idle reaping, upstream
//! failures, replicas), found again by its sealed token.

use crate::gateway::{Gateway, sessions, version};
use crate::identity::Authenticated;
use crate::jsonrpc;
use crate::session::{Endpoint, Session};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most bridge sessions remembered on one replica (the oldest is forgotten beyond it).
const MAX_BRIDGES: usize = 10_000;

/// One remembered bridge session.
#[derive(Clone, Debug)]
struct Bridged {
    /// The sealed session token.
    token: String,
    /// The `initialize` result (merged on `/mcp`).
    init: Value,
    created: u64,
}

/// The bridge sessions of this replica: (principal, endpoint, capabilities) -> token.
#[derive(Debug, Default)]
pub struct Bridges {
    map: Mutex<HashMap<String, Bridged>>,
    /// One creation at a time, so concurrent first requests share one session.
    creating: tokio::sync::Mutex<()>,
}

fn key(auth: &Authenticated, endpoint: &Endpoint, capabilities: &Value) -> String {
    // The credential's server scope is part of the key: tokens of one principal with
    // different scopes never share a session.
    format!(
        "{}\u{0}{:?}\u{0}{}\u{0}{}",
        auth.principal.id,
        auth.servers,
        endpoint.key(),
        capabilities
    )
}

impl Bridges {
    fn lookup(&self, k: &str) -> Option<Bridged> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(k)
            .cloned()
    }

    fn store(&self, k: String, b: Bridged) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_BRIDGES
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, v)| v.created)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(k, b);
    }

    /// Forgets the bridge of a session that ended (its upstream forgot it).
    pub fn forget(&self, token: &str) {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, v| v.token != token);
    }
}

/// The bridge session for a modern request, and the `initialize` result it was opened with.
///
/// # Errors
/// The JSON-RPC error of a failed `initialize` (the upstream is down or refused).
pub async fn session(
    gw: &Gateway,
    endpoint: &Endpoint,
    auth: &Authenticated,
    capabilities: &Value,
    client_info: Option<&Value>,
) -> Result<(Arc<Session>, Value), Value> {
    let k = key(auth, endpoint, capabilities);
    if let Some(found) = find(gw, endpoint, auth, &k) {
        return Ok(found);
    }
    let _one = gw.modern.bridges.creating.lock().await;
    if let Some(found) = find(gw, endpoint, auth, &k) {
        return Ok(found);
    }
    if gw.sessions.len() >= crate::gateway::MAX_SESSIONS {
        return Err(jsonrpc::error(
            Value::Null,
            jsonrpc::INTERNAL_ERROR,
            "too many sessions on this gateway",
        ));
    }
    let mut params = json!({
        "protocolVersion": version::LATEST,
        "capabilities": capabilities,
        "clientInfo": client_info.cloned().unwrap_or_else(|| json!({"name": "unknown", "version": "0"})),
    });
    if !params["clientInfo"].is_object() {
        params["clientInfo"] = json!({"name": "unknown", "version": "0"});
    }
    let message = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params});
    let init = sessions::initialize(gw, endpoint, auth.clone(), message, json!(0)).await;
    let Some(session) = init.session else {
        return Err(init.response);
    };
    // A stateless client takes `input_required` as it is.
    session.inputs.disable();
    let result = init.response.get("result").cloned().unwrap_or(Value::Null);
    crate::gateway::relay::client_notification(
        &session,
        jsonrpc::notification("notifications/initialized", json!({})),
    )
    .await;
    gw.modern.bridges.store(
        k,
        Bridged {
            token: session.token.clone(),
            init: result.clone(),
            created: session.created,
        },
    );
    tracing::info!(session = %session.sid, principal = %auth.principal.id, endpoint = %endpoint.path(), "bridge session opened for modern requests");
    Ok((session, result))
}

fn find(
    gw: &Gateway,
    endpoint: &Endpoint,
    auth: &Authenticated,
    k: &str,
) -> Option<(Arc<Session>, Value)> {
    let b = gw.modern.bridges.lookup(k)?;
    match sessions::find_session(gw, endpoint, auth, &b.token) {
        Ok(s) => {
            s.inputs.disable();
            Some((s, b.init))
        }
        Err(_) => {
            gw.modern.bridges.forget(&b.token);
            None
        }
    }
}
