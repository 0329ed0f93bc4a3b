//! The audit trail end to end: records written by `mcpgate serve`, checked by
//! `mcpgate audit verify` after tampering, replayed against the policy commit that decided
//! them, and complete after the gateway is killed in the middle of a load; copied into
//! PostgreSQL (`audit export --to-postgres`, on a database of the test's own on the server
//! `MCPGATE_TEST_PG_URL` names) once per record, however often the export runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::cli::mcpgate;
use mcpgate_tests::http::McpHttp;
use mcpgate_tests::repo::git;
use mcpgate_tests::{Gateway, PolicyRepo, audit_log};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn demo_config(audit: Value) -> Value {
    json!({"servers": {"demo": {"command": "mcpgate", "args": ["demo-server"]}}, "audit": audit})
}

const RULES: &str = "allow demo.echo, demo.add, demo.send_payment;\n@id(\"payments-cap\")\ndeny demo.send_payment when args.amount > 100;\n";

fn log_file(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "jsonl") && !p.ends_with("checkpoints.jsonl")
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 1, "one log file expected: {files:?}");
    files.remove(0)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

fn verify(args: &[&str]) -> (i32, String) {
    let mut all = vec!["audit", "verify"];
    all.extend_from_slice(args);
    let done = mcpgate(Path::new("."), all);
    (done.code(), format!("{}{}", done.stdout, done.stderr))
}

fn tool_call(c: &McpHttp, id: u64, name: &str, args: Value) -> Value {
    c.call(id, "tools/call", json!({"name": name, "arguments": args}))
}

