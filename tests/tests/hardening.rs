//! Bounds a client cannot push the gateway past, end to end with `mcpgate serve` in front of
//! the real `mcpgate demo-server`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::McpHttp;
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::{Value, json};

/// Globs with many `**`: each is matched in time linear in the URI times the pattern.
const RULES: &str = r#"allow demo.write_note;
allow resource demo "note:///**a**b**c**d**e**f**g**h**z";
allow resource demo "note:///**";
"#;

fn read(c: &McpHttp, id: u64, uri: &str) -> Value {
    c.call(id, "resources/read", json!({"uri": uri}))
}

#[test]
fn a_resource_uri_is_bounded_and_globs_stay_fast() {
    let config = json!({"servers": {"demo": {"command": "mcpgate", "args": ["demo-server"]}}});
    let repo = PolicyRepo::with(&config, RULES);
    let gw = Gateway::start(&repo);
    let mut c = McpHttp::new(gw.addr(), "/mcp/demo");
    c.initialize();
    let w = c.call(
        2,
        "tools/call",
        json!({"name": "write_note", "arguments": {"name": "k", "text": "hello"}}),
    );
    assert_eq!(w["result"]["isError"], false, "{w}");

    // A URI over the limit is refused as invalid params, naming the limit.
    let long = format!("note:///{}", "a".repeat(9000));
    let r = read(&c, 3, &long);
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("at most 8192"), "{r}");

    // Just under the limit, a URI that almost matches the many-`**` glob is decided (the
    // second rule allows it; the server does not know it), and the session goes on.
    let near = format!("note:///{}", "abcdefgh".repeat(1000));
    let r = read(&c, 4, &near);
    assert_eq!(r["error"]["code"], -32002, "{r}");
    let r = read(&c, 5, "note:///k");
    assert_eq!(r["result"]["contents"][0]["text"], "hello", "{r}");
}

/// `mcpgate sessions rotate-key` between two runs of the gateway on one state dir: a
/// session opened before the rotation goes on after it (the previous key still opens its
/// id), new sessions are sealed under the new key, and a second rotation retires the first.
#[test]
fn a_session_survives_a_key_rotation_and_a_second_rotation_retires_it() {
    let peer = mcpgate_tests::peers::HttpPeer::modern();
    let config = json!({"servers": {"m": {"url": peer.url, "protocol": "legacy"}}});
    let repo = PolicyRepo::with(&config, "allow m.echo;\n");
    let state = tempfile::tempdir().unwrap();
    let args = vec![
        "--policy".to_owned(),
        repo.path().to_str().unwrap().to_owned(),
    ];
    let echo = |c: &McpHttp, id: u64| {
        c.call(
            id,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
        )
    };
    let rotate = || {
        let done = mcpgate_tests::cli::mcpgate(
            std::path::Path::new("."),
            [
                "sessions",
                "rotate-key",
                "--state",
                state.path().to_str().unwrap(),
            ],
        );
        assert_eq!(done.code(), 0, "{done}");
    };

    let mut gw = Gateway::start_in(state.path(), &args, &[]);
    let mut before = McpHttp::new(gw.addr(), "/mcp/m");
    before.initialize();
    assert_eq!(echo(&before, 2)["result"]["isError"], false);
    gw.kill();

    rotate();
    let mut gw = Gateway::start_in(state.path(), &args, &[]);
    before.addr = gw.addr();
    let r = echo(&before, 3);
    assert_eq!(
        r["result"]["isError"], false,
        "the old session goes on: {r}"
    );
    let mut after = McpHttp::new(gw.addr(), "/mcp/m");
    after.initialize();
    assert_eq!(echo(&after, 2)["result"]["isError"], false);
    gw.kill();

    rotate();
    let gw = Gateway::start_in(state.path(), &args, &[]);
    before.addr = gw.addr();
    after.addr = gw.addr();
    let r = before.post(&json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi"}}}));
    assert_eq!(
        r.status, 404,
        "two rotations later the first key is gone: {r}"
    );
    let r = echo(&after, 3);
    assert_eq!(r["result"]["isError"], false, "{r}");
}

/// `/metrics` has latency histograms for decisions and for each upstream's calls, and
/// counts each upstream's failures by kind.
#[test]
fn metrics_have_latency_histograms_and_upstream_errors() {
    let peer = mcpgate_tests::peers::HttpPeer::modern();
    let config = json!({"servers": {"m": {"url": peer.url, "protocol": "legacy"}}});
    let repo = PolicyRepo::with(&config, "allow m.echo;\n");
    let gw = Gateway::start(&repo);
    let mut c = McpHttp::new(gw.addr(), "/mcp/m");
    c.initialize();
    let echo = |id: u64| {
        c.call(
            id,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
        )
    };
    for id in 2..4 {
        assert_eq!(echo(id)["result"]["isError"], false);
    }
    drop(peer);
    let failed = echo(4);
    assert!(failed.get("error").is_some(), "{failed}");

    let page = mcpgate_tests::http::request(gw.addr(), "GET", "/metrics", &[], b"").text();
    let line = |prefix: &str| {
        page.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in\n{page}"))
            .to_owned()
    };
    assert_eq!(
        line("mcpgate_upstream_request_duration_seconds_count{server=\"m\"}"),
        "mcpgate_upstream_request_duration_seconds_count{server=\"m\"} 2"
    );
    assert!(
        line("mcpgate_upstream_request_duration_seconds_bucket{server=\"m\",le=\"+Inf\"}")
            .ends_with(" 2")
    );
    assert_eq!(
        line("mcpgate_upstream_errors_total{server=\"m\",kind=\"unavailable\"}"),
        "mcpgate_upstream_errors_total{server=\"m\",kind=\"unavailable\"} 1"
    );
    let decided = line("mcpgate_decision_duration_seconds_count ");
    assert_eq!(
        decided, "mcpgate_decision_duration_seconds_count 3",
        "{page}"
    );
}

/// An https upstream whose certificate a company CA signed: refused without `ca_file`
/// (the error names the certificate), reached with it.
#[test]
fn an_upstream_behind_a_private_ca_is_reached_with_its_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = mcpgate_tests::certs::private_ca();
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (ca_file, cert_file, key_file) = (
        path("ca.pem", &ca),
        path("cert.pem", &cert),
        path("key.pem", &key),
    );
    let peer = mcpgate_tests::peers::HttpPeer::modern_tls(&cert_file, &key_file);
    assert!(peer.url.starts_with("https://localhost:"), "{}", peer.url);
    let servers = json!({
        "trusting": {"url": peer.url, "protocol": "legacy", "ca_file": ca_file},
        "plain": {"url": peer.url, "protocol": "legacy"},
    });
    let repo = PolicyRepo::with(
        &json!({"servers": servers}),
        "allow trusting.echo, plain.echo;\n",
    );
    let gw = Gateway::start(&repo);

    let plain = McpHttp::new(gw.addr(), "/mcp/plain");
    let r = plain.post(&mcpgate_tests::http::initialize_request(1));
    assert!(
        r.text().contains("certificate") || r.text().contains("UnknownIssuer"),
        "without the CA the upstream is refused: {r}"
    );

    let mut trusting = McpHttp::new(gw.addr(), "/mcp/trusting");
    trusting.initialize();
    let r = trusting.call(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "over tls"}}),
    );
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert!(r.to_string().contains("over tls"), "{r}");
}

