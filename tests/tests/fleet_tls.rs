//! TLS to the fleet's stores, against real servers of the test's own: a `redis-server`
//! accepting only TLS and a PostgreSQL instance with `ssl=on`, both with certificates a
//! private CA made here signed. With `state.ca_file` naming that CA, replicas count calls in
//! Redis and check tokens in PostgreSQL over TLS; without it, the gateway refuses to start
//! and says which store and why, never printing the password; `sslmode=require` against a
//! server without TLS refuses rather than connecting in plain text. `audit export
//! --to-postgres` reaches the same server over TLS with `--ca-file`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::certs::CertFiles;
use mcpgate_tests::demo::{call, text};
use mcpgate_tests::http::{McpHttp, request};
use mcpgate_tests::stores::{PgServer, Redis};
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const RULES: &str = r#"allow demo.add, demo.echo;

@id("tls-adds")
limit demo.add 3 per minute per server;
"#;

fn demo() -> Value {
    json!({"demo": {"command": "mcpgate", "args": ["demo-server"]}})
}

/// `mcpgate serve` on `repo` that must fail at start: its output.
fn failed_start(repo: &PolicyRepo, env: &[(&str, &str)]) -> String {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(mcpgate_tests::paths::mcpgate_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--policy"])
        .arg(repo.path())
        .arg("--state")
        .arg(state.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let done = mcpgate_tests::process::run("mcpgate serve", &mut cmd, b"", Duration::from_secs(60));
    assert_eq!(done.code(), 2, "the gateway started: {done}");
    done.to_string()
}

fn with_ca(state: Value, ca: Option<&Path>) -> Value {
    let mut state = state;
    if let Some(ca) = ca {
        state["ca_file"] = json!(ca);
    }
    state
}

#[test]
fn replicas_count_calls_in_redis_over_tls_with_the_ca_file() {
    let certs = CertFiles::localhost();
    let redis = Redis::start_tls(&certs, "redis-Secret-4711");
    let config = json!({
        "servers": demo(),
        "state": with_ca(json!({"redis": "${env:MCPGATE_REDIS_URL}"}), Some(&certs.ca)),
    });
    let repo = PolicyRepo::with(&config, RULES);
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let env = [("MCPGATE_REDIS_URL", url.as_str())];
    let replicas = [
        Gateway::start_with_env(&repo, &[], &env),
        Gateway::start_with_env(&repo, &[], &env),
    ];
    let clients: Vec<McpHttp> = replicas
        .iter()
        .map(|gw| {
            let mut c = McpHttp::new(gw.addr(), "/mcp/demo");
            c.initialize();
            c
        })
        .collect();
    let mut allowed = 0;
    for i in 0..8u64 {
        let answer = call(
            &clients[i as usize % 2],
            10 + i,
            "add",
            json!({"a": 1, "b": 2}),
        );
        if answer["result"]["isError"] == json!(true) {
            assert!(
                text(&answer).contains("denied by limit tls-adds"),
                "{answer}"
            );
        } else {
            assert_eq!(text(&answer), "3", "{answer}");
            allowed += 1;
        }
    }
    // Three in all across both replicas: the count is the one in Redis, reached over TLS
    // (each replica alone would have let three through).
    assert_eq!(allowed, 3);
    let r = request(replicas[0].addr(), "GET", "/readyz", &[], b"");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        r.json()["stores"]["quota"],
        json!({"store": "redis", "up": true})
    );
    for gw in &replicas {
        assert!(!gw.log().contains("redis-Secret-4711"), "{}", gw.log());
    }
}

#[test]
fn an_untrusted_redis_certificate_stops_the_gateway() {
    let certs = CertFiles::localhost();
    let redis = Redis::start_tls(&certs, "redis-Secret-4711");
    let config = json!({
        "servers": demo(),
        "state": {"redis": "${env:MCPGATE_REDIS_URL}"},
    });
    let repo = PolicyRepo::with(&config, RULES);
    let out = failed_start(&repo, &[("MCPGATE_REDIS_URL", &redis.url())]);
    assert!(out.contains("state.redis"), "{out}");
    assert!(
        out.contains("certificate") || out.contains("UnknownIssuer"),
        "{out}"
    );
    assert!(
        !out.contains("redis-Secret-4711"),
        "the password was printed: {out}"
    );
}

/// A policy checking gateway tokens in the PostgreSQL `MCPGATE_PG_URL` names.
fn token_policy(ca: Option<&Path>) -> PolicyRepo {
    let config = json!({
        "servers": demo(),
        "identity": {},
        "state": with_ca(json!({"postgres": "${env:MCPGATE_PG_URL}"}), ca),
    });
    PolicyRepo::with(&config, "allow demo.echo;\n")
}

#[test]
fn tokens_are_checked_in_postgres_over_tls_with_the_ca_file() {
    let certs = CertFiles::localhost();
    let pg = PgServer::start(Some(&certs));
    let repo = token_policy(Some(&certs.ca));
    let url = pg.url("sslmode=verify-full");
    let gw = Gateway::start_with_env(&repo, &[], &[("MCPGATE_PG_URL", &url)]);

    // Issued with the policy folder: the command reaches the database over TLS too.
    let mut cmd = std::process::Command::new(mcpgate_tests::paths::mcpgate_bin());
    cmd.args([
        "token",
        "issue",
        "--subject",
        "alice@example.com",
        "--kind",
        "human",
    ])
    .args(["--reason", "tls test", "--state"])
    .arg(gw.state())
    .arg("--policy")
    .arg(repo.path())
    .env("MCPGATE_PG_URL", &url);
    let done = mcpgate_tests::process::run("mcpgate token", &mut cmd, b"", Duration::from_secs(60));
    assert_eq!(done.code(), 0, "{done}");
    let token = done.stdout.trim().to_owned();
    assert!(token.starts_with("mcpg_"), "{token}");

    let mut c = McpHttp::new(gw.addr(), "/mcp/demo").with_bearer(&token);
    c.initialize();
    assert_eq!(
        text(&call(&c, 2, "echo", json!({"text": "over tls"}))),
        "over tls"
    );
    assert_eq!(pg.query("SELECT count(*) FROM mcpgate_tokens"), "1");
    // Every connection the gateway holds open is encrypted.
    let sessions = pg.query(
        "SELECT count(*) || ' ' || bool_and(s.ssl) FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = 'postgres' AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'",
    );
    let (n, all_tls) = sessions.split_once(' ').unwrap_or_default();
    assert!(n.parse::<u32>().unwrap_or_default() >= 1, "{sessions}");
    assert_eq!(all_tls, "true", "{sessions}");

    // The replica's audit log goes to the same server over TLS, trusting the CA given.
    let mut gw = gw;
    gw.kill();
    let export = |ca: Option<&Path>| {
        let mut cmd = std::process::Command::new(mcpgate_tests::paths::mcpgate_bin());
        cmd.args(["audit", "export", "--state"])
            .arg(gw.state())
            .args(["--to-postgres", &url]);
        if let Some(ca) = ca {
            cmd.arg("--ca-file").arg(ca);
        }
        mcpgate_tests::process::run(
            "mcpgate audit export",
            &mut cmd,
            b"",
            Duration::from_secs(60),
        )
    };
    let refused = export(None);
    assert_eq!(refused.code(), 2, "{refused}");
    assert!(refused.to_string().contains("UnknownIssuer"), "{refused}");
    assert!(!refused.to_string().contains(pg.password()), "{refused}");
    let done = export(Some(&certs.ca));
    assert_eq!(done.code(), 0, "{done}");
    assert!(done.stdout.contains("records added"), "{done}");
    assert_eq!(
        pg.query(
            "SELECT count(*) FROM mcpgate_audit WHERE principal = 'alice@example.com' AND tool = 'echo'"
        ),
        "1"
    );
}

#[test]
fn an_untrusted_postgres_certificate_stops_the_gateway() {
    let certs = CertFiles::localhost();
    let pg = PgServer::start(Some(&certs));
    let repo = token_policy(None);
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = pg.url(&format!("sslmode={mode}"));
        let out = failed_start(&repo, &[("MCPGATE_PG_URL", &url)]);
        assert!(out.contains("state.postgres"), "{mode}: {out}");
        assert!(
            out.contains("127.0.0.1"),
            "{mode}: the server is named: {out}"
        );
        assert!(
            out.contains("UnknownIssuer") || out.contains("certificate"),
            "{mode}: {out}"
        );
        assert!(
            !out.contains(pg.password()),
            "the password was printed: {out}"
        );
    }
}

