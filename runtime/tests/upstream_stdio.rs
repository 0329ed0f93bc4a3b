//! The stdio transport against a real process: the Python fixture server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate::upstream::{
    Exchange, Message, SecretResolver, StdioProcesses, Upstream, UpstreamError, UpstreamSession,
};
use mcpgate_compiler::config::{GatewayConfig, Protocol, ServerConfig};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn fixture() -> String {
    format!(
        "{}/tests/fixtures/stdio_server.py",
        env!("CARGO_MANIFEST_DIR")
    )
}

struct Secrets;
impl SecretResolver for Secrets {
    fn resolve(&self, kind: &str, name: &str) -> Option<String> {
        (kind == "secret" && name == "token").then(|| "s3cr3t-value".to_owned())
    }
}

fn server(extra_args: &[&str], timeout_secs: Option<u64>) -> ServerConfig {
    let mut args = vec![fixture()];
    args.extend(extra_args.iter().map(|a| (*a).to_owned()));
    ServerConfig {
        command: Some("python3".into()),
        args,
        env: BTreeMap::from([("FIXTURE_TOKEN".into(), "${secret:token}".into())]),
        timeout_secs,
        ..ServerConfig::default()
    }
}

fn upstream(config: &ServerConfig, idle_secs: u64, cap: &StdioProcesses) -> Upstream {
    let gateway = GatewayConfig {
        session_idle_secs: idle_secs,
        ..GatewayConfig::default()
    };
    Upstream::from_config_with("fixture", config, &gateway, &Secrets, cap).unwrap()
}

fn initialize(id: u64) -> Message {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize",
           "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                      "clientInfo": {"name": "test", "version": "0"}}})
}

fn call(id: u64, tool: &str, arguments: Message) -> Message {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
}

async fn connect(up: &Upstream, key: &str) -> UpstreamSession {
    let (session, response) = up.connect(key, initialize(1)).await.unwrap();
    assert_eq!(response["result"]["serverInfo"]["name"], "fixture");
    session
        .notify(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .unwrap();
    session
}

/// Every item of an exchange, to its end.
async fn drain(mut exchange: Exchange) -> Vec<Result<Message, UpstreamError>> {
    let mut items = Vec::new();
    while let Some(item) = exchange.recv().await {
        items.push(item);
    }
    items
}

fn text_of(message: &Message) -> &str {
    message["result"]["content"][0]["text"].as_str().unwrap()
}

#[tokio::test]
async fn initialize_list_and_call() {
    let cap = StdioProcesses::new(4);
    let up = upstream(&server(&[], None), 60, &cap);
    let session = connect(&up, "g1").await;
    assert_eq!(session.state().protocol_version, "2025-06-18");
    assert_eq!(session.state().session_id, None);

    let items = drain(
        session
            .request(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(items.len(), 1);
    let list = items[0].as_ref().unwrap();
    assert_eq!(list["id"], 2);
    assert!(list["result"]["tools"].as_array().unwrap().len() >= 5);

    let items = drain(
        session
            .request(call(3, "echo", json!({"text": "hi"})))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(text_of(items[0].as_ref().unwrap()), "hi");

    // Env references are resolved; the working directory is the configured one.
    let items = drain(
        session
            .request(call(4, "env", json!({"name": "FIXTURE_TOKEN"})))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(text_of(items[0].as_ref().unwrap()), "s3cr3t-value");

    assert!(up.resume("g1", &session.state()).is_some());
    assert!(up.resume("other", &session.state()).is_none());
    assert_eq!(cap.running(), 1);
    session.close().await;
    assert_eq!(cap.running(), 0);
    assert!(up.resume("g1", &session.state()).is_none());
    assert_eq!(
        session
            .request(call(5, "echo", json!({})))
            .await
            .unwrap_err(),
        UpstreamError::SessionExpired
    );
}

#[tokio::test]
async fn working_directory_comes_from_config() {
    let cap = StdioProcesses::new(4);
    let dir = std::env::temp_dir().canonicalize().unwrap();
    let mut config = server(&[], None);
    config.cwd = Some(dir.to_string_lossy().into_owned());
    let up = upstream(&config, 60, &cap);
    let session = connect(&up, "g").await;
    let items = drain(session.request(call(2, "cwd", json!({}))).await.unwrap()).await;
    assert_eq!(text_of(items[0].as_ref().unwrap()), dir.to_string_lossy());
    session.close().await;
}

#[tokio::test]
async fn progress_and_server_requests_reach_the_exchange() {
    let cap = StdioProcesses::new(4);
    let up = upstream(&server(&[], None), 60, &cap);
    let session = connect(&up, "g").await;

    let req = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                     "params": {"name": "progress", "arguments": {}, "_meta": {"progressToken": "tok"}}});
    let items = drain(session.request(req).await.unwrap()).await;
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[0].as_ref().unwrap()["method"],
        "notifications/progress"
    );
    assert_eq!(items[1].as_ref().unwrap()["params"]["progress"], 2);
    assert_eq!(items[2].as_ref().unwrap()["id"], 7);

    // A server-to-client request arrives in the exchange; the answer goes back by notify.
    let mut exchange = session.request(call(8, "ask", json!({}))).await.unwrap();
    let ask = exchange.recv().await.unwrap().unwrap();
    assert_eq!(ask["method"], "sampling/createMessage");
    session
        .notify(json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"answer": 42}}))
        .await
        .unwrap();
    let done = exchange.recv().await.unwrap().unwrap();
    assert_eq!(done["id"], 8);
    assert_eq!(text_of(&done), "{\"answer\": 42}");
    assert!(exchange.recv().await.is_none());
    session.close().await;
}

