//! Signed downstream assertions end to end: the gateway signs each allowed call to a server
//! configured with `assertion`, publishes its keys at `/.well-known/jwks.json`, and the
//! example verifier (`examples/assertion-verifier`, a Python SDK server) runs calls whose
//! assertion checks out and refuses tampered, expired, other-audience, replayed, missing
//! ones and ones whose arguments changed. Tokens are captured from the header recorder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgate_tests::http::{self, McpHttp};
use mcpgate_tests::peers::{self, HttpPeer, result_text};
use mcpgate_tests::process::{self, Finished, Proc};
use mcpgate_tests::{Gateway, PolicyRepo, audit_log, paths};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const MASTER_KEY: &str = "4d636761746520617373657274696f6e20746573742d6b65792d303132333435";

/// The example verifier on a free loopback port.
struct Verifier {
    _proc: Proc,
    addr: std::net::SocketAddr,
    url: String,
}

fn start_verifier(jwks: &Path, log: &Path) -> Verifier {
    let script = paths::workspace_root().join("examples/assertion-verifier/server.py");
    let mut cmd = Command::new(paths::python());
    cmd.arg(script)
        .arg("--jwks")
        .arg(jwks)
        .arg("--log")
        .arg(log);
    let mut proc = Proc::spawn("assertion verifier", &mut cmd);
    let port = proc.output.wait_for(Duration::from_secs(90), |line| {
        line.strip_prefix("verifier listening on 127.0.0.1:")
            .and_then(|p| p.trim().parse::<u16>().ok())
    });
    let Some(port) = port else {
        proc.kill();
        panic!("the verifier did not start: {}", proc.output.text());
    };
    Verifier {
        _proc: proc,
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        url: format!("http://127.0.0.1:{port}/mcp"),
    }
}

