//! Per-person identity end to end: tokens issued and revoked with the real CLI against the
//! state database of a running gateway, the 401/403 answers of a protected resource, token
//! scopes, group membership from `principals.yaml`, and the client's credential never
//! reaching an upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::{self, McpHttp, initialize_request};
use mcpgate_tests::{Gateway, PolicyRepo, cli};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const POLICY: &str = r#"allow demo.list_notes, demo.read_note;
allow demo.write_note when "finance" in principal.groups;
allow other.*;
"#;

const PRINCIPALS: &str = "groups:\n  finance: [carol@example.com]\n";

const TESTS: &str = r#"tests:
  - name: carol writes notes, as principals.yaml puts her in finance
    principal: { id: carol@example.com, kind: human }
    call: demo.write_note
    expect: allow
  - name: bob does not
    principal: { id: bob@example.com, kind: human }
    call: demo.write_note
    expect: deny
  - name: anyone reads
    call: demo.read_note
    expect: allow
  - name: other is open
    call: other.list_notes
    expect: allow
"#;

fn demo() -> Value {
    json!({"command": "mcpgate", "args": ["demo-server"]})
}

fn repo() -> PolicyRepo {
    PolicyRepo::with(
        &json!({"identity": {}, "servers": {"demo": demo(), "other": demo()}}),
        POLICY,
    )
    .file("principals.yaml", PRINCIPALS)
    .file("tests/identity.yaml", TESTS)
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("not a tools/list result: {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of `tools/list` (the aggregated endpoint serves one upstream per page).
fn all_tools(client: &McpHttp) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for id in 100..120 {
        let params = cursor.map_or_else(|| json!({}), |c| json!({"cursor": c}));
        let page = client.call(id, "tools/list", params);
        names.extend(tool_names(&page));
        cursor = page["result"]["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return names;
        }
    }
    panic!("tools/list did not end within 20 pages");
}

fn write_note(client: &McpHttp, id: u64) -> Value {
    client.call(
        id,
        "tools/call",
        json!({"name": "write_note", "arguments": {"name": "n", "text": "t"}}),
    )
}

#[test]
fn tokens_scopes_groups_and_revocation_through_the_gateway() {
    let repo = repo();
    let done = cli::mcpgate(repo.path(), ["test", "."]);
    assert_eq!(done.code(), 0, "policy tests see principals.yaml:\n{done}");

    let gw = Gateway::start(&repo);

    // No token: 401 naming the resource metadata, without `error=` (nothing was presented).
    let anonymous = McpHttp::new(gw.addr(), "/mcp/demo");
    let r = anonymous.post(&initialize_request(1));
    assert_eq!(r.status, 401, "{r}");
    let challenge = r.header("www-authenticate").unwrap().to_owned();
    let metadata_url = format!(
        "http://{}/.well-known/oauth-protected-resource/mcp/demo",
        gw.addr()
    );
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{metadata_url}\"")
    );

    // A made-up token: 401 with `error="invalid_token"`.
    let forged = McpHttp::new(gw.addr(), "/mcp/demo")
        .with_bearer("mcpg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let r = forged.post(&initialize_request(1));
    assert_eq!(r.status, 401, "{r}");
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\""),
        "{r}"
    );

    // The metadata document (RFC 9728), at the path-inserted well-known URL.
    let meta = http::request(
        gw.addr(),
        "GET",
        "/.well-known/oauth-protected-resource/mcp/demo",
        &[],
        b"",
    );
    assert_eq!(meta.status, 200, "{meta}");
    assert_eq!(
        meta.json()["resource"],
        format!("http://{}/mcp/demo", gw.addr())
    );

    // Carol: scoped to `demo`; in `finance` only through principals.yaml.
    let carol_token = gw.issue_token("carol@example.com", &["--servers", "demo", "--ttl", "1h"]);
    let mut carol = McpHttp::new(gw.addr(), "/mcp/demo").with_bearer(&carol_token);
    carol.initialize();
    let tools = tool_names(&carol.call(2, "tools/list", json!({})));
    assert!(tools.contains(&"write_note".to_owned()), "{tools:?}");
    let wrote = write_note(&carol, 3);
    assert_eq!(
        wrote["result"]["content"][0]["text"], "wrote `n`",
        "{wrote}"
    );

    // Bob: no group, so `write_note` is neither listed nor callable.
    let bob_token = gw.issue_token("bob@example.com", &["--groups", "engineering"]);
    let mut bob = McpHttp::new(gw.addr(), "/mcp/demo").with_bearer(&bob_token);
    bob.initialize();
    let tools = tool_names(&bob.call(2, "tools/list", json!({})));
    assert!(!tools.contains(&"write_note".to_owned()), "{tools:?}");
    let refused = write_note(&bob, 3);
    assert!(
        refused.get("error").is_some() || refused["result"]["isError"] == json!(true),
        "{refused}"
    );

    // Bob presenting Carol's session id does not find it.
    let stolen = McpHttp {
        addr: gw.addr(),
        path: "/mcp/demo".into(),
        session: carol.session.clone(),
        bearer: bob.bearer.clone(),
    };
    let r = stolen.post(&http::rpc(4, "tools/list", json!({})));
    assert_eq!(r.status, 404, "{r}");

    // Carol's scope: `other` is refused with 403, and left out of the aggregated endpoint
    // even though the policy allows it.
    let r = McpHttp::new(gw.addr(), "/mcp/other")
        .with_bearer(&carol_token)
        .post(&initialize_request(1));
    assert_eq!(r.status, 403, "{r}");
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope"),
        "{r}"
    );
    let mut carol_all = McpHttp::new(gw.addr(), "/mcp").with_bearer(&carol_token);
    carol_all.initialize();
    let tools = all_tools(&carol_all);
    assert!(tools.iter().all(|t| t.starts_with("demo__")), "{tools:?}");
    assert!(tools.contains(&"demo__read_note".to_owned()), "{tools:?}");
    let mut bob_all = McpHttp::new(gw.addr(), "/mcp").with_bearer(&bob_token);
    bob_all.initialize();
    let tools = all_tools(&bob_all);
    assert!(tools.iter().any(|t| t.starts_with("other__")), "{tools:?}");

    // The listing shows the consent record, never the secret.
    let state = gw.state().to_str().unwrap().to_owned();
    let listed = cli::mcpgate(
        gw.state(),
        ["token", "list", "--format", "json", "--state", &state],
    );
    assert_eq!(listed.code(), 0, "{listed}");
    assert!(!listed.stdout.contains(&carol_token), "{listed}");
    let records: Value = serde_json::from_str(&listed.stdout).unwrap();
    let carol_id = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subject"] == "carol@example.com")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .unwrap();

    // Revoked by another process mid-session: the very next request is refused, on POST,
    // GET and DELETE alike; Bob is unaffected.
    let revoked = cli::mcpgate(
        gw.state(),
        ["token", "revoke", carol_id.as_str(), "--state", &state],
    );
    assert_eq!(revoked.code(), 0, "{revoked}");
    let r = carol.post(&http::rpc(5, "tools/list", json!({})));
    assert_eq!(r.status, 401, "{r}");
    assert!(
        r.header("www-authenticate").unwrap().contains("revoked"),
        "{r}"
    );
    let mut get_headers = vec![
        ("Accept", "text/event-stream"),
        ("Mcp-Session-Id", carol.session.as_deref().unwrap()),
    ];
    let auth = carol.bearer.clone().unwrap();
    get_headers.push(("Authorization", auth.as_str()));
    let r = http::request(gw.addr(), "GET", "/mcp/demo", &get_headers, b"");
    assert_eq!(r.status, 401, "{r}");
    assert_eq!(carol.delete().status, 401);
    let still = bob.call(6, "tools/list", json!({}));
    assert!(still.get("result").is_some(), "{still}");

    // Revoking by subject ends every token of that person.
    let bob2 = gw.issue_token("bob@example.com", &[]);
    let all = cli::mcpgate(
        gw.state(),
        [
            "token",
            "revoke",
            "--subject",
            "bob@example.com",
            "--state",
            &state,
        ],
    );
    assert_eq!(all.code(), 0, "{all}");
    assert!(all.stdout.contains("revoked 2 tokens"), "{all}");
    let r = McpHttp::new(gw.addr(), "/mcp/demo")
        .with_bearer(&bob2)
        .post(&initialize_request(1));
    assert_eq!(r.status, 401, "{r}");

    // No token appears in the gateway's log.
    let log = gw.log();
    for t in [&carol_token, &bob_token, &bob2] {
        assert!(!log.contains(t.as_str()), "a token was logged");
    }
}

