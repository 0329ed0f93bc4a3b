//! `protocol:` per upstream in `mcpgate.yaml`: `legacy` goes straight to `initialize` (no
//! `server/discover` probe), `2026-07-28` refuses a server of the legacy era with a clear
//! error, `auto` probes and falls back; an unknown value fails `mcpgate check` at its line.
//! The upstream is `tests/peers/silent_legacy_server.py`, which never answers unknown
//! methods and logs every method it receives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::cli::mcpgate;
use mcpgate_tests::http::{McpHttp, initialize_request};
use mcpgate_tests::peers::{self, ok, result_text};
use mcpgate_tests::{Gateway, PolicyRepo, paths};
use serde_json::{Value, json};
use std::path::Path;

const POLICY: &str = "allow silent.echo, everything.echo;\n";

fn silent_server(methods: &Path, extra: Value) -> Value {
    let script = paths::peer_sources().join("silent_legacy_server.py");
    let mut server = json!({
        "command": paths::python().to_string_lossy(),
        "args": [script.to_string_lossy(), methods.to_string_lossy()],
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        server[k] = v.clone();
    }
    server
}

fn methods(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Lists and calls `echo` through the gateway with the Python SDK client in `mode`.
fn echo_through(gateway: &Gateway, mode: &str) {
    let report = peers::py_client_scenario(json!({
        "target": {"url": gateway.url("/mcp/silent")}, "mode": mode,
        "steps": [
            {"op": "list_tools"},
            {"op": "call_tool", "name": "echo", "arguments": {"text": "hi"}},
        ],
    }));
    assert_eq!(
        result_text(ok(&report, 1)),
        "echo: hi",
        "{report}\n{}",
        gateway.log()
    );
}

#[test]
fn legacy_servers_are_not_probed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("methods");
    let servers = json!({"silent": silent_server(&log, json!({"protocol": "legacy"}))});
    let repo = PolicyRepo::with(&json!({ "servers": servers }), POLICY);
    let gateway = Gateway::start(&repo);
    echo_through(&gateway, "legacy");
    echo_through(&gateway, "2026-07-28");
    let got = methods(&log);
    assert!(got.contains(&"initialize".to_owned()), "{got:?}");
    assert!(got.contains(&"tools/call".to_owned()), "{got:?}");
    assert!(
        !got.iter().any(|m| m == "server/discover"),
        "probed despite `protocol: legacy`: {got:?}"
    );
}

#[test]
fn auto_probes_then_falls_back_to_initialize() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("methods");
    let servers = json!({"silent": silent_server(&log, json!({"probe_timeout_secs": 1}))});
    let repo = PolicyRepo::with(&json!({ "servers": servers }), POLICY);
    let gateway = Gateway::start(&repo);
    echo_through(&gateway, "legacy");
    let got = methods(&log);
    let probe = got.iter().position(|m| m == "server/discover");
    let init = got.iter().position(|m| m == "initialize");
    assert!(
        probe.is_some() && init.is_some() && probe < init,
        "expected the probe, then initialize: {got:?}"
    );
}

#[test]
fn a_stateless_setting_refuses_a_legacy_server_clearly() {
    let mut everything = peers::everything_stdio();
    everything["protocol"] = json!("2026-07-28");
    let repo = PolicyRepo::with(&json!({"servers": {"everything": everything}}), POLICY);
    let gateway = Gateway::start(&repo);
    let client = McpHttp::new(gateway.addr(), "/mcp/everything");
    let init = client.post(&initialize_request(1));
    let text = init.text();
    assert!(
        text.contains("configured with `protocol: 2026-07-28`")
            && text.contains("protocol: legacy"),
        "{init}\n{}",
        gateway.log()
    );
    assert!(
        gateway.wait_for_log("upstream does not speak protocol 2026-07-28"),
        "{}",
        gateway.log()
    );
}

/// `mcpgate check` on a repository with this `mcpgate.yaml`: fails, and says this.
fn check_fails(config: &str, server: &str) -> String {
    let repo = PolicyRepo::new()
        .file("mcpgate.yaml", config)
        .file("policies/main.mcpg", &format!("allow {server}.echo;\n"));
    let done = mcpgate(repo.path(), ["check", "."]);
    assert_eq!(done.code(), 1, "{done}");
    format!("{}\n{}", done.stdout, done.stderr)
}

#[test]
fn an_unknown_protocol_fails_the_check_at_its_line() {
    let config =
        "servers:\n  demo:\n    command: mcpgate\n    args: [demo-server]\n    protocol: modern\n";
    let out = check_fails(config, "demo");
    assert!(out.contains("mcpgate.yaml:5:"), "{out}");
    assert!(out.contains("unknown value `modern`"), "{out}");
    assert!(out.contains("`2026-07-28`"), "{out}");

    let sse = "servers:\n  old:\n    url: https://old.example/sse\n    transport: sse\n    protocol: 2026-07-28\n";
    let out = check_fails(sse, "old");
    assert!(out.contains("mcpgate.yaml:5:"), "{out}");
    assert!(out.contains("cannot speak protocol `2026-07-28`"), "{out}");
}
