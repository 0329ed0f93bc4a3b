//! The aggregated `/mcp` endpoint: the tools of every upstream in one list, namespaced as
//! `server__tool`, each call decided by the policy of its server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::peers::{self, ok, result_text, tool_names};
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::json;
use std::fs;

const POLICY: &str = r#"allow everything.echo, everything.get-sum;
@id("small-sums")
deny everything.get-sum when args.a > 100 because "too big";
allow files.read_text_file, files.list_allowed_directories;
"#;

#[test]
fn two_upstreams_share_one_namespaced_endpoint() {
    let root = tempfile::tempdir().unwrap();
    let root_path = fs::canonicalize(root.path()).unwrap();
    fs::write(root_path.join("a.txt"), "aggregated").unwrap();
    let config = json!({"servers": {
        "everything": peers::everything_stdio(),
        "files": peers::filesystem_stdio(&root_path),
    }});
    let repo = PolicyRepo::with(&config, POLICY);
    let gateway = Gateway::start(&repo);
    let file = root_path.join("a.txt").display().to_string();
    let via = peers::py_client(
        json!({"url": gateway.url("/mcp")}),
        json!([
            {"op": "list_tools"},
            {"op": "call_tool", "name": "everything__echo", "arguments": {"message": "one"}},
            {"op": "call_tool", "name": "files__read_text_file", "arguments": {"path": file}},
            {"op": "call_tool", "name": "everything__get-sum", "arguments": {"a": 500, "b": 1}},
            {"op": "call_tool", "name": "files__write_file",
             "arguments": {"path": file, "content": "overwritten"}},
        ]),
    );
    assert_eq!(
        tool_names(ok(&via, 0)),
        [
            "everything__echo",
            "everything__get-sum",
            "files__list_allowed_directories",
            "files__read_text_file"
        ],
        "{}",
        gateway.log()
    );
    assert_eq!(result_text(ok(&via, 1)), "Echo: one");
    assert!(result_text(ok(&via, 2)).contains("aggregated"), "{via}");
    assert_eq!(ok(&via, 3)["isError"], true);
    assert!(result_text(ok(&via, 3)).contains("small-sums"), "{via}");
    let write = &peers::results(&via)[4];
    assert!(
        write.get("error").is_some() || write["ok"]["isError"] == true,
        "an unlisted tool ran: {write}"
    );
    assert_eq!(
        fs::read_to_string(root_path.join("a.txt")).unwrap(),
        "aggregated"
    );
}
