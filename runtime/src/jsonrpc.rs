//! JSON-RPC 2.0 framing for MCP: parse one HTTP body into messages, classify them, and
//! build error responses. Bad input always yields a valid JSON-RPC error, never a panic.
//!
//! Bottom layer: uses nothing of the crate.

use serde_json::{Map, Value, json};

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Valid JSON that is not a JSON-RPC message.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Bad parameters; MCP also uses it for an unknown tool or prompt.
pub const INVALID_PARAMS: i64 = -32602;
/// An error inside the gateway or an upstream.
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP's "resource not found".
pub const RESOURCE_NOT_FOUND: i64 = -32002;
/// A request the policy denies where MCP has no error result (prompts, resources).
pub const DENIED: i64 = -32001;

/// What an HTTP body held.
#[derive(Debug, PartialEq)]
pub enum Body {
    /// One message.
    Single(Value),
    /// A JSON-RPC batch (protocol 2025-03-26 and older); each item is checked on its own.
    Batch(Vec<Value>),
}

/// The role of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Request { id: Value, method: String },
    Notification { method: String },
    Response { id: Value },
}

/// Whether a protocol version still allows JSON-RPC batches (removed in 2025-06-18).
pub fn batches_allowed(version: &str) -> bool {
    version < "2025-06-18"
}

/// Parses an HTTP body. `version` is the protocol version the request speaks.
///
/// # Errors
/// A ready-to-send JSON-RPC error response: `-32700` for bad JSON, `-32600` for an empty
/// batch or a batch under a protocol version that removed them.
pub fn parse(body: &[u8], version: &str) -> Result<Body, Value> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| error(Value::Null, PARSE_ERROR, &format!("parse error: {e}")))?;
    match value {
        Value::Array(_) if !batches_allowed(version) => Err(error(
            Value::Null,
            INVALID_REQUEST,
            &format!("batches are not supported in protocol version {version}"),
        )),
        Value::Array(items) if items.is_empty() => {
            Err(error(Value::Null, INVALID_REQUEST, "empty batch"))
        }
        Value::Array(items) => Ok(Body::Batch(items)),
        other => Ok(Body::Single(other)),
    }
}

/// Classifies one message.
///
/// # Errors
/// A `-32600` error response (with the message's id when it has a usable one).
pub fn classify(message: &Value) -> Result<Kind, Value> {
    let Some(obj) = message.as_object() else {
        return Err(invalid(Value::Null, "a message must be a JSON object"));
    };
    let id = obj.get("id");
    let usable_id = match id {
        Some(v @ (Value::String(_) | Value::Number(_))) => Some(v.clone()),
        _ => None,
    };
    let reply_id = usable_id.clone().unwrap_or(Value::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(reply_id, "`jsonrpc` must be \"2.0\""));
    }
    if let Some(method) = obj.get("method") {
        let Some(method) = method.as_str() else {
            return Err(invalid(reply_id, "`method` must be a string"));
        };
        if let Some(params) = obj.get("params")
            && !params.is_object()
            && !params.is_array()
        {
            return Err(invalid(reply_id, "`params` must be an object"));
        }
        return match (id, usable_id) {
            (None, _) => Ok(Kind::Notification {
                method: method.to_owned(),
            }),
            (Some(_), Some(id)) => Ok(Kind::Request {
                id,
                method: method.to_owned(),
            }),
            (Some(_), None) => Err(invalid(Value::Null, "`id` must be a string or a number")),
        };
    }
    let has_result = obj.contains_key("result");
    let has_error = obj.contains_key("error");
    match (usable_id, has_result, has_error) {
        (Some(id), true, false) => Ok(Kind::Response { id }),
        (Some(id), false, true) if obj.get("error").is_some_and(Value::is_object) => {
            Ok(Kind::Response { id })
        }
        _ => Err(invalid(reply_id, "not a request, notification or response")),
    }
}

fn invalid(id: Value, message: &str) -> Value {
    error(id, INVALID_REQUEST, &format!("invalid request: {message}"))
}

/// A JSON-RPC error response.
pub fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A JSON-RPC result response.
pub fn result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A notification.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// The `method` of a message, if any.
pub fn method(message: &Value) -> Option<&str> {
    message.get("method").and_then(Value::as_str)
}

