//! The Python SDK client through the gateway to `server-filesystem` on a temporary folder:
//! decisions on real arguments, and a denied write that never reaches the disk.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::peers::{self, ok, result_text, tool_names};
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::json;
use std::fs;

const POLICY: &str = r#"allow fs.read_text_file, fs.list_directory, fs.list_allowed_directories;
allow fs.write_file;

@id("no-dotenv")
deny fs.write_file when args.path ends_with ".env" because "secrets files are read-only";

hide fs.move_file;
"#;

#[test]
fn reads_lists_and_writes_as_the_policy_says() {
    let root = tempfile::tempdir().unwrap();
    let root_path = fs::canonicalize(root.path()).unwrap();
    fs::write(root_path.join("hello.txt"), "hello from disk\n").unwrap();
    let server = peers::filesystem_stdio(&root_path);
    let repo = PolicyRepo::with(&json!({"servers": {"fs": server}}), POLICY);
    let gateway = Gateway::start(&repo);

    let hello = root_path.join("hello.txt").display().to_string();
    let notes = root_path.join("notes.txt").display().to_string();
    let dotenv = root_path.join("app.env").display().to_string();
    let steps = json!([
        {"op": "list_tools"},
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": hello}},
        {"op": "call_tool", "name": "write_file", "arguments": {"path": notes, "content": "noted"}},
        {"op": "call_tool", "name": "write_file", "arguments": {"path": dotenv, "content": "KEY=1"}},
        {"op": "call_tool", "name": "move_file", "arguments": {"source": hello, "destination": notes}},
    ]);
    let via = peers::py_client(json!({"url": gateway.url("/mcp/fs")}), steps);

    assert_eq!(
        tool_names(ok(&via, 0)),
        [
            "list_allowed_directories",
            "list_directory",
            "read_text_file",
            "write_file"
        ],
        "{}",
        gateway.log()
    );
    let direct = peers::py_client(
        peers::direct_target(&server),
        json!([{"op": "call_tool", "name": "read_text_file", "arguments": {"path": hello}}]),
    );
    assert_eq!(
        ok(&via, 1),
        ok(&direct, 0),
        "read differs from a direct call"
    );
    assert!(result_text(ok(&via, 1)).contains("hello from disk"));

    assert_eq!(ok(&via, 2)["isError"], false, "{via}");
    assert_eq!(
        fs::read_to_string(root_path.join("notes.txt")).unwrap(),
        "noted"
    );

    assert_eq!(ok(&via, 3)["isError"], true, "{via}");
    assert!(result_text(ok(&via, 3)).contains("no-dotenv"), "{via}");
    assert!(
        !root_path.join("app.env").exists(),
        "a denied write reached the disk"
    );

    let moved = &peers::results(&via)[4];
    assert!(
        moved.get("error").is_some() || moved["ok"]["isError"] == true,
        "a hidden tool ran: {moved}"
    );
    assert!(
        root_path.join("hello.txt").exists(),
        "a hidden tool moved a file"
    );
}
