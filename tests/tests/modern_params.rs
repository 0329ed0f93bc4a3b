//! `Mcp-Param-*` headers of stateless clients, checked against the tool's input schema
//! (`x-mcp-header` marks): the Python SDK client in the 2026-07-28 era sends them itself and
//! gets through, raw requests whose headers disagree with the body get 400 `-32020` before
//! any decision, and the decision still reads the body.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::{McpHttp, Response};
use mcpgate_tests::peers::{self, HttpPeer, ok, result_text};
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";

const POLICY: &str = r#"allow modern.route;
@id("no-forbidden")
deny modern.route when args.region == "forbidden" because "that region is closed";
"#;

fn gateway(servers: Value) -> (PolicyRepo, Gateway) {
    let repo = PolicyRepo::with(&json!({ "servers": servers }), POLICY);
    let gateway = Gateway::start(&repo);
    (repo, gateway)
}

fn sdk_calls_route(gateway: &Gateway, path: &str, name: &str) {
    let report = peers::py_client_scenario(json!({
        "target": {"url": gateway.url(path)}, "mode": MODERN,
        "steps": [
            {"op": "list_tools"},
            {"op": "call_tool", "name": name,
             "arguments": {"region": "eu-wé", "count": 3, "dry": true}},
            {"op": "call_tool", "name": name, "arguments": {"region": "us"}},
        ],
    }));
    let log = gateway.log();
    assert_eq!(report["protocol_version"], MODERN, "{report}\n{log}");
    assert_eq!(
        result_text(ok(&report, 1)),
        "routed eu-wé x3 dry=true",
        "{report}\n{log}"
    );
    assert_eq!(
        result_text(ok(&report, 2)),
        "routed us x1 dry=false",
        "{report}"
    );
}

#[test]
fn the_sdk_client_sends_param_headers_that_pass() {
    let (_repo, gateway) = gateway(json!({"modern": peers::modern_stdio()}));
    sdk_calls_route(&gateway, "/mcp/modern", "route");
    sdk_calls_route(&gateway, "/mcp", "modern__route");
}

#[test]
fn param_headers_pass_to_a_modern_http_server_that_checks_them() {
    // The upstream (Python SDK) checks the headers the gateway writes for it.
    let server = HttpPeer::modern();
    let (_repo, gateway) = gateway(json!({"modern": {"url": server.url}}));
    sdk_calls_route(&gateway, "/mcp/modern", "route");
}

fn modern_request(id: u64, method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn call(client: &McpHttp, arguments: Value, params: &[(&str, &str)]) -> Response {
    let body = modern_request(
        9,
        "tools/call",
        json!({"name": "route", "arguments": arguments}),
    );
    let mut headers = vec![
        ("MCP-Protocol-Version", MODERN),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "route"),
    ];
    headers.extend_from_slice(params);
    client.post_raw(body.to_string().as_bytes(), &headers)
}

fn assert_mismatch(r: &Response, what: &str) {
    assert_eq!(r.status, 400, "{what}: {r}");
    let e = &r.json()["error"];
    assert_eq!(e["code"], -32020, "{what}: {r}");
    assert_eq!(r.json()["id"], 9, "{what}: {r}");
}

#[test]
fn headers_that_disagree_with_the_arguments_are_refused() {
    let (_repo, gateway) = gateway(json!({"modern": peers::modern_stdio()}));
    let client = McpHttp::new(gateway.addr(), "/mcp/modern");
    let list = client.post_raw(
        modern_request(1, "tools/list", json!({}))
            .to_string()
            .as_bytes(),
        &[
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/list"),
        ],
    );
    assert_eq!(list.status, 200, "{list}\n{}", gateway.log());

    let args = json!({"region": "eu", "count": 2});
    let mismatched = call(
        &client,
        args.clone(),
        &[("Mcp-Param-Region", "us"), ("Mcp-Param-Count", "2")],
    );
    assert_mismatch(&mismatched, "mismatched region");
    assert!(
        mismatched.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Mcp-Param-Region"),
        "{mismatched}"
    );
    assert_mismatch(
        &call(&client, args.clone(), &[("Mcp-Param-Region", "eu")]),
        "missing count",
    );
    assert_mismatch(
        &call(
            &client,
            args.clone(),
            &[
                ("Mcp-Param-Region", "eu"),
                ("Mcp-Param-Count", "2"),
                ("Mcp-Param-Dry-Run", "false"),
            ],
        ),
        "header for an absent argument",
    );
    assert_mismatch(
        &call(
            &client,
            args.clone(),
            &[("Mcp-Param-Region", "eu"), ("Mcp-Param-Count", "two")],
        ),
        "count not a number",
    );
    // A header may name the body's forbidden value only if the body says so: the header
    // check comes before the decision, and the decision reads the body.
    assert_mismatch(
        &call(
            &client,
            json!({"region": "forbidden"}),
            &[("Mcp-Param-Region", "eu")],
        ),
        "header hiding the body's value",
    );

    // Matching headers in any case and form pass; a header naming no marked property is
    // ignored.
    let good = call(
        &client,
        json!({"region": "eu west", "count": 2, "dry": true}),
        &[
            ("mcp-param-region", "=?base64?ZXUgd2VzdA==?="),
            ("MCP-PARAM-COUNT", "2.0"),
            ("Mcp-Param-Dry-Run", "true"),
            ("Mcp-Param-Unrelated", "anything"),
        ],
    );
    assert_eq!(good.status, 200, "{good}\n{}", gateway.log());
    assert_eq!(
        good.json()["result"]["content"][0]["text"],
        "routed eu west x2 dry=true",
        "{good}"
    );
    let denied = call(
        &client,
        json!({"region": "forbidden"}),
        &[("Mcp-Param-Region", "forbidden")],
    );
    assert_eq!(denied.json()["result"]["isError"], true, "{denied}");
    assert!(
        denied.json()["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("no-forbidden"),
        "{denied}"
    );
}
