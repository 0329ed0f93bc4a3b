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
@id("no-routing")
deny modern.route because "routing is the operators' job";
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

/// List, call, a denied call, a hidden tool and a tool withheld by an unconditional deny
/// (off the list, but a call reads the rule and its reason) against the modern fixture.
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
            {"op": "call_tool", "name": n("route"), "arguments": {}},
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
    assert!(
        !names.contains(&n("route")),
        "withheld tool listed: {names:?}"
    );
    let withheld = ok(&report, 4);
    assert_eq!(withheld["isError"], true, "{report}");
    let text = result_text(withheld);
    assert!(
        text.starts_with("denied by rule no-routing (")
            && text.ends_with(": routing is the operators' job"),
        "{report}"
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

fn modern_call(method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
}

#[test]
fn headers_must_match_the_body_and_the_body_decides() {
    let (_repo, gateway) = gateway(json!({"modern": peers::modern_stdio()}));
    let client = McpHttp::new(gateway.addr(), "/mcp/modern");
    let call = modern_call("tools/call", json!({"name": "get_secret", "arguments": {}}));
    let body = call.to_string();
    // The name header says an allowed tool, the body a hidden one: refused, never run.
    let mismatch = client.post_raw(
        body.as_bytes(),
        &[
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
    );
    assert_eq!(mismatch.status, 400, "{mismatch}");
    assert_eq!(mismatch.json()["error"]["code"], -32020, "{mismatch}");
    let wrong_method = client.post_raw(
        body.as_bytes(),
        &[
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/list"),
            ("Mcp-Name", "get_secret"),
        ],
    );
    assert_eq!(
        wrong_method.json()["error"]["code"],
        -32020,
        "{wrong_method}"
    );
    // Headers that match: the body names a hidden tool, so it is unknown.
    let matching = client.post_raw(
        body.as_bytes(),
        &[
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "get_secret"),
        ],
    );
    assert!(
        matching.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Unknown tool"),
        "{matching}"
    );
    let mut future = modern_call("tools/list", json!({}));
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let unsupported = client.post_raw(
        future.to_string().as_bytes(),
        &[
            ("MCP-Protocol-Version", "2099-01-01"),
            ("Mcp-Method", "tools/list"),
        ],
    );
    assert_eq!(unsupported.status, 400, "{unsupported}");
    assert_eq!(unsupported.json()["error"]["code"], -32022);
    assert_eq!(
        unsupported.json()["error"]["data"]["supported"],
        json!([MODERN])
    );
    let unknown = client.post_raw(
        modern_call("ping", json!({})).to_string().as_bytes(),
        &[("MCP-Protocol-Version", MODERN), ("Mcp-Method", "ping")],
    );
    assert_eq!(unknown.status, 404, "{unknown}");
    assert_eq!(unknown.json()["error"]["code"], -32601);
    let get = request(
        gateway.addr(),
        "GET",
        "/mcp/modern",
        &[
            ("Accept", "text/event-stream"),
            ("MCP-Protocol-Version", MODERN),
        ],
        b"",
    );
    assert_eq!(get.status, 405, "{get}");
    let delete = request(
        gateway.addr(),
        "DELETE",
        "/mcp/modern",
        &[("MCP-Protocol-Version", MODERN)],
        b"",
    );
    assert_eq!(delete.status, 405, "{delete}");
    // Lists for a modern client may be cached only by that caller.
    let list = client.post_raw(
        modern_call("tools/list", json!({})).to_string().as_bytes(),
        &[
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/list"),
        ],
    );
    let result = &list.json()["result"];
    assert_eq!(result["cacheScope"], "private", "{list}");
    assert!(result["ttlMs"].is_u64(), "{list}");
}

#[test]
fn discover_merges_the_upstreams_of_the_aggregated_endpoint() {
    let (_repo, gateway) = gateway(json!({
        "modern": peers::modern_stdio(),
        "everything": peers::everything_stdio(),
    }));
    let report = run(&gateway, "/mcp", "auto", json!([{"op": "list_tools"}]));
    assert_eq!(
        report["protocol_version"],
        MODERN,
        "{report}\n{}",
        gateway.log()
    );
    assert_eq!(report["server_info"]["name"], "mcpgate", "{report}");
    let names = tool_names(ok(&report, 0));
    assert!(
        names.contains(&"modern__echo".to_owned())
            && names.contains(&"everything__echo".to_owned()),
        "{names:?}"
    );
    for era in ["stateless", "legacy"] {
        assert!(
            gateway.wait_for_log(&format!("upstream speaks the {era} era")),
            "{}",
            gateway.log()
        );
    }
}

#[test]
fn input_required_round_trips_in_both_directions() {
    let (_repo, gateway) = gateway(json!({
        "modern": peers::modern_stdio(),
        "everything": peers::everything_stdio(),
    }));
    // A modern server asks with input_required: relayed to the modern client and back.
    let report = run(
        &gateway,
        "/mcp",
        MODERN,
        json!([
            {"op": "call_tool", "name": "modern__ask_name", "arguments": {}},
            // A legacy server asks with an elicitation request: the gateway turns it into
            // input_required and the client's retry into the answer.
            {"op": "call_tool", "name": "everything__trigger-elicitation-request", "arguments": {}},
        ]),
    );
    assert_eq!(
        result_text(ok(&report, 0)),
        "hello Test Client",
        "{report}\n{}",
        gateway.log()
    );
    assert!(
        !report["elicitation"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let text = result_text(ok(&report, 1));
    assert!(text.contains("Test Client"), "{report}\n{}", gateway.log());
    assert_eq!(
        report["elicitation"].as_array().unwrap().len(),
        2,
        "{report}"
    );
}

#[test]
fn subscriptions_deliver_list_changes() {
    let (_repo, gateway) = gateway(json!({"modern": peers::modern_stdio()}));
    let report = run(
        &gateway,
        "/mcp/modern",
        MODERN,
        json!([{"op": "listen_call", "name": "change_tools", "arguments": {}, "timeout": 15}]),
    );
    let step = ok(&report, 0);
    assert_eq!(step["honored"]["toolsListChanged"], true, "{report}");
    assert_eq!(result_text(&step["call"]), "added added_1", "{report}");
    assert_eq!(
        step["events"],
        json!(["ToolsListChanged"]),
        "{report}\n{}",
        gateway.log()
    );
    // The legacy client hears the same change on its GET stream.
    let legacy = run(
        &gateway,
        "/mcp/modern",
        "legacy",
        json!([
            {"op": "call_tool", "name": "change_tools", "arguments": {}},
            {"op": "wait_notification", "method": "notifications/tools/list_changed", "timeout": 15},
        ]),
    );
    assert_eq!(ok(&legacy, 1), &json!(true), "{legacy}\n{}", gateway.log());
}
