//! The project's fixture server (`tests/peers/fixture_server.py`) behind the gateway:
//! a paginated `tools/list` filtered page by page, and `notifications/tools/list_changed`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::peers::{self, ok, result_text, tool_names};
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::json;

const POLICY: &str = r#"allow fx.get_*, fx.list_*, fx.change_tools, fx.added_*;
hide fx.admin_*;
@id("keep-items")
deny fx.delete_item;
"#;

fn gateway() -> (PolicyRepo, Gateway) {
    let config = json!({"servers": {"fx": peers::fixture_stdio(&["--page-size", "3"])}});
    let repo = PolicyRepo::with(&config, POLICY);
    let gateway = Gateway::start(&repo);
    (repo, gateway)
}

#[test]
fn pagination_is_filtered_on_every_page() {
    let (_repo, gateway) = gateway();
    let via = peers::py_client(
        json!({"url": gateway.url("/mcp/fx")}),
        json!([
            {"op": "list_tools"},
            {"op": "call_tool", "name": "get_user", "arguments": {"id": "u1"}},
            {"op": "call_tool", "name": "search_items", "arguments": {}},
        ]),
    );
    assert_eq!(
        tool_names(ok(&via, 0)),
        [
            "change_tools",
            "get_config",
            "get_item",
            "get_user",
            "list_items",
            "list_users"
        ],
        "{}",
        gateway.log()
    );
    assert_eq!(
        result_text(ok(&via, 1)),
        r#"get_user called with {"id": "u1"}"#
    );
    let unlisted = &peers::results(&via)[2];
    assert!(
        unlisted.get("error").is_some() || unlisted["ok"]["isError"] == true,
        "an unlisted tool ran: {unlisted}"
    );
}

#[test]
fn list_changed_reaches_the_client() {
    let (_repo, gateway) = gateway();
    let via = peers::py_client(
        json!({"url": gateway.url("/mcp/fx")}),
        json!([
            {"op": "call_tool", "name": "change_tools", "arguments": {}},
            {"op": "wait_notification", "method": "notifications/tools/list_changed",
             "timeout": 15},
            {"op": "list_tools"},
            {"op": "call_tool", "name": "added_1", "arguments": {}},
        ]),
    );
    assert_eq!(result_text(ok(&via, 0)), "added added_1");
    assert_eq!(
        ok(&via, 1),
        &json!(true),
        "no list_changed: {via}\n{}",
        gateway.log()
    );
    assert!(tool_names(ok(&via, 2)).contains(&"added_1".to_owned()));
    assert_eq!(result_text(ok(&via, 3)), "added_1 called with {}");
}
