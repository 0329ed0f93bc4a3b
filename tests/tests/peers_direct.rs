//! The peers themselves work on this machine, without the gateway: when a gateway test
//! fails, these say whether the peer or the gateway is at fault.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::peers::{self, HttpPeer};
use serde_json::json;

#[test]
fn python_client_calls_server_everything_over_stdio() {
    let target = peers::direct_target(&peers::everything_stdio());
    let report = peers::py_client(
        target,
        json!([
            {"op": "list_tools"},
            {"op": "call_tool", "name": "echo", "arguments": {"message": "direct"}},
        ]),
    );
    let tools = peers::tool_names(peers::ok(&report, 0));
    assert!(tools.contains(&"echo".to_owned()), "{tools:?}");
    assert_eq!(peers::result_text(peers::ok(&report, 1)), "Echo: direct");
}

#[test]
fn python_client_calls_server_everything_over_http() {
    let server = HttpPeer::everything();
    let report = peers::py_client(
        json!({"url": server.url}),
        json!([{"op": "call_tool", "name": "get-sum", "arguments": {"a": 2, "b": 3}}]),
    );
    assert!(
        peers::result_text(peers::ok(&report, 0)).contains('5'),
        "{report}"
    );
}

#[test]
fn fixture_server_paginates_and_announces_changes() {
    let target = peers::direct_target(&peers::fixture_stdio(&["--page-size", "3"]));
    let report = peers::py_client(
        target,
        json!([
            {"op": "list_tools"},
            {"op": "call_tool", "name": "change_tools"},
            {"op": "wait_notification", "method": "notifications/tools/list_changed", "timeout": 10},
            {"op": "list_tools"},
        ]),
    );
    let first = peers::ok(&report, 0);
    assert_eq!(first["pages"], 5, "13 tools in pages of 3");
    assert_eq!(peers::ok(&report, 2), &json!(true), "list_changed arrived");
    assert!(peers::tool_names(peers::ok(&report, 3)).contains(&"added_1".to_owned()));
}

#[test]
fn inspector_cli_runs_with_node_22() {
    let everything = peers::everything_stdio();
    let node = everything["command"].as_str().unwrap();
    let entry = everything["args"][0].as_str().unwrap();
    let done = peers::inspector(&[
        node,
        entry,
        "stdio",
        "--method",
        "tools/call",
        "--tool-name",
        "echo",
        "--tool-arg",
        "message=inspected",
    ]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(done.stdout.contains("Echo: inspected"), "{}", done.stdout);
}
