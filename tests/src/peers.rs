//! The MCP peers: servers to put behind the gateway, and clients to drive through it.

use crate::paths;
use crate::process::{self, Finished, Proc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn path_str(p: &Path) -> String {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
        .to_owned()
}

/// The entry point of an installed npm server package.
fn npm_entry(package: &str) -> String {
    path_str(&paths::npm_package(package).join("dist").join("index.js"))
}

/// `mcpgate.yaml` entry for `@modelcontextprotocol/server-everything` over stdio.
pub fn everything_stdio() -> Value {
    json!({
        "command": path_str(&paths::node()),
        "args": [npm_entry("@modelcontextprotocol/server-everything"), "stdio"],
    })
}

/// `mcpgate.yaml` entry for `@modelcontextprotocol/server-filesystem` serving `root`.
pub fn filesystem_stdio(root: &Path) -> Value {
    json!({
        "command": path_str(&paths::node()),
        "args": [npm_entry("@modelcontextprotocol/server-filesystem"), path_str(root)],
    })
}

/// `mcpgate.yaml` entry for `@modelcontextprotocol/server-memory`, storing in `file`.
pub fn memory_stdio(file: &Path) -> Value {
    json!({
        "command": path_str(&paths::node()),
        "args": [npm_entry("@modelcontextprotocol/server-memory")],
        "env": {"MEMORY_FILE_PATH": path_str(file)},
    })
}

/// `mcpgate.yaml` entry for the project's fixture server (`tests/peers/fixture_server.py`),
/// with its command-line flags (`--page-size 3`, ...).
pub fn fixture_stdio(flags: &[&str]) -> Value {
    let script = paths::peer_sources().join("fixture_server.py");
    let mut args = vec![path_str(&script)];
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    json!({"command": path_str(&paths::python()), "args": args})
}

/// `mcpgate.yaml` entry for `tests/peers/pinned_server.py` (the Python SDK's `MCPServer`),
/// whose tools and descriptions come from the JSON file `config` read at each start.
pub fn pinned_stdio(config: &Path) -> Value {
    let script = paths::peer_sources().join("pinned_server.py");
    json!({
        "command": path_str(&paths::python()),
        "args": [path_str(&script)],
        "env": {"PINNED_SERVER_CONFIG": path_str(config)},
    })
}

/// `mcpgate.yaml` entry for the dual-era Python SDK server (`tests/peers/modern_server.py`)
/// over stdio, under `protocol: auto`. The era probe counts from the spawn; the wait is
/// longer than the default so that a loaded machine's slow Python start is not taken for a
/// legacy server (which the dual-era server would then be, correctly but not as tested).
pub fn modern_stdio() -> Value {
    let script = paths::peer_sources().join("modern_server.py");
    json!({"command": path_str(&paths::python()), "args": [path_str(&script)],
           "probe_timeout_secs": 30})
}

/// A stdio server entry (`command`, `args`, `env`) as a Python client target, to call the
/// same server directly.
pub fn direct_target(server: &Value) -> Value {
    let mut target = json!({"command": server["command"], "args": server["args"]});
    if let Some(env) = server.get("env") {
        target["env"] = env.clone();
    }
    target
}

/// A peer server listening on loopback, stopped on drop.
pub struct HttpPeer {
    pub proc: Proc,
    /// The MCP endpoint, e.g. `http://127.0.0.1:PORT/mcp`.
    pub url: String,
}

impl HttpPeer {
    /// `server-everything` over Streamable HTTP, pinned to 127.0.0.1 by the `loopback.cjs`
    /// preload on a free port.
    pub fn everything() -> HttpPeer {
        let mut cmd = Command::new(paths::node());
        cmd.arg("--require")
            .arg(paths::peer_sources().join("loopback.cjs"))
            .arg(npm_entry("@modelcontextprotocol/server-everything"))
            .arg("streamableHttp")
            .env("PORT", "0");
        let mut proc = Proc::spawn("server-everything (HTTP)", &mut cmd);
        let port = proc.output.wait_for(Duration::from_secs(30), |line| {
            line.strip_prefix("loopback listening on 127.0.0.1:")
                .and_then(|p| p.trim().parse::<u16>().ok())
        });
        let Some(port) = port else {
            proc.kill();
            panic!(
                "server-everything did not start listening; its output:\n{}",
                proc.output.text()
            );
        };
        HttpPeer {
            proc,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

impl HttpPeer {
    /// `tests/peers/header_recorder_server.py` over Streamable HTTP: every request it gets
    /// (headers and body) and every tool call is appended to `record` as a JSON line.
    pub fn header_recorder(record: &Path) -> HttpPeer {
        HttpPeer::recorder("--http", record)
    }

    /// As [`HttpPeer::header_recorder`], answering each request with one JSON body
    /// (`application/json`) instead of an event stream.
    pub fn header_recorder_json(record: &Path) -> HttpPeer {
        HttpPeer::recorder("--http-json", record)
    }

    fn recorder(mode: &str, record: &Path) -> HttpPeer {
        let mut cmd = Command::new(paths::python());
        cmd.arg(paths::peer_sources().join("header_recorder_server.py"))
            .arg(mode)
            .arg(record);
        let mut proc = Proc::spawn("header recorder (HTTP)", &mut cmd);
        let port = proc.output.wait_for(Duration::from_secs(90), |line| {
            line.strip_prefix("recorder listening on 127.0.0.1:")
                .and_then(|p| p.trim().parse::<u16>().ok())
        });
        let Some(port) = port else {
            proc.kill();
            panic!(
                "the header recorder did not start listening; its output:\n{}",
                proc.output.text()
            );
        };
        HttpPeer {
            proc,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

/// `mcpgate.yaml` entry for `tests/peers/header_recorder_server.py` over stdio, recording
/// its tool calls in `record`.
pub fn header_recorder_stdio(record: &Path) -> Value {
    let script = paths::peer_sources().join("header_recorder_server.py");
    json!({
        "command": path_str(&paths::python()),
        "args": [path_str(&script), "--stdio", path_str(record)],
    })
}

/// The JSON lines a recorder wrote to `record` (none if it wrote nothing yet).
pub fn recorded(record: &Path) -> Vec<Value> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record line {l}: {e}")))
        .collect()
}

impl HttpPeer {
    /// The dual-era Python SDK server (`tests/peers/modern_server.py`) over Streamable HTTP
    /// on a free loopback port.
    pub fn modern() -> HttpPeer {
        HttpPeer::modern_with(&[], "http")
    }

    /// The same server over https with the certificate and key of the PEM files `cert` and
    /// `key` (its URL names `localhost`).
    pub fn modern_tls(cert: &std::path::Path, key: &std::path::Path) -> HttpPeer {
        HttpPeer::modern_with(&[("TLS_CERT", cert), ("TLS_KEY", key)], "https")
    }

    fn modern_with(env: &[(&str, &std::path::Path)], scheme: &str) -> HttpPeer {
        let mut cmd = Command::new(paths::python());
        cmd.arg(paths::peer_sources().join("modern_server.py"))
            .arg("--http");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn("modern_server.py (HTTP)", &mut cmd);
        let port = proc.output.wait_for(Duration::from_secs(30), |line| {
            line.strip_prefix("listening on 127.0.0.1:")
                .and_then(|p| p.trim().parse::<u16>().ok())
        });
        let Some(port) = port else {
            proc.kill();
            panic!(
                "modern_server.py did not start listening; its output:\n{}",
                proc.output.text()
            );
        };
        let host = if scheme == "https" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        HttpPeer {
            proc,
            url: format!("{scheme}://{host}:{port}/mcp"),
        }
    }
}

/// Deadline for one Python client scenario.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `tests/peers/client.py` (the Python SDK client) with `scenario` and returns its JSON
/// report (see the script's docs). `target` is `{"url": ...}` or a stdio command.
pub fn py_client(target: Value, steps: Value) -> Value {
    py_client_scenario(json!({"target": target, "mode": "legacy", "steps": steps}))
}

/// As [`py_client`], with the whole scenario given.
pub fn py_client_scenario(scenario: Value) -> Value {
    let mut cmd = Command::new(paths::python());
    cmd.arg(paths::peer_sources().join("client.py")).arg("-");
    let done = process::run(
        "python client",
        &mut cmd,
        scenario.to_string().as_bytes(),
        CLIENT_TIMEOUT,
    );
    let last = done.stdout.lines().rev().find(|l| l.starts_with('{'));
    let report: Value = last
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("the python client printed no report\n{done}"));
    if let Some(fatal) = report.get("fatal") {
        panic!("the python client failed: {fatal}\n{done}");
    }
    report
}

/// The report's step results, checking the session connected.
pub fn results(report: &Value) -> &Vec<Value> {
    if let Some(e) = report.get("connect_error") {
        panic!("the python client could not connect: {e}");
    }
    report["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in report {report}"))
}

/// The `ok` value of step `i`, panicking with the error otherwise.
pub fn ok(report: &Value, i: usize) -> &Value {
    let step = &results(report)[i];
    step.get("ok")
        .unwrap_or_else(|| panic!("step {i} failed: {step}"))
}

/// Tool names of a `list_tools` result, sorted.
pub fn tool_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("not a tool list: {list}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The concatenated text content of a tool result.
pub fn result_text(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|c| c["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Runs the Inspector CLI (`inspector --cli ARGS`) with Node 22.
pub fn inspector(args: &[&str]) -> Finished {
    let catalog = tempfile::tempdir().expect("temporary folder");
    let mut cmd = Command::new(paths::node());
    cmd.arg(
        paths::npm_package("@modelcontextprotocol/inspector")
            .join("clients")
            .join("launcher")
            .join("build")
            .join("index.js"),
    )
    .arg("--cli")
    .args(args)
    // The Inspector keeps a catalog of servers; keep it out of the home folder.
    .env("MCP_CATALOG_PATH", catalog.path().join("mcp.json"))
    .env("HOME", catalog.path());
    process::run("inspector --cli", &mut cmd, b"", Duration::from_secs(120))
}

/// Per-scenario results of the conformance suite: name -> (checks passed, checks failed).
pub type Conformance = BTreeMap<String, (u32, u32)>;

/// Runs `conformance server --url URL` with Node 22 and parses its summary.
pub fn conformance(url: &str) -> (Conformance, Finished) {
    let out = tempfile::tempdir().expect("temporary folder");
    let mut cmd = Command::new(paths::node());
    cmd.arg(
        paths::npm_package("@modelcontextprotocol/conformance")
            .join("dist")
            .join("index.js"),
    )
    .args(["server", "--url", url, "--output-dir"])
    .arg(out.path());
    let done = process::run("conformance", &mut cmd, b"", Duration::from_secs(300));
    let summary = parse_conformance(&done.stdout);
    if summary.is_empty() {
        panic!("the conformance suite printed no summary\n{done}");
    }
    (summary, done)
}

/// Parses the `✓ name: N passed, M failed` lines of the conformance summary.
pub fn parse_conformance(stdout: &str) -> Conformance {
    let mut out = Conformance::new();
    let Some(at) = stdout.find("=== SUMMARY ===") else {
        return out;
    };
    for line in stdout[at..].lines() {
        let line = line.trim_start_matches(['✓', '✗', ' ']);
        let Some((name, counts)) = line.split_once(": ") else {
            continue;
        };
        if name.trim() == "Total" {
            continue;
        }
        let mut nums = counts
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse::<u32>().ok());
        if let (Some(p), Some(f)) = (nums.next(), nums.next())
            && counts.contains("passed")
        {
            out.insert(name.trim().to_owned(), (p, f));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_conformance;

    #[test]
    fn reads_the_conformance_summary() {
        let out = "noise\n=== SUMMARY ===\n✓ ping: 1 passed, 0 failed\n✗ dns-rebinding-protection: 1 passed, 1 failed\n\nTotal: 2 passed, 1 failed\n";
        let s = parse_conformance(out);
        assert_eq!(s.len(), 2);
        assert_eq!(s["ping"], (1, 0));
        assert_eq!(s["dns-rebinding-protection"], (1, 1));
    }
}
