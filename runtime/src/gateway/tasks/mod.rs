//! Tasks (2025-11-25, experimental): a task-augmented `tools/call` is decided like any call;
//! the task its upstream creates is recorded for the calling principal, and `tasks/get`,
//! `tasks/result`, `tasks/cancel` and `tasks/list` reach only the caller's own tasks. Task
//! ids pass unchanged; on `/mcp` the task store says which upstream created a task. When the
//! store does not answer, task requests are refused with [`STORE_DOWN`], never relayed
//! unchecked.

use crate::audit::decision::{Pending, record_task_outcome};
use crate::decision::delegation::caller_key;
use crate::gateway::pages;
use crate::gateway::relay::{self, Reply, Transform};
use crate::gateway::{Gateway, LoadedProgram, decide, redact};
use crate::jsonrpc;
use crate::session::{Endpoint, Session};
use crate::tasks::{NewTask, Owned, TaskStoreError, now_ms};
use mcpgate_compiler::Target;
use serde_json::Value;
use std::sync::Arc;

/// The refusal for a task the caller does not own: what a server answers for an id it does
/// not know, so it does not tell whether the id exists.
pub const UNKNOWN_TASK: &str = "Failed to retrieve task: Task not found";

/// Whether the gateway answers `method` here rather than relaying it as it is.
pub fn handles(method: &str) -> bool {
    matches!(
        method,
        "tasks/get" | "tasks/result" | "tasks/cancel" | "tasks/list"
    )
}

/// The refusal of a task request while the task store does not answer (JSON-RPC
/// `-32603`): the owner cannot be checked, so nothing is relayed.
pub const STORE_DOWN: &str =
    "task store unavailable: the task's owner cannot be checked; retry in 1s";

fn store_down(client_id: Value, method: &str, e: &TaskStoreError) -> Value {
    tracing::warn!(method, error = %e, "task request refused: the task store does not answer");
    jsonrpc::error(client_id, jsonrpc::INTERNAL_ERROR, STORE_DOWN)
}

fn unknown_task(client_id: Value) -> Reply {
    Reply::Json(jsonrpc::error(
        client_id,
        jsonrpc::INVALID_PARAMS,
        UNKNOWN_TASK,
    ))
}

/// Wraps the transform of an allowed `tools/call` so that, when the call is task-augmented
/// and the upstream answers with a task, the task is recorded for the caller. Any other
/// request gets `inner` back unchanged.
pub fn on_call(
    gw: &Gateway,
    session: &Session,
    server: &str,
    tool: &str,
    message: &Value,
    pending: Option<&Pending>,
    inner: Option<Transform>,
) -> Option<Transform> {
    // `get` chains, not a pointer: a pointer allocates per segment, and this runs per call.
    let task = message.get("params").and_then(|p| p.get("task"));
    if jsonrpc::method(message) != Some("tools/call") || task.is_none() {
        return inner;
    }
    let registry = gw.tasks.clone();
    let server = server.to_owned();
    let tool = tool.to_owned();
    let principal = caller_key(&session.principal).into_owned();
    let sid = session.sid.clone();
    let arguments = message
        .pointer("/params/arguments")
        .cloned()
        .unwrap_or(Value::Null);
    let request_id = pending.map(|p| p.request_id().to_owned());
    Some(Transform::new(move |m: Value| {
        let task = m.pointer("/result/task");
        if let Some(task_id) = task.and_then(|t| t.get("taskId")).and_then(Value::as_str) {
            let new = NewTask {
                server: &server,
                task_id,
                principal: &principal,
                tool: &tool,
                arguments: &arguments,
                session: &sid,
                request_id: request_id.as_deref(),
                ttl_ms: task.and_then(|t| t.get("ttl")).and_then(Value::as_u64),
            };
            if let Err(e) = registry.record(&new, now_ms()) {
                // Unrecorded, the task would be unreachable: say so instead of handing out
                // an id that every later request is refused.
                tracing::error!(server, error = %e, "cannot record a task for its caller");
                let id = m.get("id").cloned().unwrap_or(Value::Null);
                return jsonrpc::error(
                    id,
                    jsonrpc::INTERNAL_ERROR,
                    "the gateway cannot record the task; it was created upstream but cannot be reached",
                );
            }
            tracing::debug!(
                server,
                task = task_id,
                principal,
                "task recorded for its caller"
            );
        }
        match inner {
            Some(t) => t.apply(m),
            None => m,
        }
    }))
}

/// Handles `tasks/get`, `tasks/result`, `tasks/cancel` and `tasks/list` in a session.
pub async fn request(
    gw: &Arc<Gateway>,
    loaded: &Arc<LoadedProgram>,
    session: &Arc<Session>,
    client_id: Value,
    method: &str,
    message: Value,
) -> Reply {
    if method == "tasks/list" {
        return match &session.endpoint {
            Endpoint::Server(server) => list_one(gw, session, server, client_id, message).await,
            Endpoint::Aggregate => Reply::Json(list_all(gw, session, client_id, &message).await),
        };
    }
    let Some(task_id) = jsonrpc::params(&message)
        .get("taskId")
        .and_then(Value::as_str)
    else {
        return unknown_task(client_id);
    };
    let principal = &*caller_key(&session.principal);
    let now = now_ms();
    let owned = match &session.endpoint {
        Endpoint::Server(server) => gw.tasks.owned(principal, server, task_id, now),
        Endpoint::Aggregate => {
            gw.tasks
                .find(principal, task_id, &mut session.upstreams.keys(), now)
        }
    };
    let owned = match owned {
        Ok(o) => o,
        Err(e) => return Reply::Json(store_down(client_id, method, &e)),
    };
    let Some(task) = owned else {
        tracing::debug!(session = %session.sid, method, "task request refused: not the caller's task");
        return unknown_task(client_id);
    };
    let Some(up) = session.upstreams.get(&task.server) else {
        return unknown_task(client_id);
    };
    let transform = if method == "tasks/result" {
        result_transform(gw, loaded, session, &task)
    } else {
        None
    };
    relay::forward(
        session.clone(),
        &task.server,
        up,
        message,
        client_id,
        transform,
        gw.timeout(&task.server),
    )
    .await
}

