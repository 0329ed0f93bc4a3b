//! Reads what an upstream offers: `initialize`, then every page of `tools/list`,
//! `prompts/list` and `resources/templates/list` (the last two when the server declares
//! the capability), through the gateway's own upstream clients.

use crate::protocol_version as version;
use crate::upstream::{self, Upstream, UpstreamSession};
use mcpgate_compiler::lock::{Kind, ServerLock};
use serde_json::{Value, json};

/// Most pages read from one list.
pub const MAX_PAGES: usize = 1000;
/// Most items kept from one list.
pub const MAX_ITEMS: usize = 100_000;

/// The definitions one server lists, pinned, and any oddities (unnamed or repeated items).
#[derive(Debug)]
pub struct Fetched {
    pub lock: ServerLock,
    pub problems: Vec<String>,
}

/// Connects to `up`, lists everything and closes the session.
///
/// # Errors
/// The server cannot be reached, refuses `initialize`, or answers a list with an error.
pub async fn fetch(up: &Upstream) -> Result<Fetched, String> {
    let sid = format!("lock-{}", std::process::id());
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": version::LATEST,
            "capabilities": {},
            "clientInfo": {"name": "mcpgate-lock", "version": env!("CARGO_PKG_VERSION")},
        }
    });
    let (session, response) = up.connect(&sid, init).await.map_err(|e| e.to_string())?;
    let result = fetch_all(&session, &response).await;
    session.close().await;
    result
}

async fn fetch_all(session: &UpstreamSession, response: &Value) -> Result<Fetched, String> {
    let Some(init) = response.get("result") else {
        let error = response.get("error").cloned().unwrap_or(Value::Null);
        return Err(format!("the server refused `initialize`: {error}"));
    };
    session
        .notify(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .map_err(|e| e.to_string())?;
    let caps = init.get("capabilities").cloned().unwrap_or(Value::Null);
    let mut lists = Vec::new();
    let mut next_id = 1u64;
    for kind in Kind::ALL {
        let declared = match kind {
            // Tools are always asked for: a server without the capability answers with an
            // error, which is read as no tools.
            Kind::Tool => true,
            Kind::Prompt => caps.get("prompts").is_some(),
            Kind::ResourceTemplate => caps.get("resources").is_some(),
        };
        if !declared {
            continue;
        }
        let items = list(
            session,
            kind,
            &mut next_id,
            kind != Kind::Tool || caps.get("tools").is_some(),
        )
        .await?;
        lists.push((kind, items));
    }
    let (lock, problems) = ServerLock::pin(&lists);
    Ok(Fetched { lock, problems })
}

/// Every item of one list, following `nextCursor`. With `required`, an error answer is an
/// error; otherwise it means the server offers none.
async fn list(
    session: &UpstreamSession,
    kind: Kind,
    next_id: &mut u64,
    required: bool,
) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let id = *next_id;
        *next_id += 1;
        let message =
            json!({"jsonrpc": "2.0", "id": id, "method": kind.method(), "params": params});
        let mut exchange = session.request(message).await.map_err(|e| e.to_string())?;
        let response = upstream::final_response(kind.method(), &mut exchange)
            .await
            .map_err(|e| e.to_string())?;
        let Some(result) = response.get("result") else {
            if !required && items.is_empty() {
                return Ok(items);
            }
            let error = response.get("error").cloned().unwrap_or(Value::Null);
            return Err(format!("`{}` failed: {error}", kind.method()));
        };
        if let Some(page) = result.get(kind.list_key()).and_then(Value::as_array) {
            items.extend(page.iter().cloned());
        }
        if items.len() > MAX_ITEMS {
            return Err(format!(
                "`{}` lists more than {MAX_ITEMS} items",
                kind.method()
            ));
        }
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) if !c.is_empty() && cursor.as_deref() != Some(c) => cursor = Some(c.to_owned()),
            _ => return Ok(items),
        }
    }
    Err(format!(
        "`{}` has more than {MAX_PAGES} pages",
        kind.method()
    ))
}
