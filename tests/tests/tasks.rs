//! Tasks (2025-11-25, experimental) through the gateway, against `server-everything` over
//! Streamable HTTP (its `simulate-research-query` tool runs as a task): a task reaches only
//! the principal that created it, on a server's endpoint and on `/mcp`, for legacy and
//! stateless clients; a denied call creates no task; `tasks/result` is redacted and audited
//! like a direct call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::McpHttp;
use mcpgate_tests::peers::HttpPeer;
use mcpgate_tests::tasks::{assert_unknown, listed_ids, settled};
use mcpgate_tests::{Gateway, PolicyRepo, audit_log};
use serde_json::{Value, json};
use std::time::Duration;

const POLICY: &str = r#"allow everything.simulate-research-query, everything.echo;
@id("no-forbidden-research")
deny everything.simulate-research-query when args.topic == "forbidden" because "not this topic";
redact everything.simulate-research-query result matching "secret-[a-z0-9]+";
"#;

const MODERN: &str = "2026-07-28";

fn start(peer: &HttpPeer) -> (PolicyRepo, Gateway) {
    let config = json!({"identity": {}, "servers": {"everything": {"url": peer.url}}});
    let repo = PolicyRepo::with(&config, POLICY);
    let gateway = Gateway::start(&repo);
    (repo, gateway)
}

fn client(gw: &Gateway, path: &str, token: &str) -> McpHttp {
    let mut c = McpHttp::new(gw.addr(), path).with_bearer(token);
    c.initialize();
    c
}

fn research(topic: &str) -> Value {
    json!({"name": "simulate-research-query", "arguments": {"topic": topic}, "task": {"ttl": 600000}})
}

/// Starts a task; returns its id.
fn create(c: &McpHttp, name: &str, topic: &str, gw: &Gateway) -> String {
    let mut params = research(topic);
    params["name"] = json!(name);
    let r = c.call(2, "tools/call", params);
    r.pointer("/result/task/taskId")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no task created: {r}\n{}", gw.log()))
        .to_owned()
}

fn text_of(r: &Value) -> String {
    r["result"]["content"]
        .as_array()
        .unwrap_or_else(|| panic!("no content: {r}"))
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect()
}

#[test]
fn a_task_reaches_only_the_principal_that_created_it() {
    let peer = HttpPeer::everything();
    let (_repo, gw) = start(&peer);
    let alice_token = gw.issue_token("alice@example.com", &[]);
    let bob_token = gw.issue_token("bob@example.com", &[]);
    let alice = client(&gw, "/mcp/everything", &alice_token);
    let bob = client(&gw, "/mcp/everything", &bob_token);

    let id = create(
        &alice,
        "simulate-research-query",
        "secret-abc123 rivers",
        &gw,
    );
    let done = settled(&alice, &id);
    assert_eq!(done["result"]["taskId"], id.as_str(), "{done}");
    assert_eq!(done["result"]["status"], "completed", "{done}");

    // The result is redacted like a direct call's.
    let result = alice.call(4, "tasks/result", json!({"taskId": id}));
    let text = text_of(&result);
    assert!(text.contains("Research Report"), "{result}");
    assert!(text.contains("[redacted] rivers"), "{result}");
    assert!(!text.contains("secret-abc123"), "{result}");

    // Another principal: every task request is refused as for an unknown id.
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let r = bob.call(5, method, json!({"taskId": id}));
        assert_unknown(&r, &format!("bob {method}"));
    }
    assert!(!listed_ids(&bob.call(6, "tasks/list", json!({}))).contains(&id));
    // The refusal is the same as for an id nobody has.
    let made_up = alice.call(7, "tasks/get", json!({"taskId": "no-such-task"}));
    assert_unknown(&made_up, "a made-up id");
    let missing = alice.call(7, "tasks/get", json!({}));
    assert_unknown(&missing, "no id");
    // The owner still reaches and lists it.
    assert!(listed_ids(&alice.call(8, "tasks/list", json!({}))).contains(&id));
    assert_eq!(
        alice.call(9, "tasks/get", json!({"taskId": id}))["result"]["status"],
        "completed"
    );

    // The owner cancels a task of its own; the other principal's cancel did not reach it.
    let second = create(&alice, "simulate-research-query", "lakes", &gw);
    assert_unknown(
        &bob.call(10, "tasks/cancel", json!({"taskId": second})),
        "bob cancels",
    );
    let cancelled = alice.call(11, "tasks/cancel", json!({"taskId": second}));
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");

    // tasks/result is audited as the outcome of the call that created the task.
    let audit = gw.state().join("audit");
    let mut outcome = None;
    for _ in 0..40 {
        outcome = audit_log::records(&audit)
            .into_iter()
            .find(|r| r["type"] == "outcome" && r["task"] == id.as_str());
        if outcome.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let outcome = outcome.unwrap_or_else(|| panic!("no outcome record for task {id}"));
    assert_eq!(outcome["status"], "ok", "{outcome}");
    let records = audit_log::records(&audit);
    let decision = records
        .iter()
        .find(|r| r["type"] == "decision" && r["request_id"] == outcome["request_id"])
        .unwrap_or_else(|| panic!("no decision for {outcome}"));
    assert_eq!(decision["target"]["name"], "simulate-research-query");
    assert_eq!(decision["principal"]["id"], "alice@example.com");
}

