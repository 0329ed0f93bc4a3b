//! The lifecycle of client sessions: `initialize` connects the endpoint's upstreams and
//! seals the session's state into its id; a later request finds the session on this
//! replica or reopens it from the sealed id; `DELETE` ends it.

use crate::gateway::aggregate;
use crate::gateway::{Gateway, SESSION_MAX_AGE_SECS, version};
use crate::identity::{Authenticated, Credential};
use crate::jsonrpc;
use crate::session::seal::Claims;
use crate::session::{Endpoint, Session, SessionParts, now_secs};
use crate::upstream::UpstreamSession;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a session could not be found; each maps to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// Forged, garbled, expired, ended, or for another endpoint: 404.
    NotFound,
}

/// A new session and the answer to its `initialize`.
pub struct Initialized {
    pub session: Option<Arc<Session>>,
    pub response: Value,
}

fn random_hex() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b[..]);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Handles `initialize`: connects the endpoint's upstream(s) and creates the session.
/// Why a client may not open a session with a delegated agent's token: a delegation is
/// consent for one agent, so the client must introduce itself (`clientInfo.name`) by the
/// name the delegation was made for. `None` for any other credential or the right name.
pub fn delegated_client_refused(auth: &Authenticated, client_name: Option<&str>) -> Option<String> {
    if !matches!(auth.credential, Credential::Delegation { .. }) {
        return None;
    }
    let agent = &auth.principal.id;
    match client_name {
        Some(name) if name == agent => None,
        Some(name) => Some(format!(
            "this delegation is for the agent `{agent}`, but the client calls itself `{name}` (clientInfo.name); use the token only in the agent it was made for"
        )),
        None => Some(format!(
            "this delegation is for the agent `{agent}`, but the client gives no clientInfo.name"
        )),
    }
}

