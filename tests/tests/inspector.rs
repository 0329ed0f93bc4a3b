//! The MCP Inspector's CLI mode lists and calls tools through the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::peers;
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::json;

#[test]
fn inspector_lists_and_calls_through_the_gateway() {
    let repo = PolicyRepo::with(
        &json!({"servers": {"everything": peers::everything_stdio()}}),
        "allow everything.echo;\nhide everything.get-env;\n",
    );
    let gateway = Gateway::start(&repo);
    let url = gateway.url("/mcp/everything");

    let listed = peers::inspector(&[&url, "--transport", "http", "--method", "tools/list"]);
    assert_eq!(listed.code(), 0, "{listed}\n{}", gateway.log());
    let tools: serde_json::Value = serde_json::from_str(listed.stdout.trim())
        .unwrap_or_else(|e| panic!("tools/list printed no JSON ({e}): {listed}"));
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["echo"]);

    let called = peers::inspector(&[
        &url,
        "--transport",
        "http",
        "--method",
        "tools/call",
        "--tool-name",
        "echo",
        "--tool-arg",
        "message=inspected",
    ]);
    assert_eq!(called.code(), 0, "{called}");
    assert!(called.stdout.contains("Echo: inspected"), "{called}");
}
