//! The checks a modern request passes before anything else, first failure wins: the `_meta`
//! envelope (`-32602`), the routing headers against the body (`-32020`), the protocol
//! version (`-32022` with the supported list).

use crate::gateway::http::VERSION_HEADER;
use crate::jsonrpc;
use crate::upstream::era::{META_CAPABILITIES, META_VERSION};
use http::header::HeaderMap;
use serde_json::{Value, json};

/// A routing header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// The request needs a client capability the client did not declare.
pub const MISSING_CAPABILITY: i64 = -32021;
/// The protocol version is not served here.
pub const UNSUPPORTED_VERSION: i64 = -32022;
/// The method header.
pub const METHOD_HEADER: &str = "mcp-method";
/// The name header (`params.name` or `params.uri`).
pub const NAME_HEADER: &str = "mcp-name";

/// What a request that passed the checks declared.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub version: String,
}

/// The body field a method's `Mcp-Name` mirrors.
pub fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

fn error(code: i64, message: &str) -> Value {
    jsonrpc::error(Value::Null, code, message)
}

fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Value> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(error(
            HEADER_MISMATCH,
            &format!("the `{name}` header appears more than once"),
        ));
    }
    Ok(first.map(|v| v.to_str().unwrap_or("\u{fffd}")))
}

/// Runs the checks over a request and its headers.
///
/// # Errors
/// The JSON-RPC error to answer (id `null`; the caller sets the request's id).
pub fn check(message: &Value, headers: &HeaderMap, supported: &[&str]) -> Result<Envelope, Value> {
    let meta = message
        .pointer("/params/_meta")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            error(
                jsonrpc::INVALID_PARAMS,
                &format!(
                    "params._meta must be an object carrying `{META_VERSION}` and `{META_CAPABILITIES}`"
                ),
            )
        })?;
    let missing: Vec<&str> = [META_VERSION, META_CAPABILITIES]
        .into_iter()
        .filter(|k| !meta.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(error(
            jsonrpc::INVALID_PARAMS,
            &format!(
                "params._meta is missing the required key(s): {}",
                missing.join(", ")
            ),
        ));
    }
    let version = meta.get(META_VERSION).unwrap_or(&Value::Null);
    let method = jsonrpc::method(message).unwrap_or_default();
    let header_version = single(headers, VERSION_HEADER)?;
    if header_version.is_none() || header_version != version.as_str() {
        return Err(error(
            HEADER_MISMATCH,
            "the MCP-Protocol-Version header does not match the body's protocol version",
        ));
    }
    if single(headers, METHOD_HEADER)? != Some(method) {
        return Err(error(
            HEADER_MISMATCH,
            "the Mcp-Method header does not match the body's method",
        ));
    }
    let name_header = single(headers, NAME_HEADER)?;
    if let Some(field) = name_field(method)
        && let Some(body) = jsonrpc::params(message).get(field).and_then(Value::as_str)
        && name_header
            .and_then(crate::mcp_headers::decode_value)
            .as_deref()
            != Some(body)
    {
        return Err(error(
            HEADER_MISMATCH,
            &format!("the Mcp-Name header does not match the body's `{field}`"),
        ));
    }
    let Some(version) = version.as_str() else {
        return Err(error(
            jsonrpc::INVALID_PARAMS,
            "the protocol version in params._meta must be a string",
        ));
    };
    if !supported.contains(&version) {
        return Err(json!({"jsonrpc": "2.0", "id": null, "error": {
            "code": UNSUPPORTED_VERSION,
            "message": "Unsupported protocol version",
            "data": {"supported": supported, "requested": version},
        }}));
    }
    Ok(Envelope {
        version: version.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn request(method: &str, params: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    }

    fn envelope(version: &str) -> Value {
        json!({META_VERSION: version, META_CAPABILITIES: {}})
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const V: &str = "2026-07-28";

    #[test]
    fn accepts_matching_headers() {
        let m = request("tools/call", json!({"name": "échec", "_meta": envelope(V)}));
        let h = headers(&[
            (VERSION_HEADER, V),
            (METHOD_HEADER, "tools/call"),
            (NAME_HEADER, "=?base64?w6ljaGVj?="),
        ]);
        assert_eq!(check(&m, &h, &[V]).unwrap().version, V);
    }

    #[test]
    fn refuses_mismatches_in_order() {
        let code = |r: Result<Envelope, Value>| r.unwrap_err()["error"]["code"].as_i64().unwrap();
        let h = headers(&[
            (VERSION_HEADER, V),
            (METHOD_HEADER, "tools/call"),
            (NAME_HEADER, "a"),
        ]);
        let no_meta = request("tools/call", json!({"name": "a"}));
        assert_eq!(code(check(&no_meta, &h, &[V])), jsonrpc::INVALID_PARAMS);
        let other_name = request("tools/call", json!({"name": "b", "_meta": envelope(V)}));
        assert_eq!(code(check(&other_name, &h, &[V])), HEADER_MISMATCH);
        let other_method = request("tools/list", json!({"_meta": envelope(V)}));
        assert_eq!(code(check(&other_method, &h, &[V])), HEADER_MISMATCH);
        let h2 = headers(&[
            (VERSION_HEADER, "2099-01-01"),
            (METHOD_HEADER, "tools/list"),
        ]);
        let future = request("tools/list", json!({"_meta": envelope("2099-01-01")}));
        let e = check(&future, &h2, &[V]).unwrap_err();
        assert_eq!(e["error"]["code"], UNSUPPORTED_VERSION);
        assert_eq!(e["error"]["data"]["supported"], json!([V]));
        let twice = headers(&[
            (VERSION_HEADER, V),
            (METHOD_HEADER, "tools/list"),
            (METHOD_HEADER, "tools/list"),
        ]);
        let list = request("tools/list", json!({"_meta": envelope(V)}));
        assert_eq!(code(check(&list, &twice, &[V])), HEADER_MISMATCH);
        let no_version_header = headers(&[(METHOD_HEADER, "tools/list")]);
        assert_eq!(
            code(check(&list, &no_version_header, &[V])),
            HEADER_MISMATCH
        );
    }
}
