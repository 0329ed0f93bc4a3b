//! Delegated agent sessions end to end: a person's token opens a delegation with the real
//! CLI and over `POST /delegations`; the Python SDK client calls through the gateway with
//! the agent's token to a Python SDK server; the policy sees `principal.on_behalf_of` and
//! `delegation.reason`; expiry and the person's revocation end the agent's access; the
//! audit log names person, agent and reason, and `audit query --on-behalf-of` finds them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::{self, McpHttp, initialize_request, initialize_request_as};
use mcpgate_tests::peers::{self, result_text, tool_names};
use mcpgate_tests::process::{self, Finished};
use mcpgate_tests::{Gateway, PolicyRepo, audit_log, cli, paths};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const POLICY: &str = r#"allow rec.whoami, rec.get_me, rec.env_names when "eng" in principal.groups;

@id("night-shift")
deny rec.* when principal.on_behalf_of == "ada@example.com" && delegation.reason starts_with "NIGHT"
    because "no agent work on night tickets";
"#;

const TESTS: &str = r#"tests:
  - name: ada's agent is refused on night tickets
    principal: { id: mcpgate-e2e, kind: agent, groups: [eng], attrs: { on_behalf_of: ada@example.com, delegation: { reason: NIGHT-1 } } }
    call: rec.whoami
    expect: deny
    rule: night-shift
  - name: ada's agent works on day tickets
    principal: { id: mcpgate-e2e, kind: agent, groups: [eng], attrs: { on_behalf_of: ada@example.com, delegation: { reason: TICKET-1 } } }
    call: rec.whoami
    expect: allow
  - name: danger is for nobody
    principal: { id: ada@example.com, kind: human, groups: [eng] }
    call: rec.danger
    expect: deny
"#;

const AGENT: &str = "mcpgate-e2e";

fn repo(record: &Path) -> PolicyRepo {
    PolicyRepo::with(
        &json!({"identity": {}, "servers": {"rec": peers::header_recorder_stdio(record)}}),
        POLICY,
    )
    .file("tests/delegation.yaml", TESTS)
}

/// `mcpgate delegate create` as the holder of `token` (in `MCPGATE_TOKEN`).
fn delegate(
    gw: &Gateway,
    policy: &Path,
    token: &str,
    tools: &str,
    ttl: &str,
    reason: &str,
) -> Finished {
    let mut cmd = Command::new(paths::mcpgate_bin());
    cmd.args([
        "delegate", "create", "--agent", AGENT, "--tools", tools, "--ttl", ttl,
    ])
    .args(["--reason", reason, "--dir"])
    .arg(policy)
    .arg("--state")
    .arg(gw.state())
    .env("MCPGATE_TOKEN", token)
    .env("NO_COLOR", "1");
    process::run("mcpgate delegate", &mut cmd, b"", Duration::from_secs(60))
}

fn agent_token(done: &Finished) -> String {
    assert_eq!(done.code(), 0, "delegate create failed:\n{done}");
    let token = done.stdout.trim().to_owned();
    assert!(
        token.starts_with("mcpgd_"),
        "not a delegation token: {done}"
    );
    token
}

fn token_id(gw: &Gateway, subject: &str) -> String {
    let state = gw.state().to_str().unwrap();
    let listed = cli::mcpgate(
        gw.state(),
        ["token", "list", "--format", "json", "--state", state],
    );
    let records: Value = serde_json::from_str(&listed.stdout).unwrap();
    records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subject"] == subject)
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .unwrap()
}

fn through(gw: &Gateway, token: &str, steps: Value) -> Value {
    peers::py_client(
        json!({"url": gw.url("/mcp/rec"), "headers": {"Authorization": format!("Bearer {token}")}}),
        steps,
    )
}

fn refused(step: &Value) -> String {
    if let Some(e) = step.get("error") {
        return e.to_string();
    }
    assert_eq!(step["ok"]["isError"], json!(true), "not refused: {step}");
    result_text(&step["ok"])
}

