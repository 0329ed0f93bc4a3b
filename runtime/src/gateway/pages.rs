//! Aggregated lists on `/mcp`: one upstream page at a time from the request's gateway
//! cursor, filtered for the caller, until a page has items or the walk has gone far enough;
//! the returned cursor says which upstream and which of its cursors come next.

use crate::gateway::Gateway;
use crate::gateway::aggregate::Cursor;
use crate::gateway::relay;
use crate::jsonrpc;
use crate::session::Session;
use serde_json::Value;
use std::sync::Arc;

/// Most upstream pages one aggregated page reads (filtering may empty many in a row).
pub const MAX_PAGES_PER_LIST: usize = 16;

/// The request's cursor is not one the gateway handed out for this session.
#[derive(Debug)]
pub struct InvalidCursor;

/// Walks the session's upstreams for `method`, keeping the items under `key` that `keep`
/// leaves in each upstream result (it may edit the result: filter, rename, count).
///
/// # Errors
/// [`InvalidCursor`] for a cursor that is not the gateway's, or names another upstream.
pub async fn walk(
    gw: &Gateway,
    session: &Arc<Session>,
    message: &Value,
    method: &str,
    key: &str,
    mut keep: impl FnMut(&str, &mut Value),
) -> Result<(Vec<Value>, Option<Cursor>), InvalidCursor> {
    let servers: Vec<&String> = session.upstreams.keys().collect();
    let mut position = match jsonrpc::params(message).get("cursor") {
        None | Some(Value::Null) => servers.first().map(|s| Cursor {
            server: (*s).clone(),
            cursor: None,
        }),
        Some(c) => match c.as_str().and_then(Cursor::decode) {
            Some(c) if session.upstreams.contains_key(&c.server) => Some(c),
            _ => return Err(InvalidCursor),
        },
    };
    let mut items = Vec::new();
    let mut pages = 0;
    while let Some(pos) = position.take() {
        pages += 1;
        let next_server = servers
            .iter()
            .skip_while(|s| ***s != pos.server)
            .nth(1)
            .map(|s| Cursor {
                server: (*s).clone(),
                cursor: None,
            });
        let Some(up) = session.upstreams.get(&pos.server) else {
            break;
        };
        let mut params = jsonrpc::params(message).clone();
        params.remove("cursor");
        if let Some(c) = &pos.cursor {
            params.insert("cursor".into(), Value::String(c.clone()));
        }
        let server = pos.server.as_str();
        let call = relay::call(
            session,
            server,
            up,
            method,
            Value::Object(params),
            gw.timeout(server),
        );
        match call.await {
            Ok(mut result) => {
                keep(server, &mut result);
                if let Some(page) = result.get_mut(key).and_then(Value::as_array_mut) {
                    items.append(page);
                }
                position = match result.get("nextCursor").and_then(Value::as_str) {
                    Some(c) => Some(Cursor {
                        server: pos.server.clone(),
                        cursor: Some(c.to_owned()),
                    }),
                    None => next_server,
                };
            }
            Err(e) => {
                // An upstream that does not offer this list (or fails) is left out.
                tracing::debug!(server, list = method, error = %e, "list left out");
                position = next_server;
            }
        }
        if !items.is_empty() || pages >= MAX_PAGES_PER_LIST {
            break;
        }
    }
    Ok((items, position))
}

/// The page as a JSON-RPC result: the items under `key`, and the cursor of the next page.
pub fn answer(client_id: Value, key: &str, items: Vec<Value>, next: Option<Cursor>) -> Value {
    let mut result = serde_json::Map::new();
    result.insert(key.to_owned(), Value::Array(items));
    if let Some(next) = next {
        result.insert("nextCursor".into(), Value::String(next.encode()));
    }
    jsonrpc::result(client_id, Value::Object(result))
}
