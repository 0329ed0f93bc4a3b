//! The gateway in front of the built-in demo server (a real stdio MCP server): list
//! filtering, allow, deny, hide and approve answers, annotations, the aggregated endpoint,
//! sessions across replicas.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Client, send};
use mcpgate_compiler::config::{Config, ServerConfig};
use mcpgate_compiler::ir::{
    Annotation, CmpOp, Effect, Expr, NamePattern, PathSeg, Policy, Rule, SourceLoc, Target, Var,
};
use serde_json::{Value, json};

fn demo_server() -> ServerConfig {
    ServerConfig {
        command: Some(env!("CARGO_BIN_EXE_mcpgate").into()),
        args: vec!["demo-server".into()],
        ..Default::default()
    }
}

fn config() -> Config {
    let mut c = Config::default();
    c.servers.insert("demo".into(), demo_server());
    c.servers.insert("ro".into(), demo_server());
    c
}

fn rule(id: &str, effect: Effect, server: &str, tool: &str, line: u32) -> Rule {
    let pattern = |s: &str| {
        if s.contains('*') {
            NamePattern::Glob(s.into())
        } else {
            NamePattern::Exact(s.into())
        }
    };
    Rule {
        id: id.into(),
        effect,
        targets: vec![Target::Tool {
            server: pattern(server),
            tool: pattern(tool),
        }],
        condition: None,
        reason: None,
        approvers: vec![],
        limit: None,
        redact: None,
        source: SourceLoc {
            file: "policies/demo.mcpg".into(),
            line,
            col: 1,
        },
    }
}

/// demo: everything allowed except big payments, a hidden delete, an approved write and an
/// unconditionally denied `add`;
/// ro: only what the server says is read-only.
fn policy() -> Policy {
    let mut deny = rule("no-big-payments", Effect::Deny, "demo", "send_payment", 2);
    deny.reason = Some("payments over 100 are off".into());
    deny.condition = Some(Expr::Cmp(
        CmpOp::Gt,
        Box::new(Expr::Var(Var::Args(vec![PathSeg::Key("amount".into())]))),
        Box::new(Expr::Const(json!(100))),
    ));
    let unconditional = rule("no-refunds", Effect::Deny, "demo", "add", 6);
    let mut approve = rule("review-writes", Effect::Approve, "demo", "write_note", 4);
    approve.approvers = vec!["maintainers".into()];
    let mut read_only = rule("ro-reads", Effect::Allow, "ro", "*", 5);
    read_only.condition = Some(Expr::Cmp(
        CmpOp::Eq,
        Box::new(Expr::Var(Var::ToolAnnotation(Annotation::ReadOnly))),
        Box::new(Expr::Const(json!(true))),
    ));
    Policy {
        rules: vec![
            rule("demo-all", Effect::Allow, "demo", "*", 1),
            deny,
            rule("hide-delete", Effect::Hide, "demo", "delete_note", 3),
            approve,
            read_only,
            unconditional,
        ],
    }
}

fn text(v: &Value) -> &str {
    v["result"]["content"][0]["text"].as_str().unwrap_or("")
}

