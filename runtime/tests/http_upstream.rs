//! The gateway in front of a Streamable HTTP upstream served by the test itself: client
//! cancellations reach the upstream under the gateway's id, and a session opened on one
//! replica is served by another replica holding the same key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::Client;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mcpgate_compiler::config::{Config, ServerConfig};
use mcpgate_compiler::ir::{Effect, NamePattern, Policy, Rule, SourceLoc, Target};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Default)]
struct Seen {
    slow_call_id: Option<Value>,
    cancelled: Vec<Value>,
}

struct Upstream {
    seen: Mutex<Seen>,
    cancelled: Notify,
}

async fn handle(
    up: Arc<Upstream>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: Option<Value>| {
        let mut r = Response::new(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )));
        *r.status_mut() = status;
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r.headers_mut()
            .insert("mcp-session-id", "upstream-session".parse().unwrap());
        Ok(r)
    };
    match *req.method() {
        hyper::Method::POST => {}
        hyper::Method::DELETE => return reply(StatusCode::OK, None),
        _ => return reply(StatusCode::METHOD_NOT_ALLOWED, None),
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let m: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(id) = m.get("id").cloned() else {
        if m["method"] == "notifications/cancelled" {
            up.seen
                .lock()
                .unwrap()
                .cancelled
                .push(m["params"]["requestId"].clone());
            up.cancelled.notify_one();
        }
        return reply(StatusCode::ACCEPTED, None);
    };
    let result = match m["method"].as_str().unwrap_or("") {
        "initialize" => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
            "serverInfo": {"name": "test-upstream", "version": "1"}}),
        "tools/list" => json!({"tools": [
            {"name": "slow", "inputSchema": {"type": "object"}},
            {"name": "echo", "inputSchema": {"type": "object"}}]}),
        "tools/call" if m["params"]["name"] == "slow" => {
            let waiting = up.cancelled.notified();
            up.seen.lock().unwrap().slow_call_id = Some(id.clone());
            waiting.await;
            return reply(
                StatusCode::OK,
                Some(
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32800, "message": "cancelled"}}),
                ),
            );
        }
        "tools/call" => {
            json!({"content": [{"type": "text", "text": m["params"]["arguments"]["text"]}]})
        }
        _ => json!({}),
    };
    reply(
        StatusCode::OK,
        Some(json!({"jsonrpc": "2.0", "id": id, "result": result})),
    )
}

async fn upstream() -> (SocketAddr, Arc<Upstream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let up = Arc::new(Upstream {
        seen: Mutex::default(),
        cancelled: Notify::new(),
    });
    let shared = up.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let up = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(up.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, up)
}

fn setup(addr: SocketAddr) -> (Config, Policy) {
    let mut config = Config::default();
    config.servers.insert(
        "up".into(),
        ServerConfig {
            url: Some(format!("http://{addr}/mcp")),
            ..Default::default()
        },
    );
    let policy = Policy {
        rules: vec![Rule {
            id: "up-all".into(),
            effect: Effect::Allow,
            targets: vec![Target::Tool {
                server: NamePattern::Exact("up".into()),
                tool: NamePattern::Glob("*".into()),
            }],
            condition: None,
            reason: None,
            approvers: vec![],
            limit: None,
            redact: None,
            source: SourceLoc::default(),
        }],
    };
    (config, policy)
}

#[tokio::test]
async fn a_client_cancellation_reaches_the_upstream_under_the_gateway_id() {
    let (addr, up) = upstream().await;
    let (config, policy) = setup(addr);
    let gw = common::start(config, &policy, [8; 32]).await;
    let (c, _) = Client::initialize(gw.addr, "/mcp/up").await;
    let slow = json!({"jsonrpc": "2.0", "id": "c1", "method": "tools/call", "params": {"name": "slow", "arguments": {}}});
    let c2 = Client {
        session: c.session.clone(),
        path: c.path.clone(),
        ..c
    };
    let call = tokio::spawn(async move { c2.post(&slow.to_string()).await });
    let mut upstream_id = None;
    for _ in 0..500 {
        upstream_id = up.seen.lock().unwrap().slow_call_id.clone();
        if upstream_id.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let upstream_id = upstream_id.expect("the call reached the upstream");
    assert_ne!(
        upstream_id,
        json!("c1"),
        "the upstream sees the gateway's id"
    );
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "c1"}});
    let r = c.post(&cancel.to_string()).await;
    assert_eq!(r.status, 202);
    let answer = call.await.unwrap();
    assert_eq!(
        answer.json()["id"],
        "c1",
        "the answer carries the client's id"
    );
    assert_eq!(up.seen.lock().unwrap().cancelled, vec![upstream_id]);
    gw.stop().await;
}

#[tokio::test]
async fn another_replica_with_the_same_key_serves_the_session() {
    let (addr, _up) = upstream().await;
    let (config, policy) = setup(addr);
    let a = common::start(config.clone(), &policy, [9; 32]).await;
    let b = common::start(config.clone(), &policy, [9; 32]).await;
    let other_key = common::start(config, &policy, [10; 32]).await;
    let (c, _) = Client::initialize(a.addr, "/mcp/up").await;
    let mut on_b = Client {
        addr: b.addr,
        session: c.session.clone(),
        path: c.path.clone(),
        next: 1,
    };
    let r = on_b.call("echo", json!({"text": "from b"})).await;
    assert_eq!(r["result"]["content"][0]["text"], "from b");
    assert_eq!(
        b.gateway.sessions.len(),
        1,
        "b rebuilt the session from its token"
    );
    let on_other = Client {
        addr: other_key.addr,
        ..on_b
    };
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    assert_eq!(on_other.post(ping).await.status, 404);
    a.stop().await;
    b.stop().await;
    other_key.stop().await;
}
