//! The 2024-11-05 HTTP+SSE transport against an in-process server on 127.0.0.1: a GET event
//! stream that names the POST endpoint and carries every answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcpgate::upstream::{
    Exchange, Message, SecretResolver, Upstream, UpstreamError, UpstreamSession,
};
use mcpgate_compiler::config::{GatewayConfig, ServerConfig, Transport};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

type Body = BoxBody<Bytes, Infallible>;

#[derive(Default)]
struct Fixture {
    streams: Mutex<HashMap<String, mpsc::Sender<Bytes>>>,
    next: Mutex<u32>,
    /// The call waiting for the answer to a server-to-client request.
    asking: Mutex<Option<Message>>,
    posts: Mutex<Vec<http::HeaderMap>>,
}

fn plain(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(b"Accepted")).boxed())
        .unwrap()
}

fn stream(first: String) -> (mpsc::Sender<Bytes>, Response<Body>) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tx.try_send(Bytes::from(first)).unwrap();
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let resp = Response::builder()
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(body).boxed())
        .unwrap();
    (tx, resp)
}

fn event(message: &Message) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

async fn handle(fixture: Arc<Fixture>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/sse") => {
            let n = {
                let mut next = fixture.next.lock().unwrap();
                *next += 1;
                *next
            };
            let (tx, resp) = stream(format!(
                ": hello\n\nevent: endpoint\ndata: messages?sessionId=s{n}\n\n"
            ));
            fixture.streams.lock().unwrap().insert(format!("s{n}"), tx);
            resp
        }
        (&Method::GET, "/evil") => {
            stream("event: endpoint\ndata: http://example.com/messages\n\n".into()).1
        }
        (&Method::GET, "/silent") => {
            let (tx, resp) = stream(": nothing to see\n\n".into());
            // Keep the stream open without an endpoint.
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                drop(tx);
            });
            resp
        }
        (&Method::POST, "/messages") => {
            fixture.posts.lock().unwrap().push(parts.headers.clone());
            let session = parts
                .uri
                .query()
                .and_then(|q| q.strip_prefix("sessionId="))
                .unwrap_or_default()
                .to_owned();
            let Some(tx) = fixture.streams.lock().unwrap().get(&session).cloned() else {
                return plain(StatusCode::NOT_FOUND);
            };
            let Ok(message) = serde_json::from_slice::<Message>(&bytes) else {
                return plain(StatusCode::BAD_REQUEST);
            };
            let id = message.get("id").cloned();
            let reply = |value: Message| json!({"jsonrpc": "2.0", "id": id, "result": value});
            match (message["method"].as_str(), &id) {
                (None, Some(answered)) if answered == "srv-1" => {
                    let call_id = fixture.asking.lock().unwrap().take().unwrap();
                    let done = json!({"jsonrpc": "2.0", "id": call_id,
                                      "result": {"answer": message["result"]}});
                    tx.send(event(&done)).await.unwrap();
                }
                (Some("initialize"), Some(_)) => {
                    tx.send(event(&reply(json!({"protocolVersion": "2024-11-05",
                        "capabilities": {}, "serverInfo": {"name": "legacy", "version": "1"}}))))
                        .await
                        .unwrap();
                }
                (Some("tools/call"), Some(call_id)) => match message["params"]["name"].as_str() {
                    Some("progress") => {
                        let token = message["params"]["_meta"]["progressToken"].clone();
                        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                              "params": {"progressToken": token, "progress": 1}});
                        tx.send(event(&progress)).await.unwrap();
                        tx.send(Bytes::from_static(b"data: not json\n\n"))
                            .await
                            .unwrap();
                        tx.send(event(&reply(json!({"done": true})))).await.unwrap();
                    }
                    Some("ask") => {
                        *fixture.asking.lock().unwrap() = Some(call_id.clone());
                        let ask = json!({"jsonrpc": "2.0", "id": "srv-1", "method": "roots/list"});
                        tx.send(event(&ask)).await.unwrap();
                    }
                    Some("hang_up") => {
                        fixture.streams.lock().unwrap().remove(&session);
                    }
                    _ => tx.send(event(&reply(json!({"echo": true})))).await.unwrap(),
                },
                _ => {}
            }
            plain(StatusCode::ACCEPTED)
        }
        _ => plain(StatusCode::NOT_FOUND),
    }
}

