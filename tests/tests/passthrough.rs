//! Upstream answers passed through: with the audit log off and no `redact` rule for a call,
//! the gateway relays a JSON answer with the client's id swapped in, without re-encoding the
//! rest; with the audit log on, the outcome record is read from the answer's top level. End
//! to end in front of the Python SDK's server answering `application/json`: the client gets
//! the same JSON whether the gateway passes the answer through (audit off or on) or parses
//! it (a `redact` rule that never matches), its own id back whatever its type, masks still
//! apply, and a passed-through answer's outcome record says what a parsed one's does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::McpHttp;
use mcpgate_tests::peers::HttpPeer;
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::{Value, json};

const SECRET: &str = "sk_live_ABCDEFGH12345678";

const RULES: &str = r#"allow rec.*;
deny rec.danger;

@id("live-keys")
redact rec.echo result matching "sk_live_[A-Za-z0-9]{8,}";
"#;

/// A rule for every tool that masks nothing, so that every answer is parsed and encoded
/// again instead of passed through.
const PARSE_ALL: &str = r#"
@id("parse-all")
redact rec.* result matching "zz-never-in-an-answer-zz";
"#;

fn gateway(upstream: &HttpPeer, audit: bool) -> (PolicyRepo, Gateway) {
    gateway_with(upstream, audit, "")
}

fn gateway_with(upstream: &HttpPeer, audit: bool, more: &str) -> (PolicyRepo, Gateway) {
    let config = json!({
        "servers": {"rec": {"url": upstream.url}},
        "audit": {"enabled": audit},
    });
    let repo = PolicyRepo::with(&config, &format!("{RULES}{more}"));
    let gw = Gateway::start(&repo);
    (repo, gw)
}

fn call(c: &McpHttp, id: Value, tool: &str, args: Value) -> (Value, Option<String>) {
    let r = c.post(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": args}}));
    assert_eq!(r.status, 200, "{r}");
    (r.json(), r.header("content-type").map(str::to_owned))
}

#[test]
fn answers_passed_through_match_parsed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = HttpPeer::header_recorder_json(&dir.path().join("record.jsonl"));
    let (_r1, off) = gateway(&upstream, false);
    let (_r2, on) = gateway(&upstream, true);
    let (_r3, parsing) = gateway_with(&upstream, true, PARSE_ALL);
    let mut fast = McpHttp::new(off.addr(), "/mcp/rec");
    fast.initialize();
    let mut audited = McpHttp::new(on.addr(), "/mcp/rec");
    audited.initialize();
    let mut parsed = McpHttp::new(parsing.addr(), "/mcp/rec");
    parsed.initialize();

    let cases = [
        (json!("call-1"), "whoami", json!({})),
        (json!(41), "echo", json!({"text": "héllo \"quoted\" \\ ☃"})),
        (
            json!(-7),
            "echo",
            json!({"text": format!("key {SECRET} here")}),
        ),
        (json!("x"), "danger", json!({"force": true})),
        (json!(0), "no_such_tool", json!({})),
        (json!(3.5), "whoami", json!({})),
    ];
    for (id, tool, args) in cases {
        let (a, a_type) = call(&fast, id.clone(), tool, args.clone());
        let (b, _) = call(&audited, id.clone(), tool, args.clone());
        let (c, _) = call(&parsed, id.clone(), tool, args);
        assert_eq!(a["id"], id, "{tool}: {a}");
        assert_eq!(a, b, "{tool}: audit off and audit on answer alike");
        assert_eq!(a, c, "{tool}: passed through and parsed answers alike");
        assert!(
            a_type
                .as_deref()
                .is_some_and(|t| t.starts_with("application/json")),
            "{tool}: {a_type:?}"
        );
        assert!(!a.to_string().contains("sk_live_"), "{tool}: {a}");
    }
    let (who, _) = call(&fast, json!("w"), "whoami", json!({}));
    assert_eq!(who["result"]["content"][0]["text"], "ok", "{who}");
    let (masked, _) = call(&fast, json!(8), "echo", json!({"text": SECRET}));
    assert_eq!(
        masked["result"]["content"][0]["text"], "[redacted]",
        "{masked}"
    );
    let (denied, _) = call(&fast, json!(9), "danger", json!({"force": true}));
    assert_eq!(denied["result"]["isError"], true, "{denied}");
    // The outcome records of the passed-through answers say what the parsed ones' do.
    let outcomes = |gw: &Gateway| -> Vec<(Value, Value)> {
        let dir = gw.state().join("audit");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("audit-"))
            })
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.trim_matches('\0').is_empty())
                    .map(|l| serde_json::from_str::<Value>(l.trim_matches('\0')).unwrap())
                    .collect::<Vec<_>>()
            })
            .filter(|r| r["type"] == "outcome")
            .map(|r| (r["status"].clone(), r["error"].clone()))
            .collect()
    };
    let (raw, parsed) = (outcomes(&on), outcomes(&parsing));
    assert_eq!(raw.len(), 5, "one outcome per forwarded call: {raw:?}");
    assert_eq!(raw, parsed);
    // `no_such_tool`: the SDK answers with a tool error.
    assert_eq!(raw[3].0, "tool_error", "{raw:?}");
    assert!(
        raw.iter().filter(|(s, _)| s == "ok").count() == 4,
        "{raw:?}"
    );
}

#[test]
fn many_calls_each_get_their_own_id_back() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = HttpPeer::header_recorder_json(&dir.path().join("record.jsonl"));
    let (_repo, gw) = gateway(&upstream, false);
    let mut c = McpHttp::new(gw.addr(), "/mcp/rec");
    c.initialize();
    for i in 0..20u64 {
        let id = if i % 2 == 0 {
            json!(i * 1000)
        } else {
            json!(format!("id-{i}"))
        };
        let (r, _) = call(&c, id.clone(), "echo", json!({"text": format!("n{i}")}));
        assert_eq!(r["id"], id, "{r}");
        assert_eq!(r["jsonrpc"], "2.0", "{r}");
        assert_eq!(r["result"]["content"][0]["text"], format!("n{i}"), "{r}");
    }
}