/// A minimal HTTP `CONNECT` proxy on loopback that records the destinations it tunnels to.
struct ConnectProxy {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start() -> ConnectProxy {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                            break;
                        }
                    }
                    log.lock().unwrap().push(target.clone());
                    let upstream = std::net::TcpStream::connect(&target).unwrap();
                    let mut client = client;
                    client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .unwrap();
                    let (mut up_r, mut up_w) = (upstream.try_clone().unwrap(), upstream);
                    let mut down_w = client.try_clone().unwrap();
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut up_r, &mut down_w);
                    });
                    let _ = std::io::copy(&mut reader, &mut up_w);
                });
            }
        });
        ConnectProxy { addr, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// `HTTPS_PROXY` sends an https upstream through a `CONNECT` tunnel (TLS still ends at the
/// upstream, checked against `ca_file`); `NO_PROXY` exempts a host.
#[test]
fn https_upstreams_go_through_the_proxy_the_environment_names() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = mcpgate_tests::certs::private_ca();
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca_file = path("ca.pem", &ca);
    let peer = mcpgate_tests::peers::HttpPeer::modern_tls(
        &path("cert.pem", &cert),
        &path("key.pem", &key),
    );
    let port = peer
        .url
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .unwrap()
        .to_owned();
    let proxy = ConnectProxy::start();
    let servers = json!({
        "proxied": {"url": peer.url, "protocol": "legacy", "ca_file": ca_file},
        "direct": {"url": format!("https://127.0.0.1:{port}/mcp"), "protocol": "legacy",
                   "ca_file": ca_file},
    });
    let repo = PolicyRepo::with(
        &json!({"servers": servers}),
        "allow proxied.echo, direct.echo;\n",
    );
    let proxy_url = format!("http://{}", proxy.addr);
    let gw = Gateway::start_with_env(
        &repo,
        &[],
        &[
            ("HTTPS_PROXY", proxy_url.as_str()),
            ("NO_PROXY", "127.0.0.1"),
        ],
    );
    for (server, via_proxy) in [("proxied", true), ("direct", false)] {
        let before = proxy.seen().len();
        let mut c = McpHttp::new(gw.addr(), &format!("/mcp/{server}"));
        c.initialize();
        let r = c.call(
            2,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "tunnelled"}}),
        );
        assert_eq!(r["result"]["isError"], false, "{server}: {r}");
        let tunnels = proxy.seen()[before..].to_vec();
        if via_proxy {
            assert!(!tunnels.is_empty(), "{server} went around the proxy");
            assert!(
                tunnels.iter().all(|t| *t == format!("localhost:{port}")),
                "{tunnels:?}"
            );
        } else {
            assert!(tunnels.is_empty(), "NO_PROXY: {tunnels:?}");
        }
    }
}
