//! One request, one decision: what the verdict saw (the principal with its `principals.yaml`
//! groups, the pinned annotations under `lock: enforce`) is what redaction, limits, resource
//! updates and the audit record see. End to end with `mcpgate serve` in front of the real
//! `mcpgate demo-server` (and the Python SDK's dual-era server for updates); every decision
//! is then re-derived by `mcpgate audit verify`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::McpHttp;
use mcpgate_tests::peers::{self, ok};
use mcpgate_tests::{Gateway, PolicyRepo, audit_log, cli};
use serde_json::{Value, json};
use std::path::Path;

const SECRET: &str = "sk_live_ABCDEFGH12345678";

/// Contractors get live keys masked and two `add` calls a minute; members of no group get
/// neither. `contractors` membership comes only from `principals.yaml`.
const GROUP_POLICY: &str = r#"allow demo.echo, demo.add;

@id("contractor-keys")
redact demo.* result matching "sk_live_[A-Za-z0-9]{8,}" when "contractors" in principal.groups;

@id("contractor-adds")
limit demo.add 2 per minute when "contractors" in principal.groups;
"#;

const PRINCIPALS: &str = "groups:\n  contractors: [carol@example.com]\n";

fn demo() -> Value {
    json!({"command": "mcpgate", "args": ["demo-server"]})
}

fn text(response: &Value) -> String {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text result: {response}"))
        .to_owned()
}

fn call(c: &McpHttp, id: u64, name: &str, args: Value) -> Value {
    c.call(id, "tools/call", json!({"name": name, "arguments": args}))
}

fn client(gw: &Gateway, token: &str) -> McpHttp {
    let mut c = McpHttp::new(gw.addr(), "/mcp/demo").with_bearer(token);
    let r = c.initialize();
    assert_eq!(r.status, 200, "{r}");
    c
}

/// `mcpgate audit verify` of the gateway's log against the policy repository: every
/// decision re-derived. Returns how many were.
fn verify(gw: &Gateway, repo: &Path) -> String {
    let done = cli::mcpgate(
        Path::new("."),
        [
            "audit",
            "verify",
            "--state",
            gw.state().to_str().unwrap(),
            "--policy",
            repo.to_str().unwrap(),
        ],
    );
    let out = format!("{}{}", done.stdout, done.stderr);
    assert_eq!(done.code(), 0, "{out}");
    assert!(out.contains("verified"), "{out}");
    out
}

/// The decision records of `tool`, oldest first.
fn decisions(gw: &Gateway, tool: &str) -> Vec<Value> {
    audit_log::records(&gw.state().join("audit"))
        .into_iter()
        .filter(|r| r["type"] == "decision" && r["target"]["name"] == tool)
        .collect()
}

#[test]
fn a_group_from_principals_yaml_decides_redaction_and_limits_as_it_decides_the_verdict() {
    let repo = PolicyRepo::with(
        &json!({"identity": {}, "servers": {"demo": demo()}}),
        GROUP_POLICY,
    )
    .file("principals.yaml", PRINCIPALS);
    let mut gw = Gateway::start(&repo);
    let carol = client(&gw, &gw.issue_token("carol@example.com", &[]));
    let bob = client(&gw, &gw.issue_token("bob@example.com", &[]));
    let message = format!("the key is {SECRET}");

    // The mask applies to the contractor, by the group principals.yaml gives her...
    let r = call(&carol, 2, "echo", json!({"text": message}));
    assert_eq!(text(&r), "the key is [redacted]", "{r}");
    // ...and not to anyone else.
    let r = call(&bob, 2, "echo", json!({"text": message}));
    assert_eq!(text(&r), message, "{r}");

    // The contractor's limit counts her calls only.
    let carol_adds: Vec<Value> = (0..3)
        .map(|i| call(&carol, 10 + i, "add", json!({"a": 1, "b": 2})))
        .collect();
    assert_eq!(text(&carol_adds[0]), "3");
    assert_eq!(text(&carol_adds[1]), "3");
    assert_eq!(
        carol_adds[2]["result"]["isError"], true,
        "{}",
        carol_adds[2]
    );
    assert!(
        text(&carol_adds[2]).contains("denied by limit contractor-adds"),
        "{}",
        carol_adds[2]
    );
    for i in 0..3 {
        let r = call(&bob, 10 + i, "add", json!({"a": 1, "b": 2}));
        assert_eq!(text(&r), "3", "bob has no limit: {r}");
    }

    // The records show the principal the decision saw (with the group), and the
    // redaction the decision planned is what `audit verify` re-derives.
    gw.kill();
    let echoes = decisions(&gw, "echo");
    assert_eq!(echoes.len(), 2, "{echoes:?}");
    let groups = |r: &Value| r["principal"]["groups"].clone();
    assert_eq!(groups(&echoes[0]), json!(["contractors"]), "{}", echoes[0]);
    assert!(
        groups(&echoes[1])
            .as_array()
            .is_none_or(|g| g.iter().all(|x| x != "contractors")),
        "{}",
        echoes[1]
    );
    let out = verify(&gw, repo.path());
    assert!(out.contains("8 of 8 decisions re-evaluated"), "{out}");
}

