//! Approvals end to end: the built-in demo server's `send_payment` behind an `approve` rule,
//! called by the Python SDK client, decided with `mcpgate approvals` (another process) and
//! over the gateway's HTTP API; the webhook received by a listener in the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::{McpHttp, request};
use mcpgate_tests::peers::{self, ok, result_text};
use mcpgate_tests::process::Finished;
use mcpgate_tests::{Gateway, PolicyRepo, cli, paths, webhook};
use serde_json::{Value, json};
use std::thread;
use std::time::{Duration, Instant};

const RULES: &str = r#"
allow demo.echo;

@id("payments-need-finance")
approve demo.send_payment by "finance" because "money leaves the company";
"#;

/// How long a test waits for the gateway to record a held call (a bound, not an assertion).
const WAIT: Duration = Duration::from_secs(60);

fn config(approvals: Value) -> Value {
    json!({
        "servers": {"demo": {"command": paths::mcpgate_bin(), "args": ["demo-server"]}},
        "approvals": approvals,
    })
}

fn policy_args(repo: &PolicyRepo) -> Vec<String> {
    vec!["--policy".into(), repo.path().to_str().unwrap().into()]
}

fn repo(approvals: Value) -> PolicyRepo {
    PolicyRepo::with(&config(approvals), RULES)
}

fn approvals(gw: &Gateway, args: &[&str]) -> Finished {
    let mut all = vec!["approvals"];
    all.extend_from_slice(args);
    all.push("--state");
    all.push(gw.state().to_str().unwrap());
    cli::mcpgate(gw.state(), all)
}

fn list(gw: &Gateway, all: bool) -> Vec<Value> {
    let mut args = vec!["list", "--format", "json"];
    if all {
        args.push("--all");
    }
    let out = approvals(gw, &args);
    assert_eq!(out.code(), 0, "{out}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["approvals"].as_array().unwrap().clone()
}

/// Waits until a pending approval other than `seen` appears, and returns it.
fn next_pending(gw: &Gateway, seen: &[&str]) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(a) = list(gw, false)
            .into_iter()
            .find(|a| !seen.contains(&a["id"].as_str().unwrap()))
        {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "no pending approval appeared; gateway log:\n{}",
            gw.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Calls `send_payment` through the Python client in the background, asking for progress.
fn pay_in_background(gw: &Gateway, amount: u64) -> thread::JoinHandle<Value> {
    let url = gw.url("/mcp/demo");
    thread::spawn(move || {
        peers::py_client(
            json!({"url": url}),
            json!([{
                "op": "call_tool", "name": "send_payment",
                "arguments": {"to": "bob", "amount": amount},
                "progress": true, "timeout": 150
            }]),
        )
    })
}

#[test]
fn a_held_call_runs_once_approved_from_the_cli() {
    let repo = repo(json!({"timeout": "10m"}));
    let gw = Gateway::start(&repo);
    let call = pay_in_background(&gw, 500);
    let a = next_pending(&gw, &[]);
    assert_eq!(a["server"], "demo");
    assert_eq!(a["tool"], "send_payment");
    assert_eq!(a["arguments"], json!({"to": "bob", "amount": 500}));
    assert_eq!(a["principal"]["id"], "anonymous");
    assert_eq!(a["principal"]["kind"], "anonymous");
    assert_eq!(a["client"], "mcpgate-e2e");
    assert_eq!(a["rule"], "payments-need-finance");
    assert_eq!(a["reason"], "money leaves the company");
    assert_eq!(a["approvers"], json!(["finance"]));
    assert_eq!(a["status"], "pending");
    let id = a["id"].as_str().unwrap();

    let out = approvals(&gw, &["approve", id, "--as", "alice@example.com"]);
    assert_eq!(out.code(), 0, "{out}");
    let report = call.join().unwrap();
    let result = ok(&report, 0);
    assert_eq!(result["isError"], false, "{report}");
    assert!(
        result_text(result).contains("pretended to send 500 to bob"),
        "{report}"
    );
    let progress = peers::results(&report)[0]["progress"].as_array().unwrap();
    assert!(
        progress.iter().any(|p| p["message"]
            .as_str()
            .is_some_and(|m| m.contains("waiting for approval") && m.contains(id))),
        "no progress while held: {report}"
    );

    let done = list(&gw, true);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["status"], "executed");
    assert_eq!(done[0]["decided_by"], "alice@example.com");
    assert_eq!(done[0]["decided_via"], "cli");
    assert!(done[0]["operator"].as_str().is_some_and(|o| !o.is_empty()));
    // Deciding again is refused.
    let again = approvals(&gw, &["deny", id, "--reason", "late"]);
    assert_eq!(again.code(), 1, "{again}");
    assert!(again.stderr.contains("already executed"), "{again}");
    // Every step is in the audit log, linked to the held request's decision record.
    let events = audit_events(&gw, 3);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "approval.requested",
            "approval.approved",
            "approval.executed"
        ]
    );
    assert_eq!(events[1]["data"]["decided_by"], "alice@example.com");
    assert_eq!(events[1]["data"]["via"], "cli");
    assert_eq!(events[0]["data"]["approval"], id);
    assert!(events[0]["request_id"].as_str().is_some(), "{events:?}");
    let verify = cli::mcpgate(
        gw.state(),
        ["audit", "verify", "--state", gw.state().to_str().unwrap()],
    );
    assert_eq!(verify.code(), 0, "{verify}");
}

