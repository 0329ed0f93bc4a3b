//! The lock at run time: every tool a server lists is hashed and compared with its pin.
//! Under `enforce` a tool that is new or changed since review is dropped from `tools/list`
//! and its calls are refused (rule `lock`); under `warn` it is logged and counted. With
//! `validate_arguments`, a call whose arguments do not satisfy the pinned input schema is
//! refused (rule `schema`).

pub use crate::decision::lock::{RULE_LOCK, RULE_SCHEMA, Refusal};
use mcpgate_compiler::config::LockMode;
use mcpgate_compiler::lock::{self, Hold, Kind, Pins, ToolCheck};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, MutexGuard};

/// Most tools remembered per server for `/status`.
const MAX_OBSERVED: usize = 10_000;

/// The last definition each server listed, by tool (gateway-wide, for `/status` and for
/// naming the changed fields).
struct Observed {
    digest: [u8; 32],
    hashed: Map<String, Value>,
}

#[derive(Default)]
struct State {
    observed: BTreeMap<String, BTreeMap<String, Observed>>,
    /// Calls to held tools by (server, mode).
    held_calls: BTreeMap<(String, &'static str), u64>,
    /// Calls refused by argument validation, by server.
    invalid_args: BTreeMap<String, u64>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn state() -> MutexGuard<'static, Option<State>> {
    STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut guard = state();
    f(guard.get_or_insert_with(State::default))
}

/// Remembers the definition `server` listed for `name`.
pub fn observe(server: &str, name: &str, digest: [u8; 32], item: &Value) {
    with_state(|st| {
        let tools = st.observed.entry(server.to_owned()).or_default();
        if tools.get(name).is_some_and(|o| o.digest == digest) {
            return;
        }
        if tools.len() < MAX_OBSERVED || tools.contains_key(name) {
            tools.insert(
                name.to_owned(),
                Observed {
                    digest,
                    hashed: lock::hashed_part(Kind::Tool, item),
                },
            );
        }
    });
}

/// The definition last listed for a tool, when its hash is `digest`.
fn observed_definition(server: &str, name: &str, digest: &[u8; 32]) -> Option<Value> {
    with_state(|st| {
        st.observed
            .get(server)
            .and_then(|t| t.get(name))
            .filter(|o| o.digest == *digest)
            .map(|o| Value::Object(o.hashed.clone()))
    })
}

/// Records one tool of a `tools/list` page: its digest (`None` when the server is not
/// pinned) and whether the list keeps it (false: held under `enforce`).
pub fn list_item(pins: &Pins, server: &str, name: &str, item: &Value) -> (Option<[u8; 32]>, bool) {
    let Some(sp) = pins.server(server) else {
        return (None, true);
    };
    let digest = lock::digest(Kind::Tool, item);
    observe(server, name, digest, item);
    (Some(digest), list_keeps(sp, name, digest, item, server))
}

fn list_keeps(
    sp: &lock::ServerPins,
    name: &str,
    digest: [u8; 32],
    item: &Value,
    server: &str,
) -> bool {
    if sp.mode == LockMode::Off {
        return true;
    }
    let check = sp.check(name, Some((&digest, item)));
    if check == ToolCheck::Pinned {
        return true;
    }
    tracing::debug!(
        target: "mcpgate::lock",
        server,
        tool = name,
        reason = check.reason().unwrap_or_default(),
        mode = sp.mode.as_str(),
        "tool differs from mcpgate.lock"
    );
    sp.mode != LockMode::Enforce
}

/// For a pinned tool of a server the lock watches (not `off`): its pinned digest and
/// whether the listed definition (hashing to `digest`) differs from it.
pub fn pin_state(
    pins: &Pins,
    server: &str,
    name: &str,
    digest: &[u8; 32],
) -> Option<([u8; 32], bool)> {
    let sp = pins.server(server)?;
    if sp.mode == LockMode::Off {
        return None;
    }
    let pinned = sp.tool(name)?.digest;
    Some((pinned, *digest != pinned))
}

/// The pinned digest of `server.name`, when the lock watches its server (not `off`).
pub fn watched_pin(pins: &Pins, server: &str, name: &str) -> Option<[u8; 32]> {
    let sp = pins.server(server)?;
    if sp.mode == LockMode::Off {
        return None;
    }
    sp.tool(name).map(|t| t.digest)
}

/// The pinned digest of `server.name` when calls to it are refused while it is held
/// (the server is under `enforce` and pins the tool).
pub fn enforced_pin(pins: &Pins, server: &str, name: &str) -> Option<[u8; 32]> {
    let sp = pins.server(server)?;
    if sp.mode != LockMode::Enforce {
        return None;
    }
    sp.tool(name).map(|t| t.digest)
}

/// Whether deciding a call to `server.name` needs the digest of the tool's current
/// definition (the server is pinned, not `off`, and pins the tool).
pub fn needs_digest(pins: &Pins, server: &str, name: &str) -> bool {
    pins.server(server)
        .is_some_and(|sp| sp.mode != LockMode::Off && sp.tool(name).is_some())
}

/// What the lock says about a call to `server.name` whose current definition hashes to
/// `digest` (`None`: the caller has not seen it listed): `None` to go on, or the refusal.
pub fn check_call(
    pins: &Pins,
    server: &str,
    name: &str,
    args: &Value,
    digest: Option<[u8; 32]>,
    principal: &str,
) -> Option<Refusal> {
    let sp = pins.server(server)?;
    if sp.mode != LockMode::Off {
        let check = match sp.tool(name) {
            None => ToolCheck::New,
            Some(pinned) => match digest {
                None => ToolCheck::NotListed,
                Some(d) if d == pinned.digest => ToolCheck::Pinned,
                Some(d) => match observed_definition(server, name, &d) {
                    Some(def) => sp.check(name, Some((&d, &def))),
                    None => ToolCheck::Changed(vec!["definition"]),
                },
            },
        };
        if check != ToolCheck::Pinned {
            let mode = sp.mode.as_str();
            with_state(|st| {
                *st.held_calls
                    .entry((
                        server.to_owned(),
                        if sp.mode == LockMode::Enforce {
                            "enforce"
                        } else {
                            "warn"
                        },
                    ))
                    .or_default() += 1;
            });
            let hold = Hold::new(server, name, check);
            tracing::warn!(
                target: "mcpgate::lock",
                server,
                tool = name,
                reason = hold.check.reason().unwrap_or_default(),
                mode,
                principal,
                "call to a tool that differs from mcpgate.lock"
            );
            if sp.mode == LockMode::Enforce {
                return Some(Refusal {
                    rule: RULE_LOCK,
                    message: hold.message,
                });
            }
        }
    }
    if sp.validate_arguments
        && let Err(e) = sp.validate(name, args)
    {
        with_state(|st| *st.invalid_args.entry(server.to_owned()).or_default() += 1);
        return Some(Refusal {
            rule: RULE_SCHEMA,
            message: format!(
                "refused: the arguments of `{server}.{name}` do not satisfy its pinned input schema: {e}"
            ),
        });
    }
    None
}

/// Held tools per server, from what the servers listed last, against `pins`.
fn held(pins: &Pins) -> BTreeMap<String, Vec<(String, ToolCheck)>> {
    with_state(|st| {
        let mut out = BTreeMap::new();
        for server in pins.server_names() {
            let Some(sp) = pins.server(server) else {
                continue;
            };
            if sp.mode == LockMode::Off {
                continue;
            }
            let mut list = Vec::new();
            for (name, o) in st.observed.get(server).into_iter().flatten() {
                let def = Value::Object(o.hashed.clone());
                let check = sp.check(name, Some((&o.digest, &def)));
                if check != ToolCheck::Pinned {
                    list.push((name.clone(), check));
                }
            }
            out.insert(server.to_owned(), list);
        }
        out
    })
}

/// The lock part of `/status`: per server the mode, the pinned tool count, and the tools
/// held (or, under `warn`, let through) with why.
pub fn status_json(pins: &Pins) -> Value {
    let held = held(pins);
    let mut servers = Map::new();
    for server in pins.server_names() {
        let Some(sp) = pins.server(server) else {
            continue;
        };
        let tools: Vec<Value> = held
            .get(server)
            .into_iter()
            .flatten()
            .map(|(name, check)| {
                let mut v = json!({"tool": name, "reason": check.reason()});
                if let ToolCheck::Changed(fields) = check {
                    v["fields"] = json!(fields);
                }
                v
            })
            .collect();
        servers.insert(
            server.to_owned(),
            json!({
                "mode": sp.mode.as_str(),
                "validate_arguments": sp.validate_arguments,
                "pinned": sp.tool_names().len(),
                "held": tools,
            }),
        );
    }
    json!({
        "lock": if pins.lock_hash.is_empty() { Value::Null } else { Value::String(pins.lock_hash.clone()) },
        "servers": servers,
    })
}

/// One held tool as a reviewer reads it: why it is held and, per field that differs from
/// its pin, the pinned value and the value listed now (`None`: absent).
#[derive(Clone, Debug, PartialEq)]
pub struct HeldTool {
    pub server: String,
    pub tool: String,
    pub reason: &'static str,
    pub changes: Vec<FieldChange>,
}

/// One hashed field of a held tool.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    pub field: String,
    pub pinned: Option<Value>,
    pub listed: Option<Value>,
}