#[tokio::test]
async fn notifications_with_several_requests_in_flight_go_to_listen() {
    let cap = StdioProcesses::new(4);
    let up = upstream(&server(&[], None), 60, &cap);
    let session = connect(&up, "g").await;
    let mut listen = session.listen().await.unwrap().unwrap();
    let slow = session
        .request(call(2, "slow", json!({"secs": 2})))
        .await
        .unwrap();
    let items = drain(session.request(call(3, "notify", json!({}))).await.unwrap()).await;
    assert_eq!(
        items.len(),
        1,
        "the log notification is not the notify call's"
    );
    let note = listen.recv().await.unwrap();
    assert_eq!(note["method"], "notifications/message");
    let slow_items = drain(slow).await;
    assert_eq!(text_of(slow_items[0].as_ref().unwrap()), "slept");

    // With exactly one request in flight, the notification belongs to it.
    let items = drain(session.request(call(4, "notify", json!({}))).await.unwrap()).await;
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0].as_ref().unwrap()["method"],
        "notifications/message"
    );
    session.close().await;
}

#[tokio::test]
async fn stderr_and_garbage_lines_do_not_break_the_stream() {
    let cap = StdioProcesses::new(4);
    let up = upstream(&server(&[], None), 60, &cap);
    let session = connect(&up, "g").await;
    let items = drain(session.request(call(2, "noisy", json!({}))).await.unwrap()).await;
    assert_eq!(
        text_of(items.last().unwrap().as_ref().unwrap()),
        "quiet again"
    );
    let items = drain(
        session
            .request(call(3, "echo", json!({"text": "still here"})))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(text_of(items[0].as_ref().unwrap()), "still here");
    session.close().await;
}

#[tokio::test]
async fn a_crash_mid_call_ends_the_exchange_and_connect_starts_anew() {
    let cap = StdioProcesses::new(4);
    let up = upstream(&server(&[], None), 60, &cap);
    let session = connect(&up, "g").await;
    let items = drain(session.request(call(2, "crash", json!({}))).await.unwrap()).await;
    match items.last().unwrap() {
        Err(UpstreamError::Exited(why)) => assert!(why.contains('3'), "{why}"),
        other => panic!("expected an exit, got {other:?}"),
    }
    assert!(matches!(
        session.request(call(3, "echo", json!({}))).await,
        Err(UpstreamError::Exited(_))
    ));
    assert!(up.resume("g", &session.state()).is_none());
    let again = connect(&up, "g").await;
    let items = drain(
        again
            .request(call(2, "echo", json!({"text": "back"})))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(text_of(items[0].as_ref().unwrap()), "back");
    again.close().await;
}

#[tokio::test]
async fn the_process_cap_is_shared_and_enforced() {
    let cap = StdioProcesses::new(2);
    let a = upstream(&server(&[], None), 60, &cap);
    let b = upstream(&server(&[], None), 60, &cap);
    let s1 = connect(&a, "one").await;
    let s2 = connect(&b, "two").await;
    assert_eq!(cap.running(), 2);
    assert_eq!(
        a.connect("three", initialize(1)).await.unwrap_err(),
        UpstreamError::Busy
    );
    s1.close().await;
    let s3 = connect(&a, "three").await;
    assert_eq!(cap.running(), 2);
    s2.close().await;
    s3.close().await;
    assert_eq!(cap.running(), 0);
}

#[tokio::test]
async fn idle_processes_are_reaped() {
    let cap = StdioProcesses::new(4);
    let up = upstream(&server(&[], None), 1, &cap);
    let session = connect(&up, "g").await;
    assert_eq!(cap.running(), 1);
    // Bounded wait: the reaper runs every quarter of the idle time.
    for _ in 0..100 {
        if cap.running() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cap.running(), 0);
    assert!(up.resume("g", &session.state()).is_none());
    assert_eq!(
        session
            .request(call(2, "echo", json!({})))
            .await
            .unwrap_err(),
        UpstreamError::SessionExpired
    );
}

#[tokio::test]
async fn a_request_that_takes_too_long_times_out() {
    let cap = StdioProcesses::new(4);
    // Long enough for the fixture to start on a loaded machine (the timeout also bounds
    // `initialize`), far shorter than the call; legacy, so no era probe shares the wait.
    let config = ServerConfig {
        protocol: Some(Protocol::Legacy),
        ..server(&[], Some(3))
    };
    let up = upstream(&config, 60, &cap);
    let session = connect(&up, "g").await;
    let items = drain(
        session
            .request(call(2, "slow", json!({"secs": 20})))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(items, vec![Err(UpstreamError::Timeout)]);
    session.close().await;
}

#[tokio::test]
async fn close_stops_a_process_that_ignores_eof_and_sigterm() {
    let cap = StdioProcesses::new(4);
    let up = upstream(&server(&["--ignore-eof", "--ignore-term"], None), 60, &cap);
    let session = connect(&up, "g").await;
    session.close().await;
    assert_eq!(cap.running(), 0);
}

#[tokio::test]
async fn a_missing_program_is_unavailable() {
    let cap = StdioProcesses::new(4);
    let config = ServerConfig {
        command: Some("/nonexistent/mcp-server".into()),
        ..ServerConfig::default()
    };
    let up = upstream(&config, 60, &cap);
    assert!(matches!(
        up.connect("g", initialize(1)).await,
        Err(UpstreamError::Unavailable(_))
    ));
    assert_eq!(cap.running(), 0);
}

#[test]
fn config_errors_name_the_problem() {
    let gateway = GatewayConfig::default();
    let both = ServerConfig {
        url: Some("http://127.0.0.1:1/mcp".into()),
        command: Some("x".into()),
        ..ServerConfig::default()
    };
    assert!(
        Upstream::from_config("s", &both, &gateway, &Secrets)
            .unwrap_err()
            .contains("both")
    );
    let missing = ServerConfig {
        command: Some("x".into()),
        env: BTreeMap::from([("K".into(), "${secret:nope}".into())]),
        ..ServerConfig::default()
    };
    let err = Upstream::from_config("s", &missing, &gateway, &Secrets).unwrap_err();
    assert!(err.contains("unknown secret `nope`"), "{err}");
}

/// Set in the environment of the process the next test spawns: this test binary then serves
/// MCP on stdio from the `serve_when_spawned` test.
const SERVE_VAR: &str = "MCPGATE_TEST_SERVE_STDIO";

#[test]
fn serve_when_spawned() {
    use std::io::{BufRead, Write};
    if std::env::var_os(SERVE_VAR).is_none() {
        return;
    }
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let message: Message = serde_json::from_str(&line.unwrap()).unwrap();
        let Some(id) = message.get("id") else {
            continue;
        };
        let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "serverInfo": {"name": "fixture", "version": "self"}}});
        let mut out = stdout.lock();
        // A blank line first: the harness leaves its `test ... ` line unterminated.
        writeln!(out, "\n{answer}").unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test]
async fn the_command_mcpgate_runs_the_gateway_executable() {
    // Inside tests the current executable is this test binary; it serves through the test
    // above (its own harness output on stdout is skipped as non-JSON lines).
    let cap = StdioProcesses::new(4);
    let config = ServerConfig {
        command: Some("mcpgate".into()),
        args: vec![
            "--exact".into(),
            "serve_when_spawned".into(),
            "--nocapture".into(),
            "--test-threads=1".into(),
        ],
        env: BTreeMap::from([(SERVE_VAR.into(), "1".into())]),
        ..ServerConfig::default()
    };
    let up = upstream(&config, 60, &cap);
    let (session, response) = up.connect("g", initialize(1)).await.unwrap();
    assert_eq!(response["result"]["serverInfo"]["version"], "self");
    session.close().await;
    assert_eq!(cap.running(), 0);
}
