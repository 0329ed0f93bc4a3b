//! Protocol eras of an upstream: the stateless 2026-07-28 era (no `initialize`, every request
//! carries its protocol version and client capabilities in `_meta`) and the legacy era
//! (`initialize`, sessions). The era is detected once per upstream by sending
//! `server/discover` (a result that lists a modern version this gateway speaks means modern;
//! an error, anything else, or silence means legacy), cached, and detected again after a
//! failure.

use super::Message;
use serde_json::{Map, Value, json};
use std::sync::Mutex;

/// Modern (stateless) protocol versions the gateway speaks, oldest first.
pub const MODERN_VERSIONS: [&str; 1] = ["2026-07-28"];
/// The newest modern version.
pub const LATEST_MODERN: &str = "2026-07-28";
/// `_meta` key of the protocol version on a modern request.
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client capabilities on a modern request.
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the client's name and version on a modern request.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key of the server's name and version on a modern result.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key naming the `subscriptions/listen` request a notification belongs to.
pub const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";

/// Longest wait for the `server/discover` probe of an HTTP server under `protocol: auto`
/// (`probe_timeout_secs` overrides it). HTTP servers answer an unknown method at once, so
/// the wait only matters for one that is slow to answer anything.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The same for a stdio server. The SDKs answer an unknown method at once; a server that
/// ignores it costs this wait on the first session, so it is short. It counts from the
/// spawn: a stateless server slower than this to start is taken for legacy (a dual-era one
/// then answers `initialize`); `protocol:` avoids the guess entirely.
pub const PROBE_TIMEOUT_STDIO: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether `v` is a modern protocol version the gateway speaks.
pub fn is_modern_version(v: &str) -> bool {
    MODERN_VERSIONS.contains(&v)
}

/// What the gateway knows of an upstream's era.
#[derive(Clone, Debug, PartialEq)]
pub enum Era {
    /// Not detected yet, or detected again after a failure.
    Unknown,
    /// Speaks `initialize` and sessions.
    Legacy,
    /// Answers `server/discover`: its result (supported versions, capabilities).
    Modern(Value),
}

/// The cached era of one upstream.
#[derive(Debug)]
pub struct EraCache {
    era: Mutex<Era>,
}

impl Default for EraCache {
    fn default() -> Self {
        EraCache {
            era: Mutex::new(Era::Unknown),
        }
    }
}

impl EraCache {
    /// The cached era.
    pub fn get(&self) -> Era {
        self.era
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Records a detected era.
    pub fn set(&self, era: Era) {
        *self
            .era
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = era;
    }

    /// Forgets the era: the next session detects it again.
    pub fn reset(&self) {
        self.set(Era::Unknown);
    }
}

/// The `server/discover` request the gateway sends to detect (and reach) a modern upstream.
pub fn discover_request(id: Value, client_capabilities: &Value) -> Message {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "server/discover",
        "params": {"_meta": envelope(LATEST_MODERN, client_capabilities)},
    })
}

/// The `_meta` envelope of a modern request sent by the gateway.
pub fn envelope(version: &str, client_capabilities: &Value) -> Map<String, Value> {
    let mut meta = Map::new();
    meta.insert(META_VERSION.into(), Value::String(version.into()));
    meta.insert(META_CAPABILITIES.into(), client_capabilities.clone());
    meta.insert(
        META_CLIENT_INFO.into(),
        json!({"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")}),
    );
    meta
}

/// The modern version a `server/discover` response shows the upstream speaks, if any.
pub fn modern_version_of(response: &Message) -> Option<&'static str> {
    let supported = response
        .pointer("/result/supportedVersions")
        .and_then(Value::as_array)?;
    MODERN_VERSIONS
        .iter()
        .rev()
        .find(|v| supported.iter().any(|s| s.as_str() == Some(v)))
        .copied()
}

/// Stamps the modern envelope on a request the core built in legacy form (`_meta` keys the
/// request already has, such as `progressToken`, are kept).
pub fn to_modern(mut message: Message, version: &str, client_capabilities: &Value) -> Message {
    let Some(obj) = message.as_object_mut() else {
        return message;
    };
    let params = obj
        .entry("params")
        .or_insert_with(|| Value::Object(Map::new()));
    if !params.is_object() {
        *params = Value::Object(Map::new());
    }
    if let Some(p) = params.as_object_mut() {
        let meta = p
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        if let Some(m) = meta.as_object_mut() {
            for (k, v) in envelope(version, client_capabilities) {
                m.insert(k, v);
            }
        }
    }
    message
}

/// Removes the modern envelope keys from a request's `_meta` (dropping an emptied `_meta`).
pub fn strip_envelope(message: &mut Message) {
    let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    let emptied = match params.get_mut("_meta").and_then(Value::as_object_mut) {
        Some(meta) => {
            meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
            meta.is_empty()
        }
        None => false,
    };
    if emptied {
        params.remove("_meta");
    }
}

/// The `initialize` result a legacy client gets from a modern upstream, built from its
/// `server/discover` result.
pub fn initialize_result(server: &str, discover: &Value, requested: &str) -> Value {
    let legacy = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
    let version = if legacy.contains(&requested) {
        requested
    } else {
        "2025-11-25"
    };
    let info = discover
        .pointer("/_meta")
        .and_then(|m| m.get(META_SERVER_INFO))
        .cloned()
        .unwrap_or_else(|| json!({"name": server, "version": "unknown"}));
    let mut out = json!({
        "protocolVersion": version,
        "capabilities": discover.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "serverInfo": info,
    });
    if let Some(i) = discover.get("instructions").filter(|i| i.is_string()) {
        out["instructions"] = i.clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_strips_the_envelope() {
        let m = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
            "params": {"_meta": {"progressToken": 7}}});
        let mut m = to_modern(m, "2026-07-28", &json!({"elicitation": {}}));
        assert_eq!(m["params"]["_meta"][META_VERSION], "2026-07-28");
        assert_eq!(m["params"]["_meta"]["progressToken"], 7);
        assert_eq!(
            m["params"]["_meta"][META_CAPABILITIES]["elicitation"],
            json!({})
        );
        strip_envelope(&mut m);
        assert_eq!(m["params"]["_meta"], json!({"progressToken": 7}));
        let mut bare = to_modern(json!({"id": 2, "method": "x"}), "2026-07-28", &json!({}));
        strip_envelope(&mut bare);
        assert_eq!(bare["params"], json!({}));
    }

    #[test]
    fn detects_modern_versions_only_from_a_discover_result() {
        let modern = json!({"result": {"supportedVersions": ["2025-11-25", "2026-07-28"]}});
        assert_eq!(modern_version_of(&modern), Some("2026-07-28"));
        let legacy = json!({"result": {"supportedVersions": ["2025-11-25"]}});
        assert_eq!(modern_version_of(&legacy), None);
        let error = json!({"error": {"code": -32601, "message": "no"}});
        assert_eq!(modern_version_of(&error), None);
    }

    #[test]
    fn legacy_clients_get_an_initialize_result() {
        let d = json!({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
            "_meta": {META_SERVER_INFO: {"name": "m", "version": "1"}}});
        let r = initialize_result("m", &d, "2025-06-18");
        assert_eq!(r["protocolVersion"], "2025-06-18");
        assert_eq!(r["serverInfo"]["name"], "m");
        assert_eq!(
            initialize_result("m", &d, "1999-01-01")["protocolVersion"],
            "2025-11-25"
        );
    }
}
