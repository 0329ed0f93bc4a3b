//! Calls to the demo server's tools (`mcpgate demo-server`, served at `/mcp/demo`) and
//! reading their answers, as several suites do.

use crate::Gateway;
use crate::http::McpHttp;
use serde_json::{Value, json};

/// A client of `gw`'s `/mcp/demo`, initialized.
pub fn client(gw: &Gateway) -> McpHttp {
    let mut c = McpHttp::new(gw.addr(), "/mcp/demo");
    c.initialize();
    c
}

/// `tools/call` of `name` with `args`; the response.
pub fn call(c: &McpHttp, id: u64, name: &str, args: Value) -> Value {
    c.call(id, "tools/call", json!({"name": name, "arguments": args}))
}

/// The first text of a tool result (empty when there is none).
pub fn text(response: &Value) -> String {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Whether the answer is a tool result with `isError` (a denial, among others).
pub fn denied(response: &Value) -> bool {
    response["result"]["isError"] == json!(true)
}
