//! The approvers' API (`/approvals`) on the gateway: who is asking, by the gateway's own
//! identity check, then the approvals service answers.

use crate::approvals::Approvals;
use crate::gateway::Gateway;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;
use std::sync::Arc;

/// Handles one request to `/approvals`.
pub async fn handle(gw: &Arc<Gateway>, req: Request<Incoming>) -> (StatusCode, Value) {
    let approvals = gw.approvals.get().cloned();
    let who = match &approvals {
        Some(a) => approver_principal(gw, a, req.headers()).await,
        None => Err(String::new()),
    };
    crate::approvals::api::handle(approvals, who, req).await
}

/// Who is acting: the gateway's own identity check (tokens, OIDC), with the groups
/// `principals.yaml` declares; an anonymous caller cannot prove group membership, so without
/// an identity section the approvals' own authenticator decides (which refuses).
pub async fn approver_principal(
    gw: &Gateway,
    approvals: &Approvals,
    headers: &http::HeaderMap,
) -> Result<mcpgate_compiler::request::Principal, String> {
    match gw.identity.authenticate(headers).await {
        Ok(a) if a.principal.kind != mcpgate_compiler::request::PrincipalKind::Anonymous => {
            Ok(gw.program.load().principal(&a.principal).into_owned())
        }
        Ok(_) => approvals.authenticate(headers),
        Err(e) => Err(e.to_string()),
    }
}
