//! The Streamable HTTP transport against an in-process HTTP server on 127.0.0.1 that answers
//! JSON, event streams, expired sessions, garbage and silence.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcpgate::upstream::{
    Exchange, Message, SecretResolver, SessionState, Upstream, UpstreamError, UpstreamSession,
};
use mcpgate_compiler::config::{GatewayConfig, ServerConfig};
use serde_json::json;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

type Body = BoxBody<Bytes, Infallible>;

const SECRET: &str = "s3cr3t-token-value";

/// What the fixture server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    headers: HeaderMap,
    body: Option<Message>,
}

#[derive(Default)]
struct Fixture {
    seen: Mutex<Vec<Seen>>,
    /// The id of the request whose stream was dropped, answered on resumption.
    dropped_id: Mutex<Option<Message>>,
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

fn json_response(message: &Message) -> Response<Body> {
    full(StatusCode::OK, "application/json", message.to_string())
}

/// An event stream fed by the returned sender, chunk by chunk.
fn sse() -> (mpsc::Sender<Bytes>, Response<Body>) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let resp = Response::builder()
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(stream).boxed())
        .unwrap();
    (tx, resp)
}

fn sse_with(chunks: Vec<String>, keep_open: Duration) -> Response<Body> {
    let (tx, resp) = sse();
    tokio::spawn(async move {
        for c in chunks {
            if tx.send(Bytes::from(c)).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(keep_open).await;
    });
    resp
}

fn result(id: &Message, value: Message) -> Message {
    json!({"jsonrpc": "2.0", "id": id, "result": value})
}

async fn handle(fixture: Arc<Fixture>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let message: Option<Message> = serde_json::from_slice(&bytes).ok();
    fixture.seen.lock().unwrap().push(Seen {
        method: parts.method.clone(),
        headers: parts.headers.clone(),
        body: message.clone(),
    });
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let session = header("mcp-session-id");
    let no_listen = parts.uri.path() == "/nolisten";
    if session == "expired" {
        return full(
            StatusCode::NOT_FOUND,
            "application/json",
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}"#,
        );
    }
    match parts.method {
        Method::GET => {
            if no_listen {
                return full(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "");
            }
            if header("last-event-id") == "e1" {
                let id = fixture.dropped_id.lock().unwrap().clone().unwrap();
                let response = result(&id, json!({"resumed": true}));
                return sse_with(
                    vec![format!("id: e2\ndata: {response}\n\n")],
                    Duration::ZERO,
                );
            }
            // Polling: each GET continues the stream by one event, then closes it.
            match header("last-event-id").as_str() {
                "p0" => {
                    let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                          "params": {"progressToken": "q", "progress": 1}});
                    return sse_with(
                        vec![format!("id: p1\ndata: {progress}\n\n")],
                        Duration::ZERO,
                    );
                }
                "p1" => {
                    let id = fixture.dropped_id.lock().unwrap().clone().unwrap();
                    let response = result(&id, json!({"polled": true}));
                    return sse_with(
                        vec![format!("id: p2\ndata: {response}\n\n")],
                        Duration::ZERO,
                    );
                }
                _ => {}
            }
            let note = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
            sse_with(vec![format!("data: {note}\n\n")], Duration::ZERO)
        }
        Method::DELETE => full(
            if no_listen {
                StatusCode::METHOD_NOT_ALLOWED
            } else {
                StatusCode::OK
            },
            "text/plain",
            "",
        ),
        Method::POST => {
            let accept = header("accept");
            if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
                return full(StatusCode::NOT_ACCEPTABLE, "text/plain", "");
            }
            let Some(message) = message else {
                return full(StatusCode::BAD_REQUEST, "text/plain", "");
            };
            let Some(id) = message.get("id").cloned() else {
                if message["method"] == "notifications/hang" {
                    // An acknowledgement that never ends.
                    return sse_with(vec![": ok\n\n".into()], Duration::from_secs(10));
                }
                return full(StatusCode::ACCEPTED, "text/plain", "");
            };
            let method = message["method"].as_str().unwrap_or_default();
            if method.is_empty() {
                return full(StatusCode::ACCEPTED, "text/plain", "");
            }
            if method == "initialize" {
                let mut resp = json_response(&result(
                    &id,
                    json!({"protocolVersion": "2025-06-18", "capabilities": {},
                           "serverInfo": {"name": "http-fixture", "version": "1"}}),
                ));
                resp.headers_mut()
                    .insert("mcp-session-id", "sess-1".parse().unwrap());
                return resp;
            }
            if method == "tools/list" {
                let tool = json!({"name": "query", "inputSchema": {"type": "object", "properties": {
                    "region": {"type": "string", "x-mcp-header": "Region"}}}});
                return json_response(&result(&id, json!({"tools": [tool]})));
            }
            let tool = message["params"]["name"].as_str().unwrap_or_default();
            match tool {
                "echo" | "query" => json_response(&result(&id, json!({"echo": message["params"]["arguments"]}))),
                "stream" => {
                    let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                          "params": {"progressToken": "p", "progress": 1}});
                    let ask = json!({"jsonrpc": "2.0", "id": "srv-1", "method": "elicitation/create",
                                     "params": {"message": "sure?"}});
                    let done = result(&id, json!({"streamed": true}));
                    // Awkward chunk boundaries: mid-field, mid-line ending.
                    let text = format!(
                        "retry: 50\n\nid: 1\nevent: message\ndata: {progress}\r\n\r\n: keep-alive\n\nid: 2\ndata: {ask}\n\ndata: {done}\n\n"
                    );
                    let chunks = text
                        .as_bytes()
                        .chunks(7)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect::<Vec<_>>();
                    // Chunks of 7 bytes stay valid UTF-8 here: the payload is ASCII.
                    sse_with(chunks, Duration::from_secs(5))
                }
                "garbage_sse" => sse_with(vec!["data: {not json\n\n".into()], Duration::ZERO),
                "garbage_json" => full(StatusCode::OK, "application/json", "nope"),
                "html" => full(StatusCode::OK, "text/html", "<html></html>"),
                "slow_headers" => {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    json_response(&result(&id, json!({})))
                }
                "slow_stream" => sse_with(vec![": waiting\n\n".into()], Duration::from_secs(10)),
                "leak" => full(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "application/json",
                    json!({"jsonrpc": "2.0", "id": id,
                           "error": {"code": -32000, "message": format!("bad credentials: {}", header("authorization"))}})
                        .to_string(),
                ),
                "drop" => {
                    *fixture.dropped_id.lock().unwrap() = Some(id);
                    let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                          "params": {"progressToken": "d", "progress": 1}});
                    sse_with(
                        vec![format!("retry: 10\nid: e1\ndata: {progress}\n\n")],
                        Duration::ZERO,
                    )
                }
                "poll" => {
                    *fixture.dropped_id.lock().unwrap() = Some(id);
                    // A priming event: an id and empty data, then the server closes.
                    sse_with(vec!["retry: 10\nid: p0\ndata:\n\n".into()], Duration::ZERO)
                }
                "unknown_method" => full(
                    StatusCode::NOT_FOUND,
                    "application/json",
                    json!({"jsonrpc": "2.0", "id": id,
                           "error": {"code": -32601, "message": "Method not found"}})
                        .to_string(),
                ),
                _ => full(StatusCode::BAD_REQUEST, "text/plain", ""),
            }
        }
        _ => full(StatusCode::METHOD_NOT_ALLOWED, "text/plain", ""),
    }
}