fn mcpgate(state: &Path, args: &[&str]) -> Finished {
    let mut cmd = Command::new(paths::mcpgate_bin());
    cmd.args(args)
        .arg("--state")
        .arg(state)
        .env("MCPGATE_MASTER_KEY", MASTER_KEY)
        .env("NO_COLOR", "1");
    process::run("mcpgate", &mut cmd, b"", Duration::from_secs(60))
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The same token with one claim changed and the signature kept.
fn tampered(token: &str, key: &str, value: Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = claims(token);
    c[key] = value;
    let payload = URL_SAFE_NO_PAD.encode(c.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// The assertions the header recorder received, oldest first.
fn captured(record: &Path) -> Vec<String> {
    peers::recorded(record)
        .iter()
        .filter_map(|r| {
            r["headers"]["x-mcpgate-assertion"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

fn verifier_log(log: &Path) -> Vec<Value> {
    peers::recorded(log)
}

/// A `tools/call` of `echo` straight to the verifier, with `assertion` if any.
fn echo(client: &McpHttp, id: u64, text: &str, assertion: Option<&str>) -> Value {
    let body = http::rpc(
        id,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": text}}),
    );
    let extra: Vec<(&str, &str)> = assertion
        .map(|a| vec![("X-Mcpgate-Assertion", a)])
        .unwrap_or_default();
    let r = client.post_raw(body.to_string().as_bytes(), &extra);
    r.messages()
        .into_iter()
        .rfind(|m| m.get("id") == Some(&json!(id)))
        .unwrap_or_else(|| panic!("no answer: {r}"))
}

fn refusal(answer: &Value) -> String {
    answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not refused: {answer}"))
        .to_owned()
}

#[test]
fn the_verifier_accepts_the_gateways_assertions_and_refuses_altered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    let log = dir.path().join("verifier.jsonl");
    let record = dir.path().join("recorder.jsonl");
    let verifier = start_verifier(&jwks_file, &log);
    let recorder = HttpPeer::header_recorder(&record);
    let to_recorder = |assertion: Value| json!({"url": recorder.url, "assertion": assertion});
    let config = json!({
        "identity": {},
        "servers": {
            "ver": {"url": verifier.url, "assertion": {}},
            // Tokens for the verifier's audience, captured by the recorder to replay.
            "rec": to_recorder(json!({"audience": verifier.url})),
            "rec_short": to_recorder(json!({"audience": verifier.url, "ttl": "1s"})),
            "rec_other": to_recorder(json!({"audience": "https://elsewhere.example/mcp"})),
        }
    });
    let repo = PolicyRepo::with(
        &config,
        "allow ver.*, rec.echo, rec_short.echo, rec_other.echo;\n",
    );
    let gw = Gateway::start_with_env(&repo, &[], &[("MCPGATE_MASTER_KEY", MASTER_KEY)]);
    let state = gw.state().to_path_buf();
    let ada = gw.issue_token("ada@example.com", &[]);

    // The public keys: one Ed25519 key, nothing private.
    let get_jwks = || {
        let r = http::request(
            gw.addr(),
            "GET",
            "/.well-known/jwks.json",
            &[("Host", "127.0.0.1")],
            b"",
        );
        assert_eq!(r.status, 200, "{r}");
        let jwks = r.json();
        std::fs::write(&jwks_file, jwks.to_string()).unwrap();
        jwks
    };
    let jwks = get_jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(
        (keys[0]["kty"].as_str(), keys[0]["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert!(
        keys[0].get("d").is_none(),
        "a private key was published: {jwks}"
    );
    let first_kid = keys[0]["kid"].as_str().unwrap().to_owned();

    // Through the gateway (the Python SDK client): the verifier runs both calls.
    let steps = json!([
        {"op": "call_tool", "name": "ver__whoami", "arguments": {}},
        {"op": "call_tool", "name": "ver__echo", "arguments": {"text": "héllo \"world\"", "n": [1, 2]}},
        {"op": "call_tool", "name": "rec__echo", "arguments": {"text": "hi"}},
        {"op": "call_tool", "name": "rec_short__echo", "arguments": {"text": "hi"}},
        {"op": "call_tool", "name": "rec_other__echo", "arguments": {"text": "hi"}},
    ]);
    let target =
        json!({"url": gw.url("/mcp"), "headers": {"Authorization": format!("Bearer {ada}")}});
    let via = peers::py_client(target.clone(), steps);
    assert_eq!(result_text(peers::ok(&via, 0)), "ok", "{}", gw.log());
    assert_eq!(result_text(peers::ok(&via, 1)), "héllo \"world\"");
    let checked = verifier_log(&log);
    assert_eq!(checked.len(), 2, "{checked:?}");
    assert!(
        checked
            .iter()
            .all(|c| c["accepted"] == true && c["sub"] == "ada@example.com"),
        "{checked:?}"
    );

    // What an assertion says, and that the audit record has the same request id.
    let tokens = captured(&record);
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    let (good, short, other) = (&tokens[0], &tokens[1], &tokens[2]);
    let c = claims(good);
    assert_eq!(c["iss"], "mcpgate");
    assert_eq!(c["sub"], "ada@example.com");
    assert_eq!(
        (c["server"].as_str(), c["tool"].as_str()),
        (Some("rec"), Some("echo"))
    );
    assert_eq!(c["aud"], verifier.url);
    let hash: String = Sha256::digest(br#"{"text":"hi"}"#)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(c["args_sha256"], hash);
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 60);
    assert_eq!(
        claims(short)["exp"].as_u64().unwrap() - claims(short)["iat"].as_u64().unwrap(),
        1
    );
    let decision = audit_log::records(&state.join("audit"))
        .into_iter()
        .find(|r| r["type"] == "decision" && r["server"] == "rec")
        .unwrap();
    assert_eq!(c["jti"], decision["request_id"]);
    assert_eq!(c["rule"], decision["rule"]);
    assert_eq!(c["policy_hash"], decision["policy"]["hash"]);
    // The client's own credential never went upstream.
    for r in peers::recorded(&record) {
        if let Some(h) = r.get("headers") {
            assert!(h.get("authorization").is_none(), "{h}");
            assert!(
                !h.to_string().contains(&ada),
                "the client's token went upstream"
            );
        }
    }

    // Straight to the verifier: the captured assertion runs its own call once.
    let mut direct = McpHttp::new(verifier.addr, "/mcp");
    direct.initialize();
    let ran = echo(&direct, 2, "hi", Some(good));
    assert_eq!(ran["result"]["content"][0]["text"], "hi", "{ran}");
    let cases = [
        (echo(&direct, 3, "HI", Some(good)), "arguments do not match"),
        (echo(&direct, 4, "hi", Some(good)), "replayed"),
        (
            echo(
                &direct,
                5,
                "hi",
                Some(&tampered(good, "sub", json!("mallory"))),
            ),
            "bad assertion signature",
        ),
        (echo(&direct, 6, "hi", Some(other)), "another audience"),
        (echo(&direct, 7, "hi", None), "missing assertion"),
    ];
    for (answer, why) in &cases {
        let text = refusal(answer);
        assert!(text.contains(why), "expected `{why}`: {text}");
    }
    // The one-second assertion, once its second has passed.
    std::thread::sleep(Duration::from_millis(2100));
    let text = refusal(&echo(&direct, 8, "hi", Some(short)));
    assert!(text.contains("expired"), "{text}");

    // Rotation: a new key signs, the previous one stays published.
    let rotated = mcpgate(&state, &["assertions", "rotate-key", "--grace", "1h"]);
    assert_eq!(rotated.code(), 0, "{rotated}");
    let new_kid = rotated.stdout.trim().to_owned();
    assert_ne!(new_kid, first_kid);
    let jwks = get_jwks();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [new_kid.as_str(), first_kid.as_str()], "{jwks}");
    let listed = mcpgate(&state, &["assertions", "keys"]);
    assert!(
        listed.stdout.contains("active") && listed.stdout.contains("published until"),
        "{listed}"
    );
    let again = peers::py_client(
        target,
        json!([
            {"op": "call_tool", "name": "ver__whoami", "arguments": {}},
            {"op": "call_tool", "name": "rec__echo", "arguments": {"text": "after"}},
        ]),
    );
    assert_eq!(result_text(peers::ok(&again, 0)), "ok", "{}", gw.log());
    let latest = captured(&record).pop().unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(latest.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], new_kid.as_str());
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(verifier_log(&log).last().unwrap()["accepted"], true);
}

/// A call held for approval is signed when it is approved, and the verifier runs it.
#[test]
fn an_approved_call_carries_an_assertion_signed_when_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    let log = dir.path().join("verifier.jsonl");
    let verifier = start_verifier(&jwks_file, &log);
    let config = json!({
        "servers": {"ver": {"url": verifier.url, "assertion": {"ttl": "30s"}}},
        "approvals": {"timeout": "10m"},
    });
    let repo = PolicyRepo::with(&config, "@id(\"ask-ops\")\napprove ver.echo by \"ops\";\n");
    let gw = Gateway::start_with_env(&repo, &[], &[("MCPGATE_MASTER_KEY", MASTER_KEY)]);
    let r = http::request(
        gw.addr(),
        "GET",
        "/.well-known/jwks.json",
        &[("Host", "127.0.0.1")],
        b"",
    );
    std::fs::write(&jwks_file, r.json().to_string()).unwrap();

    let url = gw.url("/mcp/ver");
    let call = std::thread::spawn(move || {
        peers::py_client(
            json!({"url": url}),
            json!([{"op": "call_tool", "name": "echo", "arguments": {"text": "held"}, "timeout": 150}]),
        )
    });
    let state = gw.state().to_str().unwrap().to_owned();
    let approvals = |args: &[&str]| {
        let mut all = vec!["approvals"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--state", &state]);
        mcpgate_tests::cli::mcpgate(gw.state(), all)
    };
    let mut id = None;
    for _ in 0..600 {
        let listed = approvals(&["list", "--format", "json"]);
        let v: Value =
            serde_json::from_str(&listed.stdout).unwrap_or_else(|e| panic!("{e}: {listed}"));
        if let Some(a) = v["approvals"].as_array().and_then(|a| a.first()) {
            id = a["id"].as_str().map(str::to_owned);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let id = id.unwrap_or_else(|| panic!("no pending approval: {}", gw.log()));
    assert!(
        verifier_log(&log).is_empty(),
        "nothing reaches the server while held"
    );
    let out = approvals(&["approve", &id, "--as", "alice@example.com"]);
    assert_eq!(out.code(), 0, "{out}");
    let report = call.join().unwrap();
    assert_eq!(
        result_text(peers::ok(&report, 0)),
        "held",
        "{report}\n{}",
        gw.log()
    );
    let checked = verifier_log(&log);
    assert_eq!(checked.len(), 1, "{checked:?}");
    assert_eq!(checked[0]["accepted"], true, "{checked:?}");
    let decision = audit_log::records(&gw.state().join("audit"))
        .into_iter()
        .find(|r| r["type"] == "decision" && r["server"] == "ver")
        .unwrap();
    assert_eq!(checked[0]["jti"], decision["request_id"]);
}
