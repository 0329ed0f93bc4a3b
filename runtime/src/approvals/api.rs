//! The approvers' HTTP API on the gateway: `GET /approvals`, `GET /approvals/{id}`,
//! `POST /approvals/{id}/approve` and `POST /approvals/{id}/deny`, each authenticated with
//! the approver's own token.

use super::approval::{self, Approval, DecideError, Verdict};
use super::{Approvals, Approver, authorize};
use ::http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use mcpgate_compiler::request::Principal;
use serde_json::{Value, json};
use std::sync::Arc;

/// Largest request body accepted (a reason or a note).
const MAX_BODY: usize = 64 * 1024;
/// Most approvals one list returns.
const MAX_LISTED: usize = 500;

fn error(status: StatusCode, text: &str) -> (StatusCode, Value) {
    (status, json!({"error": text}))
}

/// Whether a path belongs to this API.
pub fn owns(path: &str) -> bool {
    path == "/approvals" || path.starts_with("/approvals/")
}

/// Handles one request to the API: the status and a JSON body. `approvals` is unset when
/// approvals are off; `who` is the caller as the gateway authenticated it (with its policy
/// groups), or why it could not.
pub async fn handle(
    approvals: Option<Arc<Approvals>>,
    who: Result<Principal, String>,
    req: Request<Incoming>,
) -> (StatusCode, Value) {
    let Some(approvals) = approvals else {
        return error(
            StatusCode::NOT_FOUND,
            "approvals are not enabled on this gateway",
        );
    };
    let principal = match who {
        Ok(p) => p,
        Err(e) => return error(StatusCode::UNAUTHORIZED, &e),
    };
    let approver = Approver {
        id: principal.id.clone(),
        groups: principal.groups.clone(),
        operator: None,
    };
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let parts: Vec<&str> = path.split('/').skip(2).collect();
    match (req.method().clone(), parts.as_slice()) {
        (Method::GET, []) => list(&approvals, &approver).await,
        (Method::GET, [id]) => match read(&approvals, id).await {
            Ok(a) if visible_to(&a, &approver) => (StatusCode::OK, json!(a)),
            Ok(_) => error(
                StatusCode::FORBIDDEN,
                &format!("`{}` may not see approval `{id}`", approver.id),
            ),
            Err(e) => e,
        },
        (Method::POST, [id, action @ ("approve" | "deny")]) => {
            let body = match body(req).await {
                Ok(b) => b,
                Err(e) => return e,
            };
            let text = |k: &str| {
                body.get(k)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            let approve = *action == "approve";
            let note = if approve {
                text("note")
            } else {
                text("reason")
            };
            if !approve && note.is_none() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "a denial needs a reason: send {\"reason\": \"...\"}",
                );
            }
            decide(&approvals, &approver, id, approve, note).await
        }
        (_, [] | [_] | [_, "approve" | "deny"]) => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// An approver sees the approvals they may decide and their own calls.
fn visible_to(a: &Approval, approver: &Approver) -> bool {
    a.principal.id == approver.id || authorize(a, approver).is_ok()
}

async fn list(approvals: &Approvals, approver: &Approver) -> (StatusCode, Value) {
    let listed = approvals
        .db(|s| {
            s.expire_overdue(approval::now_ms())?;
            s.list(false, MAX_LISTED)
        })
        .await;
    match listed {
        Some(Ok(all)) => {
            let mine: Vec<&Approval> = all.iter().filter(|a| visible_to(a, approver)).collect();
            (StatusCode::OK, json!({"approvals": mine}))
        }
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the state database",
        ),
    }
}

async fn read(approvals: &Approvals, id: &str) -> Result<Approval, (StatusCode, Value)> {
    let id2 = id.to_owned();
    match approvals.db(move |s| s.get(&id2)).await {
        Some(Ok(Some(a))) => Ok(a),
        Some(Ok(None)) => Err(error(StatusCode::NOT_FOUND, &format!("no approval `{id}`"))),
        _ => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the state database",
        )),
    }
}

async fn body(req: Request<Incoming>) -> Result<Value, (StatusCode, Value)> {
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large or cut short",
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object, e.g. {\"reason\": \"...\"}",
        )),
    }
}

/// Approves or denies approval `id` as `approver` (who must pass [`authorize`]): the status
/// and JSON answer of the API; the web console decides through it too.
pub async fn decide(
    approvals: &Approvals,
    approver: &Approver,
    id: &str,
    approve: bool,
    note: Option<String>,
) -> (StatusCode, Value) {
    let current = match read(approvals, id).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    if let Err(refusal) = authorize(&current, approver) {
        tracing::warn!(approval = %id, approver = %approver.id, %refusal, "decision refused");
        return error(StatusCode::FORBIDDEN, &refusal.to_string());
    }
    let verdict = Verdict {
        approve,
        by: approver.id.clone(),
        via: "http",
        operator: None,
        note,
    };
    let id2 = id.to_owned();
    let done = approvals
        .db(move |s| s.decide(&id2, &verdict, approval::now_ms()))
        .await;
    match done {
        Some(Ok(a)) => {
            approvals.notify();
            (StatusCode::OK, json!(a))
        }
        Some(Err(e)) => {
            let status = match &e {
                DecideError::NotFound(_) => StatusCode::NOT_FOUND,
                DecideError::Closed { .. } => StatusCode::CONFLICT,
                DecideError::TimedOut(_) => StatusCode::GONE,
                DecideError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, &e.to_string())
        }
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot write the state database",
        ),
    }
}
