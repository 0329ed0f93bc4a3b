//! The `Mcp-Param-*` headers of a stateless client's `tools/call`, checked against the
//! tool's input schema before anything is decided (mismatch: `-32020`). The schema is the
//! one the caller's session last listed for the tool, else the one pinned in
//! `mcpgate.lock`; a tool the gateway knows neither way is not checked. The decision reads
//! the body only, and the client's `Mcp-Param-*` headers are never forwarded: the gateway
//! writes each upstream's own from the body.

use super::ladder::HEADER_MISMATCH;
use crate::gateway::{Gateway, aggregate};
use crate::jsonrpc;
use crate::mcp_headers::{self, Mark};
use crate::session::{Endpoint, Session};
use http::header::HeaderMap;
use serde_json::Value;
use std::sync::Arc;

/// Checks a `tools/call`'s `Mcp-Param-*` headers; other methods pass.
///
/// # Errors
/// The `-32020` error to answer (id `null`; the caller sets the request's id).
pub fn check(
    gw: &Gateway,
    session: &Session,
    method: &str,
    message: &Value,
    headers: &HeaderMap,
) -> Result<(), Value> {
    if method != "tools/call" {
        return Ok(());
    }
    let params = jsonrpc::params(message);
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return Ok(());
    };
    let Some(marks) = marks_of(gw, session, name) else {
        return Ok(());
    };
    let null = Value::Null;
    let arguments = params.get("arguments").unwrap_or(&null);
    mcp_headers::check(&marks, arguments, headers)
        .map_err(|e| jsonrpc::error(Value::Null, HEADER_MISMATCH, &e))
}

/// The marks of the tool a client-facing name stands for, if the gateway knows its schema.
fn marks_of(gw: &Gateway, session: &Session, name: &str) -> Option<Arc<[Mark]>> {
    let (server, local) = match &session.endpoint {
        Endpoint::Server(s) => (s.as_str(), name),
        Endpoint::Aggregate => aggregate::split_name(
            name,
            gw.config.namespace_separator.as_str(),
            session.upstreams.keys(),
        )?,
    };
    // What the caller was shown comes first: under `lock: enforce` only pinned definitions
    // are shown, and under `warn` the client built its headers from the live listing.
    if let Some(m) = session.param_marks(server, local) {
        return Some(m);
    }
    let loaded = gw.program.load();
    let schema = loaded
        .pins
        .server(server)?
        .tool(local)?
        .pinned
        .input_schema()?;
    Some(mcp_headers::marks(schema).into())
}
