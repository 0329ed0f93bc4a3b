//! `server-memory` (a knowledge graph kept by its process) behind the gateway: state lives
//! on across the calls of one session, and a denied destructive call changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::peers::{self, ok, result_text, tool_names};
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::json;

const POLICY: &str = r#"allow memory.create_entities, memory.read_graph, memory.search_nodes;
allow memory.delete_entities;

@id("keep-ada")
deny memory.delete_entities when "Ada" in args.entityNames because "Ada stays in the graph";
"#;

#[test]
fn a_denied_delete_leaves_the_graph_as_it_was() {
    let store = tempfile::tempdir().unwrap();
    let mut server = peers::memory_stdio(&store.path().join("memory.jsonl"));
    // The store path is given to the gateway as `${env:..}`, as an operator would keep
    // machine-specific values out of the reviewed config.
    let file = server["env"]["MEMORY_FILE_PATH"]
        .as_str()
        .unwrap()
        .to_owned();
    server["env"]["MEMORY_FILE_PATH"] = json!("${env:MCPGATE_E2E_MEMORY_FILE}");
    let repo = PolicyRepo::with(&json!({"servers": {"memory": server}}), POLICY);
    let gateway = Gateway::start_with_env(&repo, &[], &[("MCPGATE_E2E_MEMORY_FILE", &file)]);
    let entity = |name: &str| json!({"name": name, "entityType": "person", "observations": []});
    let via = peers::py_client(
        json!({"url": gateway.url("/mcp/memory")}),
        json!([
            {"op": "list_tools"},
            {"op": "call_tool", "name": "create_entities",
             "arguments": {"entities": [entity("Ada"), entity("Bob")]}},
            {"op": "call_tool", "name": "delete_entities", "arguments": {"entityNames": ["Ada", "Bob"]}},
            {"op": "call_tool", "name": "delete_entities", "arguments": {"entityNames": ["Bob"]}},
            {"op": "call_tool", "name": "read_graph", "arguments": {}},
        ]),
    );
    assert_eq!(
        tool_names(ok(&via, 0)),
        [
            "create_entities",
            "delete_entities",
            "read_graph",
            "search_nodes"
        ],
        "{}",
        gateway.log()
    );
    assert_eq!(ok(&via, 1)["isError"], false, "{via}");
    assert_eq!(ok(&via, 2)["isError"], true, "{via}");
    assert!(result_text(ok(&via, 2)).contains("keep-ada"), "{via}");
    assert_eq!(ok(&via, 3)["isError"], false, "{via}");
    let graph = result_text(ok(&via, 4));
    assert!(graph.contains("Ada"), "the denied delete ran: {graph}");
    assert!(
        !graph.contains("Bob"),
        "the allowed delete did not run: {graph}"
    );
}
