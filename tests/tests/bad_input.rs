//! Bad input over HTTP and failing upstreams: each gets a clear answer, and the gateway keeps
//! serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::{self, McpHttp, StubServer, initialize_request, rpc};
use mcpgate_tests::peers;
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::{Value, json};

const POLICY: &str = "allow fx.*;\nallow flaky.*;\nallow offline.*;\nallow junk.*;\n";
const MAX_BODY: usize = 64 * 1024;

struct Setup {
    _repo: PolicyRepo,
    _junk: StubServer,
    gateway: Gateway,
}

fn setup() -> Setup {
    let junk = StubServer::start(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\nthis is not json!",
    );
    let mut flaky = peers::fixture_stdio(&[]);
    flaky["timeout_secs"] = json!(10);
    let config = json!({
        "gateway": {"max_body_bytes": MAX_BODY},
        "servers": {
            "fx": peers::fixture_stdio(&[]),
            "flaky": flaky,
            "offline": {"url": format!("http://127.0.0.1:{}/mcp", http::closed_port()),
                        "timeout_secs": 10},
            "junk": {"url": junk.url(), "timeout_secs": 10},
        }
    });
    let repo = PolicyRepo::with(&config, POLICY);
    let gateway = Gateway::start(&repo);
    Setup {
        _repo: repo,
        _junk: junk,
        gateway,
    }
}

/// The gateway still answers a fresh session on a healthy upstream.
fn assert_still_serving(setup: &mut Setup) {
    assert!(
        setup.gateway.is_running(),
        "the gateway exited:\n{}",
        setup.gateway.log()
    );
    let mut client = McpHttp::new(setup.gateway.addr(), "/mcp/fx");
    client.initialize();
    let called = client.call(
        9,
        "tools/call",
        json!({"name": "get_item", "arguments": {"id": "ok"}}),
    );
    assert_eq!(
        called["result"]["content"][0]["text"], r#"get_item called with {"id": "ok"}"#,
        "{called}"
    );
}

fn error_code(message: &Value) -> Option<i64> {
    message["error"]["code"].as_i64()
}

fn post_fx(setup: &Setup, body: &[u8]) -> http::Response {
    McpHttp::new(setup.gateway.addr(), "/mcp/fx").post_raw(body, &[])
}

