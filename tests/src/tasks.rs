//! Task requests (`tasks/*`, protocol 2025-11-25) as the tasks and fleet suites check them.

use crate::http::McpHttp;
use serde_json::{Value, json};
use std::time::Duration;

/// What a server answers for a task id it does not know (and the gateway for a task that
/// is not the caller's).
pub const UNKNOWN_TASK: &str = "Failed to retrieve task: Task not found";

/// `tasks/get` until the task is no longer working (bounded); the last answer.
pub fn settled(c: &McpHttp, id: &str) -> Value {
    for n in 0..60 {
        let r = c.call(30 + n, "tasks/get", json!({"taskId": id}));
        let status = r.pointer("/result/status").cloned().unwrap_or(Value::Null);
        if status != "working" && status != "input_required" {
            return r;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("task {id} still working after 60 polls");
}

/// `r` refuses a task as unknown, with nothing of it.
pub fn assert_unknown(r: &Value, what: &str) {
    assert_eq!(r["error"]["code"], -32602, "{what}: {r}");
    assert_eq!(r["error"]["message"], UNKNOWN_TASK, "{what}: {r}");
    assert!(r.get("result").is_none(), "{what}: {r}");
}

/// The task ids of a `tasks/list` answer.
pub fn listed_ids(r: &Value) -> Vec<String> {
    r["result"]["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("not a task list: {r}"))
        .iter()
        .filter_map(|t| t["taskId"].as_str().map(str::to_owned))
        .collect()
}
