//! OIDC end to end: tokens signed by a stand-in provider (`tests/peers/oidc_issuer.py`, PyJWT
//! with a fresh RSA key), its JWKS served over HTTP on 127.0.0.1 by the test and fetched by
//! `mcpgate serve` from `identity.oidc.jwks_url`, and raw MCP requests carrying the tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::{McpHttp, initialize_request, rpc};
use mcpgate_tests::process;
use mcpgate_tests::{Gateway, PolicyRepo, paths};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ISSUER: &str = "https://idp.example.com";
const AUDIENCE: &str = "mcpgate-e2e";

const POLICY: &str = r#"allow demo.list_notes, demo.read_note;
allow demo.write_note when "finance" in principal.groups;
"#;

/// Tokens and the JWKS file from the stand-in provider.
fn mint(dir: &std::path::Path) -> Value {
    let mut cmd = Command::new(paths::python());
    cmd.arg(paths::peer_sources().join("oidc_issuer.py"))
        .arg(dir)
        .arg(ISSUER)
        .arg(AUDIENCE);
    let done = process::run("oidc_issuer", &mut cmd, b"", Duration::from_secs(60));
    assert_eq!(done.code(), 0, "{done}");
    serde_json::from_str(done.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {done}"))
}

/// Serves `body` to every GET on 127.0.0.1 and counts the requests; the body can be swapped.
struct JwksServer {
    url: String,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(body: Arc<Mutex<Vec<u8>>>) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let fetches = Arc::new(AtomicUsize::new(0));
        let count = fetches.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let body = body.lock().unwrap().clone();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        JwksServer { url, fetches }
    }
}

fn repo(jwks_url: &str) -> PolicyRepo {
    repo_with(jwks_url, 60)
}

fn repo_with(jwks_url: &str, min_refetch_secs: u64) -> PolicyRepo {
    PolicyRepo::with(
        &json!({
            "identity": {"oidc": {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "jwks_url": jwks_url,
                "algorithms": ["RS256"],
                "jwks_min_refetch_secs": min_refetch_secs,
            }},
            "servers": {"demo": {"command": "mcpgate", "args": ["demo-server"]}},
        }),
        POLICY,
    )
    .file(
        "principals.yaml",
        "groups:\n  finance: [carol@example.com]\n",
    )
}

/// `initialize` with `token`: the HTTP answer, and the session when it succeeded.
fn connect(gw: &Gateway, token: &str) -> (mcpgate_tests::http::Response, McpHttp) {
    let mut mcp = McpHttp::new(gw.addr(), "/mcp/demo");
    let auth = format!("Bearer {token}");
    let init = mcp.post_raw(
        initialize_request(1).to_string().as_bytes(),
        &[("Authorization", &auth)],
    );
    mcp.session = init.header("mcp-session-id").map(str::to_owned);
    (init, mcp)
}

fn write_note(gw: &Gateway, token: &str) -> Value {
    let (init, mcp) = connect(gw, token);
    assert_eq!(init.status, 200, "{init}\n{}", gw.log());
    let auth = format!("Bearer {token}");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    mcp.post_raw(note.to_string().as_bytes(), &[("Authorization", &auth)]);
    let call = rpc(
        2,
        "tools/call",
        json!({"name": "write_note", "arguments": {"name": "t", "text": "hello"}}),
    );
    let answer = mcp.post_raw(call.to_string().as_bytes(), &[("Authorization", &auth)]);
    answer
        .messages()
        .into_iter()
        .rfind(|m| m.get("id") == Some(&json!(2)))
        .unwrap_or_else(|| panic!("no answer: {answer}"))
}