#[test]
fn malformed_json_is_a_parse_error() {
    let mut setup = setup();
    let response = post_fx(&setup, b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ");
    assert_eq!(error_code(&response.json()), Some(-32700), "{response}");
    assert_eq!(response.status, 400, "{response}");
    assert_still_serving(&mut setup);
}

#[test]
fn a_message_of_the_wrong_shape_is_an_invalid_request() {
    let mut setup = setup();
    for body in [
        &br#"{"jsonrpc": "2.0", "id": 1, "params": {}}"#[..],
        br#""just a string""#,
        br#"{"jsonrpc": "1.0", "id": 1, "method": "initialize"}"#,
    ] {
        let response = post_fx(&setup, body);
        assert_eq!(
            error_code(&response.json()),
            Some(-32600),
            "{}: {response}",
            String::from_utf8_lossy(body)
        );
    }
    assert_still_serving(&mut setup);
}

/// Batches were removed from the protocol in 2025-06-18: refused as a whole, or answered
/// item by item, never half-processed silently.
#[test]
fn a_batch_is_refused_or_answered_per_item() {
    let mut setup = setup();
    let batch = json!([initialize_request(1), rpc(2, "ping", json!({}))]);
    let response = post_fx(&setup, batch.to_string().as_bytes());
    let messages = response.messages();
    let refused = messages.len() == 1 && error_code(&messages[0]) == Some(-32600);
    let answered = messages.len() == 2
        && messages.iter().any(|m| m["id"] == 1)
        && messages.iter().any(|m| m["id"] == 2);
    assert!(refused || answered, "{response}");
    assert_still_serving(&mut setup);
}

#[test]
fn an_oversized_body_is_413() {
    let mut setup = setup();
    let padding = "x".repeat(MAX_BODY * 2);
    let body = rpc(1, "initialize", json!({"padding": padding})).to_string();
    let response = post_fx(&setup, body.as_bytes());
    assert_eq!(response.status, 413, "{response}");
    assert_still_serving(&mut setup);
}

#[test]
fn an_unknown_server_is_404() {
    let setup = setup();
    let response = McpHttp::new(setup.gateway.addr(), "/mcp/nope").post(&initialize_request(1));
    assert_eq!(response.status, 404, "{response}");
    let other = http::request(setup.gateway.addr(), "GET", "/not-mcp", &[], b"");
    assert_eq!(other.status, 404, "{other}");
}

#[test]
fn a_forged_session_id_is_404() {
    let mut setup = setup();
    let mut client = McpHttp::new(setup.gateway.addr(), "/mcp/fx");
    client.session = Some("forged-session-0123456789abcdef".into());
    let response = client.post(&rpc(2, "tools/list", json!({})));
    assert_eq!(response.status, 404, "{response}");
    assert_still_serving(&mut setup);
}

#[test]
fn a_session_of_one_server_does_not_open_another() {
    let mut setup = setup();
    let mut client = McpHttp::new(setup.gateway.addr(), "/mcp/fx");
    client.initialize();
    let moved = McpHttp {
        addr: setup.gateway.addr(),
        path: "/mcp/flaky".into(),
        session: client.session.clone(),
        bearer: None,
    };
    let response = moved.post(&rpc(3, "tools/list", json!({})));
    assert_eq!(
        response.status, 404,
        "a session crossed servers: {response}"
    );
    assert_still_serving(&mut setup);
}

#[test]
fn a_foreign_origin_is_403_and_a_loopback_origin_is_served() {
    let setup = setup();
    let client = McpHttp::new(setup.gateway.addr(), "/mcp/fx");
    let body = initialize_request(1).to_string();
    let evil = client.post_raw(body.as_bytes(), &[("Origin", "http://evil.example")]);
    assert_eq!(evil.status, 403, "{evil}");
    let origin = format!("http://{}", setup.gateway.addr());
    let local = client.post_raw(body.as_bytes(), &[("Origin", &origin)]);
    assert_eq!(local.status, 200, "{local}");
}

#[test]
fn a_foreign_host_is_421() {
    let setup = setup();
    let client = McpHttp::new(setup.gateway.addr(), "/mcp/fx");
    let body = initialize_request(1).to_string();
    let response = client.post_raw(body.as_bytes(), &[("Host", "evil.example")]);
    assert_eq!(response.status, 421, "{response}");
}

/// Initializes on `path` and makes one call; returns every JSON-RPC answer seen.
fn try_session(setup: &Setup, path: &str, call: Value) -> Vec<Value> {
    let client = McpHttp::new(setup.gateway.addr(), path);
    let init = client.post(&initialize_request(1));
    let mut seen = init.messages();
    if init.status == 200 && seen.iter().all(|m| m.get("error").is_none()) {
        let mut client = client;
        client.session = init.header("mcp-session-id").map(str::to_owned);
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        client.post(&note);
        let response = client.post(&rpc(2, "tools/call", call));
        seen.extend(response.messages());
        if seen.len() == 1 {
            panic!("no answer to the call on {path}: {response}");
        }
    }
    seen
}

/// The last answer is a refusal (JSON-RPC error or error result) that names `server`.
fn assert_failure_names(seen: &[Value], server: &str) {
    let last = seen
        .last()
        .unwrap_or_else(|| panic!("no answer from {server}"));
    let failed = last.get("error").is_some() || last["result"]["isError"] == true;
    assert!(failed, "expected a failure from `{server}`, got {last}");
    assert!(
        last.to_string().contains(server),
        "the failure does not name `{server}`: {last}"
    );
}

#[test]
fn an_upstream_that_is_down_is_named_in_the_error() {
    let mut setup = setup();
    let seen = try_session(&setup, "/mcp/offline", json!({"name": "anything"}));
    assert_failure_names(&seen, "offline");
    assert_still_serving(&mut setup);
}

#[test]
fn an_upstream_crashing_mid_call_is_named_in_the_error() {
    let mut setup = setup();
    let seen = try_session(
        &setup,
        "/mcp/flaky",
        json!({"name": "crash", "arguments": {}}),
    );
    assert_failure_names(&seen, "flaky");
    assert_still_serving(&mut setup);
}

#[test]
fn an_upstream_answering_garbage_is_named_in_the_error() {
    let mut setup = setup();
    let seen = try_session(
        &setup,
        "/mcp/flaky",
        json!({"name": "garbage", "arguments": {}}),
    );
    assert_failure_names(&seen, "flaky");
    let seen = try_session(&setup, "/mcp/junk", json!({"name": "anything"}));
    assert_failure_names(&seen, "junk");
    assert_still_serving(&mut setup);
}
