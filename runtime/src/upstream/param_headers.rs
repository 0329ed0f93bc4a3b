//! `Mcp-Param-*` headers. A server of the stateless protocol revision may mark tool arguments
//! with `x-mcp-header` in the tool's input schema; a `tools/call` must then mirror those
//! arguments as HTTP headers. The marks are learnt from the `tools/list` answers that pass
//! through the upstream, whichever session asked; marks and rendering are shared with the
//! gateway's check of the headers clients send ([`crate::mcp_headers`]).

use super::Message;
use crate::mcp_headers::{self, Mark};
use http::header::HeaderMap;
use std::collections::HashMap;
use std::sync::Mutex;

/// Most tools remembered per upstream.
const MAX_TOOLS: usize = 10_000;

/// The marked arguments of every tool of one upstream.
#[derive(Debug, Default)]
pub(crate) struct ParamHeaders {
    tools: Mutex<HashMap<String, Vec<Mark>>>,
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
            let marks = tool
                .get("inputSchema")
                .map(mcp_headers::marks)
                .unwrap_or_default();
            if marks.is_empty() {
                map.remove(name);
            } else if map.len() < MAX_TOOLS || map.contains_key(name) {
                map.insert(name.to_owned(), marks);
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
            if let Some(v) = mark.header_value(arguments) {
                headers.insert(mark.header.clone(), v);
            }
        }
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
                "ratio": {"type": "number"},
                "opts": {"type": "object", "properties": {
                    "dry": {"type": "boolean", "x-mcp-header": "Dry"}}}
            }}}]}}),
        );
        let mut headers = HeaderMap::new();
        params.apply(
            &json!({"name": "query", "arguments": {"region": "eu-wé", "limit": 5, "ratio": 0.5, "note": null,
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

    #[test]
    fn a_tool_with_an_invalid_mark_gets_no_headers() {
        let params = ParamHeaders::default();
        params.learn(&json!({"result": {"tools": [{"name": "q", "inputSchema": {
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "ratio": {"type": "number", "x-mcp-header": "Ratio"}
        }}}]}}));
        let mut headers = HeaderMap::new();
        params.apply(
            &json!({"name": "q", "arguments": {"region": "eu", "ratio": 0.5}}),
            &mut headers,
        );
        assert!(headers.is_empty());
    }
}