#[test]
fn a_delegation_narrower_than_its_person_is_enforced_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("calls.jsonl");
    let repo = repo(&record);
    let check = cli::mcpgate(repo.path(), ["check", "."]);
    assert_eq!(
        check.code(),
        0,
        "the policy and its delegation tests pass:\n{check}"
    );
    let gw = Gateway::start(&repo);
    let ada = gw.issue_token("ada@example.com", &["--groups", "eng", "--ttl", "1h"]);
    let bob = gw.issue_token("bob@example.com", &[]);

    // Wider than Ada: `danger` is allowed to nobody; Bob may call nothing at all.
    let wide = delegate(
        &gw,
        repo.path(),
        &ada,
        "rec.get_me,rec.danger",
        "10m",
        "TICKET-42",
    );
    assert_eq!(wide.code(), 1, "{wide}");
    assert!(
        wide.stderr
            .contains("wider than what `ada@example.com` may do")
            && wide.stderr.contains("rec.danger")
            && !wide.stderr.contains("rec.get_me"),
        "{wide}"
    );
    let bobs = delegate(&gw, repo.path(), &bob, "rec.get_me", "10m", "TICKET-42");
    assert_eq!(bobs.code(), 1, "{bobs}");
    let no_token = delegate(&gw, repo.path(), "", "rec.get_me", "10m", "TICKET-42");
    assert_eq!(no_token.code(), 2, "{no_token}");
    assert!(no_token.stderr.contains("MCPGATE_TOKEN"), "{no_token}");

    // Narrower than Ada: `get_me` only, though she may also call `whoami`.
    let agent = agent_token(&delegate(
        &gw,
        repo.path(),
        &ada,
        "rec.get_me",
        "10m",
        "TICKET-42 triage",
    ));
    let via = through(
        &gw,
        &agent,
        json!([
            {"op": "list_tools"},
            {"op": "call_tool", "name": "get_me", "arguments": {}},
            {"op": "call_tool", "name": "whoami", "arguments": {}},
        ]),
    );
    assert_eq!(tool_names(peers::ok(&via, 0)), ["get_me"], "{}", gw.log());
    assert_eq!(result_text(peers::ok(&via, 1)), "ok");
    let out_of_scope = refused(&peers::results(&via)[2]);
    assert!(
        out_of_scope.contains("outside delegation"),
        "{out_of_scope}"
    );

    // Ada herself still calls `whoami`.
    let hers = through(
        &gw,
        &ada,
        json!([{"op": "call_tool", "name": "whoami", "arguments": {}}]),
    );
    assert_eq!(result_text(peers::ok(&hers, 0)), "ok");

    // Over HTTP: the policy reads `delegation.reason` and refuses a night ticket.
    let post = |token: Option<&str>, body: Value| {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Host", "127.0.0.1"), ("Content-Type", "application/json")];
        if let Some(b) = &bearer {
            headers.push(("Authorization", b.as_str()));
        }
        http::request(
            gw.addr(),
            "POST",
            "/delegations",
            &headers,
            body.to_string().as_bytes(),
        )
    };
    let night = post(
        Some(&ada),
        json!({"agent": AGENT, "tools": ["rec.whoami"], "ttl": "10m", "reason": "NIGHT-7"}),
    );
    assert_eq!(night.status, 201, "{night}");
    let night_token = night.json()["token"].as_str().unwrap().to_owned();
    let at_night = through(
        &gw,
        &night_token,
        json!([{"op": "call_tool", "name": "whoami", "arguments": {}}]),
    );
    let text = refused(&peers::results(&at_night)[0]);
    assert!(
        text.contains("night-shift") && text.contains("no agent work"),
        "{text}"
    );
    let too_wide = post(
        Some(&ada),
        json!({"agent": AGENT, "tools": ["rec.danger"], "ttl": "10m", "reason": "x"}),
    );
    assert_eq!(too_wide.status, 403, "{too_wide}");
    assert!(
        too_wide.json()["error"]
            .as_str()
            .unwrap()
            .contains("rec.danger"),
        "{too_wide}"
    );
    assert_eq!(post(None, json!({})).status, 401);
    let chained = post(
        Some(&agent),
        json!({"agent": "other", "tools": ["rec.get_me"], "ttl": "10m", "reason": "x"}),
    );
    assert_eq!(
        chained.status, 403,
        "an agent cannot delegate further: {chained}"
    );

    // The delegation is for one agent: a client that calls itself otherwise is refused at
    // `initialize`, and opens no session.
    let as_named = |name: &str| {
        McpHttp::new(gw.addr(), "/mcp/rec")
            .with_bearer(&night_token)
            .post(&initialize_request_as(1, name))
    };
    let other = as_named("another-agent");
    let text = other.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        text.contains(&format!("for the agent `{AGENT}`")) && text.contains("`another-agent`"),
        "{other}"
    );
    assert!(other.header("mcp-session-id").is_none(), "{other}");
    let named = as_named(AGENT);
    assert!(named.json()["result"]["serverInfo"].is_object(), "{named}");
    // A stateless (2026-07-28) client is checked on each request, by its `_meta` clientInfo.
    let stateless = |name: &str| {
        let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}, "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": name, "version": "1"}}}});
        McpHttp::new(gw.addr(), "/mcp/rec")
            .with_bearer(&night_token)
            .post_raw(
                call.to_string().as_bytes(),
                &[
                    ("MCP-Protocol-Version", "2026-07-28"),
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "whoami"),
                ],
            )
            .json()
    };
    let other = stateless("another-agent");
    assert!(
        other["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("for the agent `{AGENT}`"))),
        "{other}"
    );
    // The agent's own name passes the check; the policy then refuses the night ticket.
    let own = stateless(AGENT);
    assert_eq!(own["result"]["isError"], json!(true), "{own}");
    assert!(
        result_text(&own["result"]).contains("no agent work"),
        "{own}"
    );

    // Only its person ends a delegation over HTTP; its agent's next call gets 401.
    let night_id = night.json()["id"].as_str().unwrap().to_owned();
    let delete = |token: &str| {
        let bearer = format!("Bearer {token}");
        let headers = [("Host", "127.0.0.1"), ("Authorization", bearer.as_str())];
        http::request(
            gw.addr(),
            "DELETE",
            &format!("/delegations/{night_id}"),
            &headers,
            b"",
        )
    };
    assert_eq!(delete(&bob).status, 404, "Bob cannot end Ada's delegation");
    assert_eq!(delete(&ada).status, 200);
    let r = McpHttp::new(gw.addr(), "/mcp/rec")
        .with_bearer(&night_token)
        .post(&initialize_request(1));
    assert_eq!(r.status, 401, "{r}");

    // Only `get_me` (the agent's) and `whoami` (Ada's own) reached the server.
    let calls: Vec<String> = peers::recorded(&record)
        .iter()
        .filter_map(|r| r["tool"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(calls, ["get_me", "whoami"], "{calls:?}");

    // The audit log names person, agent, delegation and reason on the agent's decisions.
    let records = audit_log::records(&gw.state().join("audit"));
    let ada_agent: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "decision" && r["on_behalf_of"] == "ada@example.com")
        .collect();
    let summary: Vec<(String, String, String)> = ada_agent
        .iter()
        .map(|r| {
            assert_eq!(r["principal"]["id"], AGENT, "{r}");
            assert_eq!(r["agent"], AGENT, "{r}");
            assert!(
                r["delegation"]["id"].as_str().unwrap().starts_with("dlg_"),
                "{r}"
            );
            (
                r["target"]["name"].as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
                r["delegation"]["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = |t: &str, a: &str, why: &str| (t.to_owned(), a.to_owned(), why.to_owned());
    assert_eq!(
        summary,
        [
            expect("get_me", "forward", "TICKET-42 triage"),
            expect("whoami", "deny", "TICKET-42 triage"),
            expect("whoami", "deny", "NIGHT-7"),
            // The stateless call under the agent's own name; the one under another name
            // was refused before any decision.
            expect("whoami", "deny", "NIGHT-7"),
        ],
        "{ada_agent:?}"
    );
    assert_eq!(ada_agent[1]["gate"], "delegation", "{}", ada_agent[1]);
    let events: Vec<(&str, &Value)> = records
        .iter()
        .filter(|r| r["type"] == "event")
        .filter_map(|r| Some((r["event"].as_str()?, &r["data"])))
        .filter(|(e, _)| e.starts_with("delegation."))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, "delegation.created");
    assert_eq!(events[0].1["reason"], "NIGHT-7");
    assert_eq!(events[0].1["person"], "ada@example.com");
    assert_eq!(events[1].0, "delegation.revoked");
    assert_eq!(events[1].1["by"], "ada@example.com");
    assert_eq!(ada_agent[2]["rule"], "night-shift", "{}", ada_agent[2]);
    let state = gw.state().to_str().unwrap().to_owned();
    let query = cli::mcpgate(
        gw.state(),
        [
            "audit",
            "query",
            "--state",
            &state,
            "--on-behalf-of",
            "ada@example.com",
            "--type",
            "decision",
        ],
    );
    assert_eq!(query.code(), 0, "{query}");
    let lines: Vec<&str> = query.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{query}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!("decision {AGENT} rec."))
                && l.contains("for=ada@example.com")),
        "{query}"
    );
    assert!(lines[0].contains("reason=\"TICKET-42 triage\""), "{query}");
    let nobody = cli::mcpgate(
        gw.state(),
        [
            "audit",
            "query",
            "--state",
            &state,
            "--on-behalf-of",
            "bob@example.com",
        ],
    );
    assert_eq!(nobody.stdout.trim(), "", "{nobody}");
    let policy = repo.path().to_str().unwrap().to_owned();
    let verify = cli::mcpgate(
        gw.state(),
        ["audit", "verify", "--state", &state, "--policy", &policy],
    );
    assert_eq!(verify.code(), 0, "{verify}");
    assert!(verify.stdout.contains("verified"), "{verify}");
    let log = gw.log();
    for t in [&ada, &bob, &agent, &night_token] {
        assert!(!log.contains(t.as_str()), "a token was logged");
    }
}

#[test]
fn expiry_and_the_persons_revocation_end_the_agents_access() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(&dir.path().join("calls.jsonl"));
    let gw = Gateway::start(&repo);
    let ada = gw.issue_token("ada@example.com", &["--groups", "eng", "--ttl", "1h"]);
    let carol = gw.issue_token("carol@example.com", &["--groups", "eng", "--ttl", "1h"]);
    let get_me = |client: &McpHttp, id: u64| {
        client.call(id, "tools/call", json!({"name": "get_me", "arguments": {}}))
    };

    // A delegation of one second is refused once that second has passed.
    let brief = agent_token(&delegate(
        &gw,
        repo.path(),
        &ada,
        "rec.get_me",
        "1s",
        "TICKET-1",
    ));
    std::thread::sleep(Duration::from_millis(1500));
    let r = McpHttp::new(gw.addr(), "/mcp/rec")
        .with_bearer(&brief)
        .post(&initialize_request(1));
    assert_eq!(r.status, 401, "{r}");
    assert!(
        r.header("www-authenticate").unwrap().contains("expired"),
        "{r}"
    );

    // Working agents of Ada and Carol.
    let adas = agent_token(&delegate(
        &gw,
        repo.path(),
        &ada,
        "rec.get_me",
        "10m",
        "TICKET-2",
    ));
    let carols = agent_token(&delegate(
        &gw,
        repo.path(),
        &carol,
        "rec.get_me",
        "10m",
        "TICKET-3",
    ));
    let mut ada_agent = McpHttp::new(gw.addr(), "/mcp/rec").with_bearer(&adas);
    ada_agent.initialize_as(AGENT);
    let mut carol_agent = McpHttp::new(gw.addr(), "/mcp/rec").with_bearer(&carols);
    carol_agent.initialize_as(AGENT);
    assert_eq!(get_me(&ada_agent, 2)["result"]["content"][0]["text"], "ok");
    assert_eq!(
        get_me(&carol_agent, 2)["result"]["content"][0]["text"],
        "ok"
    );

    // Revoking Ada's token (another process) stops her agent on its next request.
    let state = gw.state().to_str().unwrap().to_owned();
    let id = token_id(&gw, "ada@example.com");
    let revoked = cli::mcpgate(
        gw.state(),
        ["token", "revoke", id.as_str(), "--state", &state],
    );
    assert_eq!(revoked.code(), 0, "{revoked}");
    let r = ada_agent.post(&http::rpc(
        3,
        "tools/call",
        json!({"name": "get_me", "arguments": {}}),
    ));
    assert_eq!(r.status, 401, "{r}");
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("no longer valid"),
        "{r}"
    );
    assert_eq!(
        get_me(&carol_agent, 3)["result"]["content"][0]["text"],
        "ok"
    );
    let listed = cli::mcpgate(gw.state(), ["delegate", "list", "--state", &state]);
    let ada_line = listed
        .stdout
        .lines()
        .find(|l| l.contains("for ada@example.com") && l.contains("TICKET-2"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(ada_line.contains(" ended "), "{listed}");

    // Revoking one delegation by id (the responders' API does the same) stops that agent.
    let listed = cli::mcpgate(
        gw.state(),
        ["delegate", "list", "--format", "json", "--state", &state],
    );
    let all: Value = serde_json::from_str(&listed.stdout).unwrap();
    let carol_dlg = all
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["person"] == "carol@example.com")
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(!listed.stdout.contains(&carols), "a token was listed");
    let done = cli::mcpgate(
        gw.state(),
        ["delegate", "revoke", carol_dlg.as_str(), "--state", &state],
    );
    assert_eq!(done.code(), 0, "{done}");
    let r = carol_agent.post(&http::rpc(
        4,
        "tools/call",
        json!({"name": "get_me", "arguments": {}}),
    ));
    assert_eq!(r.status, 401, "{r}");
    assert!(
        r.header("www-authenticate").unwrap().contains("revoked"),
        "{r}"
    );

    // `token revoke --subject` also ends delegations made by that person.
    let carol2 = gw.issue_token("carol@example.com", &["--groups", "eng"]);
    let again = agent_token(&delegate(
        &gw,
        repo.path(),
        &carol2,
        "rec.get_me",
        "10m",
        "TICKET-4",
    ));
    let all = cli::mcpgate(
        gw.state(),
        [
            "token",
            "revoke",
            "--subject",
            "carol@example.com",
            "--state",
            &state,
        ],
    );
    assert_eq!(all.code(), 0, "{all}");
    assert!(all.stdout.contains("revoked 1 delegation made by"), "{all}");
    let r = McpHttp::new(gw.addr(), "/mcp/rec")
        .with_bearer(&again)
        .post(&initialize_request(1));
    assert_eq!(r.status, 401, "{r}");
}

