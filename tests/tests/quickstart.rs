//! The quickstart of the README, as a user runs it: `mcpgate serve --policy
//! examples/quickstart` in front of the built-in demo server, reached by the Python SDK client
//! on both endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::peers::{self, ok, result_text, tool_names};
use mcpgate_tests::{Gateway, paths};
use serde_json::json;

fn quickstart() -> Gateway {
    // Its one upstream is `command: mcpgate`, which runs the gateway's own executable.
    let dir = paths::workspace_root().join("examples").join("quickstart");
    Gateway::start_dir(&dir, &[], &[])
}

#[test]
fn the_quickstart_serves_the_demo_server_as_its_policy_says() {
    let gateway = quickstart();
    let via = peers::py_client(
        json!({"url": gateway.url("/mcp/demo")}),
        json!([
            {"op": "list_tools"},
            {"op": "call_tool", "name": "add", "arguments": {"a": 2, "b": 40}},
            {"op": "call_tool", "name": "send_payment", "arguments": {"to": "bob", "amount": 500}},
            {"op": "call_tool", "name": "delete_note", "arguments": {"name": "todo"}},
        ]),
    );
    assert_eq!(
        tool_names(ok(&via, 0)),
        [
            "add",
            "echo",
            "list_notes",
            "read_note",
            "send_payment",
            "write_note"
        ],
        "{}",
        gateway.log()
    );
    assert!(result_text(ok(&via, 1)).contains("42"), "{via}");
    assert_eq!(ok(&via, 2)["isError"], true, "{via}");
    assert!(result_text(ok(&via, 2)).contains("payments-cap"), "{via}");
    let hidden = &peers::results(&via)[3];
    assert!(
        hidden.get("error").is_some() || hidden["ok"]["isError"] == true,
        "a hidden tool ran: {hidden}"
    );
}

#[test]
fn the_aggregated_endpoint_namespaces_the_demo_tools() {
    let gateway = quickstart();
    let via = peers::py_client(
        json!({"url": gateway.url("/mcp")}),
        json!([
            {"op": "list_tools"},
            {"op": "call_tool", "name": "demo__echo", "arguments": {"text": "hello"}},
        ]),
    );
    assert!(
        tool_names(ok(&via, 0)).contains(&"demo__echo".to_owned()),
        "{via}"
    );
    assert!(result_text(ok(&via, 1)).contains("hello"), "{via}");
}
