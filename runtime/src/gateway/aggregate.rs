//! The aggregated `/mcp` endpoint: a merged `initialize` result, namespaced names, and
//! lists paginated across upstreams with a gateway cursor.

use crate::protocol_version as version;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Merges upstream `initialize` results: gateway `serverInfo`, the union of capabilities,
/// the lowest protocol version any upstream agreed to (the client's when none answered).
pub fn merge_initialize(results: &BTreeMap<String, Value>, requested: &str) -> Value {
    let mut capabilities = Value::Object(Map::new());
    let mut version: Option<String> = None;
    let mut instructions = Vec::new();
    for (server, result) in results {
        if let Some(c) = result.get("capabilities") {
            union(&mut capabilities, c);
        }
        if let Some(v) = result.get("protocolVersion").and_then(Value::as_str)
            && version.as_deref().is_none_or(|cur| v < cur)
        {
            version = Some(v.to_owned());
        }
        if let Some(text) = result.get("instructions").and_then(Value::as_str) {
            instructions.push(format!("{server}: {text}"));
        }
    }
    let version = version.unwrap_or_else(|| {
        if version::KNOWN.contains(&requested) {
            requested.to_owned()
        } else {
            version::LATEST.to_owned()
        }
    });
    let mut out = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")},
    });
    if !instructions.is_empty() {
        out["instructions"] = Value::String(instructions.join("\n"));
    }
    out
}

/// Unions `b` into `a`: objects key by key, `true` wins over `false`, else `a` stays.
fn union(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) => union(existing, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (a @ Value::Bool(false), Value::Bool(true)) => *a = Value::Bool(true),
        _ => {}
    }
}

/// Where an aggregated list continues: which upstream, and that upstream's cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    pub server: String,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl Cursor {
    /// The opaque string handed to the client.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a cursor back; `None` when it is not one of ours.
    pub fn decode(s: &str) -> Option<Cursor> {
        if s.len() > 8192 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Splits a namespaced name into (server, name): the longest server name among `servers`
/// followed by `sep` wins, so server names that contain the separator still work.
pub fn split_name<'a, 's>(
    name: &'a str,
    sep: &str,
    servers: impl Iterator<Item = &'s String>,
) -> Option<(&'s str, &'a str)> {
    servers
        .filter_map(|s| {
            let rest = name.strip_prefix(s.as_str())?.strip_prefix(sep)?;
            (!rest.is_empty()).then_some((s.as_str(), rest))
        })
        .max_by_key(|(s, _)| s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_capabilities_and_picks_lowest_version() {
        let mut r = BTreeMap::new();
        r.insert(
            "a".to_owned(),
            json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": false}}}),
        );
        r.insert(
            "b".to_owned(),
            json!({"protocolVersion": "2025-03-26", "capabilities": {"tools": {"listChanged": true}, "prompts": {}}, "instructions": "hi"}),
        );
        let m = merge_initialize(&r, "2025-06-18");
        assert_eq!(m["protocolVersion"], "2025-03-26");
        assert_eq!(m["capabilities"]["tools"]["listChanged"], true);
        assert!(m["capabilities"]["prompts"].is_object());
        assert_eq!(m["serverInfo"]["name"], "mcpgate");
        assert_eq!(m["instructions"], "b: hi");
        assert_eq!(
            merge_initialize(&BTreeMap::new(), "2025-06-18")["protocolVersion"],
            "2025-06-18"
        );
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            server: "a".into(),
            cursor: Some("x".into()),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("!!"), None);
        assert_eq!(Cursor::decode("e30"), None);
    }

    #[test]
    fn splits_on_the_longest_server() {
        let servers = ["a".to_owned(), "a__b".to_owned()];
        assert_eq!(
            split_name("a__b__t", "__", servers.iter()),
            Some(("a__b", "t"))
        );
        assert_eq!(split_name("a__t", "__", servers.iter()), Some(("a", "t")));
        assert_eq!(split_name("c__t", "__", servers.iter()), None);
        assert_eq!(split_name("a__", "__", servers.iter()), None);
    }
}
