//! The lock as the gateway uses it: per server the lock mode, the pinned tools by name
//! with their hash and annotations, and argument validators. Built once per program swap.

use super::{Kind, Lockfile, Pinned, canonical};
use crate::config::{Config, LockMode};
use crate::request::ToolAnnotations;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

/// What the gateway knows of one pinned tool.
pub struct PinnedTool {
    pub digest: [u8; 32],
    pub annotations: ToolAnnotations,
    /// The pinned definition, to say which fields changed.
    pub pinned: Pinned,
    /// Built when the server validates arguments; `Err` holds why the schema does not
    /// compile (every call is then refused: it fails closed).
    validator: Option<Result<jsonschema::Validator, String>>,
}

impl fmt::Debug for PinnedTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedTool")
            .field("sha256", &self.pinned.sha256)
            .field("annotations", &self.annotations)
            .field("validates", &self.validator.is_some())
            .finish()
    }
}

/// The pins of one server and how they apply.
#[derive(Debug)]
pub struct ServerPins {
    pub mode: LockMode,
    pub validate_arguments: bool,
    tools: HashMap<String, PinnedTool>,
}

/// How a tool as listed now compares with its pin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolCheck {
    /// Same hash.
    Pinned,
    /// Not in the lock: new since the last review.
    New,
    /// In the lock with another hash; the hashed fields that differ.
    Changed(Vec<&'static str>),
    /// Pinned, but the server does not list it now.
    NotListed,
}

impl ToolCheck {
    /// Short reason, for `/status`, metrics and logs: `new`, `changed`, `not_listed`.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            ToolCheck::Pinned => None,
            ToolCheck::New => Some("new"),
            ToolCheck::Changed(_) => Some("changed"),
            ToolCheck::NotListed => Some("not_listed"),
        }
    }
}

/// Why a call is held, and what the caller is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub check: ToolCheck,
    pub message: String,
}

impl Hold {
    /// The refusal text for a held tool.
    pub fn new(server: &str, tool: &str, check: ToolCheck) -> Hold {
        let why = match &check {
            ToolCheck::New => "is not in mcpgate.lock: it is new since the last review".to_owned(),
            ToolCheck::Changed(fields) => format!(
                "changed since review ({} differ from mcpgate.lock)",
                fields.join(", ")
            ),
            ToolCheck::NotListed => {
                "is pinned but the server no longer lists it, so its definition cannot be verified"
                    .to_owned()
            }
            ToolCheck::Pinned => "is pinned".to_owned(),
        };
        let message = format!(
            "held: tool `{server}.{tool}` {why}; the call was not forwarded. \
             After reviewing the new definition, re-pin it with `mcpgate lock` and merge the lock change"
        );
        Hold { check, message }
    }
}

impl ServerPins {
    /// The pin of a tool.
    pub fn tool(&self, name: &str) -> Option<&PinnedTool> {
        self.tools.get(name)
    }

    /// Compares a tool's live hash (`None`: not listed) with its pin.
    pub fn check(&self, name: &str, live: Option<(&[u8; 32], &Value)>) -> ToolCheck {
        match (self.tools.get(name), live) {
            (None, _) => ToolCheck::New,
            (Some(_), None) => ToolCheck::NotListed,
            (Some(p), Some((d, _))) if p.digest == *d => ToolCheck::Pinned,
            (Some(p), Some((_, def))) => {
                let mut fields = p.pinned.changed_fields(Kind::Tool, def);
                if fields.is_empty() {
                    fields.push("sha256");
                }
                ToolCheck::Changed(fields)
            }
        }
    }

