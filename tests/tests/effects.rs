//! Redaction and quotas end to end: `mcpgate serve` in front of the real `mcpgate
//! demo-server`, driven over Streamable HTTP. A secret the server returns never reaches the
//! client, whether the answer is one JSON body or an event stream; `limit` rules let `N`
//! calls through, then deny naming the limit, refill, and hold under concurrent clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::demo::{call, client, denied, text};
use mcpgate_tests::http::McpHttp;
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::json;
use std::time::{Duration, Instant};

const SECRET: &str = "sk_live_ABCDEFGH12345678";

const RULES: &str = r#"allow demo.echo, demo.add, demo.list_notes, demo.write_note, demo.read_note;
allow resource demo "note:///**";

@id("live-keys")
redact demo.*, resource demo "note:///**" result matching "sk_live_[A-Za-z0-9]{8,}";

@id("adds")
limit demo.add 5 per minute;

@id("notes-per-second")
limit demo.list_notes 2 per second;
"#;

fn gateway(rules: &str) -> (PolicyRepo, Gateway) {
    let config = json!({"servers": {"demo": {"command": "mcpgate", "args": ["demo-server"]}}});
    let repo = PolicyRepo::with(&config, rules);
    let gw = Gateway::start(&repo);
    (repo, gw)
}

#[test]
fn a_secret_in_a_result_never_reaches_the_client_as_json() {
    let (_repo, gw) = gateway(RULES);
    let c = client(&gw);
    let message = format!("the key is {SECRET}, keep it");
    let r = c.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": message}}}));
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{r}"
    );
    assert!(!r.text().contains("sk_live_"), "{r}");
    assert_eq!(text(&r.json()), "the key is [redacted], keep it");

    // Stored by one call, read back by another tool and as a resource: masked each time.
    let w = call(&c, 3, "write_note", json!({"name": "k", "text": SECRET}));
    assert!(!denied(&w), "{w}");
    let read = c.post(&json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "read_note", "arguments": {"name": "k"}}}));
    assert!(!read.text().contains("sk_live_"), "{read}");
    assert_eq!(text(&read.json()), "[redacted]");
    let res = c.post(
        &json!({"jsonrpc": "2.0", "id": 5, "method": "resources/read",
        "params": {"uri": "note:///k"}}),
    );
    assert!(!res.text().contains("sk_live_"), "{res}");
    assert_eq!(res.json()["result"]["contents"][0]["text"], "[redacted]");
    // Anything else passes unchanged.
    assert_eq!(
        text(&call(&c, 6, "echo", json!({"text": "sk_test_1"}))),
        "sk_test_1"
    );
}

#[test]
fn a_secret_in_a_streamed_result_never_reaches_the_client() {
    let (_repo, gw) = gateway(RULES);
    let c = client(&gw);
    // A progress token makes the server send a notification first: the gateway answers
    // with an event stream that carries it, then the result.
    let r = c.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": SECRET},
                   "_meta": {"progressToken": "p1"}}}));
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{r}"
    );
    let messages = r.messages();
    assert!(
        messages
            .iter()
            .any(|m| m["method"] == "notifications/progress"),
        "{r}"
    );
    assert!(!r.text().contains("sk_live_"), "{r}");
    assert_eq!(text(messages.last().unwrap()), "[redacted]");
}

#[test]
fn a_limit_lets_n_calls_through_then_denies_naming_itself() {
    let (_repo, gw) = gateway(RULES);
    let c = client(&gw);
    let mut outcomes = Vec::new();
    for i in 0..8 {
        outcomes.push(call(&c, 10 + i, "add", json!({"a": 1, "b": 2})));
    }
    let allowed = outcomes.iter().filter(|r| !denied(r)).count();
    // 5 per minute: one call refills every 12 s, far longer than these calls take.
    assert_eq!(allowed, 5, "{outcomes:?}");
    assert!(outcomes[..5].iter().all(|r| text(r) == "3"));
    let refusal = text(&outcomes[7]);
    assert!(refusal.contains("denied by limit adds"), "{refusal}");
    assert!(refusal.contains("5 per minute per principal"), "{refusal}");
    assert!(refusal.contains("retry in"), "{refusal}");
    // Other tools are not counted against it.
    assert_eq!(text(&call(&c, 30, "echo", json!({"text": "x"}))), "x");
}

#[test]
fn a_per_second_limit_refills() {
    let (_repo, gw) = gateway(RULES);
    let c = client(&gw);
    let mut id = 100;
    let mut next = |c: &McpHttp| {
        id += 1;
        call(c, id, "list_notes", json!({}))
    };
    // Call until the bucket is empty: at least the 2 it holds pass first.
    let mut passed = 0;
    let mut refusal = None;
    for _ in 0..50 {
        let r = next(&c);
        if denied(&r) {
            refusal = Some(text(&r));
            break;
        }
        passed += 1;
    }
    let refusal = refusal.expect("the limit never denied");
    assert!(passed >= 2, "only {passed} calls passed");
    assert!(refusal.contains("notes-per-second"), "{refusal}");
    // Within a bounded wait, calls pass again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if !denied(&next(&c)) {
            break;
        }
        assert!(Instant::now() < deadline, "the bucket never refilled");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn concurrent_clients_cannot_overshoot_a_limit() {
    let rules = "allow demo.add;\n@id(\"shared\") limit demo.add 50 per minute per server;\n";
    let (_repo, gw) = gateway(rules);
    let started = Instant::now();
    let counts: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let gw = &gw;
                s.spawn(move || {
                    let c = client(gw);
                    let (mut ok, mut refused) = (0, 0);
                    for i in 0..20 {
                        let r = call(&c, 1000 * t + i, "add", json!({"a": t, "b": i}));
                        if denied(&r) {
                            assert!(text(&r).contains("denied by limit shared"), "{r}");
                            refused += 1;
                        } else {
                            assert_eq!(r["result"]["isError"], json!(false), "{r}");
                            ok += 1;
                        }
                    }
                    (ok, refused)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let allowed: usize = counts.iter().map(|c| c.0).sum();
    let refused: usize = counts.iter().map(|c| c.1).sum();
    assert_eq!(allowed + refused, 160);
    // The bucket holds 50 and refills 50 per minute while the clients run: no more than
    // that passes, however the calls interleave.
    let refilled = (elapsed * 50.0 / 60.0).ceil() as usize;
    assert!(allowed >= 50, "only {allowed} allowed");
    assert!(
        allowed <= 50 + refilled,
        "{allowed} allowed in {elapsed:.1}s (at most {} expected)",
        50 + refilled
    );
}
