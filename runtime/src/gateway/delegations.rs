//! `POST /delegations`: a person, authenticated by the gateway's identity check, opens a
//! delegation for an agent; `DELETE /delegations/{id}` ends one of theirs. The delegation
//! service checks the request against the live program and stores it.

use crate::delegation::{GrantError, GrantRequest};
use crate::gateway::Gateway;
use crate::identity::Credential;
use crate::identity::time::{parse_ttl, rfc3339};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::sync::Arc;

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// Whether a path belongs to this endpoint.
pub fn owns(path: &str) -> bool {
    path == "/delegations" || path.starts_with("/delegations/")
}

fn error(status: StatusCode, text: &str) -> (StatusCode, Value) {
    (status, json!({"error": text}))
}

/// The body of a create request: the lifetime as `ttl` text (`15m`, `8h`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    agent: String,
    tools: Vec<String>,
    ttl: String,
    reason: String,
}

/// Handles one request to `/delegations`.
pub async fn handle(gw: &Arc<Gateway>, req: Request<Incoming>) -> (StatusCode, Value) {
    let Some(delegations) = gw.delegations.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "delegations need an `identity` section on this gateway",
        );
    };
    let person = match gw.identity.authenticate(req.headers()).await {
        Ok(a) => a,
        Err(e) => return error(StatusCode::UNAUTHORIZED, &e.to_string()),
    };
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let now = crate::clock::now_secs();
    match (req.method().clone(), path.strip_prefix("/delegations")) {
        (Method::POST, Some("")) => {
            let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large or cut short",
                    );
                }
            };
            let body: Create = match serde_json::from_slice(&bytes) {
                Ok(b) => b,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "{e}; send {{\"agent\": \"...\", \"tools\": [\"server.tool\"], \"ttl\": \"1h\", \"reason\": \"...\"}}"
                        ),
                    );
                }
            };
            let ttl_secs = match parse_ttl(&body.ttl) {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return error(StatusCode::BAD_REQUEST, "a delegation cannot live forever");
                }
                Err(e) => return error(StatusCode::BAD_REQUEST, &e),
            };
            let loaded = gw.program.load_full();
            let request = GrantRequest {
                agent: body.agent,
                tools: body.tools,
                ttl_secs,
                reason: body.reason,
            };
            match delegations.create(&loaded.program, &person, request, now) {
                Ok((token, d)) => {
                    let event = json!({
                        "delegation": d.id, "person": d.person, "agent": d.agent,
                        "tools": d.tools, "reason": d.reason, "expires": rfc3339(d.expires),
                    });
                    // The consent is in the audit log too, or the delegation does not stand.
                    if let Err(e) = record(gw, "delegation.created", event).await {
                        tracing::error!(error = %e, "delegation withdrawn: its audit event cannot be written");
                        let _ = delegations.revoke(&d.id, "gateway", now);
                        return error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "the audit log is unavailable; no delegation was made",
                        );
                    }
                    tracing::info!(delegation = %d.id, person = %d.person, agent = %d.agent, "delegation created");
                    (
                        StatusCode::CREATED,
                        json!({
                            "id": d.id,
                            "token": token,
                            "person": d.person,
                            "agent": d.agent,
                            "tools": d.tools,
                            "reason": d.reason,
                            "expires": rfc3339(d.expires),
                        }),
                    )
                }
                Err(e @ GrantError::Invalid(_)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
                Err(e @ (GrantError::NotAllowed(_) | GrantError::Wider { .. })) => {
                    error(StatusCode::FORBIDDEN, &e.to_string())
                }
                Err(e @ GrantError::Store(_)) => {
                    tracing::error!(error = %e, "delegation not created");
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the delegation store is unavailable",
                    )
                }
            }
        }
        (Method::DELETE, Some(rest)) if rest.len() > 1 => {
            let id = &rest[1..];
            // Only the person who made it (or an operator on the command line) ends it.
            let mine = match delegations.get(id) {
                Ok(Some(d)) => {
                    d.person == person.principal.id
                        && !matches!(person.credential, Credential::Delegation { .. })
                }
                Ok(None) => false,
                Err(_) => {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the delegation store is unavailable",
                    );
                }
            };
            if !mine {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!("no delegation `{id}` of yours"),
                );
            }
            match delegations.revoke(id, &person.principal.id, now) {
                Ok(_) => {
                    let event = json!({"delegation": id, "by": person.principal.id});
                    if let Err(e) = record(gw, "delegation.revoked", event).await {
                        // Revoked all the same: the store is what the gateway checks.
                        tracing::error!(error = %e, "delegation revoked, its audit event lost");
                    }
                    (StatusCode::OK, json!({"revoked": id}))
                }
                Err(_) => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the delegation store is unavailable",
                ),
            }
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST /delegations or DELETE /delegations/{id}",
        ),
    }
}

/// Records a delegation event in the audit log, when the gateway keeps one.
pub async fn record(gw: &Gateway, event: &str, data: Value) -> Result<(), String> {
    match gw.audit.get() {
        Some(log) => log
            .record_event(event, None, data)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        None => Ok(()),
    }
}