#[test]
fn an_approved_call_still_counts_against_its_limit() {
    let rules =
        format!("{RULES}\n@id(\"one-payment-an-hour\")\nlimit demo.send_payment 1 per hour;\n");
    let repo = PolicyRepo::with(&config(json!({"timeout": "10m"})), &rules);
    let gw = Gateway::start(&repo);
    let mut seen = Vec::new();
    let mut texts = Vec::new();
    for amount in [10, 20] {
        let call = pay_in_background(&gw, amount);
        let a = next_pending(&gw, &seen.iter().map(String::as_str).collect::<Vec<_>>());
        let id = a["id"].as_str().unwrap().to_owned();
        let out = approvals(&gw, &["approve", &id, "--as", "alice@example.com"]);
        assert_eq!(out.code(), 0, "{out}");
        let report = call.join().unwrap();
        let result = ok(&report, 0).clone();
        texts.push((result["isError"].clone(), result_text(&result)));
        seen.push(id);
    }
    // Waiting took nothing from the budget; the first approved call ran and used it up.
    assert_eq!(texts[0].0, false, "{texts:?}");
    assert!(
        texts[0].1.contains("pretended to send 10 to bob"),
        "{texts:?}"
    );
    assert_eq!(texts[1].0, true, "{texts:?}");
    assert!(
        texts[1].1.contains("denied by limit one-payment-an-hour"),
        "{texts:?}"
    );
}

/// The approval events of the audit log, once at least `n` are there.
fn audit_events(gw: &Gateway, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let state = gw.state().to_str().unwrap().to_owned();
        let out = cli::mcpgate(
            gw.state(),
            [
                "audit", "tail", "--state", &state, "--type", "event", "--json", "-n", "100",
            ],
        );
        assert_eq!(out.code(), 0, "{out}");
        let events: Vec<Value> = out
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| {
                e["event"]
                    .as_str()
                    .is_some_and(|name| name.starts_with("approval."))
            })
            .collect();
        if events.len() >= n {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "audit events: {events:?}\n{}",
            gw.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_denied_call_gets_the_reason() {
    let repo = repo(json!({"timeout": "10m"}));
    let gw = Gateway::start(&repo);
    let call = pay_in_background(&gw, 70);
    let a = next_pending(&gw, &[]);
    let id = a["id"].as_str().unwrap();
    let out = approvals(
        &gw,
        &[
            "deny",
            id,
            "--reason",
            "not this quarter",
            "--as",
            "carol@example.com",
        ],
    );
    assert_eq!(out.code(), 0, "{out}");
    let report = call.join().unwrap();
    let result = ok(&report, 0);
    assert_eq!(result["isError"], true, "{report}");
    let text = result_text(result);
    assert!(text.contains("not this quarter"), "{text}");
    assert!(text.contains("carol@example.com"), "{text}");
    assert!(text.contains("payments-need-finance"), "{text}");
    assert_eq!(list(&gw, true)[0]["status"], "denied");
}

#[test]
fn nobody_deciding_in_time_denies_the_call() {
    let repo = repo(json!({"timeout": "2s"}));
    let gw = Gateway::start(&repo);
    let report = pay_in_background(&gw, 5).join().unwrap();
    let result = ok(&report, 0);
    assert_eq!(result["isError"], true, "{report}");
    assert!(result_text(result).contains("timed out"), "{report}");
    let all = list(&gw, true);
    assert_eq!(all[0]["status"], "expired", "{all:?}");
    // A late decision is refused.
    let late = approvals(&gw, &["approve", all[0]["id"].as_str().unwrap()]);
    assert_eq!(late.code(), 1, "{late}");
    assert!(late.stderr.contains("timed out"), "{late}");
}

#[test]
fn a_caller_cannot_approve_their_own_call() {
    let repo = repo(json!({"timeout": "10m"}));
    let gw = Gateway::start(&repo);
    let call = pay_in_background(&gw, 9);
    let a = next_pending(&gw, &[]);
    let id = a["id"].as_str().unwrap();
    // The caller is `anonymous` (no identity configured).
    let own = approvals(&gw, &["approve", id, "--as", "anonymous"]);
    assert_eq!(own.code(), 1, "{own}");
    assert!(
        own.stderr
            .contains("asked for this call and cannot approve"),
        "{own}"
    );
    assert_eq!(
        list(&gw, false).len(),
        1,
        "the refused approval changed state"
    );
    // Without identity no approver can sign in to the HTTP API.
    let r = request(gw.addr(), "GET", "/approvals", &[], b"");
    assert_eq!(r.status, 401, "{r}");
    let r = request(
        gw.addr(),
        "POST",
        &format!("/approvals/{id}/approve"),
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(r.status, 401, "{r}");
    let out = approvals(&gw, &["deny", id, "--reason", "cleanup"]);
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(ok(&call.join().unwrap(), 0)["isError"], true);
}

/// Posts a `send_payment` call on a raw connection (no progress token); its answer is read
/// by the thread, which ends when the gateway goes away.
fn raw_pay(gw: &Gateway, amount: u64) -> (McpHttp, thread::JoinHandle<()>) {
    let mut c = McpHttp::new(gw.addr(), "/mcp/demo");
    c.initialize();
    let (addr, session) = (c.addr, c.session.clone());
    let held = thread::spawn(move || {
        let mut c = McpHttp::new(addr, "/mcp/demo");
        c.session = session;
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "send_payment", "arguments": {"to": "dan", "amount": amount}}});
        // The gateway is stopped while this waits: whatever it read is dropped.
        let _ = std::panic::catch_unwind(move || c.post(&body));
    });
    (c, held)
}