/// A loopback HTTP upstream that records each request head and answers `initialize`.
struct Recorder {
    addr: std::net::SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            // Bounded: a handful of connections is all one initialize makes.
            for stream in listener.incoming().take(8) {
                let Ok(mut s) = stream else { continue };
                s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut buf = vec![0u8; 65536];
                let n = s.read(&mut buf).unwrap_or(0);
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let body = json!({"jsonrpc": "2.0", "id": 0, "result": {
                    "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                    "serverInfo": {"name": "recorder", "version": "1"}}})
                .to_string();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes());
            }
        });
        Recorder { addr, heads }
    }
}

#[test]
fn the_clients_token_never_reaches_the_upstream() {
    let up = Recorder::start();
    let repo = PolicyRepo::with(
        &json!({"identity": {}, "servers": {"rec": {
            "url": format!("http://{}/mcp", up.addr),
            "headers": {"X-Gateway": "configured"},
            "timeout_secs": 10
        }}}),
        "allow rec.*;\n",
    );
    let gw = Gateway::start(&repo);
    let token = gw.issue_token("dana@example.com", &[]);
    let mut client = McpHttp::new(gw.addr(), "/mcp/rec").with_bearer(&token);
    client.initialize();
    let heads = up.heads.lock().unwrap().clone();
    assert!(!heads.is_empty(), "the upstream saw no request");
    for head in &heads {
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("x-gateway: configured"), "{head}");
        assert!(!lower.contains("authorization"), "forwarded: {head}");
        assert!(!head.contains(&token), "the token went upstream");
    }
}