/// The `params` object of a message (an empty map when absent or not an object).
pub fn params(message: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    message
        .get("params")
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// Whether a message is a response (has `result` or `error` and no `method`).
pub fn is_response(message: &Value) -> bool {
    message.get("method").is_none()
        && (message.get("result").is_some() || message.get("error").is_some())
}

/// Whether a message is a request (has `method` and `id`).
pub fn is_request(message: &Value) -> bool {
    message.get("method").is_some() && message.get("id").is_some()
}

/// Replaces the `id` of a message.
pub fn with_id(mut message: Value, id: Value) -> Value {
    if let Some(obj) = message.as_object_mut() {
        obj.insert("id".into(), id);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(v: &Value) -> Option<i64> {
        v.pointer("/error/code").and_then(Value::as_i64)
    }

    #[test]
    fn parses_a_request() {
        let b = parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, "2025-06-18").unwrap();
        let Body::Single(m) = b else { panic!() };
        assert_eq!(
            classify(&m).unwrap(),
            Kind::Request {
                id: json!(1),
                method: "ping".into()
            }
        );
    }

    #[test]
    fn malformed_json_is_a_parse_error() {
        let e = parse(b"{", "2025-06-18").unwrap_err();
        assert_eq!(code(&e), Some(PARSE_ERROR));
        assert_eq!(e["id"], Value::Null);
    }

    #[test]
    fn batches_depend_on_version() {
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#;
        let e = parse(body, "2025-06-18").unwrap_err();
        assert_eq!(code(&e), Some(INVALID_REQUEST));
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("2025-06-18")
        );
        assert!(matches!(parse(body, "2025-03-26"), Ok(Body::Batch(v)) if v.len() == 1));
        assert!(parse(b"[]", "2025-03-26").is_err());
    }

    #[test]
    fn wrong_shapes_are_invalid_requests() {
        for bad in [
            json!(1),
            json!({"id": 1, "method": "x"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": 5}),
            json!({"jsonrpc": "2.0", "id": null, "method": "x"}),
            json!({"jsonrpc": "2.0", "id": {}, "method": "x"}),
            json!({"jsonrpc": "2.0", "id": 1}),
            json!({"jsonrpc": "2.0", "id": 1, "result": 1, "error": {}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "x", "params": 3}),
        ] {
            let e = classify(&bad).unwrap_err();
            assert_eq!(code(&e), Some(INVALID_REQUEST), "{bad}");
        }
    }

    #[test]
    fn responses_and_notifications() {
        assert_eq!(
            classify(&json!({"jsonrpc": "2.0", "id": "a", "result": {}})).unwrap(),
            Kind::Response { id: json!("a") }
        );
        assert_eq!(
            classify(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).unwrap(),
            Kind::Notification {
                method: "notifications/initialized".into()
            }
        );
    }

    fn is_valid_error(v: &Value) -> bool {
        v["jsonrpc"] == "2.0"
            && v.get("id").is_some()
            && v["error"]["code"].is_i64()
            && v["error"]["message"].is_string()
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            match parse(&bytes, "2025-06-18") {
                Err(e) => prop_assert!(is_valid_error(&e)),
                Ok(Body::Single(m)) => {
                    if let Err(e) = classify(&m) {
                        prop_assert!(is_valid_error(&e));
                    }
                }
                Ok(Body::Batch(_)) => prop_assert!(false, "batch under 2025-06-18"),
            }
        }

        #[test]
        fn arbitrary_json_classifies_or_errors(
            id in prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), "[a-z]{0,4}".prop_map(Value::from)],
            method in proptest::option::of("[a-z/]{0,8}"),
            jsonrpc in prop_oneof![Just("2.0"), Just("1.0")],
            has_result in any::<bool>(),
        ) {
            let mut m = json!({"jsonrpc": jsonrpc, "id": id});
            if let Some(method) = method { m["method"] = json!(method); }
            if has_result { m["result"] = json!({}); }
            if let Err(e) = classify(&m) {
                prop_assert!(is_valid_error(&e));
            }
        }
    }
}