async fn start() -> (SocketAddr, Arc<Fixture>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fixture = Arc::new(Fixture::default());
    let shared = Arc::clone(&fixture);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let fixture = Arc::clone(&shared);
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let fixture = Arc::clone(&fixture);
                    async move { Ok::<_, Infallible>(handle(fixture, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, fixture)
}

struct Secrets;
impl SecretResolver for Secrets {
    fn resolve(&self, kind: &str, name: &str) -> Option<String> {
        (kind == "secret" && name == "token").then(|| SECRET.to_owned())
    }
}

fn upstream(addr: SocketAddr, path: &str, timeout_secs: Option<u64>) -> Upstream {
    let config = ServerConfig {
        url: Some(format!("http://{addr}{path}")),
        headers: BTreeMap::from([
            ("Authorization".into(), "Bearer ${secret:token}".into()),
            ("X-Team".into(), "platform".into()),
        ]),
        timeout_secs,
        ..ServerConfig::default()
    };
    Upstream::from_config("fixture", &config, &GatewayConfig::default(), &Secrets).unwrap()
}

fn initialize() -> Message {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
           "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                      "clientInfo": {"name": "test", "version": "0"}}})
}

fn call(id: u64, tool: &str) -> Message {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {"k": "v"}}})
}

async fn connect(up: &Upstream) -> UpstreamSession {
    let (session, response) = up.connect("g", initialize()).await.unwrap();
    assert_eq!(response["result"]["serverInfo"]["name"], "http-fixture");
    session
}

async fn drain(mut exchange: Exchange) -> Vec<Result<Message, UpstreamError>> {
    let mut items = Vec::new();
    while let Some(item) = exchange.recv().await {
        items.push(item);
    }
    items
}

async fn last_error(session: &UpstreamSession, message: Message) -> UpstreamError {
    match session.request(message).await {
        Err(e) => e,
        Ok(exchange) => drain(exchange).await.pop().unwrap().unwrap_err(),
    }
}

