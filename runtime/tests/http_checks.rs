//! The Streamable HTTP checks over real HTTP on 127.0.0.1: Host, Origin, Accept,
//! Content-Type, body size, protocol version, session ids, unknown endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ACCEPT, JSON, Running, send};
use mcpgate::session::seal::Sealer;
use mcpgate_compiler::config::{Config, ServerConfig};
use mcpgate_compiler::ir::Policy;
use std::net::SocketAddr;

async fn start(max_body: usize) -> (SocketAddr, Running) {
    let mut config = Config::default();
    config.gateway.max_body_bytes = max_body;
    config.gateway.allowed_origins = vec!["https://app.example".into()];
    config.servers.insert(
        "demo".into(),
        ServerConfig {
            // A command that cannot start: these tests need no upstream.
            command: Some("/nonexistent/mcpgate-test-upstream".into()),
            ..Default::default()
        },
    );
    let running = common::start(config, &Policy::default(), [1; 32]).await;
    (running.addr, running)
}

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

#[tokio::test]
async fn health_and_status() {
    let (addr, _stop) = start(1 << 20).await;
    let r = send(addr, "GET", "/healthz", &[], "").await;
    assert_eq!((r.status, r.body.trim()), (200, "ok"));
    let r = send(addr, "GET", "/status", &[], "").await;
    assert_eq!(r.status, 200);
    let s = r.json();
    assert_eq!(s["upstreams"], serde_json::json!(["demo"]));
    assert_eq!(s["sessions"], 0);
    assert_eq!(s["program"]["rules"], 0);
}

#[tokio::test]
async fn host_and_origin_are_checked() {
    let (addr, _stop) = start(1 << 20).await;
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[("Host", "evil.example"), ACCEPT, JSON],
        PING,
    )
    .await;
    assert_eq!(r.status, 421);
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[("Host", "localhost:1234"), ACCEPT, JSON],
        PING,
    )
    .await;
    assert_eq!(r.status, 400, "a good host passes on to the session check");
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[("Origin", "https://evil.example"), ACCEPT, JSON],
        PING,
    )
    .await;
    assert_eq!(r.status, 403);
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[("Origin", "null"), ACCEPT, JSON],
        PING,
    )
    .await;
    assert_eq!(r.status, 403);
    for ok in [
        "https://app.example",
        "http://localhost:3000",
        "http://127.0.0.1:9",
    ] {
        let r = send(addr, "POST", "/mcp", &[("Origin", ok), ACCEPT, JSON], PING).await;
        assert_eq!(
            r.status, 400,
            "{ok} is allowed and reaches the session check"
        );
    }
}

#[tokio::test]
async fn accept_content_type_and_size() {
    let (addr, _stop) = start(256).await;
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[("Accept", "application/json"), JSON],
        PING,
    )
    .await;
    assert_eq!(r.status, 406);
    let r = send(addr, "POST", "/mcp", &[JSON], PING).await;
    assert_eq!(r.status, 406);
    let r = send(addr, "GET", "/mcp", &[("Accept", "application/json")], "").await;
    assert_eq!(r.status, 406);
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[ACCEPT, ("Content-Type", "text/plain")],
        PING,
    )
    .await;
    assert_eq!(r.status, 415);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#,
        "a".repeat(300)
    );
    let r = send(addr, "POST", "/mcp", &[ACCEPT, JSON], &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], -32600);
}

#[tokio::test]
async fn framing_errors_are_json_rpc_errors() {
    let (addr, _stop) = start(1 << 20).await;
    let r = send(addr, "POST", "/mcp", &[ACCEPT, JSON], "{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32700);
    let r = send(addr, "POST", "/mcp", &[ACCEPT, JSON], r#"{"id":1}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32600);
    let batch = format!("[{PING}]");
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[ACCEPT, JSON, ("MCP-Protocol-Version", "2025-06-18")],
        &batch,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("batches are not supported")
    );
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[ACCEPT, JSON, ("MCP-Protocol-Version", "1999-01-01")],
        PING,
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn sessions_are_required_and_checked() {
    let (addr, _stop) = start(1 << 20).await;
    let r = send(addr, "POST", "/mcp", &[ACCEPT, JSON], PING).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Mcp-Session-Id"));
    for bad in [
        "garbage",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "",
    ] {
        let r = send(
            addr,
            "POST",
            "/mcp",
            &[ACCEPT, JSON, ("Mcp-Session-Id", bad)],
            PING,
        )
        .await;
        assert_eq!(r.status, 404, "{bad}");
    }
    // A token sealed under another key is a forgery.
    let other = Sealer::from_key(&[2; 32]);
    let token = other.seal(&mcpgate::session::seal::Claims {
        sid: "x".into(),
        endpoint: String::new(),
        client_name: None,
        client_version: None,
        protocol_version: "2025-06-18".into(),
        principal: "anonymous".into(),
        credential: String::new(),
        created: mcpgate::session::now_secs(),
        upstreams: Default::default(),
    });
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[ACCEPT, JSON, ("Mcp-Session-Id", &token)],
        PING,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = send(addr, "DELETE", "/mcp", &[("Mcp-Session-Id", "garbage")], "").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn unknown_endpoints_and_methods() {
    let (addr, _stop) = start(1 << 20).await;
    let r = send(addr, "POST", "/mcp/nope", &[ACCEPT, JSON], PING).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("`nope`"));
    let r = send(addr, "GET", "/elsewhere", &[], "").await;
    assert_eq!(r.status, 404);
    let r = send(addr, "PUT", "/mcp", &[ACCEPT, JSON], PING).await;
    assert_eq!(r.status, 405);
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("allow: get, post, delete")
    );
}

#[tokio::test]
async fn aggregate_initialize_answers_even_when_upstreams_fail() {
    let (addr, _stop) = start(1 << 20).await;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = send(addr, "POST", "/mcp", &[ACCEPT, JSON], init).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["serverInfo"]["name"], "mcpgate");
    let token = r
        .head
        .lines()
        .find_map(|l| l.strip_prefix("mcp-session-id: "))
        .expect("session header")
        .trim()
        .to_owned();
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[
            ACCEPT,
            JSON,
            ("Mcp-Session-Id", &token),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
        PING,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["result"].clone()),
        (200, serde_json::json!({}))
    );
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[ACCEPT, JSON, ("Mcp-Session-Id", &token)],
        list,
    )
    .await;
    assert_eq!(r.json()["result"]["tools"], serde_json::json!([]));
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"demo__echo","arguments":{"text":"x"}}}"#;
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[ACCEPT, JSON, ("Mcp-Session-Id", &token)],
        call,
    )
    .await;
    assert_eq!(r.json()["error"]["code"], -32602);
    let r = send(addr, "DELETE", "/mcp", &[("Mcp-Session-Id", &token)], "").await;
    assert_eq!(r.status, 200);
    let r = send(
        addr,
        "POST",
        "/mcp",
        &[ACCEPT, JSON, ("Mcp-Session-Id", &token)],
        PING,
    )
    .await;
    assert_eq!(r.status, 404, "an ended session stays ended");
}
