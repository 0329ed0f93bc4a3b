//! Load during policy swaps: concurrent `tools/call` traffic on 127.0.0.1 while the branch
//! flips between two programs 100 times. Every response must be well-formed and carry a
//! verdict one of the two programs gives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod gitops_support;

use common::{Client, send};
use gitops_support::{ADMIN_TOKEN, Gateway, PolicyRepo, V1, V1_TESTS, V2, V2_TESTS, git, temp_dir};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

const CLIENTS: usize = 8;
const CALLS: u64 = 20_000;
const SWAPS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_during_100_swaps_all_get_a_consistent_answer() {
    let root = temp_dir("load");
    let repo = PolicyRepo::new(root.join("policy"));
    let v1 = repo.commit(V1, V1_TESTS, "v1");
    let v2 = repo.commit(V2, V2_TESTS, "v2");
    git(&repo.dir, &["reset", "-q", "--hard", &v1]);
    let state = root.join("state");
    let gw = Gateway::start(&[
        "--policy-repo",
        repo.dir.to_str().unwrap(),
        "--poll",
        "1h",
        "--state",
        state.to_str().unwrap(),
    ]);
    let addr = gw.addr;
    let sent = Arc::new(AtomicU64::new(0));
    let allowed = Arc::new(AtomicU64::new(0));
    let denied = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (sent, allowed, denied) = (sent.clone(), allowed.clone(), denied.clone());
        let done = done.clone();
        clients.push(tokio::spawn(async move {
            let (mut c, _) = Client::initialize(addr, "/mcp/demo").await;
            // At least CALLS calls, and traffic until the last swap.
            while sent.fetch_add(1, Ordering::Relaxed) < CALLS || !done.load(Ordering::Relaxed) {
                let text = format!("c{i}");
                let v = c.call("echo", json!({"text": text})).await;
                if v["result"]["content"][0]["text"].as_str() == Some(text.as_str())
                    && v["result"]["isError"] != json!(true)
                {
                    allowed.fetch_add(1, Ordering::Relaxed);
                } else if v["error"]["code"] == json!(-32602)
                    && v["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("echo"))
                {
                    denied.fetch_add(1, Ordering::Relaxed);
                } else {
                    panic!("malformed or unexpected answer: {v}");
                }
            }
        }));
    }
    let swapper = {
        let done = done.clone();
        let dir = repo.dir.clone();
        tokio::spawn(async move {
            let auth = format!("Bearer {ADMIN_TOKEN}");
            let mut swaps = 0;
            while swaps < SWAPS {
                let target = if swaps % 2 == 0 { &v2 } else { &v1 };
                git(&dir, &["update-ref", "refs/heads/main", target]);
                let r = send(addr, "POST", "/admin/sync", &[("Authorization", &auth)], "").await;
                assert_eq!(r.status, 200, "{}", r.body);
                let st: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                assert_eq!(st["live"]["commit"].as_str(), Some(target.as_str()), "{st}");
                swaps += 1;
            }
            done.store(true, Ordering::Relaxed);
            swaps
        })
    };
    let swaps = swapper.await.unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let elapsed = started.elapsed();
    let (a, d) = (
        allowed.load(Ordering::Relaxed),
        denied.load(Ordering::Relaxed),
    );
    eprintln!(
        "{} calls in {elapsed:?} ({:.0}/s) from {CLIENTS} clients, {swaps} swaps: {a} allowed, {d} denied",
        a + d,
        (a + d) as f64 / elapsed.as_secs_f64()
    );
    assert!(a + d >= CALLS);
    assert!(a > 0 && d > 0, "both programs answered");
    assert_eq!(swaps, SWAPS);
    let metrics = send(addr, "GET", "/metrics", &[], "").await;
    assert!(
        metrics
            .body
            .contains(&format!("mcpgate_policy_swaps_total {swaps}")),
        "{}",
        metrics.body
    );
    gw.stop();
    let _ = std::fs::remove_dir_all(&root);
}