#[tokio::test]
async fn initialize_sets_session_headers_and_json_answers_flow() {
    let (addr, fixture) = start().await;
    let up = upstream(addr, "/mcp", None);
    let session = connect(&up).await;
    assert_eq!(
        session.state(),
        SessionState {
            session_id: Some("sess-1".into()),
            protocol_version: "2025-06-18".into(),
            client_capabilities: None,
        }
    );
    session
        .notify(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .unwrap();
    let items = drain(session.request(call(1, "echo")).await.unwrap()).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap()["result"]["echo"]["k"], "v");

    let seen = fixture.seen.lock().unwrap().clone();
    // The first POST is the era probe (`server/discover`), which this legacy fixture refuses.
    assert_eq!(seen[0].body.as_ref().unwrap()["method"], "server/discover");
    let seen = seen[1..].to_vec();
    assert_eq!(seen.len(), 3);
    // initialize carries neither session nor version; later messages carry both.
    assert!(seen[0].headers.get("mcp-session-id").is_none());
    assert!(seen[0].headers.get("mcp-protocol-version").is_none());
    for s in &seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(
            s.headers["authorization"],
            format!("Bearer {SECRET}").as_str()
        );
        assert_eq!(s.headers["x-team"], "platform");
        assert_eq!(s.headers["content-type"], "application/json");
    }
    for s in &seen[1..] {
        assert_eq!(s.headers["mcp-session-id"], "sess-1");
        assert_eq!(s.headers["mcp-protocol-version"], "2025-06-18");
    }
    assert_eq!(seen[2].body.as_ref().unwrap()["id"], 1);

    session.close().await;
    let seen = fixture.seen.lock().unwrap().clone();
    assert_eq!(seen.last().unwrap().method, Method::DELETE);
    assert_eq!(seen.last().unwrap().headers["mcp-session-id"], "sess-1");
}

#[tokio::test]
async fn an_event_stream_yields_every_message_then_the_response() {
    let (addr, _) = start().await;
    let up = upstream(addr, "/mcp", None);
    let session = connect(&up).await;
    let items = drain(session.request(call(5, "stream")).await.unwrap()).await;
    let methods: Vec<_> = items
        .iter()
        .map(|i| i.as_ref().unwrap()["method"].clone())
        .collect();
    assert_eq!(
        methods,
        vec![
            json!("notifications/progress"),
            json!("elicitation/create"),
            Message::Null
        ]
    );
    assert_eq!(items[2].as_ref().unwrap()["result"]["streamed"], true);
}

#[tokio::test]
async fn a_dropped_stream_resumes_with_last_event_id() {
    let (addr, fixture) = start().await;
    let up = upstream(addr, "/mcp", None);
    let session = connect(&up).await;
    let items = drain(session.request(call(9, "drop")).await.unwrap()).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[1].as_ref().unwrap()["result"]["resumed"], true);
    let seen = fixture.seen.lock().unwrap().clone();
    let get = seen.iter().find(|s| s.method == Method::GET).unwrap();
    assert_eq!(get.headers["last-event-id"], "e1");
    assert_eq!(get.headers["accept"], "text/event-stream");
}

#[tokio::test]
async fn garbage_is_a_protocol_error() {
    let (addr, _) = start().await;
    let up = upstream(addr, "/mcp", None);
    let session = connect(&up).await;
    for tool in ["garbage_sse", "garbage_json", "html"] {
        let err = last_error(&session, call(1, tool)).await;
        assert!(matches!(err, UpstreamError::Protocol(_)), "{tool}: {err:?}");
    }
}