#[test]
fn a_denied_call_with_a_task_creates_none() {
    let peer = HttpPeer::everything();
    let (_repo, gw) = start(&peer);
    let token = gw.issue_token("alice@example.com", &[]);
    let alice = client(&gw, "/mcp/everything", &token);
    let r = alice.call(2, "tools/call", research("forbidden"));
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(r.pointer("/result/task").is_none(), "{r}");
    assert!(
        text_of(&r).contains("no-forbidden-research"),
        "the refusal names the rule: {r}"
    );
    // Nothing was forwarded: the decision has no outcome.
    let records = audit_log::records(&gw.state().join("audit"));
    let decision = records
        .iter()
        .find(|r| r["type"] == "decision" && r["target"]["name"] == "simulate-research-query")
        .unwrap_or_else(|| panic!("no decision recorded"));
    assert_eq!(decision["action"], "deny", "{decision}");
    assert!(
        !records
            .iter()
            .any(|r| r["type"] == "outcome" && r["request_id"] == decision["request_id"]),
        "a denied call reached the upstream"
    );
    assert!(listed_ids(&alice.call(3, "tasks/list", json!({}))).is_empty());
}

#[test]
fn the_aggregated_endpoint_routes_tasks_to_their_server() {
    let peer = HttpPeer::everything();
    let (_repo, gw) = start(&peer);
    let alice_token = gw.issue_token("alice@example.com", &[]);
    let bob_token = gw.issue_token("bob@example.com", &[]);
    let alice = client(&gw, "/mcp", &alice_token);
    let bob = client(&gw, "/mcp", &bob_token);
    let id = create(
        &alice,
        "everything__simulate-research-query",
        "secret-xyz9",
        &gw,
    );
    assert_eq!(settled(&alice, &id)["result"]["status"], "completed");
    let result = alice.call(4, "tasks/result", json!({"taskId": id}));
    assert!(text_of(&result).contains("[redacted]"), "{result}");
    assert!(!text_of(&result).contains("secret-xyz9"), "{result}");
    assert!(listed_ids(&alice.call(5, "tasks/list", json!({}))).contains(&id));
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        assert_unknown(&bob.call(6, method, json!({"taskId": id})), method);
    }
    assert!(!listed_ids(&bob.call(7, "tasks/list", json!({}))).contains(&id));
}

fn modern(method: &str, params: Value, id: u64) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// One stateless request; returns its JSON-RPC response.
fn stateless(gw: &Gateway, token: &str, method: &str, params: Value) -> Value {
    let c = McpHttp::new(gw.addr(), "/mcp/everything").with_bearer(token);
    let mut headers = vec![("MCP-Protocol-Version", MODERN), ("Mcp-Method", method)];
    let name = params["name"].as_str().map(str::to_owned);
    if let Some(n) = &name {
        headers.push(("Mcp-Name", n.as_str()));
    }
    let r = c.post_raw(modern(method, params, 9).to_string().as_bytes(), &headers);
    r.messages()
        .into_iter()
        .rfind(|m| m.get("id") == Some(&json!(9)))
        .unwrap_or_else(|| panic!("no response to `{method}`: {r}"))
}

#[test]
fn stateless_clients_reach_only_their_own_tasks() {
    let peer = HttpPeer::everything();
    let (_repo, gw) = start(&peer);
    let alice = gw.issue_token("alice@example.com", &[]);
    let bob = gw.issue_token("bob@example.com", &[]);
    let created = stateless(&gw, &alice, "tools/call", research("oceans"));
    let id = created
        .pointer("/result/task/taskId")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no task: {created}\n{}", gw.log()))
        .to_owned();
    let got = stateless(&gw, &alice, "tasks/get", json!({"taskId": id}));
    assert_eq!(got["result"]["taskId"], id.as_str(), "{got}");
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let r = stateless(&gw, &bob, method, json!({"taskId": id}));
        assert_unknown(&r, method);
    }
    let listed = stateless(&gw, &bob, "tasks/list", json!({}));
    assert!(!listed_ids(&listed).contains(&id), "{listed}");
    let own = stateless(&gw, &alice, "tasks/list", json!({}));
    assert!(listed_ids(&own).contains(&id), "{own}");
}
