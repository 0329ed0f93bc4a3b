//! `Mcp-Param-*` headers. A server of the stateless protocol revision may mark tool arguments
//! with `x-mcp-header` in the tool's input schema; a `tools/call` must then mirror those
//! arguments as HTTP headers. The marks are learnt from the `tools/list` answers that pass
//! through the upstream, whichever session asked.

use super::Message;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::Mutex;

/// Deepest schema nesting searched for marks.
const MAX_DEPTH: usize = 16;
/// Most tools remembered per upstream.
const MAX_TOOLS: usize = 10_000;

/// One marked argument: where it sits in `arguments`, and its header.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Param {
    path: Vec<String>,
    header: HeaderName,
}

/// The marked arguments of every tool of one upstream.
#[derive(Debug, Default)]
pub(crate) struct ParamHeaders {
    tools: Mutex<HashMap<String, Vec<Param>>>,
}

impl ParamHeaders {
    /// Learns the marks of every tool in a `tools/list` response.
    pub(crate) fn learn(&self, response: &Message) {
        let Some(tools) = response
            .pointer("/result/tools")
            .and_then(Message::as_array)
        else {
            return;
        };
        let mut map = self
            .tools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Message::as_str) else {
                continue;
            };
            let mut params = Vec::new();
            if let Some(schema) = tool.get("inputSchema") {
                marked(schema, &mut Vec::new(), &mut params);
            }
            if params.is_empty() {
                map.remove(name);
            } else if map.len() < MAX_TOOLS || map.contains_key(name) {
                map.insert(name.to_owned(), params);
            }
        }
    }

    /// Adds the `Mcp-Param-*` headers a `tools/call` needs.
    pub(crate) fn apply(&self, params: &Message, headers: &mut HeaderMap) {
        let Some(tool) = params.get("name").and_then(Message::as_str) else {
            return;
        };
        let map = self
            .tools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(marks) = map.get(tool) else {
            return;
        };
        let Some(arguments) = params.get("arguments") else {
            return;
        };
        for mark in marks {
            let value = mark
                .path
                .iter()
                .try_fold(arguments, |v, key| v.get(key))
                .and_then(render);
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(mark.header.clone(), v);
            }
        }
    }
}

/// Collects the marked properties reachable through `properties` from `schema`.
fn marked(schema: &Message, path: &mut Vec<String>, out: &mut Vec<Param>) {
    if path.len() >= MAX_DEPTH {
        return;
    }
    let Some(properties) = schema.get("properties").and_then(Message::as_object) else {
        return;
    };
    for (key, sub) in properties {
        path.push(key.clone());
        let token = sub.get("x-mcp-header").and_then(Message::as_str);
        let primitive = matches!(
            sub.get("type").and_then(Message::as_str),
            Some("string" | "integer" | "boolean")
        );
        let header = token
            .filter(|_| primitive)
            .and_then(|t| HeaderName::from_bytes(format!("mcp-param-{t}").as_bytes()).ok());
        if let Some(header) = header {
            out.push(Param {
                path: path.clone(),
                header,
            });
        }
        marked(sub, path, out);
        path.pop();
    }
}

/// An argument as its header carries it; `None` for values that have no header form.
fn render(value: &Message) -> Option<String> {
    match value {
        Message::String(s) => Some(super::http::encode_header_value(s)),
        Message::Bool(b) => Some(b.to_string()),
        Message::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn marked_arguments_become_headers() {
        let params = ParamHeaders::default();
        params.learn(
            &json!({"result": {"tools": [{"name": "query", "inputSchema": {
            "type": "object",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "limit": {"type": "integer", "x-mcp-header": "Limit"},
                "ratio": {"type": "number", "x-mcp-header": "Ratio"},
                "opts": {"type": "object", "properties": {
                    "dry": {"type": "boolean", "x-mcp-header": "Dry"}}}
            }}}]}}),
        );
        let mut headers = HeaderMap::new();
        params.apply(
            &json!({"name": "query", "arguments": {"region": "eu-wé", "limit": 5, "ratio": 0.5,
                                                   "opts": {"dry": true}}}),
            &mut headers,
        );
        assert_eq!(headers["mcp-param-region"], "=?base64?ZXUtd8Op?=");
        assert_eq!(headers["mcp-param-limit"], "5");
        assert_eq!(headers["mcp-param-dry"], "true");
        assert!(headers.get("mcp-param-ratio").is_none());

        let mut none = HeaderMap::new();
        params.apply(&json!({"name": "query", "arguments": {}}), &mut none);
        params.apply(
            &json!({"name": "other", "arguments": {"region": "x"}}),
            &mut none,
        );
        assert!(none.is_empty());
    }
}