/// The held tools with what changed: for a changed tool each differing field, for a new
/// one every field as listed (nothing was pinned).
pub fn held_changes(pins: &Pins) -> Vec<HeldTool> {
    let held = held(pins);
    let mut out = Vec::new();
    with_state(|st| {
        for (server, tools) in &held {
            let sp = pins.server(server);
            for (name, check) in tools {
                let listed = st.observed.get(server).and_then(|t| t.get(name));
                let pinned = sp.and_then(|p| p.tool(name)).map(|t| &t.pinned.fields);
                let field_names: Vec<String> = match check {
                    ToolCheck::Changed(fields) => fields.iter().map(|f| (*f).to_owned()).collect(),
                    _ => listed
                        .map(|o| o.hashed.keys().filter(|k| *k != "name").cloned().collect())
                        .unwrap_or_default(),
                };
                let changes = field_names
                    .into_iter()
                    .map(|f| FieldChange {
                        pinned: pinned.and_then(|p| p.get(&f)).cloned(),
                        listed: listed.and_then(|o| o.hashed.get(&f)).cloned(),
                        field: f,
                    })
                    .collect();
                out.push(HeldTool {
                    server: server.clone(),
                    tool: name.clone(),
                    reason: check.reason().unwrap_or("held"),
                    changes,
                });
            }
        }
    });
    out
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The lock metrics (Prometheus text format).
pub fn metrics_text(pins: &Pins) -> String {
    let held = held(pins);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP mcpgate_lock_held_tools Tools that differ from mcpgate.lock, by server and reason (held under enforce)."
    );
    let _ = writeln!(out, "# TYPE mcpgate_lock_held_tools gauge");
    for (server, tools) in &held {
        let mode = pins.server(server).map_or("off", |s| s.mode.as_str());
        for reason in ["new", "changed", "not_listed"] {
            let n = tools
                .iter()
                .filter(|(_, c)| c.reason() == Some(reason))
                .count();
            let _ = writeln!(
                out,
                "mcpgate_lock_held_tools{{server=\"{}\",mode=\"{mode}\",reason=\"{reason}\"}} {n}",
                label(server)
            );
        }
    }
    with_state(|st| {
        let _ = writeln!(
            out,
            "# HELP mcpgate_lock_held_calls_total Calls to tools that differ from mcpgate.lock (refused under enforce, let through under warn)."
        );
        let _ = writeln!(out, "# TYPE mcpgate_lock_held_calls_total counter");
        for ((server, mode), n) in &st.held_calls {
            let _ = writeln!(
                out,
                "mcpgate_lock_held_calls_total{{server=\"{}\",mode=\"{mode}\"}} {n}",
                label(server)
            );
        }
        let _ = writeln!(
            out,
            "# HELP mcpgate_invalid_arguments_total Calls refused because their arguments fail the pinned input schema."
        );
        let _ = writeln!(out, "# TYPE mcpgate_invalid_arguments_total counter");
        for (server, n) in &st.invalid_args {
            let _ = writeln!(
                out,
                "mcpgate_invalid_arguments_total{{server=\"{}\"}} {n}",
                label(server)
            );
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgate_compiler::lock::{Lockfile, ServerLock};

    #[test]
    fn a_changed_tool_shows_its_pinned_and_listed_fields() {
        // The observed definitions are process-wide: a server name of this test's own.
        let server = "held-changes-test";
        let old =
            json!({"name": "send", "description": "Send money", "inputSchema": {"type": "object"}});
        let new = json!({"name": "send", "description": "Send all the money", "inputSchema": {"type": "object"}});
        let added =
            json!({"name": "wipe", "description": "Wipe", "inputSchema": {"type": "object"}});
        let (pinned, _) = ServerLock::pin(&[(Kind::Tool, vec![old])]);
        let lock = Lockfile {
            servers: [(server.to_owned(), pinned)].into(),
        };
        let pins = Pins::new(Some(&lock), None);
        for def in [&new, &added] {
            let name = def["name"].as_str().unwrap();
            observe(server, name, lock::digest(Kind::Tool, def), def);
        }
        let held: Vec<HeldTool> = held_changes(&pins)
            .into_iter()
            .filter(|h| h.server == server)
            .collect();
        assert_eq!(held.len(), 2, "{held:?}");
        let send = held.iter().find(|h| h.tool == "send").unwrap();
        assert_eq!(send.reason, "changed");
        assert_eq!(
            send.changes,
            [FieldChange {
                field: "description".into(),
                pinned: Some(json!("Send money")),
                listed: Some(json!("Send all the money")),
            }]
        );
        let wipe = held.iter().find(|h| h.tool == "wipe").unwrap();
        assert_eq!(wipe.reason, "new");
        assert!(wipe.changes.iter().all(|c| c.pinned.is_none()), "{wipe:?}");
        assert!(
            wipe.changes.iter().any(|c| c.field == "description"),
            "{wipe:?}"
        );
    }
}