const RESPONDERS: &str = r#"responders:
  - name: agent-probing
    when: { denials: 2, by: session, within: 1m }
    do:
      - pause: delegation
        for: 1h
      - revoke: delegation
"#;

fn responder_event(gw: &Gateway, name: &str) -> Value {
    audit_log::wait_for_event(&gw.state().join("audit"), name, Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "no `{name}` event in the audit log; gateway log:\n{}",
                gw.log()
            )
        })
}

#[test]
fn a_responder_ends_the_delegation_that_misbehaves_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(&dir.path().join("calls.jsonl")).file("responders.yaml", RESPONDERS);
    let gw = Gateway::start(&repo);
    let ada = gw.issue_token("ada@example.com", &["--groups", "eng", "--ttl", "1h"]);
    let carol = gw.issue_token("carol@example.com", &["--groups", "eng", "--ttl", "1h"]);
    let adas = agent_token(&delegate(
        &gw,
        repo.path(),
        &ada,
        "rec.get_me",
        "10m",
        "TICKET-5",
    ));
    // The same agent, acting for Carol: another delegation.
    let carols = agent_token(&delegate(
        &gw,
        repo.path(),
        &carol,
        "rec.get_me",
        "10m",
        "TICKET-6",
    ));
    let mut ada_agent = McpHttp::new(gw.addr(), "/mcp/rec").with_bearer(&adas);
    ada_agent.initialize_as(AGENT);
    let mut carol_agent = McpHttp::new(gw.addr(), "/mcp/rec").with_bearer(&carols);
    carol_agent.initialize_as(AGENT);
    let call = |client: &McpHttp, id: u64, tool: &str| {
        client.call(id, "tools/call", json!({"name": tool, "arguments": {}}))
    };

    // Two calls outside Ada's delegation: refused, and the responder fires.
    for id in 2..4 {
        let r = call(&ada_agent, id, "whoami");
        assert_eq!(r["result"]["isError"], json!(true), "{r}");
    }
    let revoked = responder_event(&gw, "responder.revoked");
    let dlg = revoked["data"]["delegation"].as_str().unwrap().to_owned();
    assert!(dlg.starts_with("dlg_"), "{revoked}");
    assert_eq!(revoked["data"]["responder"], "agent-probing", "{revoked}");
    assert!(
        revoked["data"]["result"]
            .as_str()
            .unwrap()
            .starts_with("revoked delegation"),
        "{revoked}"
    );
    let paused = responder_event(&gw, "responder.paused");
    assert_eq!(paused["data"]["scope"], "delegation", "{paused}");
    assert_eq!(paused["data"]["subject"], dlg.as_str(), "{paused}");

    // Ada's agent is out; the same agent acting for Carol goes on.
    let r = ada_agent.post(&http::rpc(
        5,
        "tools/call",
        json!({"name": "get_me", "arguments": {}}),
    ));
    assert_eq!(r.status, 401, "{r}");
    assert_eq!(
        call(&carol_agent, 2, "get_me")["result"]["content"][0]["text"],
        "ok"
    );
    let state = gw.state().to_str().unwrap().to_owned();
    let listed = cli::mcpgate(gw.state(), ["pauses", "list", "--state", &state]);
    assert!(listed.stdout.contains(&dlg), "{listed}");
    let delegations = cli::mcpgate(gw.state(), ["delegate", "list", "--state", &state]);
    let line = delegations
        .stdout
        .lines()
        .find(|l| l.contains("TICKET-5"))
        .unwrap_or_else(|| panic!("{delegations}"));
    assert!(line.contains(" revoked "), "{delegations}");
}
