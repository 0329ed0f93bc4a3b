//! Resource subscriptions through the gateway in both protocol eras: a stateless client's
//! `subscriptions/listen` with `resourceSubscriptions` (in front of the dual-era Python SDK
//! server, `tests/peers/modern_server.py`, and of the legacy `server-everything`), a legacy
//! client's `resources/subscribe` in front of the stateless server, and a policy change that
//! stops the updates of a resource the subscriber may no longer read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::McpHttp;
use mcpgate_tests::peers::{self, ok, result_text};
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::{Value, json};
use std::time::Duration;

const MODERN: &str = "2026-07-28";

const POLICY: &str = r#"allow modern.touch;
allow resource modern "memo://open";
allow resource modern "memo://note";
@id("no-secrets")
deny resource modern "memo://secret" because "secrets stay secret";
allow everything.toggle-subscriber-updates;
allow resource everything "demo://resource/**";
deny resource everything "demo://secret/**";
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

fn touch(uri: &str) -> Value {
    json!({"name": "touch", "arguments": {"uri": uri}})
}

/// The URIs of the resource updates a `listen_resources` step collected.
fn updated(step: &Value) -> Vec<String> {
    step["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "ResourceUpdated")
        .map(|e| e["uri"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Checks the acknowledged URIs and the updates that arrived in a `listen_resources` step.
fn assert_heard(gateway: &Gateway, report: &Value, honored: Value, heard: &[&str]) {
    let step = ok(report, 0);
    assert_eq!(
        step["honored"]["resourceSubscriptions"], honored,
        "{report}"
    );
    assert_eq!(updated(step), heard, "{report}\n{}", gateway.log());
}

#[test]
fn a_stateless_client_hears_updates_of_the_resources_it_may_read() {
    let (_repo, gateway) = gateway(json!({"modern": peers::modern_stdio()}));
    let report = run(
        &gateway,
        "/mcp/modern",
        MODERN,
        json!([{"op": "listen_resources", "uris": ["memo://open", "memo://secret"],
            "calls": [touch("memo://secret"), touch("memo://open")],
            "until": "memo://open", "timeout": 15}]),
    );
    // The denied resource is left out of the acknowledged filter, without an error.
    assert_heard(&gateway, &report, json!(["memo://open"]), &["memo://open"]);
    assert_eq!(
        result_text(&ok(&report, 0)["calls"][0]),
        "touched memo://secret"
    );
}

#[test]
fn the_aggregated_endpoint_routes_subscriptions_to_the_serving_upstream() {
    let (_repo, gateway) = gateway(json!({"modern": peers::modern_stdio()}));
    let report = run(
        &gateway,
        "/mcp",
        MODERN,
        json!([{"op": "listen_resources", "uris": ["memo://secret", "memo://open"],
            "calls": [
                {"name": "modern__touch", "arguments": {"uri": "memo://secret"}},
                {"name": "modern__touch", "arguments": {"uri": "memo://open"}},
            ],
            "until": "memo://open", "timeout": 15}]),
    );
    assert_heard(&gateway, &report, json!(["memo://open"]), &["memo://open"]);
}

#[test]
fn a_legacy_client_subscribes_through_a_stateless_upstream() {
    let (_repo, gateway) = gateway(json!({"modern": peers::modern_stdio()}));
    // The gateway listens again upstream once the subscription changes: touch a few times,
    // each round waiting (bounded) for the update.
    let mut steps = vec![
        json!({"op": "subscribe_resource", "uri": "memo://open"}),
        json!({"op": "subscribe_resource", "uri": "memo://secret"}),
    ];
    for _ in 0..3 {
        steps.push(
            json!({"op": "call_tool", "name": "touch", "arguments": {"uri": "memo://secret"}}),
        );
        steps
            .push(json!({"op": "call_tool", "name": "touch", "arguments": {"uri": "memo://open"}}));
        steps.push(json!({"op": "wait_notification",
            "method": "notifications/resources/updated", "timeout": 5}));
    }
    let report = run(&gateway, "/mcp/modern", "legacy", Value::Array(steps));
    assert_eq!(ok(&report, 0), &json!({}), "{report}");
    // Subscribing to a denied resource is refused like reading it: off the lists, but the
    // unconditional deny answers with its rule and reason (only `hide` makes it unknown).
    let refused = &peers::results(&report)[1];
    assert_eq!(refused["error"]["code"], -32001, "{report}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("denied by rule no-secrets (")
            && message.ends_with(": secrets stay secret"),
        "{report}"
    );
    let read = run(
        &gateway,
        "/mcp/modern",
        "legacy",
        json!([{"op": "read_resource", "uri": "memo://secret"}]),
    );
    assert_eq!(
        peers::results(&read)[0]["error"],
        refused["error"],
        "{read}"
    );
    let uris: Vec<&str> = report["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["method"] == "notifications/resources/updated")
        .filter_map(|n| n["params"]["uri"].as_str())
        .collect();
    assert!(uris.contains(&"memo://open"), "{report}\n{}", gateway.log());
    assert!(!uris.contains(&"memo://secret"), "{report}");
}

#[test]
fn a_policy_change_stops_the_updates_of_a_resource_no_longer_allowed() {
    let (repo, gateway) = gateway(json!({"modern": peers::modern_stdio()}));
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let go = dir.path().join("go");
    let scenario = json!({
        "target": {"url": gateway.url("/mcp/modern")}, "mode": MODERN,
        "steps": [{"op": "listen_resources", "uris": ["memo://open", "memo://note"],
            "ready_file": ready, "go_file": go,
            "calls": [touch("memo://open"), touch("memo://note")],
            "until": "memo://note", "timeout": 30}],
    });
    let client = std::thread::spawn(move || peers::py_client_scenario(scenario));
    for _ in 0..300 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        ready.exists(),
        "the subscription never opened\n{}",
        gateway.log()
    );
    let rules = POLICY.replace(
        r#"allow resource modern "memo://open";"#,
        r#"deny resource modern "memo://open";"#,
    );
    std::fs::write(repo.join("policies/main.mcpg"), rules).unwrap();
    // Wait until the new policy is in force: reading the resource is refused.
    let mut c = McpHttp::new(gateway.addr(), "/mcp/modern");
    c.initialize();
    let mut swapped = false;
    for i in 0..300 {
        let r = c.call(10 + i, "resources/read", json!({"uri": "memo://open"}));
        if r.get("error").is_some() {
            swapped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(swapped, "the new policy never went live\n{}", gateway.log());
    std::fs::write(&go, "go").unwrap();
    let report = client.join().unwrap();
    // Both updates come on one upstream stream, in order: the first is dropped.
    assert_heard(
        &gateway,
        &report,
        json!(["memo://open", "memo://note"]),
        &["memo://note"],
    );
}

#[test]
fn a_stateless_client_hears_a_legacy_upstream_through_resources_subscribe() {
    let (_repo, gateway) = gateway(json!({"everything": peers::everything_stdio()}));
    let allowed = "demo://resource/static/document/architecture.md";
    let report = run(
        &gateway,
        "/mcp/everything",
        MODERN,
        json!([{"op": "listen_resources", "uris": [allowed, "demo://secret/1"],
            "calls": [{"name": "toggle-subscriber-updates", "arguments": {}}],
            "until": allowed, "timeout": 20}]),
    );
    assert_heard(&gateway, &report, json!([allowed]), &[allowed]);
}
