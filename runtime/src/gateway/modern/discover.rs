//! `server/discover`: what the endpoint offers a modern client. The capabilities, server info
//! and instructions are those of the endpoint's `initialize` result (merged on `/mcp`); the
//! supported versions are the modern versions every upstream of the endpoint can be reached
//! at (a legacy upstream through the gateway's bridge, a modern one at the versions it
//! lists), followed by the legacy versions the gateway serves through `initialize`.

use crate::gateway::{Gateway, version};
use crate::session::Endpoint;
use crate::upstream::era::{self, Era, META_SERVER_INFO};
use serde_json::{Map, Value, json};

/// The modern versions `gw` serves on `endpoint`: the intersection over its upstreams.
pub fn modern_versions(gw: &Gateway, endpoint: &Endpoint) -> Vec<&'static str> {
    let servers: Vec<&String> = match endpoint {
        Endpoint::Aggregate => gw.upstreams.keys().collect(),
        Endpoint::Server(s) => gw.upstreams.keys().filter(|k| *k == s).collect(),
    };
    era::MODERN_VERSIONS
        .iter()
        .copied()
        .filter(|v| {
            servers
                .iter()
                .all(|s| match gw.upstreams.get(*s).map(|u| u.era()) {
                    Some(Era::Modern(d)) => d
                        .get("supportedVersions")
                        .and_then(Value::as_array)
                        .is_some_and(|list| list.iter().any(|x| x.as_str() == Some(v))),
                    _ => true,
                })
        })
        .collect()
}

/// The `server/discover` result for `endpoint`, from its `initialize` result.
pub fn result(gw: &Gateway, endpoint: &Endpoint, init: &Value, _version: &str) -> Value {
    let mut supported: Vec<&str> = modern_versions(gw, endpoint);
    supported.extend(version::KNOWN.iter().rev());
    let mut out = Map::new();
    out.insert("supportedVersions".into(), json!(supported));
    out.insert(
        "capabilities".into(),
        init.get("capabilities")
            .cloned()
            .unwrap_or_else(|| json!({})),
    );
    if let Some(i) = init.get("instructions").filter(|i| i.is_string()) {
        out.insert("instructions".into(), i.clone());
    }
    let info = match endpoint {
        Endpoint::Aggregate => json!({"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")}),
        Endpoint::Server(_) => init
            .get("serverInfo")
            .cloned()
            .unwrap_or_else(|| json!({"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")})),
    };
    out.insert("_meta".into(), json!({ META_SERVER_INFO: info }));
    out.insert("resultType".into(), json!("complete"));
    super::mark_private(gw, &mut out);
    Value::Object(out)
}