async fn start() -> (SocketAddr, Arc<Fixture>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fixture = Arc::new(Fixture::default());
    let shared = Arc::clone(&fixture);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let fixture = Arc::clone(&shared);
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let fixture = Arc::clone(&fixture);
                    async move { Ok::<_, Infallible>(handle(fixture, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, fixture)
}

struct Secrets;
impl SecretResolver for Secrets {
    fn resolve(&self, _: &str, _: &str) -> Option<String> {
        Some("legacy-token".into())
    }
}

fn upstream(addr: SocketAddr, path: &str, timeout_secs: Option<u64>) -> Upstream {
    let config = ServerConfig {
        url: Some(format!("http://{addr}{path}")),
        transport: Some(Transport::Sse),
        headers: BTreeMap::from([("Authorization".into(), "Bearer ${secret:legacy}".into())]),
        timeout_secs,
        ..ServerConfig::default()
    };
    Upstream::from_config("legacy", &config, &GatewayConfig::default(), &Secrets).unwrap()
}

fn initialize() -> Message {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
           "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                      "clientInfo": {"name": "test", "version": "0"}}})
}

async fn connect(up: &Upstream, key: &str) -> UpstreamSession {
    let (session, response) = up.connect(key, initialize()).await.unwrap();
    assert_eq!(response["result"]["serverInfo"]["name"], "legacy");
    session
}

async fn drain(mut exchange: Exchange) -> Vec<Result<Message, UpstreamError>> {
    let mut items = Vec::new();
    while let Some(item) = exchange.recv().await {
        items.push(item);
    }
    items
}

#[tokio::test]
async fn messages_are_posted_to_the_endpoint_and_answered_on_the_stream() {
    let (addr, fixture) = start().await;
    let up = upstream(addr, "/sse", None);
    let session = connect(&up, "g").await;
    session
        .notify(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .unwrap();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "progress", "arguments": {}, "_meta": {"progressToken": 5}}});
    let items = drain(session.request(call).await.unwrap()).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap()["params"]["progressToken"], 5);
    assert_eq!(items[1].as_ref().unwrap()["result"]["done"], true);

    let posts = fixture.posts.lock().unwrap().clone();
    assert!(posts.len() >= 3);
    assert!(
        posts
            .iter()
            .all(|h| h["authorization"] == "Bearer legacy-token")
    );
    assert_eq!(session.state().protocol_version, "2024-11-05");
    assert!(up.resume("g", &session.state()).is_some());
    assert!(up.resume("h", &session.state()).is_none());
}

#[tokio::test]
async fn server_requests_are_answered_through_notify() {
    let (addr, _) = start().await;
    let up = upstream(addr, "/sse", None);
    let session = connect(&up, "g").await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "ask", "arguments": {}}});
    let mut exchange = session.request(call).await.unwrap();
    let ask = exchange.recv().await.unwrap().unwrap();
    assert_eq!(ask["method"], "roots/list");
    session
        .notify(json!({"jsonrpc": "2.0", "id": "srv-1", "result": {"roots": []}}))
        .await
        .unwrap();
    let done = exchange.recv().await.unwrap().unwrap();
    assert_eq!(done["id"], 2);
    assert_eq!(done["result"]["answer"]["roots"], json!([]));
}

#[tokio::test]
async fn a_closed_stream_ends_the_session() {
    let (addr, _) = start().await;
    let up = upstream(addr, "/sse", None);
    let session = connect(&up, "g").await;
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": "hang_up", "arguments": {}}});
    let items = drain(session.request(call).await.unwrap()).await;
    assert!(matches!(
        items.last().unwrap(),
        Err(UpstreamError::Unavailable(_))
    ));
    let again = json!({"jsonrpc": "2.0", "id": 4, "method": "ping"});
    assert_eq!(
        session.request(again).await.unwrap_err(),
        UpstreamError::SessionExpired
    );
    assert!(up.resume("g", &session.state()).is_none());
}

#[tokio::test]
async fn an_endpoint_on_another_origin_is_refused() {
    let (addr, _) = start().await;
    let err = upstream(addr, "/evil", None)
        .connect("g", initialize())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another origin"), "{err}");
}

#[tokio::test]
async fn a_stream_without_endpoint_times_out() {
    let (addr, _) = start().await;
    let err = upstream(addr, "/silent", Some(1))
        .connect("g", initialize())
        .await
        .unwrap_err();
    assert_eq!(err, UpstreamError::Timeout);
}

#[tokio::test]
async fn close_ends_the_session() {
    let (addr, _) = start().await;
    let up = upstream(addr, "/sse", None);
    let session = connect(&up, "g").await;
    session.close().await;
    assert!(up.resume("g", &session.state()).is_none());
    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"});
    assert_eq!(
        session.request(ping).await.unwrap_err(),
        UpstreamError::SessionExpired
    );
}

#[tokio::test]
async fn a_second_connect_replaces_the_session() {
    let (addr, _) = start().await;
    let up = upstream(addr, "/sse", None);
    let first = connect(&up, "g").await;
    let second = connect(&up, "g").await;
    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {}}});
    assert_eq!(
        first.request(ping.clone()).await.unwrap_err(),
        UpstreamError::SessionExpired
    );
    let items = drain(second.request(ping).await.unwrap()).await;
    assert_eq!(items[0].as_ref().unwrap()["result"]["echo"], true);
    assert_eq!(up.transport(), "sse");
    assert!(up.is_local());
}

#[tokio::test]
async fn idle_sessions_are_dropped() {
    let (addr, _) = start().await;
    let config = ServerConfig {
        url: Some(format!("http://{addr}/sse")),
        transport: Some(Transport::Sse),
        ..ServerConfig::default()
    };
    let gateway = GatewayConfig {
        session_idle_secs: 1,
        ..GatewayConfig::default()
    };
    let up = Upstream::from_config("legacy", &config, &gateway, &Secrets).unwrap();
    let session = connect(&up, "g").await;
    // Bounded wait: the reaper runs every quarter of the idle time.
    for _ in 0..100 {
        if up.resume("g", &session.state()).is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up.resume("g", &session.state()).is_none());
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(
        session.request(ping).await.unwrap_err(),
        UpstreamError::SessionExpired
    );
}
