//! A legacy client in front of a stateless upstream that asks for input: the Python SDK
//! client (`mode="legacy"`, a session) calls tools of the dual-era fixture
//! (`tests/peers/modern_server.py`), which the gateway reaches in the 2026-07-28 era. The
//! fixture's `input_required` rounds reach the client as server-to-client requests on the
//! call's stream, and the client's answers go back in the gateway's retries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::peers::{self, HttpPeer, ok, result_text};
use mcpgate_tests::{Gateway, PolicyRepo, audit_log};
use serde_json::{Value, json};

const POLICY: &str = "allow modern.ask_name, modern.ask_twice, modern.echo;\n";

fn gateway(server: Value, audit: bool) -> (PolicyRepo, Gateway) {
    let mut config = json!({"servers": {"modern": server}});
    if audit {
        config["audit"] = json!({});
    }
    let repo = PolicyRepo::with(&config, POLICY);
    let gateway = Gateway::start(&repo);
    (repo, gateway)
}

fn run(gateway: &Gateway, extra: Value, steps: Value) -> Value {
    let mut scenario = json!({
        "target": {"url": gateway.url("/mcp/modern")}, "mode": "legacy", "steps": steps,
    });
    for (k, v) in extra.as_object().unwrap() {
        scenario[k] = v.clone();
    }
    peers::py_client_scenario(scenario)
}

/// The elicitation round and the two-round elicitation-then-sampling call.
fn asks_reach_the_legacy_client(gateway: &Gateway) -> Value {
    let report = run(
        gateway,
        json!({}),
        json!([
            {"op": "call_tool", "name": "ask_name", "arguments": {}},
            {"op": "call_tool", "name": "ask_twice", "arguments": {}},
            {"op": "call_tool", "name": "echo", "arguments": {"text": "after"}},
        ]),
    );
    let log = gateway.log();
    assert!(
        report["protocol_version"]
            .as_str()
            .is_some_and(|v| v != "2026-07-28"),
        "{report}"
    );
    assert_eq!(
        result_text(ok(&report, 0)),
        "hello Test Client",
        "{report}\n{log}"
    );
    assert_eq!(
        result_text(ok(&report, 1)),
        "Test Client got: sampled by the test client",
        "{report}\n{log}"
    );
    assert_eq!(result_text(ok(&report, 2)), "echo: after", "{report}");
    let elicited = report["elicitation"].as_array().unwrap();
    assert_eq!(elicited.len(), 2, "{report}");
    assert_eq!(elicited[0]["message"], "What is your name?", "{report}");
    let sampled = report["sampling"].as_array().unwrap();
    assert_eq!(sampled.len(), 1, "{report}");
    assert_eq!(
        sampled[0]["messages"][0]["content"]["text"], "greet Test Client",
        "{report}"
    );
    report
}

#[test]
fn input_required_becomes_client_requests_over_http() {
    let server = HttpPeer::modern();
    let (_repo, gateway) = gateway(json!({"url": server.url}), false);
    asks_reach_the_legacy_client(&gateway);
}

#[test]
fn input_required_becomes_client_requests_over_stdio() {
    let (_repo, gateway) = gateway(peers::modern_stdio(), false);
    asks_reach_the_legacy_client(&gateway);
}

#[test]
fn a_client_without_the_capability_gets_a_clear_refusal() {
    let server = HttpPeer::modern();
    let (_repo, gateway) = gateway(json!({"url": server.url}), false);
    let report = run(
        &gateway,
        json!({"elicitation": false}),
        json!([
            {"op": "call_tool", "name": "ask_name", "arguments": {}},
            {"op": "call_tool", "name": "echo", "arguments": {"text": "still here"}},
        ]),
    );
    let refused = ok(&report, 0);
    assert_eq!(refused["isError"], true, "{report}\n{}", gateway.log());
    let text = result_text(refused);
    assert!(
        text.contains("`elicitation/create`") && text.contains("capability"),
        "{text}"
    );
    assert!(report["elicitation"].as_array().unwrap().is_empty());
    assert_eq!(result_text(ok(&report, 1)), "echo: still here", "{report}");

    // Elicitation declared, sampling not: the second round is refused.
    let report = run(
        &gateway,
        json!({"sampling": false}),
        json!([{"op": "call_tool", "name": "ask_twice", "arguments": {}}]),
    );
    let refused = ok(&report, 0);
    assert_eq!(refused["isError"], true, "{report}");
    assert!(
        result_text(refused).contains("`sampling/createMessage`"),
        "{report}"
    );
    assert_eq!(report["elicitation"].as_array().unwrap().len(), 1);
}

#[test]
fn the_rounds_are_one_decided_and_audited_call() {
    let server = HttpPeer::modern();
    let (_repo, gateway) = gateway(json!({"url": server.url}), true);
    let report = run(
        &gateway,
        json!({}),
        json!([{"op": "call_tool", "name": "ask_twice", "arguments": {}}]),
    );
    assert_eq!(
        result_text(ok(&report, 0)),
        "Test Client got: sampled by the test client",
        "{report}\n{}",
        gateway.log()
    );
    // The outcome record is written after the answer: wait for it, boundedly.
    let mut records = Vec::new();
    for _ in 0..100 {
        records = audit_log::records(&gateway.state().join("audit"));
        if records.iter().any(|r| r["type"] == "outcome") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let decisions: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "decision" && r["method"] == "tools/call")
        .collect();
    assert_eq!(decisions.len(), 1, "{records:#?}");
    let id = &decisions[0]["request_id"];
    let outcomes: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "outcome" && r["request_id"] == *id)
        .collect();
    assert_eq!(outcomes.len(), 1, "{records:#?}");
    assert_eq!(outcomes[0]["status"], "ok", "{records:#?}");
}
