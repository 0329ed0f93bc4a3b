//! Which `notifications/resources/updated` reach a subscriber: each is decided again on
//! delivery, like a `resources/read` of its URI by the subscriber under the policy in force,
//! so a policy that stops allowing the resource stops its updates. Nothing is logged or
//! counted: the subscription itself was decided (and audited) when it was made.

use crate::gateway::LoadedProgram;
use crate::gateway::decide;
use crate::jsonrpc;
use crate::session::Session;
use mcpgate_compiler::{Target, ToolAnnotations, Verdict, evaluate, visible};
use serde_json::Value;

/// The notification a resource update travels in.
pub const UPDATED: &str = "notifications/resources/updated";

/// Whether the session's principal may read `uri` at `server` (a verdict of allow on a
/// resource it may see).
pub fn may_read(loaded: &LoadedProgram, session: &Session, server: &str, uri: &str) -> bool {
    let caller = decide::caller(loaded, session);
    let target = Target::Resource { server, uri };
    if !visible(&loaded.program, &caller.principal, target) {
        return false;
    }
    let request = caller.request(target, &Value::Null, ToolAnnotations::default());
    evaluate(&loaded.program, &request).verdict == Verdict::Allow
}

/// The URI of a resource update; `None` for any other message.
pub fn updated_uri(message: &Value) -> Option<&str> {
    if jsonrpc::method(message) != Some(UPDATED) {
        return None;
    }
    Some(
        message
            .pointer("/params/uri")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )
}

/// Whether a message from `server` may reach the session's client: anything but a
/// resource update passes; an update only for a resource the client may read.
pub fn deliverable(
    loaded: &LoadedProgram,
    session: &Session,
    server: &str,
    message: &Value,
) -> bool {
    match updated_uri(message) {
        None => true,
        Some(uri) => !uri.is_empty() && may_read(loaded, session, server, uri),
    }
}