pub async fn initialize(
    gw: &Gateway,
    endpoint: &Endpoint,
    auth: Authenticated,
    message: Value,
    client_id: Value,
) -> Initialized {
    let params = jsonrpc::params(&message);
    let requested = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or(version::DEFAULT)
        .to_owned();
    let client_name = params
        .get("clientInfo")
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let client_version = params
        .get("clientInfo")
        .and_then(|c| c.get("version"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(why) = delegated_client_refused(&auth, client_name.as_deref()) {
        tracing::warn!(principal = %auth.principal.id, on_behalf_of = auth.principal.on_behalf_of().unwrap_or("-"), client = client_name.as_deref().unwrap_or("-"), "initialize refused: the client is not the delegation's agent");
        return Initialized {
            session: None,
            response: jsonrpc::error(client_id, jsonrpc::INVALID_PARAMS, &why),
        };
    }
    let sid = random_hex();
    // A scoped credential never reaches a server outside its scope, whatever the policy.
    let servers: Vec<String> = match endpoint {
        Endpoint::Aggregate => gw
            .upstreams
            .keys()
            .filter(|s| auth.allows_server(s))
            .cloned()
            .collect(),
        Endpoint::Server(s) => vec![s.clone()],
    };
    let connects = servers.iter().filter_map(|name| {
        let up = gw.upstreams.get(name)?.clone();
        // Each upstream gets the client's initialize under an id of the gateway's own.
        let msg = jsonrpc::with_id(message.clone(), json!(0));
        let sid = sid.clone();
        let timeout = gw.timeout(name);
        Some(async move {
            let r = tokio::time::timeout(timeout, up.connect(&sid, msg)).await;
            (name.clone(), r)
        })
    });
    let outcomes = futures_util::future::join_all(connects).await;
    let mut upstreams: BTreeMap<String, UpstreamSession> = BTreeMap::new();
    let mut results: BTreeMap<String, Value> = BTreeMap::new();
    let mut failure: Option<Value> = None;
    for (name, outcome) in outcomes {
        match outcome {
            Ok(Ok((session, response))) => {
                if let Some(result) = response.get("result") {
                    results.insert(name.clone(), result.clone());
                    upstreams.insert(name, session);
                } else {
                    let error = response.get("error").cloned().unwrap_or(Value::Null);
                    tracing::warn!(server = %name, %error, "upstream refused initialize");
                    session.close().await;
                    failure = Some(jsonrpc::with_id(response, client_id.clone()));
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(server = %name, error = %e, "upstream unavailable");
                failure = Some(jsonrpc::error(
                    client_id.clone(),
                    jsonrpc::INTERNAL_ERROR,
                    &format!("server `{name}`: {e}"),
                ));
            }
            Err(_) => {
                tracing::warn!(server = %name, "upstream initialize timed out");
                failure = Some(jsonrpc::error(
                    client_id.clone(),
                    jsonrpc::INTERNAL_ERROR,
                    &format!("server `{name}`: upstream timed out"),
                ));
            }
        }
    }
    let result = match endpoint {
        Endpoint::Server(name) => match results.get(name) {
            Some(r) => r.clone(),
            None => {
                return Initialized {
                    session: None,
                    response: failure.unwrap_or_else(|| {
                        jsonrpc::error(client_id, jsonrpc::INTERNAL_ERROR, "no upstream")
                    }),
                };
            }
        },
        Endpoint::Aggregate => aggregate::merge_initialize(&results, &requested),
    };
    let protocol_version = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or(&requested)
        .to_owned();
    let created = now_secs();
    let claims = Claims {
        sid: sid.clone(),
        endpoint: endpoint.key().to_owned(),
        client_name: client_name.clone(),
        client_version: client_version.clone(),
        protocol_version: protocol_version.clone(),
        principal: auth.principal.id.clone(),
        credential: auth.credential.binding(),
        created,
        upstreams: upstreams
            .iter()
            .map(|(k, v)| (k.clone(), v.state()))
            .collect(),
    };
    let token = gw.sealer.seal(&claims);
    let session = Arc::new(Session::new(SessionParts {
        sid,
        token,
        endpoint: endpoint.clone(),
        client_name,
        client_version,
        protocol_version,
        principal: auth.principal,
        credential: auth.credential,
        created,
        upstreams,
    }));
    crate::gateway::handoff::attach(gw, &session);
    gw.sessions.insert(session.clone());
    tracing::info!(
        session = %session.sid,
        endpoint = %endpoint.path(),
        principal = %session.principal.id,
        token = session.credential.token_id().unwrap_or("-"),
        client = session.client_name.as_deref().unwrap_or("-"),
        upstreams = ?session.upstreams.keys().collect::<Vec<_>>(),
        "session opened"
    );
    Initialized {
        session: Some(session),
        response: jsonrpc::result(client_id, result),
    }
}

/// Finds the session a client's `Mcp-Session-Id` names, rebuilding it from the sealed
/// state when this replica does not hold it.
///
/// # Errors
/// [`SessionError::NotFound`] for a token that does not open, has expired, was ended, or
/// belongs to another endpoint, principal or upstream set.
pub fn find_session(
    gw: &Gateway,
    endpoint: &Endpoint,
    auth: &Authenticated,
    token: &str,
) -> Result<Arc<Session>, SessionError> {
    let principal = &auth.principal;
    if let Some(s) = gw.sessions.by_token(token) {
        let fresh = now_secs().saturating_sub(s.created) <= SESSION_MAX_AGE_SECS;
        if fresh
            && s.endpoint == *endpoint
            && s.principal.id == principal.id
            && s.credential == auth.credential
        {
            s.touch();
            return Ok(s);
        }
        return Err(SessionError::NotFound);
    }
    let claims = gw
        .sealer
        .unseal(token, now_secs(), SESSION_MAX_AGE_SECS)
        .ok_or(SessionError::NotFound)?;
    if claims.endpoint != endpoint.key()
        || claims.principal != principal.id
        || claims.credential != auth.credential.binding()
        || gw.sessions.is_ended(&claims.sid)
    {
        return Err(SessionError::NotFound);
    }
    if let Some(s) = gw.sessions.get(&claims.sid) {
        s.touch();
        return Ok(s);
    }
    let mut upstreams = BTreeMap::new();
    for (name, state) in &claims.upstreams {
        let up = gw.upstreams.get(name).ok_or(SessionError::NotFound)?;
        // A stdio upstream lives only on the replica that spawned it.
        let session = up
            .resume(&claims.sid, state)
            .ok_or(SessionError::NotFound)?;
        upstreams.insert(name.clone(), session);
    }
    let session = Arc::new(Session::new(SessionParts {
        sid: claims.sid,
        token: token.to_owned(),
        endpoint: endpoint.clone(),
        client_name: claims.client_name,
        client_version: claims.client_version,
        protocol_version: claims.protocol_version,
        principal: principal.clone(),
        credential: auth.credential.clone(),
        created: claims.created,
        upstreams,
    }));
    crate::gateway::handoff::attach(gw, &session);
    tracing::info!(session = %session.sid, "session resumed from its sealed state");
    gw.sessions.insert(session.clone());
    Ok(session)
}

/// Ends a session: closes its upstream sessions.
pub async fn end_session(gw: &Gateway, session: &Session) {
    if let Some(s) = gw.sessions.end(
        &session.sid,
        session.created.saturating_add(SESSION_MAX_AGE_SECS),
    ) {
        s.close().await;
    } else {
        session.close().await;
    }
    tracing::info!(session = %session.sid, "session ended");
}
