//! The Python SDK client through the gateway to `server-everything` (stdio and Streamable
//! HTTP upstreams): filtering, decisions, and the relay of progress, sampling and elicitation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::McpHttp;
use mcpgate_tests::peers::{self, HttpPeer, ok, result_text, tool_names};
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::{Value, json};

const POLICY: &str = r#"# What the tests may reach on server-everything.
allow everything.echo, everything.get-sum, everything.trigger-long-running-operation;
allow everything.trigger-sampling-request, everything.trigger-elicitation-request;

@id("no-big-sums")
deny everything.get-sum when args.a > 100 because "sums this large are not allowed";

hide everything.get-env;
"#;

/// What the policy lists, sorted.
const LISTED: [&str; 5] = [
    "echo",
    "get-sum",
    "trigger-elicitation-request",
    "trigger-long-running-operation",
    "trigger-sampling-request",
];

fn gateway_for(server: Value) -> (PolicyRepo, Gateway) {
    let repo = PolicyRepo::with(&json!({"servers": {"everything": server}}), POLICY);
    let gateway = Gateway::start(&repo);
    (repo, gateway)
}

fn through(gateway: &Gateway, steps: Value) -> Value {
    peers::py_client(json!({"url": gateway.url("/mcp/everything")}), steps)
}

#[test]
fn lists_only_allowed_tools_with_their_upstream_definitions() {
    let server = peers::everything_stdio();
    let (_repo, gateway) = gateway_for(server.clone());
    let via = through(&gateway, json!([{"op": "list_tools"}]));
    let direct = peers::py_client(peers::direct_target(&server), json!([{"op": "list_tools"}]));

    let listed = ok(&via, 0);
    assert_eq!(tool_names(listed), LISTED, "{}", gateway.log());
    for tool in listed["tools"].as_array().unwrap() {
        let upstream = ok(&direct, 0)["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == tool["name"])
            .unwrap_or_else(|| panic!("{} is not an upstream tool", tool["name"]));
        assert_eq!(tool, upstream, "the gateway changed a tool definition");
    }
}

#[test]
fn allowed_calls_answer_as_the_server_does() {
    let server = peers::everything_stdio();
    let (_repo, gateway) = gateway_for(server.clone());
    let steps = json!([
        {"op": "call_tool", "name": "echo", "arguments": {"message": "through the gate"}},
        {"op": "call_tool", "name": "get-sum", "arguments": {"a": 7, "b": 35}},
    ]);
    let via = through(&gateway, steps.clone());
    let direct = peers::py_client(peers::direct_target(&server), steps);
    assert_eq!(result_text(ok(&via, 0)), "Echo: through the gate");
    assert_eq!(ok(&via, 0), ok(&direct, 0));
    assert_eq!(ok(&via, 1), ok(&direct, 1));
    assert!(result_text(ok(&via, 1)).contains("42"), "{via}");
}

#[test]
fn a_denied_call_is_an_error_result_naming_the_rule() {
    let (_repo, gateway) = gateway_for(peers::everything_stdio());
    let via = through(
        &gateway,
        json!([{"op": "call_tool", "name": "get-sum", "arguments": {"a": 1000, "b": 1}}]),
    );
    let result = ok(&via, 0);
    assert_eq!(result["isError"], true, "{result}");
    let text = result_text(result);
    assert!(
        text.contains("no-big-sums"),
        "rule id missing from {text:?}"
    );
    assert!(text.contains("sums this large are not allowed"), "{text:?}");
    assert!(
        !text.contains("1001"),
        "the call reached the server: {text:?}"
    );
}

/// A hidden tool and a tool no rule allows answer exactly as a tool that does not exist.
#[test]
fn hidden_and_unlisted_tools_are_unknown() {
    let (_repo, gateway) = gateway_for(peers::everything_stdio());
    let via = through(
        &gateway,
        json!([
            {"op": "call_tool", "name": "get-env", "arguments": {}},
            {"op": "call_tool", "name": "get-tiny-image", "arguments": {}},
            {"op": "call_tool", "name": "no-such-tool", "arguments": {}},
        ]),
    );
    let steps = peers::results(&via);
    let normalized = |i: usize, name: &str| steps[i].to_string().replace(name, "TOOL");
    let unknown = normalized(2, "no-such-tool");
    let is_refusal = steps[2].get("error").is_some() || steps[2]["ok"]["isError"] == true;
    assert!(is_refusal, "an unknown tool was not refused: {}", steps[2]);
    assert_eq!(
        normalized(0, "get-env"),
        unknown,
        "hidden differs from unknown"
    );
    assert_eq!(
        normalized(1, "get-tiny-image"),
        unknown,
        "unlisted differs from unknown"
    );
    assert!(
        !steps[0].to_string().contains("PATH"),
        "get-env ran: {}",
        steps[0]
    );
}

#[test]
fn progress_sampling_and_elicitation_are_relayed() {
    let (_repo, gateway) = gateway_for(peers::everything_stdio());
    let via = through(
        &gateway,
        json!([
            {"op": "call_tool", "name": "trigger-long-running-operation",
             "arguments": {"duration": 1, "steps": 3}, "progress": true},
            {"op": "call_tool", "name": "trigger-sampling-request",
             "arguments": {"prompt": "say hello"}},
            {"op": "call_tool", "name": "trigger-elicitation-request", "arguments": {}},
        ]),
    );
    assert_progress_sampling_elicitation(&via);
}

fn assert_progress_sampling_elicitation(via: &Value) {
    let progress = &peers::results(via)[0]["progress"];
    let values: Vec<f64> = progress
        .as_array()
        .unwrap_or_else(|| panic!("no progress in {via}"))
        .iter()
        .map(|p| p["progress"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [1.0, 2.0, 3.0], "{progress}");
    assert!(
        progress
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["total"] == 3.0)
    );
    assert!(result_text(ok(via, 0)).contains("completed"), "{via}");

    let sampling = via["sampling"].as_array().unwrap();
    assert_eq!(sampling.len(), 1, "sampling requests: {sampling:?}");
    assert!(
        sampling[0].to_string().contains("say hello"),
        "{sampling:?}"
    );
    assert!(
        result_text(ok(via, 1)).contains("sampled by the test client"),
        "the server did not get the client's answer: {via}"
    );

    assert_eq!(via["elicitation"].as_array().unwrap().len(), 1, "{via}");
    assert!(
        result_text(ok(via, 2)).contains("Name: Test Client"),
        "{via}"
    );
}

#[test]
fn streamable_http_upstream_works_the_same() {
    let server = HttpPeer::everything();
    let (_repo, gateway) = gateway_for(json!({"url": server.url}));
    let via = through(
        &gateway,
        json!([
            {"op": "call_tool", "name": "trigger-long-running-operation",
             "arguments": {"duration": 1, "steps": 3}, "progress": true},
            {"op": "call_tool", "name": "trigger-sampling-request",
             "arguments": {"prompt": "say hello"}},
            {"op": "call_tool", "name": "trigger-elicitation-request", "arguments": {}},
            {"op": "list_tools"},
            {"op": "call_tool", "name": "get-sum", "arguments": {"a": 1000, "b": 1}},
            {"op": "call_tool", "name": "echo", "arguments": {"message": "over http"}},
        ]),
    );
    assert_progress_sampling_elicitation(&via);
    assert_eq!(tool_names(ok(&via, 3)), LISTED);
    assert_eq!(ok(&via, 4)["isError"], true);
    assert!(result_text(ok(&via, 4)).contains("no-big-sums"));
    assert_eq!(result_text(ok(&via, 5)), "Echo: over http");
}

#[test]
fn delete_ends_the_session() {
    let (_repo, gateway) = gateway_for(peers::everything_stdio());
    let mut client = McpHttp::new(gateway.addr(), "/mcp/everything");
    client.initialize();
    assert!(client.session.is_some(), "no Mcp-Session-Id on initialize");
    let listed = client.call(2, "tools/list", json!({}));
    assert!(listed["result"]["tools"].is_array(), "{listed}");

    let deleted = client.delete();
    assert!(
        deleted.status == 200 || deleted.status == 204,
        "DELETE answered {deleted}"
    );
    let after = client.post(&mcpgate_tests::http::rpc(3, "tools/list", json!({})));
    assert_eq!(after.status, 404, "a deleted session still works: {after}");
}
