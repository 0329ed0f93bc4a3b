//! Who may read `/status` and `/metrics` (`gateway.status_access`): they name the upstreams,
//! the policy's commit and the tools held since review, so a gateway that asks callers for
//! credentials asks readers of its status too.

use crate::gateway::Gateway;
use crate::gateway::http::{Body, plain};
use crate::identity::metadata;
use ::http::{HeaderMap, Response, StatusCode};
use mcpgate_compiler::config::StatusAccess;
use mcpgate_compiler::request::PrincipalKind;

/// The configured access, or the default: `authenticated` when identity is on.
pub fn access(gw: &Gateway) -> StatusAccess {
    gw.config.status_access.unwrap_or(if gw.identity.enabled() {
        StatusAccess::Authenticated
    } else {
        StatusAccess::Open
    })
}

/// `Ok` when the caller may read `path`; else the 401 or 403 to answer.
pub async fn check(gw: &Gateway, headers: &HeaderMap, path: &str) -> Result<(), Response<Body>> {
    if access(gw) == StatusAccess::Open {
        return Ok(());
    }
    let authed = match gw.identity.authenticate(headers).await {
        Ok(a) => a,
        Err(e) => return Err(metadata::unauthorized(&gw.identity, headers, path, &e)),
    };
    // `authenticated` without an identity section lets nobody in: never fail open.
    if authed.principal.kind == PrincipalKind::Anonymous {
        return Err(plain(
            StatusCode::UNAUTHORIZED,
            "status access is `authenticated` but the gateway has no `identity` section",
        ));
    }
    let groups = &gw.config.status_groups;
    if groups.is_empty() {
        return Ok(());
    }
    let principal = gw.program.load().principal(&authed.principal).into_owned();
    if principal.groups.iter().any(|g| groups.contains(g)) {
        Ok(())
    } else {
        Err(plain(
            StatusCode::FORBIDDEN,
            "reading the gateway's status needs membership of a `gateway.status_groups` group",
        ))
    }
}
