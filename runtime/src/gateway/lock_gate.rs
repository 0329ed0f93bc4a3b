//! The lock's check of a tool call in a session: the digest of the tool's current definition
//! comes from what the session listed, or from listing the server's tools first. In a fleet
//! (`state.postgres`) a changed pinned tool this replica lists is recorded for every replica,
//! and a call is also refused when another replica holds the tool.

use crate::decision::LoadedProgram;
use crate::decision::lock::Refusal;
use crate::gateway::{Gateway, relay};
use crate::lock::fleet::FleetHolds;
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
    .or_else(|| fleet_check(gw, loaded, server, name, &session.principal.id))
}

/// The fleet's word on a call this replica's own check let through: refused when another
/// replica holds the tool for the same pin, or when the held tools cannot be read (a
/// pinned tool under `enforce` is never let through unchecked).
fn fleet_check(
    gw: &Gateway,
    loaded: &LoadedProgram,
    server: &str,
    name: &str,
    principal: &str,
) -> Option<Refusal> {
    let holds = gw.held_pins.as_ref()?;
    let pinned = gate::enforced_pin(&loaded.pins, server, name)?;
    let message = match holds.held(server, name, &lock::canonical::hex(&pinned)) {
        Ok(None) => return None,
        Ok(Some(h)) => format!(
            "held: tool `{server}.{name}` changed since review (replica `{}` listed a definition that differs from mcpgate.lock); the call was not forwarded. \
             After reviewing the new definition, re-pin it with `mcpgate lock` and merge the lock change",
            h.replica
        ),
        Err(e) => {
            tracing::warn!(target: "mcpgate::lock", server, tool = name, error = %e, "the fleet's held tools cannot be read; the call is refused");
            format!(
                "held: tool `{server}.{name}` is pinned and the fleet's held-tool store does not answer; calls to pinned tools of `{server}` are refused until it answers; retry in 1s"
            )
        }
    };
    tracing::warn!(target: "mcpgate::lock", server, tool = name, principal, "call to a tool the fleet holds");
    Some(Refusal {
        rule: gate::RULE_LOCK,
        message,
    })
}

/// Tells the fleet what this replica listed for `server.name` (a pinned tool).
fn share(
    holds: Option<&FleetHolds>,
    loaded: &LoadedProgram,
    server: &str,
    name: &str,
    digest: &[u8; 32],
) {
    if let Some(holds) = holds
        && let Some((pinned, changed)) = gate::pin_state(&loaded.pins, server, name, digest)
    {
        holds.saw(
            server,
            name,
            &lock::canonical::hex(&pinned),
            &lock::canonical::hex(digest),
            changed,
        );
    }
}

/// Records one tool of a `tools/list` page in the session; false when the list must drop
/// it (held under `enforce`).
pub fn list_item(
    holds: Option<&FleetHolds>,
    loaded: &LoadedProgram,
    session: &Session,
    server: &str,
    name: &str,
    item: &Value,
) -> bool {
    let (digest, keep) = gate::list_item(&loaded.pins, server, name, item);
    if let Some(d) = digest {
        session.set_tool_digest(server, name, d);
        share(holds, loaded, server, name, &d);
    }
    keep
}

/// Lists `server`'s tools for `session` (every page), recording their hashes.
pub async fn fetch_tools(gw: &Gateway, session: &Session, server: &str) {
    let loaded = gw.program.load_full();
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
                share(gw.held_pins.as_deref(), &loaded, server, name, &digest);
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
