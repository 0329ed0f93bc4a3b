//! Both protocol eras through the gateway: the Python SDK client in the stateless era
//! (`mode="2026-07-28"`) and in the legacy era, in front of a dual-era Python SDK server
//! (`tests/peers/modern_server.py`, stdio and HTTP) and of `server-everything` (legacy only).
//! Each combination lists, calls, is denied and finds hidden tools unknown; multi round-trip
//! calls, subscriptions and the header checks are covered once each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::{McpHttp, request};
use mcpgate_tests::peers::{self, HttpPeer, ok, result_text, tool_names};
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";

const POLICY: &str = r#"allow modern.echo, modern.change_tools, modern.ask_name, modern.added_*;
allow modern.delete_all;
@id("no-deletes")
deny modern.delete_all when args.what == "everything" because "deleting everything is not allowed";
hide modern.get_secret;
allow everything.echo, everything.get-sum, everything.trigger-elicitation-request;
@id("small-sums")
deny everything.get-sum when args.a > 100 because "sums this large are not allowed";
hide everything.get-env;
"#;

fn gateway(servers: Value) -> (PolicyRepo, Gateway) {
    let repo = PolicyRepo::with(&json!({ "servers": servers }), POLICY);
    let gateway = Gateway::start(&repo);
    (repo, gateway)
}

fn run(gateway: &Gateway, path: &str, mode: &str, steps: Value) -> Value {
    peers::py_client_scenario(json!({
        "target": {"url": gateway.url(path)}, "mode": mode, "steps": steps,
    }))
}

/// List, call, a denied call and a hidden tool against the modern fixture.
fn modern_server_basics(gateway: &Gateway, path: &str, prefix: &str, mode: &str) {
    let n = |t: &str| format!("{prefix}{t}");
    let report = run(
        gateway,
        path,
        mode,
        json!([
            {"op": "list_tools"},
            {"op": "call_tool", "name": n("echo"), "arguments": {"text": "hi"}},
            {"op": "call_tool", "name": n("delete_all"), "arguments": {"what": "everything"}},
            {"op": "call_tool", "name": n("get_secret"), "arguments": {}},
        ]),
    );
    let log = gateway.log();
    assert_eq!(
        report["protocol_version"],
        if mode == "legacy" {
            json!("2025-11-25")
        } else {
            json!(MODERN)
        },
        "{report}\n{log}"
    );
    let names = tool_names(ok(&report, 0));
    assert!(names.contains(&n("echo")), "{names:?}\n{log}");
    assert!(
        !names.contains(&n("get_secret")),
        "hidden tool listed: {names:?}"
    );
    assert_eq!(result_text(ok(&report, 1)), "echo: hi", "{report}");
    assert_eq!(ok(&report, 2)["isError"], true, "{report}");
    assert!(
        result_text(ok(&report, 2)).contains("no-deletes"),
        "{report}"
    );
    let hidden = &peers::results(&report)[3];
    assert!(
        hidden["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Unknown tool"),
        "a hidden tool ran: {hidden}"
    );
}

/// The same against server-everything (legacy only).
fn everything_basics(gateway: &Gateway, path: &str, prefix: &str, mode: &str) {
    let n = |t: &str| format!("{prefix}{t}");
    let report = run(
        gateway,
        path,
        mode,
        json!([
            {"op": "list_tools"},
            {"op": "call_tool", "name": n("echo"), "arguments": {"message": "hi"}},
            {"op": "call_tool", "name": n("get-sum"), "arguments": {"a": 500, "b": 1}},
            {"op": "call_tool", "name": n("get-env"), "arguments": {}},
        ]),
    );
    let log = gateway.log();
    let names = tool_names(ok(&report, 0));
    assert!(names.contains(&n("echo")), "{names:?}\n{log}");
    assert!(
        !names.contains(&n("get-env")),
        "hidden tool listed: {names:?}"
    );
    assert_eq!(result_text(ok(&report, 1)), "Echo: hi", "{report}");
    assert_eq!(ok(&report, 2)["isError"], true, "{report}");
    assert!(
        result_text(ok(&report, 2)).contains("small-sums"),
        "{report}"
    );
    let hidden = &peers::results(&report)[3];
    assert!(
        hidden["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Unknown tool"),
        "a hidden tool ran: {hidden}"
    );
}

#[test]
fn modern_client_and_modern_stdio_server() {
    let (_repo, gateway) = gateway(json!({"modern": peers::modern_stdio()}));
    modern_server_basics(&gateway, "/mcp/modern", "", MODERN);
}

#[test]
fn legacy_client_and_modern_stdio_server() {
    let (_repo, gateway) = gateway(json!({"modern": peers::modern_stdio()}));
    modern_server_basics(&gateway, "/mcp/modern", "", "legacy");
}

#[test]
fn both_clients_and_a_modern_http_server() {
    let server = HttpPeer::modern();
    let (_repo, gateway) = gateway(json!({"modern": {"url": server.url}}));
    modern_server_basics(&gateway, "/mcp/modern", "", MODERN);
    modern_server_basics(&gateway, "/mcp/modern", "", "legacy");
}

#[test]
fn modern_client_and_legacy_server() {
    let (_repo, gateway) = gateway(json!({"everything": peers::everything_stdio()}));
    everything_basics(&gateway, "/mcp/everything", "", MODERN);
    everything_basics(&gateway, "/mcp/everything", "", "legacy");
}

#[test]
fn both_eras_on_the_aggregated_endpoint() {
    let (_repo, gateway) = gateway(json!({
        "modern": peers::modern_stdio(),
        "everything": peers::everything_stdio(),
    }));
    for mode in [MODERN, "legacy"] {
        modern_server_basics(&gateway, "/mcp", "modern__", mode);
        everything_basics(&gateway, "/mcp", "everything__", mode);
    }
}