#[test]
fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    // A certificate the private CA signed for another host.
    let certs = CertFiles::for_names(&["db.internal.example"]);
    let pg = PgServer::start(Some(&certs));
    let repo = token_policy(Some(&certs.ca));
    let out = failed_start(&repo, &[("MCPGATE_PG_URL", &pg.url("sslmode=verify-full"))]);
    assert!(out.contains("state.postgres"), "{out}");
    assert!(
        out.contains("NotValidForName") || out.contains("not valid for"),
        "{out}"
    );
    let gw = Gateway::start_with_env(
        &repo,
        &[],
        &[("MCPGATE_PG_URL", &pg.url("sslmode=verify-ca"))],
    );
    let r = request(gw.addr(), "GET", "/readyz", &[], b"");
    assert_eq!(
        r.json()["stores"]["tokens"],
        json!({"store": "postgres", "up": true}),
        "{r}"
    );
}

#[test]
fn sslmode_require_refuses_a_server_without_tls() {
    let certs = CertFiles::localhost();
    let pg = PgServer::start(None);
    let repo = token_policy(Some(&certs.ca));
    let out = failed_start(&repo, &[("MCPGATE_PG_URL", &pg.url("sslmode=require"))]);
    assert!(out.contains("state.postgres"), "{out}");
    assert!(out.contains("server does not support TLS"), "{out}");
    assert!(
        !out.contains(pg.password()),
        "the password was printed: {out}"
    );
    // The same server is reached without TLS when the URL says so.
    let gw = Gateway::start_with_env(
        &repo,
        &[],
        &[("MCPGATE_PG_URL", &pg.url("sslmode=disable"))],
    );
    let r = request(gw.addr(), "GET", "/readyz", &[], b"");
    assert_eq!(r.status, 200, "{r}");
}
