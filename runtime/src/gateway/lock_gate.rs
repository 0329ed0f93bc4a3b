//! The lock's check of a tool call in a session: the digest of the tool's current definition
//! comes from what the session listed, or from listing the server's tools first.

use crate::decision::LoadedProgram;
use crate::decision::lock::Refusal;
use crate::gateway::{Gateway, relay};
use crate::lock::gate;
use crate::session::Session;
use mcpgate_compiler::lock::{self, Kind};
use serde_json::{Value, json};

/// Most pages read when the gateway lists a server's tools itself.
const MAX_PAGES: usize = 100;

/// What the lock says about a call to `server.name`: `None` to go on, or the refusal. When
/// the session has not seen the tool listed, the gateway lists the server's tools first.
pub async fn check_call(
    gw: &Gateway,
    loaded: &LoadedProgram,
    session: &Session,
    server: &str,
    name: &str,
    args: &Value,
) -> Option<Refusal> {
    if gate::needs_digest(&loaded.pins, server, name)
        && session.tool_digest(server, name).is_none()
        && !session.tools_fetched(server)
    {
        fetch_tools(gw, session, server).await;
    }
    let digest = session.tool_digest(server, name);
    gate::check_call(
        &loaded.pins,
        server,
        name,
        args,
        digest,
        &session.principal.id,
    )
}

/// Records one tool of a `tools/list` page in the session; false when the list must drop
/// it (held under `enforce`).
pub fn list_item(
    loaded: &LoadedProgram,
    session: &Session,
    server: &str,
    name: &str,
    item: &Value,
) -> bool {
    let (digest, keep) = gate::list_item(&loaded.pins, server, name, item);
    if let Some(d) = digest {
        session.set_tool_digest(server, name, d);
    }
    keep
}

/// Lists `server`'s tools for `session` (every page), recording their hashes.
pub async fn fetch_tools(gw: &Gateway, session: &Session, server: &str) {
    let Some(up) = session.upstreams.get(server) else {
        return;
    };
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor
            .as_ref()
            .map_or_else(|| json!({}), |c| json!({"cursor": c}));
        let result = match relay::call(
            session,
            server,
            up,
            "tools/list",
            params,
            gw.timeout(server),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(target: "mcpgate::lock", server, error = %e, "cannot list tools to check them against mcpgate.lock");
                return;
            }
        };
        for item in result
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = item.get("name").and_then(Value::as_str) {
                let digest = lock::digest(Kind::Tool, item);
                session.set_tool_digest(server, name, digest);
                gate::observe(server, name, digest, item);
            }
        }
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) if cursor.as_deref() != Some(c) => cursor = Some(c.to_owned()),
            _ => {
                session.set_tools_fetched(server);
                return;
            }
        }
    }
}