/// Under `lock: enforce` the pinned annotations decide; a client that calls without
/// listing first has told the gateway nothing about the tool, and still the redaction
/// sees what the verdict saw.
const ANNOTATION_POLICY: &str = r#"allow demo.echo, demo.write_note;

@id("read-only-words")
redact demo.* result matching "wrote|written" when tool.read_only;
"#;

#[test]
fn a_pinned_annotation_decides_redaction_as_it_decides_the_verdict() {
    let repo = PolicyRepo::with(
        &json!({"servers": {"demo": {"command": "mcpgate", "args": ["demo-server"], "lock": "enforce"}}}),
        ANNOTATION_POLICY,
    );
    let pinned = cli::mcpgate(repo.path(), ["lock", "."]);
    assert_eq!(pinned.code(), 0, "{pinned}");
    let mut gw = Gateway::start(&repo);
    let mut c = McpHttp::new(gw.addr(), "/mcp/demo");
    c.initialize();

    // `echo` is pinned read-only: its result is masked.
    let r = call(&c, 2, "echo", json!({"text": "it was written"}));
    assert_eq!(text(&r), "it was [redacted]", "{r}");
    // `write_note` is pinned read_only = false: the rule does not apply, although the
    // session never listed the tool (its annotations are unknown to the session).
    let r = call(&c, 3, "write_note", json!({"name": "n", "text": "t"}));
    assert_eq!(text(&r), "wrote `n`", "{r}");

    gw.kill();
    let writes = decisions(&gw, "write_note");
    assert_eq!(writes.len(), 1);
    assert_eq!(
        writes[0]["annotations"]["read_only"], false,
        "{}",
        writes[0]
    );
    let out = verify(&gw, repo.path());
    assert!(out.contains("2 of 2 decisions re-evaluated"), "{out}");
}

/// A resource update is decided like a read by its subscriber, with the subscriber's
/// `principals.yaml` groups.
const UPDATES_POLICY: &str = r#"allow modern.touch;
allow resource modern "memo://open" when "contractors" in principal.groups;
allow resource modern "memo://note" when "auditors" in principal.groups;
"#;

#[test]
fn a_resource_update_is_decided_with_the_subscribers_groups() {
    let repo = PolicyRepo::with(
        &json!({"identity": {}, "servers": {"modern": peers::modern_stdio()}}),
        UPDATES_POLICY,
    )
    .file("principals.yaml", PRINCIPALS);
    let mut gw = Gateway::start(&repo);
    let carol = gw.issue_token("carol@example.com", &[]);
    let touch = |uri: &str| json!({"name": "touch", "arguments": {"uri": uri}});
    let report = peers::py_client_scenario(json!({
        "target": {"url": gw.url("/mcp/modern"),
                   "headers": {"Authorization": format!("Bearer {carol}")}},
        "mode": "2026-07-28",
        "steps": [{"op": "listen_resources", "uris": ["memo://open", "memo://note"],
            "calls": [touch("memo://note"), touch("memo://open")],
            "until": "memo://open", "timeout": 15}],
    }));
    let step = ok(&report, 0);
    // Carol is a contractor by principals.yaml, not an auditor.
    assert_eq!(
        step["honored"]["resourceSubscriptions"],
        json!(["memo://open"]),
        "{report}"
    );
    let heard: Vec<&str> = step["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "ResourceUpdated")
        .filter_map(|e| e["uri"].as_str())
        .collect();
    assert_eq!(heard, ["memo://open"], "{report}\n{}", gw.log());
    gw.kill();
    let out = verify(&gw, repo.path());
    // "N of N decisions re-evaluated", N > 0: principals.yaml is part of the program.
    let counts: Vec<&str> = out
        .split(" decisions re-evaluated")
        .next()
        .and_then(|head| head.rsplit(", ").next())
        .map(|c| c.split(" of ").collect())
        .unwrap_or_default();
    assert!(
        counts.len() == 2 && counts[0] == counts[1] && counts[0] != "0",
        "every decision re-derived: {out}"
    );
}