/// What `tasks/result` does to the tool's output: the tool's `redact` masks, as for a
/// direct call, and its outcome in the audit log under the creating call's request id.
fn result_transform(
    gw: &Arc<Gateway>,
    loaded: &Arc<LoadedProgram>,
    session: &Arc<Session>,
    task: &Owned,
) -> Option<Transform> {
    // Redaction conditions see the call that created the task, asked as a decision
    // asks: the principal with its policy groups, the decided annotations.
    let target = Target::Tool {
        server: &task.server,
        tool: &task.tool,
    };
    let caller = decide::caller(loaded, session);
    let annotations = decide::annotations(loaded, session, target);
    let request = caller.request(target, &task.arguments, annotations);
    let plan = crate::decision::redaction::result_masks(&loaded.program, &request);
    let masks = redact::transform(loaded, plan);
    let Some(request_id) = task.request_id.clone() else {
        return masks;
    };
    if gw.audit.get().is_none() {
        return masks;
    }
    let gw = gw.clone();
    let session = session.clone();
    let server = task.server.clone();
    let task_id = task.task_id.clone();
    let started = std::time::Instant::now();
    Some(Transform::new(move |m: Value| {
        record_task_outcome(
            gw.audit.get(),
            &session.sid,
            &server,
            &request_id,
            &task_id,
            &m,
            started,
        );
        match masks {
            Some(t) => t.apply(m),
            None => m,
        }
    }))
}

/// Keeps only the tasks of `result.tasks` whose ids are in `owned`; returns how many were
/// left out.
fn filter_page(result: &mut Value, owned: &std::collections::HashSet<String>) -> usize {
    let Some(tasks) = result.get_mut("tasks").and_then(Value::as_array_mut) else {
        return 0;
    };
    let before = tasks.len();
    tasks.retain(|t| {
        t.get("taskId")
            .and_then(Value::as_str)
            .is_some_and(|id| owned.contains(id))
    });
    before - tasks.len()
}

/// `tasks/list` on a server's endpoint: the upstream's page, with only the caller's tasks.
async fn list_one(
    gw: &Arc<Gateway>,
    session: &Arc<Session>,
    server: &str,
    client_id: Value,
    message: Value,
) -> Reply {
    let Some(up) = session.upstreams.get(server) else {
        return Reply::SessionGone;
    };
    let registry = gw.tasks.clone();
    let principal = caller_key(&session.principal).into_owned();
    let name = server.to_owned();
    let transform = Transform::new(move |mut m: Value| {
        if let Some(result) = m.get_mut("result") {
            match registry.owned_ids(&principal, &name, now_ms()) {
                Ok(owned) => {
                    filter_page(result, &owned);
                }
                Err(e) => {
                    let id = m.get("id").cloned().unwrap_or(Value::Null);
                    return store_down(id, "tasks/list", &e);
                }
            }
        }
        m
    });
    relay::forward(
        session.clone(),
        server,
        up,
        message,
        client_id,
        Some(transform),
        gw.timeout(server),
    )
    .await
}

/// `tasks/list` on `/mcp`: the upstreams' pages ([`pages::walk`]) with only the caller's
/// tasks.
async fn list_all(
    gw: &Arc<Gateway>,
    session: &Arc<Session>,
    client_id: Value,
    message: &Value,
) -> Value {
    let principal = &*caller_key(&session.principal);
    let mut failed = None;
    let walked = pages::walk(
        gw,
        session,
        message,
        "tasks/list",
        "tasks",
        |server, result| match gw.tasks.owned_ids(principal, server, now_ms()) {
            Ok(owned) => {
                filter_page(result, &owned);
            }
            Err(e) => {
                // Nothing of this page is the caller's as far as can be told; the whole
                // answer is the store-down refusal below.
                filter_page(result, &std::collections::HashSet::new());
                failed = Some(e);
            }
        },
    )
    .await;
    if let Some(e) = failed {
        return store_down(client_id, "tasks/list", &e);
    }
    match walked {
        Ok((items, next)) => pages::answer(client_id, "tasks", items, next),
        Err(_) => jsonrpc::error(client_id, jsonrpc::INVALID_PARAMS, "invalid cursor"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

    #[test]
    fn pages_keep_only_owned_tasks() {
        let mut result = json!({"tasks": [
            {"taskId": "a"}, {"taskId": "b"}, {"status": "working"}, {"taskId": 3}
        ], "nextCursor": "n"});
        let owned = HashSet::from(["b".to_owned()]);
        assert_eq!(filter_page(&mut result, &owned), 3);
        assert_eq!(
            result,
            json!({"tasks": [{"taskId": "b"}], "nextCursor": "n"})
        );
        let mut none = json!({"other": 1});
        assert_eq!(filter_page(&mut none, &owned), 0);
    }

    #[test]
    fn only_the_task_methods_are_handled() {
        for m in ["tasks/get", "tasks/result", "tasks/cancel", "tasks/list"] {
            assert!(handles(m), "{m}");
        }
        assert!(!handles("tools/call"));
        assert!(!handles("tasks/other"));
    }
}
