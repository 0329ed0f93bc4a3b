//! The `mcpgate` binary: `serve` prints its address and stops cleanly on SIGTERM;
//! `demo-server` speaks MCP on stdio.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mcpgate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn serve_prints_its_address_and_exits_zero_on_sigterm() {
    let policy = temp_dir("policy");
    let state = policy.join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpgate"))
        .args(["serve", "--policy"])
        .arg(&policy)
        .args(["--listen", "127.0.0.1:0", "--state"])
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let key = std::fs::metadata(state.join("session.key")).unwrap();
        assert_eq!(key.len(), 32);
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = child.wait().unwrap();
        assert_eq!(code.code(), Some(0));
    }
    #[cfg(not(unix))]
    let _ = child.kill();
    let _ = std::fs::remove_dir_all(&policy);
}

#[test]
fn serve_refuses_a_public_address_without_identity() {
    let policy = temp_dir("public");
    let out = Command::new(env!("CARGO_BIN_EXE_mcpgate"))
        .args(["serve", "--policy"])
        .arg(&policy)
        .args(["--listen", "0.0.0.0:0", "--state"])
        .arg(policy.join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without an `identity` section"), "{err}");
    let _ = std::fs::remove_dir_all(&policy);
}

#[test]
fn demo_server_speaks_mcp_on_stdio() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpgate"))
        .arg("demo-server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ask = |line: &str| -> serde_json::Value {
        writeln!(stdin, "{line}").unwrap();
        let mut answer = String::new();
        stdout.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap()
    };
    let init = ask(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    let tools = ask(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "echo",
            "add",
            "list_notes",
            "read_note",
            "write_note",
            "delete_note",
            "send_payment"
        ]
    );
    let sum = ask(
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":40}}}"#,
    );
    assert_eq!(sum["result"]["content"][0]["text"], "42");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