#[tokio::test]
async fn server_endpoint_filters_and_decides() {
    let gw = common::start(config(), &policy(), [3; 32]).await;
    let (mut c, init) = Client::initialize(gw.addr, "/mcp/demo").await;
    assert_eq!(init["result"]["serverInfo"]["name"], "mcpgate-demo");
    assert!(!c.session.is_empty());

    let names = c.tool_names().await;
    assert_eq!(
        names,
        [
            "echo",
            "list_notes",
            "read_note",
            "write_note",
            "send_payment"
        ],
        "hidden and unconditionally denied tools are not listed"
    );

    let r = c.call("echo", json!({"text": "hello"})).await;
    assert_eq!(text(&r), "hello");
    let r = c
        .call("send_payment", json!({"to": "x", "amount": 5}))
        .await;
    assert_eq!(text(&r), "pretended to send 5 to x");

    let r = c
        .call("send_payment", json!({"to": "x", "amount": 500}))
        .await;
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(
        text(&r),
        "denied by rule no-big-payments (policies/demo.mcpg:2:1): payments over 100 are off"
    );

    // Not listed, but an unconditional deny answers with the denial, not as unknown.
    let r = c.call("add", json!({"a": 1, "b": 2})).await;
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(
        text(&r).starts_with("denied by rule no-refunds ("),
        "withheld by a deny: {r}"
    );

    let r = c.call("delete_note", json!({"name": "n"})).await;
    assert_eq!(r["error"]["code"], -32602);
    assert_eq!(r["error"]["message"], "Unknown tool: delete_note");

    let r = c
        .call("write_note", json!({"name": "n", "text": "t"}))
        .await;
    assert_eq!(r["result"]["isError"], true);
    let t = text(&r);
    assert!(t.contains("requires approval by maintainers"), "{t}");
    assert!(
        t.contains("approvals are not enabled on this gateway"),
        "{t}"
    );

    // Unknown methods and ping are relayed unchanged.
    let r = c.request("ping", json!({})).await;
    assert_eq!(r["result"], json!({}));
    let r = c.request("no/such/method", json!({})).await;
    assert_eq!(r["error"]["code"], -32601);

    let r = send(
        gw.addr,
        "DELETE",
        "/mcp/demo",
        &[("Mcp-Session-Id", &c.session)],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn aggregated_endpoint_namespaces_and_uses_annotations() {
    let gw = common::start(config(), &policy(), [4; 32]).await;
    let (mut c, init) = Client::initialize(gw.addr, "/mcp").await;
    assert_eq!(init["result"]["serverInfo"]["name"], "mcpgate");
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert!(init["result"]["capabilities"]["tools"].is_object());

    // Before listing, the gateway does not know `ro`'s annotations: the read-only rule
    // cannot match, and default deny answers.
    let r = c.call("ro__echo", json!({"text": "early"})).await;
    assert!(
        r.get("error").is_some() || r["result"]["isError"] == true,
        "{r}"
    );

    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let page = c.request("tools/list", params).await;
        for t in page["result"]["tools"].as_array().unwrap() {
            names.push(t["name"].as_str().unwrap().to_owned());
        }
        cursor = page["result"]["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert!(names.contains(&"demo__echo".to_owned()));
    assert!(names.contains(&"ro__read_note".to_owned()));
    assert!(!names.contains(&"demo__delete_note".to_owned()));
    assert!(!names.contains(&"demo__add".to_owned()));

    // After listing, the annotations decide.
    let r = c.call("ro__echo", json!({"text": "hi"})).await;
    assert_eq!(text(&r), "hi");
    let r = c.call("ro__add", json!({"a": 40, "b": 2})).await;
    assert_eq!(text(&r), "42");
    let r = c
        .call("ro__write_note", json!({"name": "n", "text": "t"}))
        .await;
    assert_eq!(r["result"]["isError"], true);
    assert!(text(&r).contains("default deny"), "{r}");
    let r = c.call("nosuch__echo", json!({})).await;
    assert_eq!(r["error"]["message"], "Unknown tool: nosuch__echo");
    let r = c.request("ping", json!({})).await;
    assert_eq!(r["result"], json!({}));
    gw.stop().await;
}

#[tokio::test]
async fn stdio_sessions_do_not_move_between_replicas() {
    let a = common::start(config(), &policy(), [5; 32]).await;
    let b = common::start(config(), &policy(), [5; 32]).await;
    let (c, _) = Client::initialize(a.addr, "/mcp/demo").await;
    let ping = r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#;
    assert_eq!(c.post(ping).await.status, 200);
    let elsewhere = Client { addr: b.addr, ..c };
    let r = elsewhere.post(ping).await;
    assert_eq!(
        r.status, 404,
        "a stdio upstream lives on the replica that spawned it"
    );
    a.stop().await;
    b.stop().await;
}

fn paged_server() -> ServerConfig {
    ServerConfig {
        args: vec!["demo-server".into(), "--page-size".into(), "2".into()],
        ..demo_server()
    }
}

fn target_rule(id: &str, effect: Effect, target: Target) -> Rule {
    Rule {
        targets: vec![target],
        ..rule(id, effect, "x", "x", 10)
    }
}

#[tokio::test]
async fn aggregated_lists_paginate_and_route_prompts_and_resources() {
    let mut config = Config::default();
    config.servers.insert("a".into(), paged_server());
    config.servers.insert("b".into(), paged_server());
    let exact = |s: &str| NamePattern::Exact(s.into());
    let policy = Policy {
        rules: vec![
            rule("a-all", Effect::Allow, "a", "*", 1),
            rule("b-echo", Effect::Allow, "b", "echo", 2),
            rule("b-add", Effect::Allow, "b", "add", 3),
            target_rule(
                "a-summary",
                Effect::Allow,
                Target::Prompt {
                    server: exact("a"),
                    name: exact("summarize"),
                },
            ),
            target_rule(
                "a-notes",
                Effect::Allow,
                Target::Resource {
                    server: exact("a"),
                    uri: mcpgate_compiler::ir::UriPattern("note:///**".into()),
                },
            ),
        ],
    };
    let gw = common::start(config, &policy, [6; 32]).await;
    let (mut c, init) = Client::initialize(gw.addr, "/mcp").await;
    assert!(init["result"]["capabilities"]["prompts"].is_object());

    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 20, "pagination ends");
        let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
        let page = c.request("tools/list", params).await;
        for t in page["result"]["tools"].as_array().unwrap() {
            names.push(t["name"].as_str().unwrap().to_owned());
        }
        cursor = page["result"]["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert!(pages > 2, "the upstreams paginate: {pages} pages");
    names.sort();
    let mut expected: Vec<String> = [
        "add",
        "delete_note",
        "echo",
        "list_notes",
        "read_note",
        "send_payment",
        "write_note",
    ]
    .iter()
    .map(|t| format!("a__{t}"))
    .collect();
    expected.extend(["b__add".to_owned(), "b__echo".to_owned()]);
    expected.sort();
    assert_eq!(names, expected);
    let r = c.request("tools/list", json!({"cursor": "bogus"})).await;
    assert_eq!(r["error"]["code"], -32602);

    // Prompts: namespaced, decided.
    let r = c.request("prompts/list", json!({})).await;
    assert_eq!(r["result"]["prompts"][0]["name"], "a__summarize");
    assert_eq!(r["result"]["prompts"].as_array().unwrap().len(), 1);
    let r = c
        .request("prompts/get", json!({"name": "a__summarize"}))
        .await;
    assert!(r["result"]["messages"].is_array(), "{r}");
    let r = c
        .request("prompts/get", json!({"name": "b__summarize"}))
        .await;
    assert_eq!(r["error"]["message"], "Unknown prompt: b__summarize");

    // Resources keep their URIs and are routed to the server that listed them.
    let r = c
        .call("a__write_note", json!({"name": "x", "text": "from a"}))
        .await;
    assert_eq!(text(&r), "wrote `x`");
    let r = c
        .request("resources/read", json!({"uri": "note:///x"}))
        .await;
    assert_eq!(r["result"]["contents"][0]["text"], "from a", "{r}");
    let r = c.request("resources/list", json!({})).await;
    assert_eq!(r["result"]["resources"][0]["uri"], "note:///x");
    let r = c
        .request("resources/read", json!({"uri": "note:///x"}))
        .await;
    assert_eq!(r["result"]["contents"][0]["text"], "from a");
    let r = c
        .request("resources/read", json!({"uri": "note:///missing"}))
        .await;
    assert_eq!(r["error"]["code"], -32002);
    let r = c
        .request("resources/read", json!({"uri": "other:///x"}))
        .await;
    assert_eq!(r["error"]["code"], -32002);
    gw.stop().await;
}

#[tokio::test]
async fn progress_turns_the_answer_into_a_stream() {
    let gw = common::start(config(), &policy(), [7; 32]).await;
    let (c, _) = Client::initialize(gw.addr, "/mcp/demo").await;
    let body = json!({"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "streamed"}, "_meta": {"progressToken": 42}}});
    let r = c.post(&body.to_string()).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{}",
        r.head
    );
    let events = mcpgate::sse::Decoder::new().feed(r.body.as_bytes());
    let messages: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0]["method"], "notifications/progress");
    assert_eq!(messages[0]["params"]["progressToken"], 42);
    assert_eq!(messages[1]["id"], "call-1", "the client's id comes back");
    assert_eq!(text(&messages[1]), "streamed");
    gw.stop().await;
}