#[tokio::test]
async fn status_errors_never_echo_credentials() {
    let (addr, _) = start().await;
    let up = upstream(addr, "/mcp", None);
    let session = connect(&up).await;
    // The JSON-RPC error is relayed, with the credential scrubbed out of it.
    let items = drain(session.request(call(1, "leak")).await.unwrap()).await;
    let text = items[0].as_ref().unwrap().to_string();
    assert!(text.contains("bad credentials: Bearer ***"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    // A status error without a JSON-RPC body names the status only.
    let err = last_error(&session, call(2, "nonexistent")).await;
    assert_eq!(
        err,
        UpstreamError::Protocol("unexpected HTTP status 400".into())
    );
}

#[tokio::test]
async fn a_json_rpc_error_with_a_status_is_relayed_as_the_answer() {
    let (addr, _) = start().await;
    let up = upstream(addr, "/mcp", None);
    // No session id: a 404 is an answer, not an expired session.
    let session = up.resume("g", &SessionState::default()).unwrap();
    let items = drain(session.request(call(4, "unknown_method")).await.unwrap()).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap()["error"]["code"], -32601);
}

#[tokio::test]
async fn an_unknown_session_is_expired() {
    let (addr, _) = start().await;
    let up = upstream(addr, "/mcp", None);
    let state = SessionState {
        session_id: Some("expired".into()),
        protocol_version: "2025-06-18".into(),
        client_capabilities: None,
    };
    let session = up.resume("g", &state).unwrap();
    assert_eq!(session.state(), state);
    assert_eq!(
        last_error(&session, call(1, "echo")).await,
        UpstreamError::SessionExpired
    );
    assert_eq!(
        session
            .notify(json!({"jsonrpc": "2.0", "method": "notifications/cancelled"}))
            .await
            .unwrap_err(),
        UpstreamError::SessionExpired
    );
    assert_eq!(
        session.listen().await.unwrap_err(),
        UpstreamError::SessionExpired
    );
}

#[tokio::test]
async fn silence_times_out() {
    let (addr, _) = start().await;
    let up = upstream(addr, "/mcp", Some(1));
    let session = connect(&up).await;
    assert_eq!(
        last_error(&session, call(1, "slow_headers")).await,
        UpstreamError::Timeout
    );
    assert_eq!(
        last_error(&session, call(2, "slow_stream")).await,
        UpstreamError::Timeout
    );
}

#[tokio::test]
async fn listen_opens_the_server_stream_or_reports_none() {
    let (addr, _) = start().await;
    let session = connect(&upstream(addr, "/mcp", None)).await;
    let mut rx = session.listen().await.unwrap().unwrap();
    assert_eq!(
        rx.recv().await.unwrap()["method"],
        "notifications/tools/list_changed"
    );
    assert!(rx.recv().await.is_none());

    let other = connect(&upstream(addr, "/nolisten", None)).await;
    assert!(other.listen().await.unwrap().is_none());
    // A 405 on DELETE is fine.
    other.close().await;
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let up = upstream(addr, "/mcp", Some(2));
    let err = up.connect("g", initialize()).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Unavailable(_)), "{err:?}");
}

#[test]
fn bad_config_is_refused() {
    let gateway = GatewayConfig::default();
    let reserved = ServerConfig {
        url: Some("http://127.0.0.1:1/mcp".into()),
        headers: BTreeMap::from([("Mcp-Session-Id".into(), "x".into())]),
        ..ServerConfig::default()
    };
    let err = Upstream::from_config("s", &reserved, &gateway, &Secrets).unwrap_err();
    assert!(err.contains("mcp-session-id"), "{err}");
    let ftp = ServerConfig {
        url: Some("ftp://example.com/mcp".into()),
        ..ServerConfig::default()
    };
    assert!(Upstream::from_config("s", &ftp, &gateway, &Secrets).is_err());
}

#[tokio::test]
async fn a_polling_server_is_followed_event_by_event() {
    let (addr, fixture) = start().await;
    let up = upstream(addr, "/mcp", None);
    let session = connect(&up).await;
    let items = drain(session.request(call(11, "poll")).await.unwrap()).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        items[0].as_ref().unwrap()["method"],
        "notifications/progress"
    );
    assert_eq!(items[1].as_ref().unwrap()["result"]["polled"], true);
    let seen = fixture.seen.lock().unwrap().clone();
    let resumed: Vec<_> = seen
        .iter()
        .filter_map(|s| s.headers.get("last-event-id"))
        .collect();
    assert_eq!(resumed, ["p0", "p1"]);
}

#[tokio::test]
async fn an_acknowledgement_that_never_ends_does_not_hold_up_notify() {
    let (addr, _) = start().await;
    // With a 60 s request timeout, only the short wait for acknowledgements ends this early.
    let session = connect(&upstream(addr, "/mcp", Some(60))).await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/hang"});
    let sent = tokio::time::timeout(Duration::from_secs(30), session.notify(note)).await;
    assert_eq!(sent, Ok(Ok(())));
}

#[tokio::test]
async fn stateless_calls_mirror_the_body_and_marked_arguments_in_headers() {
    let (addr, fixture) = start().await;
    let up = upstream(addr, "/mcp", None);
    let session = up.resume("g", &SessionState::default()).unwrap();
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    let list =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}});
    drain(session.request(list).await.unwrap()).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "query", "arguments": {"region": "eu-west"}, "_meta": meta}});
    let items = drain(session.request(call).await.unwrap()).await;
    assert_eq!(
        items[0].as_ref().unwrap()["result"]["echo"]["region"],
        "eu-west"
    );
    let seen = fixture.seen.lock().unwrap().clone();
    let last = &seen.last().unwrap().headers;
    assert_eq!(last["mcp-protocol-version"], "2026-07-28");
    assert_eq!(last["mcp-method"], "tools/call");
    assert_eq!(last["mcp-name"], "query");
    assert_eq!(last["mcp-param-region"], "eu-west");
    assert!(seen[0].headers.get("mcp-name").is_none());
}