/// `/status` and `/metrics` name upstreams, the policy commit and held tools: with identity
/// on they need a credential (and, with `status_groups`, membership of a group).
#[test]
fn status_and_metrics_need_a_credential_when_identity_is_on() {
    let get = |gw: &Gateway, path: &str, token: Option<&str>| {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Host", "127.0.0.1")];
        if let Some(b) = &bearer {
            headers.push(("Authorization", b.as_str()));
        }
        http::request(gw.addr(), "GET", path, &headers, b"")
    };
    // Identity on, no setting: any valid credential reads them, nobody else.
    let open_repo = repo();
    let gw = Gateway::start(&open_repo);
    let token = gw.issue_token("bob@example.com", &[]);
    for path in ["/status", "/metrics"] {
        let anonymous = get(&gw, path, None);
        assert_eq!(anonymous.status, 401, "{path}: {anonymous:?}");
        assert!(
            anonymous
                .header("www-authenticate")
                .is_some_and(|h| h.contains("resource_metadata")),
            "{anonymous:?}"
        );
        assert_eq!(get(&gw, path, Some("mcpg_not-a-token")).status, 401);
        assert_eq!(get(&gw, path, Some(&token)).status, 200, "{path}");
    }
    assert_eq!(get(&gw, "/healthz", None).status, 200);
    drop(gw);

    // Only the `finance` group: carol is in it through principals.yaml, bob is not.
    let grouped = PolicyRepo::with(
        &json!({
            "identity": {},
            "gateway": {"status_groups": ["finance"]},
            "servers": {"demo": demo(), "other": demo()},
        }),
        POLICY,
    )
    .file("principals.yaml", PRINCIPALS)
    .file("tests/identity.yaml", TESTS);
    let gw = Gateway::start(&grouped);
    let bob = gw.issue_token("bob@example.com", &[]);
    let carol = gw.issue_token("carol@example.com", &[]);
    assert_eq!(get(&gw, "/status", Some(&bob)).status, 403);
    let status = get(&gw, "/status", Some(&carol));
    assert_eq!(status.status, 200);
    let body: Value = serde_json::from_slice(&status.body).unwrap();
    assert!(
        body["upstreams"].as_array().is_some_and(|u| !u.is_empty()),
        "{body}"
    );
    drop(gw);

    // `open` keeps them readable by anyone, identity or not.
    let open = PolicyRepo::with(
        &json!({
            "identity": {},
            "gateway": {"status_access": "open"},
            "servers": {"demo": demo(), "other": demo()},
        }),
        POLICY,
    )
    .file("principals.yaml", PRINCIPALS)
    .file("tests/identity.yaml", TESTS);
    let gw = Gateway::start(&open);
    assert_eq!(get(&gw, "/status", None).status, 200);
    assert_eq!(get(&gw, "/metrics", None).status, 200);
}