#[test]
fn an_approval_survives_a_restart_and_lets_one_retry_through() {
    let state = tempfile::tempdir().unwrap();
    let repo = repo(json!({"timeout": "10m", "grant": "10m"}));
    let gw = Gateway::start_in(state.path(), &policy_args(&repo), &[]);
    let (_, held) = raw_pay(&gw, 42);
    let a = next_pending(&gw, &[]);
    let id = a["id"].as_str().unwrap().to_owned();
    drop(gw);
    let _ = held.join();

    let gw = Gateway::start_in(state.path(), &policy_args(&repo), &[]);
    assert_eq!(
        list(&gw, false)[0]["id"],
        id.as_str(),
        "lost across the restart"
    );
    let out = approvals(&gw, &["approve", &id, "--as", "alice@example.com"]);
    assert_eq!(out.code(), 0, "{out}");
    let approved = list(&gw, true);
    assert_eq!(approved[0]["status"], "approved");
    assert!(approved[0]["grant_until_ms"].as_i64().is_some());

    // The client's retry of the same call runs at once, on the approval.
    let mut c = McpHttp::new(gw.addr(), "/mcp/demo");
    c.initialize();
    let r = c.call(
        8,
        "tools/call",
        json!({"name": "send_payment", "arguments": {"amount": 42, "to": "dan"}}),
    );
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert!(r.to_string().contains("pretended to send 42 to dan"), "{r}");
    assert_eq!(list(&gw, true)[0]["status"], "executed");

    // Only once: the next identical call is held again.
    let again = pay_in_background(&gw, 42);
    let b = next_pending(&gw, &[&id]);
    assert_ne!(b["id"], id.as_str());
    let out = approvals(
        &gw,
        &[
            "deny",
            b["id"].as_str().unwrap(),
            "--reason",
            "once is enough",
        ],
    );
    assert_eq!(out.code(), 0, "{out}");
    let report = again.join().unwrap();
    assert!(
        result_text(ok(&report, 0)).contains("once is enough"),
        "{report}"
    );
}