    /// Validates a call's arguments against the pinned input schema; `Err` has the
    /// validator's message. `Ok` when the server does not validate or the tool is unpinned.
    ///
    /// # Errors
    /// The arguments do not satisfy the schema, or the schema does not compile.
    pub fn validate(&self, tool: &str, args: &Value) -> Result<(), String> {
        let Some(Some(v)) = self.tools.get(tool).map(|t| t.validator.as_ref()) else {
            return Ok(());
        };
        let empty = Value::Object(serde_json::Map::new());
        // A call without arguments is validated as `{}`.
        let args = if args.is_null() { &empty } else { args };
        match v {
            Ok(v) => v.validate(args).map_err(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{e} (at `{at}`)")
                }
            }),
            Err(e) => Err(format!("the pinned input schema does not compile: {e}")),
        }
    }

    /// Names of the pinned tools, sorted.
    pub fn tool_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.tools.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

/// Every server's pins. Servers whose mode is `off` and that do not validate are absent.
#[derive(Debug, Default)]
pub struct Pins {
    servers: HashMap<String, ServerPins>,
    /// SHA-256 of the rendered lock (empty without a lock), to tell swaps apart.
    pub lock_hash: String,
}

impl Pins {
    /// Builds the pins of a lock under a config. Mode per server: `lock:` in the config,
    /// else `enforce` when the lock pins the server, else `off`.
    pub fn new(lock: Option<&Lockfile>, config: Option<&Config>) -> Pins {
        let mut servers = HashMap::new();
        let default_config = Config::default();
        let config = config.unwrap_or(&default_config);
        let mut names: Vec<&String> = config.servers.keys().collect();
        if let Some(l) = lock {
            names.extend(l.servers.keys());
        }
        names.sort();
        names.dedup();
        for name in names {
            let pinned = lock.and_then(|l| l.server(name));
            let sc = config.servers.get(name);
            let mode = sc.and_then(|s| s.lock).unwrap_or(if pinned.is_some() {
                LockMode::Enforce
            } else {
                LockMode::Off
            });
            let validate = sc.is_some_and(|s| s.validate_arguments);
            if mode == LockMode::Off && !validate {
                continue;
            }
            let tools = pinned
                .map(|s| {
                    s.tools
                        .iter()
                        .map(|(n, p)| (n.clone(), pinned_tool(p, validate)))
                        .collect()
                })
                .unwrap_or_default();
            servers.insert(
                name.clone(),
                ServerPins {
                    mode,
                    validate_arguments: validate,
                    tools,
                },
            );
        }
        let lock_hash = lock.map_or_else(String::new, Lockfile::hash_hex);
        Pins { servers, lock_hash }
    }

    /// The pins of a server under `warn` or `enforce`, or that validates arguments.
    pub fn server(&self, name: &str) -> Option<&ServerPins> {
        self.servers.get(name)
    }

    /// Servers with pins in force, sorted.
    pub fn server_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.servers.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The pinned annotations of a tool on a server under `enforce` (the gateway prefers
    /// them to what the server claims at run time).
    pub fn enforced_annotations(&self, server: &str, tool: &str) -> Option<ToolAnnotations> {
        let s = self.servers.get(server)?;
        if s.mode != LockMode::Enforce {
            return None;
        }
        s.tools.get(tool).map(|t| t.annotations)
    }
}

fn pinned_tool(p: &Pinned, validate: bool) -> PinnedTool {
    let digest = canonical::parse_hex32(&p.sha256).unwrap_or_default();
    let validator = validate.then(|| {
        let schema = p
            .input_schema()
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object"}));
        jsonschema::validator_for(&schema).map_err(|e| e.to_string())
    });
    PinnedTool {
        digest,
        annotations: annotations_of(p.annotations()),
        pinned: p.clone(),
        validator,
    }
}

/// Tool annotations from an MCP `annotations` object (`readOnlyHint` and friends).
pub fn annotations_of(a: Option<&Value>) -> ToolAnnotations {
    let flag = |k: &str| a.and_then(|a| a.get(k)).and_then(Value::as_bool);
    ToolAnnotations {
        read_only: flag("readOnlyHint"),
        destructive: flag("destructiveHint"),
        idempotent: flag("idempotentHint"),
        open_world: flag("openWorldHint"),
    }
}