#[test]
fn jwts_checked_against_keys_fetched_from_the_jwks_url() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = mint(dir.path());
    let jwks = std::fs::read(dir.path().join("jwks.json")).unwrap();
    let server = JwksServer::start(Arc::new(Mutex::new(jwks)));
    let repo = repo(&server.url);
    let gw = Gateway::start(&repo);
    let token = |name: &str| tokens[name].as_str().unwrap().to_owned();

    // The `groups` claim decides: finance may write; to a token without the group the tool
    // does not even exist (no rule could allow it).
    let allowed = write_note(&gw, &token("finance"));
    assert_eq!(
        allowed["result"]["isError"],
        false,
        "{allowed}\n{}",
        gw.log()
    );
    let denied = write_note(&gw, &token("plain"));
    assert_eq!(denied["error"]["code"], -32602, "{denied}");
    assert_eq!(
        denied["error"]["message"], "Unknown tool: write_note",
        "{denied}"
    );
    // principals.yaml adds carol to finance although her token names no group.
    let declared = write_note(&gw, &token("declared"));
    assert_eq!(declared["result"]["isError"], false, "{declared}");

    for bad in ["expired", "wrong_audience", "wrong_issuer", "foreign_key"] {
        let (init, _) = connect(&gw, &token(bad));
        assert_eq!(init.status, 401, "{bad}: {init}");
        let challenge = init.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{bad}: {challenge}"
        );
    }
    // Keys are cached: seven tokens checked, not seven fetches.
    let fetched = server.fetches.load(Ordering::SeqCst);
    assert!((1..=2).contains(&fetched), "{fetched} fetches");
}

#[test]
fn a_jwks_url_serving_garbage_lets_no_token_in() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = mint(dir.path());
    let server = JwksServer::start(Arc::new(Mutex::new(b"not json at all".to_vec())));
    let repo = repo(&server.url);
    let gw = Gateway::start(&repo);
    let (init, _) = connect(&gw, tokens["finance"].as_str().unwrap());
    assert_eq!(init.status, 401, "{init}\n{}", gw.log());
    assert!(server.fetches.load(Ordering::SeqCst) >= 1);
}

/// A key the provider publishes after the gateway fetched its JWKS: a token signed with it
/// makes the gateway fetch again, at most once per `jwks_min_refetch_secs`.
#[test]
fn a_rotated_key_is_fetched_once_its_kid_shows_up() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = mint(dir.path());
    let rotated = tokens["rotated"].as_str().unwrap();
    let first = std::fs::read(dir.path().join("jwks.json")).unwrap();
    let both = std::fs::read(dir.path().join("jwks_rotated.json")).unwrap();

    // No pause between fetches: the first token with the new kid brings the new key.
    let body = Arc::new(Mutex::new(first.clone()));
    let server = JwksServer::start(body.clone());
    let eager = repo_with(&server.url, 0);
    let gw = Gateway::start(&eager);
    let (init, _) = connect(&gw, tokens["finance"].as_str().unwrap());
    assert_eq!(init.status, 200, "{init}");
    let before = server.fetches.load(Ordering::SeqCst);
    *body.lock().unwrap() = both.clone();
    for _ in 0..3 {
        let (init, _) = connect(&gw, rotated);
        assert_eq!(init.status, 200, "{init}\n{}", gw.log());
    }
    let after = server.fetches.load(Ordering::SeqCst);
    assert_eq!(
        after,
        before + 1,
        "one fetch for the new kid, then it is known"
    );
    drop(gw);

    // The default pause: a flood of unknown kids right after a fetch fetches nothing more,
    // so the new key waits for the pause to end.
    let body = Arc::new(Mutex::new(first));
    let server = JwksServer::start(body.clone());
    let patient = repo(&server.url);
    let gw = Gateway::start(&patient);
    let (init, _) = connect(&gw, tokens["finance"].as_str().unwrap());
    assert_eq!(init.status, 200, "{init}");
    let before = server.fetches.load(Ordering::SeqCst);
    *body.lock().unwrap() = both;
    for _ in 0..5 {
        let (init, _) = connect(&gw, rotated);
        assert_eq!(init.status, 401, "{init}");
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), before);
}
