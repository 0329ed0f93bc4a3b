//! `mcpgate serve --policy-repo`: following a branch through polling and `/admin/sync`,
//! rejecting bad commits, surviving restarts with the repository gone, failing closed,
//! following force-pushes; and `--policy DIR` watching a folder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod gitops_support;

use common::{Client, send};
use gitops_support::{
    ADMIN_TOKEN, Gateway, PolicyRepo, V1, V1_TESTS, V2, V2_TESTS, WEBHOOK_SECRET, eventually,
    temp_dir,
};
use mcpgate::gitops::admin::sign;
use serde_json::{Value, json};
use std::net::SocketAddr;

/// `allow`, `deny` (a refusal in either shape), or `malformed`.
fn verdict(v: &Value) -> &'static str {
    if v["result"]["isError"] == json!(true) || v["error"]["code"] == json!(-32602) {
        return "deny";
    }
    if v["result"]["content"][0]["text"].is_string() {
        return "allow";
    }
    "malformed"
}

async fn echo(c: &mut Client) -> &'static str {
    verdict(&c.call("echo", json!({"text": "hi"})).await)
}

/// Calls `echo` every 20 ms until it gets `want`, for at most 15 seconds (a bound, not a
/// measurement); returns whether it did.
async fn echo_becomes(c: &mut Client, want: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if echo(c).await == want {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

async fn status(addr: SocketAddr) -> Value {
    let r = send(addr, "GET", "/status", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

async fn live_commit(addr: SocketAddr) -> String {
    status(addr).await["policy"]["live"]["commit"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn admin_sync(addr: SocketAddr, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let r = send(addr, "POST", "/admin/sync", headers, body).await;
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

fn bearer() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_follows_the_branch() {
    let root = temp_dir("poll");
    let repo = PolicyRepo::new(root.join("policy"));
    let v1 = repo.commit(V1, V1_TESTS, "v1");
    let state = root.join("state");
    let url = format!("file://{}", repo.dir.display());
    let gw = Gateway::start(&[
        "--policy-repo",
        &url,
        "--branch",
        "main",
        "--poll",
        "200ms",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(live_commit(gw.addr).await, v1);
    let (mut c, _) = Client::initialize(gw.addr, "/mcp/demo").await;
    assert_eq!(echo(&mut c).await, "allow");

    let v2 = repo.commit(V2, V2_TESTS, "v2");
    let mut client = Some(c);
    assert!(
        echo_becomes(client.as_mut().unwrap(), "deny").await,
        "v2 never took effect"
    );
    let st = status(gw.addr).await;
    assert_eq!(st["policy"]["live"]["commit"], json!(v2));
    assert_eq!(st["program"]["commit"], json!(v2));
    assert_eq!(st["policy"]["fail_closed"], Value::Null);
    let metrics = send(gw.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("mcpgate_policy_swaps_total 1"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("mcpgate_policy_commit_age_seconds "));
    assert!(
        metrics
            .body
            .contains("mcpgate_decisions_total{verdict=\"allow\"}")
    );
    // The saved program names the commit.
    let saved = std::fs::read_to_string(state.join("policy-last-good.json")).unwrap();
    assert!(saved.contains(&v2));
    gw.stop();
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sync_webhooks_bad_commits_restarts_and_force_pushes() {
    let root = temp_dir("admin");
    let repo = PolicyRepo::new(root.join("policy"));
    let v1 = repo.commit(V1, V1_TESTS, "v1");
    let state = root.join("state");
    let state_arg = state.to_str().unwrap().to_owned();
    let repo_arg = repo.dir.to_str().unwrap().to_owned();
    let args = [
        "--policy-repo",
        repo_arg.as_str(),
        "--poll",
        "1h",
        "--state",
        state_arg.as_str(),
    ];
    let gw = Gateway::start(&args);
    let (mut c, _) = Client::initialize(gw.addr, "/mcp/demo").await;
    assert_eq!(echo(&mut c).await, "allow");
    let v2 = repo.commit(V2, V2_TESTS, "v2");

    // Refused: wrong signature, wrong token, no credentials. Nothing changes.
    let body = r#"{"ref":"refs/heads/main"}"#;
    let forged = sign(b"not-the-secret", body.as_bytes());
    let (code, _) = admin_sync(
        gw.addr,
        &[("X-Hub-Signature-256", &forged), ("X-GitHub-Event", "push")],
        body,
    )
    .await;
    assert_eq!(code, 401);
    let (code, _) = admin_sync(gw.addr, &[("Authorization", "Bearer wrong")], "").await;
    assert_eq!(code, 401);
    let (code, _) = admin_sync(gw.addr, &[], "").await;
    assert_eq!(code, 401);
    assert_eq!(echo(&mut c).await, "allow");
    assert_eq!(live_commit(gw.addr).await, v1);

    // A correctly signed push webhook syncs at once.
    let good = sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
    let (code, st) = admin_sync(
        gw.addr,
        &[("X-Hub-Signature-256", &good), ("X-GitHub-Event", "push")],
        body,
    )
    .await;
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["live"]["commit"], json!(v2));
    assert_eq!(echo(&mut c).await, "deny");

    // A broken commit: v2 stays in force, the error is in /status.
    let v3 = repo.commit("allow demo.echo\n", V1_TESTS, "v3 (broken)");
    let auth = bearer();
    let (code, st) = admin_sync(gw.addr, &[("Authorization", &auth)], "").await;
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["live"]["commit"], json!(v2));
    assert_eq!(st["last_error"]["commit"], json!(v3));
    assert!(st["last_error"]["errors"].as_u64().unwrap() >= 1, "{st}");
    assert!(
        st["last_error"]["diagnostics"][0]
            .as_str()
            .unwrap()
            .contains("policies/main.mcpg"),
        "{st}"
    );
    assert_eq!(echo(&mut c).await, "deny");
    let full = status(gw.addr).await;
    assert_eq!(full["policy"]["last_error"]["commit"], json!(v3));

    // A commit whose policy tests fail is rejected too.
    let v4 = repo.commit(V1, V2_TESTS, "v4 (tests fail)");
    let (_, st) = admin_sync(gw.addr, &[("Authorization", &auth)], "").await;
    assert_eq!(st["live"]["commit"], json!(v2));
    assert_eq!(st["last_error"]["commit"], json!(v4));
    assert_eq!(echo(&mut c).await, "deny");
    let metrics = send(gw.addr, "GET", "/metrics", &[], "").await;
    assert!(
        metrics.body.contains("mcpgate_policy_rejected_total 2"),
        "{}",
        metrics.body
    );

    // Restart with the repository moved away: the saved v2 is served.
    drop(c);
    gw.stop();
    let moved = root.join("moved");
    std::fs::rename(&repo.dir, &moved).unwrap();
    let gw = Gateway::start(&args);
    let st = status(gw.addr).await;
    assert_eq!(st["policy"]["live"]["commit"], json!(v2), "{st}");
    assert_eq!(st["policy"]["live"]["from"], json!("state"));
    assert_eq!(st["policy"]["last_fetch"]["ok"], json!(false));
    assert_eq!(st["policy"]["fail_closed"], Value::Null);
    let (mut c, _) = Client::initialize(gw.addr, "/mcp/demo").await;
    assert_eq!(echo(&mut c).await, "deny");
    let add = c.call("add", json!({"a": 1, "b": 2})).await;
    assert_eq!(verdict(&add), "allow", "{add}");

    // The repository is back, rewound to v1 by a force-push: followed.
    std::fs::rename(&moved, &repo.dir).unwrap();
    gitops_support::git(&repo.dir, &["reset", "-q", "--hard", &v1]);
    let (code, st) = admin_sync(gw.addr, &[("Authorization", &auth)], "").await;
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["live"]["commit"], json!(v1));
    assert_eq!(st["live"]["from"], json!("built"));
    assert_eq!(echo(&mut c).await, "allow");
    drop(c);
    gw.stop();
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_good_program_denies_everything_and_says_why() {
    let root = temp_dir("closed");
    let state = root.join("state");
    let missing = root.join("no-such-repo");
    let gw = Gateway::start(&[
        "--policy-repo",
        missing.to_str().unwrap(),
        "--poll",
        "1h",
        "--state",
        state.to_str().unwrap(),
    ]);
    let st = status(gw.addr).await;
    let why = st["policy"]["fail_closed"].as_str().unwrap_or_default();
    assert!(why.contains("every request is denied"), "{st}");
    assert!(why.contains("cannot fetch"), "{st}");
    assert_eq!(st["policy"]["live"]["commit"], Value::Null);
    assert_eq!(st["policy"]["live"]["from"], json!("none"));
    // No server is reachable, and the program denies every tool.
    let r = send(
        gw.addr,
        "POST",
        "/mcp/demo",
        &[common::ACCEPT, common::JSON],
        "{}",
    )
    .await;
    assert_eq!(r.status, 404);
    let metrics = send(gw.addr, "GET", "/metrics", &[], "").await;
    assert!(
        metrics.body.contains("mcpgate_policy_fail_closed 1"),
        "{}",
        metrics.body
    );
    let (code, _) = admin_sync(gw.addr, &[("Authorization", &bearer())], "").await;
    assert_eq!(code, 200);
    gw.stop();
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_mode_picks_up_an_edit_and_keeps_the_last_good_one() {
    let root = temp_dir("watch");
    let dir = root.join("policy");
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("mcpgate.yaml"), gitops_support::CONFIG).unwrap();
    std::fs::write(dir.join("policies/main.mcpg"), V1).unwrap();
    std::fs::write(dir.join("tests/main.yaml"), V1_TESTS).unwrap();
    let state = root.join("state");
    let gw = Gateway::start(&[
        "--policy",
        dir.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    let (c, _) = Client::initialize(gw.addr, "/mcp/demo").await;
    let mut client = Some(c);
    assert_eq!(echo(client.as_mut().unwrap()).await, "allow");

    // A broken edit is rejected; the last good program stays.
    std::fs::write(dir.join("policies/main.mcpg"), "allow demo.echo\n").unwrap();
    assert!(
        eventually(|| async {
            status(gw.addr).await["policy"]["last_error"]["errors"].as_u64() >= Some(1)
        })
        .await
    );
    assert_eq!(echo(client.as_mut().unwrap()).await, "allow");

    // Save as editors do: write a temp file and rename it over the old one.
    std::fs::write(dir.join("tests/main.yaml"), V2_TESTS).unwrap();
    let temp = dir.join("policies/.main.mcpg.swp");
    std::fs::write(&temp, V2).unwrap();
    std::fs::rename(&temp, dir.join("policies/main.mcpg")).unwrap();
    assert!(
        echo_becomes(client.as_mut().unwrap(), "deny").await,
        "the edit never took effect"
    );
    let st = status(gw.addr).await;
    assert_eq!(st["policy"]["last_error"], Value::Null, "{st}");
    assert_eq!(st["policy"]["source"]["kind"], json!("dir"));
    drop(client);
    gw.stop();
    let _ = std::fs::remove_dir_all(&root);
}