/// Rewrites `lines` into a valid chain again (what a forger with write access can do).
fn rechain(lines: &mut [Value]) -> String {
    let mut prev = "0".repeat(64);
    let mut text = String::new();
    for (i, r) in lines.iter_mut().enumerate() {
        if i > 0 {
            r["prev"] = json!(prev);
        } else {
            prev = r["prev"].as_str().unwrap().to_owned();
            r["prev"] = json!(prev);
        }
        // serde_json keeps object keys sorted: this is the canonical encoding.
        let line = serde_json::to_string(r).unwrap();
        prev = Sha256::digest(line.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        text.push_str(&line);
        text.push('\n');
    }
    text
}

#[test]
fn tampering_is_found_and_located() {
    let repo = PolicyRepo::with(&demo_config(json!({"checkpoint_records": 1})), RULES);
    let mut gw = Gateway::start(&repo);
    let mut c = McpHttp::new(gw.addr(), "/mcp/demo");
    c.initialize();
    for i in 0..4 {
        let r = tool_call(&c, 10 + i, "add", json!({"a": i, "b": 1}));
        assert_eq!(r["result"]["isError"], false, "{r}");
    }
    let r = tool_call(&c, 20, "send_payment", json!({"to": "bob", "amount": 500}));
    assert_eq!(r["result"]["isError"], true, "{r}");
    let audit = gw.state().join("audit");
    // The truncation below is found by a checkpoint past the cut: let the last one be signed.
    assert!(
        audit_log::wait_for_checkpoint(&audit, Duration::from_secs(10)),
        "no checkpoint covers the last record"
    );
    gw.kill();
    let (code, out) = verify(&[
        "--state",
        gw.state().to_str().unwrap(),
        "--policy",
        repo.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified"), "{out}");
    assert!(out.contains("5 of 5 decisions re-evaluated"), "{out}");

    let file = log_file(&audit);
    let name = file.file_name().unwrap().to_str().unwrap().to_owned();
    let original = audit_log::text(&file);
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 10, "{original}");
    let scratch = tempfile::tempdir().unwrap();
    let mut case = 0;
    let mut check = |edit: &dyn Fn(&mut Vec<String>), want: &str| -> String {
        case += 1;
        let dir = scratch.path().join(format!("case{case}"));
        copy_dir(&audit, &dir);
        let mut v: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        edit(&mut v);
        let mut text = v.join("\n");
        if !text.ends_with("<torn>") {
            text.push('\n');
        } else {
            text.truncate(text.len() - "<torn>".len());
        }
        std::fs::write(dir.join(&name), text).unwrap();
        let (code, out) = verify(&["--log", dir.to_str().unwrap()]);
        assert!(out.contains(want), "expected `{want}` in:\n{out}");
        let clean = want.starts_with("note") || want == "verified";
        assert_eq!(code, i32::from(!clean), "{out}");
        out
    };
    // An untouched copy verifies.
    check(&|_| {}, "verified");
    // Line 4 is seq 3; its change breaks the link that seq 4 records.
    check(
        &|v| v[3] = v[3].replace("\"time\":\"", "\"time\":\"1"),
        &format!("error[edited] {name}:4: seq 3"),
    );
    check(
        &|v| drop(v.remove(4)),
        &format!("error[deleted] {name}:5: seq 4"),
    );
    check(
        &|v| v.swap(4, 5),
        &format!("error[reordered] {name}:6: seq 4"),
    );
    check(&|v| v.truncate(v.len() - 2), "error[truncated]");
    // A crash in the middle of a write leaves a torn line after the last record: noted,
    // not an error (it was never acknowledged, so its call was not forwarded).
    check(
        &|v| {
            let last = v[v.len() - 1].clone();
            v.push(format!("{}<torn>", &last[..last.len() / 2]));
        },
        &format!("note[truncated] {name}:{}", lines.len() + 1),
    );
}

fn commit(dir: &Path, rules: &str) -> String {
    let config = demo_config(json!({"checkpoint_records": 1}));
    mcpgate_tests::repo::commit_policy(dir, &config, rules)
}

#[test]
fn decisions_replay_against_their_commit_and_a_forged_verdict_is_caught() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    let first = commit(repo.path(), "allow demo.echo, demo.add;\n");
    let state = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "--policy-repo",
        repo.path().to_str().unwrap(),
        "--poll",
        "100ms",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut gw = Gateway::start_in(state.path(), &args, &[]);
    let mut c = McpHttp::new(gw.addr(), "/mcp/demo");
    c.initialize();
    let r = tool_call(&c, 2, "echo", json!({"text": "before"}));
    assert_eq!(r["result"]["isError"], false, "{r}");
    let second = commit(repo.path(), "allow demo.add;\n");
    let mut swapped = false;
    for i in 0..300 {
        let r = tool_call(&c, 100 + i, "echo", json!({"text": "after"}));
        if r["result"]["isError"] == true || r.get("error").is_some() {
            swapped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(swapped, "the second commit never went live: {}", gw.log());
    gw.kill();

    let audit = state.path().join("audit");
    let all = audit_log::records(&audit);
    let commits: BTreeSet<&str> = all
        .iter()
        .filter(|r| r["type"] == "decision")
        .map(|r| r["policy"]["commit"].as_str().unwrap())
        .collect();
    assert_eq!(
        commits,
        BTreeSet::from([first.as_str(), second.as_str()]),
        "{all:?}"
    );
    // The state dir's mirror holds both commits: verify finds it by itself.
    let (code, out) = verify(&["--state", state.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let decisions = all.iter().filter(|r| r["type"] == "decision").count();
    assert!(
        out.contains(&format!(
            "{decisions} of {decisions} decisions re-evaluated"
        )),
        "{out}"
    );

    // A forger turns the last denial into an allow and rebuilds the chain (and drops the
    // checkpoints they cannot sign): re-evaluation still catches it.
    let file = log_file(&audit);
    let mut lines: Vec<Value> = audit_log::text(&file)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = lines
        .iter()
        .rposition(|r| r["type"] == "decision" && r["verdict"] == "deny")
        .unwrap();
    lines[at]["verdict"] = json!("allow");
    lines[at]["action"] = json!("forward");
    let seq = lines[at]["seq"].as_u64().unwrap();
    let forged = tempfile::tempdir().unwrap();
    std::fs::write(
        forged.path().join(file.file_name().unwrap()),
        rechain(&mut lines),
    )
    .unwrap();
    let mirror = state.path().join("policy-repo.git");
    let (code, out) = verify(&[
        "--log",
        forged.path().to_str().unwrap(),
        "--repo",
        mirror.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        !out.contains("error[edited]"),
        "the chain itself is valid: {out}"
    );
    assert!(
        out.contains(&format!(":{}: seq {seq}: recorded verdict `allow`", at + 1)),
        "{out}"
    );
    assert!(out.contains("error[verdict]"), "{out}");
}

/// A Streamable HTTP MCP server that counts the calls it executed.
struct Upstream {
    url: String,
    executed: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Upstream {
    fn start() -> Upstream {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let executed = Arc::new(Mutex::new(Vec::new()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = executed.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let post = req.method() == hyper::Method::POST;
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let m: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let reply = |status: u16, v: Value| {
                                let mut r = hyper::Response::new(Full::new(Bytes::from(v.to_string())));
                                *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                                r.headers_mut().insert("content-type", "application/json".parse().unwrap());
                                r.headers_mut().insert("mcp-session-id", "up-1".parse().unwrap());
                                Ok::<_, std::convert::Infallible>(r)
                            };
                            let Some(id) = m.get("id").cloned().filter(|_| post) else {
                                return reply(202, json!({}));
                            };
                            let result = match m["method"].as_str() {
                                Some("initialize") => json!({"protocolVersion": m["params"]["protocolVersion"],
                                    "capabilities": {"tools": {}}, "serverInfo": {"name": "counter", "version": "1"}}),
                                Some("tools/list") => json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}),
                                Some("tools/call") => {
                                    let text = m["params"]["arguments"]["text"].as_str().unwrap_or("").to_owned();
                                    seen.lock().unwrap().push(text.clone());
                                    json!({"content": [{"type": "text", "text": text}], "isError": false})
                                }
                                _ => json!({}),
                            };
                            reply(200, json!({"jsonrpc": "2.0", "id": id, "result": result}))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            url: format!("http://{addr}/mcp"),
            executed,
            _runtime: runtime,
        }
    }

    fn count(&self) -> usize {
        self.executed.lock().unwrap().len()
    }
}

#[test]
fn a_crash_loses_no_record_of_an_executed_call() {
    crash_under_load(None);
}

/// `durability: written` acknowledges a record once written to the file, not synced: a
/// killed process still loses none (the page cache survives it).
#[test]
fn a_crash_loses_no_record_of_an_executed_call_when_records_are_only_written() {
    crash_under_load(Some(json!({"durability": "written", "sync_ms": 1000})));
}

fn crash_under_load(audit: Option<Value>) {
    let upstream = Upstream::start();
    let mut config = json!({"servers": {"counter": {"url": upstream.url}}});
    if let Some(a) = audit {
        config["audit"] = a;
    }
    let repo = PolicyRepo::with(&config, "allow counter.echo;\n");
    let state = tempfile::tempdir().unwrap();
    let args = vec![
        "--policy".to_owned(),
        repo.path().to_str().unwrap().to_owned(),
    ];
    let mut gw = Gateway::start_in(state.path(), &args, &[]);
    let addr = gw.addr();
    let clients: Vec<_> = (0..4)
        .map(|n| {
            std::thread::spawn(move || {
                let mut c = McpHttp::new(addr, "/mcp/counter");
                c.initialize();
                for i in 0..50u64 {
                    // After the kill a call fails (and the thread ends): that is the point.
                    tool_call(&c, i + 2, "echo", json!({"text": format!("c{n}-{i}")}));
                }
            })
        })
        .collect();
    for _ in 0..600 {
        if upstream.count() >= 60 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    gw.kill();
    for c in clients {
        let _ = c.join();
    }
    let executed = upstream.executed.lock().unwrap().clone();
    assert!(executed.len() >= 60, "only {} calls ran", executed.len());

    // The gateway starts again on the same state and continues the chain.
    let mut gw = Gateway::start_in(state.path(), &args, &[]);
    let mut c = McpHttp::new(gw.addr(), "/mcp/counter");
    c.initialize();
    let r = tool_call(&c, 2, "echo", json!({"text": "after-restart"}));
    assert_eq!(r["result"]["isError"], false, "{r}");
    gw.kill();

    let forwarded: BTreeSet<String> = audit_log::records(&state.path().join("audit"))
        .iter()
        .filter(|r| r["type"] == "decision" && r["action"] == "forward")
        .map(|r| r["arguments"]["text"].as_str().unwrap().to_owned())
        .collect();
    for text in &executed {
        assert!(
            forwarded.contains(text),
            "`{text}` ran without a decision record"
        );
    }
    assert!(forwarded.contains("after-restart"));
    let (code, out) = verify(&[
        "--state",
        state.path().to_str().unwrap(),
        "--policy",
        repo.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("error["), "{out}");
}

#[test]
fn a_call_whose_record_cannot_be_written_is_refused_and_not_forwarded() {
    // RLIMIT_FSIZE makes writes past 256 KiB fail (EFBIG), as a full disk would; the
    // signal that comes with it is ignored, as the shell passes an ignored signal on.
    let upstream = Upstream::start();
    let config = json!({"servers": {"counter": {"url": upstream.url}}});
    let repo = PolicyRepo::with(&config, "allow counter.echo;\n");
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg("trap '' XFSZ; ulimit -f 256; exec \"$0\" serve --listen 127.0.0.1:0 --state \"$1\" --policy \"$2\"")
        .arg(mcpgate_tests::paths::mcpgate_bin())
        .arg(state.path())
        .arg(repo.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let mut proc = mcpgate_tests::process::Proc::spawn("mcpgate serve (limited)", &mut cmd);
    let addr = proc
        .output
        .wait_for(
            Duration::from_secs(60),
            mcpgate_tests::gateway::parse_listening,
        )
        .unwrap_or_else(|| panic!("the gateway did not start:\n{}", proc.output.text()));
    let mut c = McpHttp::new(addr, "/mcp/counter");
    c.initialize();
    let big = "x".repeat(20_000);
    let mut refused = None;
    for i in 0..40u64 {
        let text = format!("{i}-{big}");
        let r = tool_call(&c, i + 2, "echo", json!({"text": text}));
        if let Some(e) = r.get("error") {
            assert_eq!(e["code"], -32050, "{r}");
            assert!(
                e["message"]
                    .as_str()
                    .unwrap()
                    .contains("audit log cannot be written"),
                "{r}"
            );
            refused = Some(text);
            break;
        }
        assert_eq!(r["result"]["isError"], false, "{r}");
    }
    let refused = refused.expect("the log never filled up");
    proc.kill();
    let executed = upstream.executed.lock().unwrap().clone();
    assert!(
        !executed.contains(&refused),
        "a call without a record was forwarded"
    );
    let recorded: BTreeSet<String> = audit_log::records(&state.path().join("audit"))
        .iter()
        .filter(|r| r["type"] == "decision")
        .map(|r| r["arguments"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(executed.iter().all(|t| recorded.contains(t)));
    // What was written is intact: the failed write was cut back.
    let (code, out) = verify(&["--state", state.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn arguments_a_redact_rule_names_are_stored_as_salted_hashes() {
    let rules = "allow demo.send_payment;\nredact demo.send_payment args.to;\n";
    let repo = PolicyRepo::with(&demo_config(json!({})), rules);
    let mut gw = Gateway::start(&repo);
    let mut c = McpHttp::new(gw.addr(), "/mcp/demo");
    c.initialize();
    for id in [2, 3] {
        let r = tool_call(
            &c,
            id,
            "send_payment",
            json!({"to": "alice-7731", "amount": 5}),
        );
        assert_eq!(r["result"]["isError"], false, "{r}");
    }
    gw.kill();
    let audit = gw.state().join("audit");
    let text = std::fs::read_to_string(log_file(&audit)).unwrap();
    assert!(
        !text.contains("alice-7731"),
        "the value reached the log:\n{text}"
    );
    let decisions: Vec<Value> = audit_log::records(&audit)
        .into_iter()
        .filter(|r| r["type"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 2);
    let sealed = decisions[0]["arguments"]["to"].as_str().unwrap();
    assert!(sealed.starts_with("hmac-sha256:"), "{sealed}");
    // Equal values seal alike within a log; other arguments stay readable.
    assert_eq!(decisions[1]["arguments"]["to"], sealed);
    assert_eq!(decisions[0]["arguments"]["amount"], 5);
    assert_eq!(decisions[0]["redacted"], json!(["args.to"]));
    let (code, out) = verify(&[
        "--state",
        gw.state().to_str().unwrap(),
        "--policy",
        repo.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 of 2 decisions re-evaluated"), "{out}");
}

/// `mcpgate audit export --state STATE --to-postgres URL`, with `env`: (exit code, output).
fn export_to_postgres(state: &Path, url: &str, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(mcpgate_tests::paths::mcpgate_bin());
    cmd.args(["audit", "export", "--state"])
        .arg(state)
        .args(["--to-postgres", url]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let done = mcpgate_tests::process::run(
        "mcpgate audit export",
        &mut cmd,
        b"",
        Duration::from_secs(60),
    );
    (done.code(), format!("{}{}", done.stdout, done.stderr))
}

#[test]
fn an_export_to_postgres_adds_each_record_once_and_answers_queries() {
    let pg = mcpgate_tests::stores::PgDatabase::create();
    let config = json!({
        "servers": {"demo": {"command": "mcpgate", "args": ["demo-server"]}},
        "identity": {},
        // A fleet's records name their replica (here from HOSTNAME): one chain each.
        "state": {},
    });
    let repo = PolicyRepo::with(&config, RULES);
    let mut a = Gateway::start_with_env(&repo, &[], &[("HOSTNAME", "gw-a")]);
    let mut b = Gateway::start_with_env(&repo, &[], &[("HOSTNAME", "gw-b")]);
    for (gw, who, id) in [(&a, "alice@example.com", 1), (&b, "bob@example.com", 2)] {
        let token = gw.issue_token(who, &[]);
        let mut c = McpHttp::new(gw.addr(), "/mcp/demo").with_bearer(&token);
        c.initialize();
        let r = tool_call(&c, id, "echo", json!({"text": who}));
        assert_eq!(r["result"]["isError"], false, "{r}");
        let r = tool_call(
            &c,
            10 + id,
            "send_payment",
            json!({"to": "eve", "amount": 500}),
        );
        assert_eq!(r["result"]["isError"], true, "{r}");
    }
    // Stopped, so the logs hold all they will.
    a.kill();
    b.kill();
    let (sa, sb) = (a.state().to_owned(), b.state().to_owned());
    let in_a = audit_log::records(&sa.join("audit")).len();
    let in_b = audit_log::records(&sb.join("audit")).len();
    assert!(in_a >= 4 && in_b >= 4, "{in_a} {in_b}");

    // A reference is resolved as in mcpgate.yaml; a plain URL works too.
    let env = [("AUDIT_PG_URL", pg.url())];
    let (code, out) = export_to_postgres(&sa, "${env:AUDIT_PG_URL}", &env);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("{in_a} records added, 0 already there")),
        "{out}"
    );
    let (code, out) = export_to_postgres(&sb, pg.url(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{in_b} records added")), "{out}");
    let total = (in_a + in_b).to_string();
    assert_eq!(pg.query("SELECT count(*) FROM mcpgate_audit"), total);
    assert_eq!(
        pg.query("SELECT string_agg(DISTINCT chain, ',') FROM mcpgate_audit"),
        "gw-a,gw-b"
    );

    // Run again: nothing new.
    let (code, out) = export_to_postgres(&sa, pg.url(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("0 records added, {in_a} already there")),
        "{out}"
    );
    assert_eq!(pg.query("SELECT count(*) FROM mcpgate_audit"), total);

    // The columns answer the usual questions; the record is kept whole.
    assert_eq!(
        pg.query(
            "SELECT string_agg(chain || ' ' || server || '.' || tool || ' ' || verdict || ' ' || coalesce(rule, '-'), '; ' ORDER BY seq) \
             FROM mcpgate_audit WHERE principal = 'alice@example.com' AND type = 'decision'"
        ),
        "gw-a demo.echo allow policies/main.mcpg#1; gw-a demo.send_payment deny payments-cap"
    );
    assert_eq!(
        pg.query(
            "SELECT count(*) FROM mcpgate_audit WHERE verdict = 'deny' \
             AND record->'arguments'->>'to' = 'eve' AND time > now() - interval '1 hour'"
        ),
        "2"
    );
    let hashes_match = pg.query(
        "SELECT bool_and(p.hash = n.record->>'prev') FROM mcpgate_audit n \
         JOIN mcpgate_audit p ON p.chain = n.chain AND p.seq = n.seq - 1",
    );
    assert_eq!(
        hashes_match, "t",
        "each row's hash is what the next record chains to"
    );
    let indexes = pg.query("SELECT count(*) FROM pg_indexes WHERE tablename = 'mcpgate_audit'");
    assert!(indexes.parse::<u32>().unwrap() >= 6, "{indexes}");

    // A row changed in the table is reported, not overwritten.
    pg.query("UPDATE mcpgate_audit SET hash = 'forged' WHERE chain = 'gw-a' AND seq = 1");
    let (code, out) = export_to_postgres(&sa, pg.url(), &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("another hash") && out.contains("gw-a 1"),
        "{out}"
    );
}