#[test]
fn each_pending_approval_is_announced_to_the_webhook_signed() {
    let (url, deliveries) = webhook::receiver();
    let repo = repo(json!({
        "timeout": "10m",
        "webhook": {"url": url, "secret": "${secret:approvals-hook}"},
    }));
    let secret = "hook-signing-key-for-tests";
    let gw = Gateway::start_with_env(&repo, &[], &[("MCPGATE_SECRET_APPROVALS_HOOK", secret)]);
    let call = pay_in_background(&gw, 12);
    let a = next_pending(&gw, &[]);
    let got = deliveries
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("no webhook delivery; gateway log:\n{}", gw.log()));
    assert_eq!(got.header("x-mcpgate-event"), "approval.requested");
    assert_eq!(
        got.header("x-mcpgate-signature"),
        webhook::signature(secret, &got.body)
    );
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["event"], "approval.requested");
    assert_eq!(body["approval"]["id"], a["id"]);
    assert_eq!(body["approval"]["arguments"]["amount"], 12);
    assert!(!String::from_utf8_lossy(&got.body).contains(secret));
    let out = approvals(
        &gw,
        &[
            "approve",
            a["id"].as_str().unwrap(),
            "--as",
            "ops@example.com",
        ],
    );
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(ok(&call.join().unwrap(), 0)["isError"], false);
}

fn decide_over_http(gw: &Gateway, id: &str, token: &str) -> mcpgate_tests::http::Response {
    let auth = format!("Bearer {token}");
    request(
        gw.addr(),
        "POST",
        &format!("/approvals/{id}/approve"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", auth.as_str()),
        ],
        b"{\"note\": \"ok\"}",
    )
}

#[test]
fn approvers_sign_in_with_their_tokens_and_must_be_in_the_group() {
    let mut config = config(json!({"timeout": "10m"}));
    config["identity"] = json!({});
    let repo = PolicyRepo::with(&config, RULES).file(
        "principals.yaml",
        "groups:\n  finance: [alice@example.com, fin@example.com]\n",
    );
    let gw = Gateway::start(&repo);
    let (alice, fin, bob) = (
        gw.issue_token("alice@example.com", &[]),
        gw.issue_token("fin@example.com", &[]),
        gw.issue_token("bob@example.com", &[]),
    );
    let mut c = McpHttp::new(gw.addr(), "/mcp/demo");
    c.bearer = Some(format!("Bearer {alice}"));
    c.initialize();
    let (addr, session) = (c.addr, c.session.clone());
    let held = thread::spawn(move || {
        let mut c = McpHttp::new(addr, "/mcp/demo");
        c.bearer = Some(format!("Bearer {alice}"));
        c.session = session;
        c.post(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "send_payment", "arguments": {"to": "dan", "amount": 5}}}))
    });
    let a = next_pending(&gw, &[]);
    let id = a["id"].as_str().unwrap().to_owned();
    let alice = gw.issue_token("alice@example.com", &[]);
    // A second token of the caller's: still the caller.
    let own = decide_over_http(&gw, &id, &alice);
    assert_eq!(own.status, 403, "self-approval over HTTP: {own}");
    let outsider = decide_over_http(&gw, &id, &bob);
    assert_eq!(
        outsider.status, 403,
        "approver outside `finance`: {outsider}"
    );
    let bad = decide_over_http(&gw, &id, "mcpg_not-a-real-token");
    assert_eq!(bad.status, 401, "{bad}");
    assert_eq!(
        list(&gw, false).len(),
        1,
        "a refused approver changed state"
    );
    let good = decide_over_http(&gw, &id, &fin);
    assert_eq!(good.status, 200, "{good}");
    let answer = format!("{}", held.join().unwrap());
    assert!(
        answer.contains("pretended to send 5 to dan"),
        "the approved call did not run: {answer}"
    );
}

/// The held call's record names the requester as the decision saw it: with the groups
/// `principals.yaml` gives, which approvers read when they decide.
#[test]
fn the_approval_names_the_requester_with_its_principals_yaml_groups() {
    let mut config = config(json!({}));
    config["identity"] = json!({});
    let repo = PolicyRepo::with(&config, RULES).file(
        "principals.yaml",
        "groups:\n  contractors: [carol@example.com]\n",
    );
    let gw = Gateway::start(&repo);
    let token = gw.issue_token("carol@example.com", &[]);
    let mut c = McpHttp::new(gw.addr(), "/mcp/demo").with_bearer(&token);
    c.initialize();
    let caller = thread::spawn(move || {
        c.call(
            2,
            "tools/call",
            json!({"name": "send_payment", "arguments": {"to": "bob", "amount": 5}}),
        )
    });
    let pending = next_pending(&gw, &[]);
    assert_eq!(pending["principal"]["id"], "carol@example.com", "{pending}");
    assert_eq!(
        pending["principal"]["groups"],
        json!(["contractors"]),
        "{pending}"
    );
    let id = pending["id"].as_str().unwrap().to_owned();
    let out = approvals(&gw, &["deny", &id, "--reason", "not this one"]);
    assert_eq!(out.code(), 0, "{out}");
    let answer = caller.join().unwrap();
    assert_eq!(answer["result"]["isError"], true, "{answer}");
}
