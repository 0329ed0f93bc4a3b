//! The MCP conformance suite against `server-everything` directly and through the gateway
//! with an allow-all policy: every scenario that passes directly passes through the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::peers::{self, HttpPeer};
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::json;

const ALLOW_ALL: &str = r#"allow everything.*;
allow prompt everything.*;
allow resource everything "**";
"#;

#[test]
fn scenarios_that_pass_directly_pass_through_the_gateway() {
    let server = HttpPeer::everything();
    let (direct, direct_run) = peers::conformance(&server.url);
    let passed_directly: Vec<&String> = direct
        .iter()
        .filter(|(_, (_, failed))| *failed == 0)
        .map(|(name, _)| name)
        .collect();
    assert!(
        passed_directly.len() >= 5,
        "too few scenarios pass directly to compare:\n{direct_run}"
    );

    let repo = PolicyRepo::with(
        &json!({"servers": {"everything": {"url": server.url}}}),
        ALLOW_ALL,
    );
    let gateway = Gateway::start(&repo);
    let (via, via_run) = peers::conformance(&gateway.url("/mcp/everything"));
    let lost: Vec<&&String> = passed_directly
        .iter()
        .filter(|name| via.get(**name).is_none_or(|(_, failed)| *failed > 0))
        .collect();
    assert!(
        lost.is_empty(),
        "scenarios that pass directly but fail through the gateway: {lost:?}\n\
         direct: {direct:?}\nthrough the gateway: {via:?}\n{via_run}\n--- gateway log\n{}",
        gateway.log()
    );
    assert_eq!(
        direct.keys().collect::<Vec<_>>(),
        via.keys().collect::<Vec<_>>(),
        "both runs cover the same scenarios"
    );
}
