//! Multi round-trip requests for modern clients in front of legacy upstreams. A legacy server
//! asks the client mid-call (sampling, elicitation, roots) with a server-to-client request; a
//! modern client cannot receive one. The gateway ends the client's response with an
//! `input_required` result naming that request, keeps the upstream call waiting ("parked"),
//! and when the client retries (new id, `inputResponses`, the echoed `requestState`) decides
//! the retry again like any call, answers the upstream, and relays the rest of the call.
//!
//! Parked calls live on the replica that parked them, bound to the principal and the bridge
//! session; the upstream's own timeout ends a call nobody comes back for. In a fleet the
//! replica also records each one in the shared database, so a retry that reaches another
//! replica is forwarded here ([`crate::gateway::handoff`]).

use crate::audit::decision::{self as audit, Pending};
use crate::gateway::decide::{self, Outcome};
use crate::gateway::relay::Reply;
use crate::gateway::{Gateway, aggregate};
use crate::jsonrpc;
use crate::session::{Endpoint, Session, now_secs};
use mcpgate_compiler::{Principal, Target};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// Prefix of the `requestState` values the gateway mints.
const STATE_PREFIX: &str = "mcpgate:";
/// Most parked calls per replica.
const MAX_PARKED: usize = 1024;
/// Parked calls older than this are dropped (their upstream call is cancelled).
const MAX_AGE_SECS: u64 = 600;

/// Calls waiting for a modern client's answers.
#[derive(Debug, Default)]
pub struct Parked {
    map: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    rx: mpsc::Receiver<Value>,
    principal: String,
    session: String,
    method: String,
    name: Option<String>,
    /// Input request key -> (server, the upstream's request id).
    pending: Vec<(String, String, Value)>,
    created: u64,
}

impl Parked {
    fn insert(&self, token: String, entry: Entry) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = now_secs();
        map.retain(|_, e| now.saturating_sub(e.created) <= MAX_AGE_SECS);
        if map.len() >= MAX_PARKED
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.created)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(token, entry);
    }

    /// Whether the call `token` is parked on this replica.
    pub fn holds(&self, token: &str) -> bool {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(token)
    }

    fn take(&self, token: &str) -> Option<Entry> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(token)
    }

    /// Calls parked now.
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b[..]);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parks the call whose stream `rx` brought the server-to-client `request`, and returns the
/// `input_required` result for the client.
pub fn park(
    gw: &Gateway,
    session: &Session,
    method: &str,
    name: Option<String>,
    request: Value,
    rx: mpsc::Receiver<Value>,
) -> Value {
    let gid = request.get("id").cloned().unwrap_or(Value::Null);
    let key = match &gid {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut pending = Vec::new();
    if let Some((server, uid)) = session.take_server_request(&gid) {
        pending.push((key.clone(), server, uid));
    }
    let mut asked = Map::new();
    asked.insert(
        key,
        json!({
            "method": request.get("method").cloned().unwrap_or(Value::Null),
            "params": request.get("params").cloned().unwrap_or_else(|| json!({})),
        }),
    );
    let token = random_hex();
    // Recorded before the client learns the token, so its retry finds the call anywhere.
    if let Some(h) = &gw.handoff {
        h.record(&token, &session.principal.id, now_secs() + MAX_AGE_SECS);
    }
    gw.modern.parked.insert(
        token.clone(),
        Entry {
            rx,
            principal: session.principal.id.clone(),
            session: session.sid.clone(),
            method: method.to_owned(),
            name,
            pending,
            created: now_secs(),
        },
    );
    json!({
        "resultType": "input_required",
        "inputRequests": asked,
        "requestState": format!("{STATE_PREFIX}{token}"),
    })
}

fn refusal(id: &Value, text: &str) -> (Reply, Option<Pending>) {
    (
        Reply::Json(jsonrpc::error(id.clone(), jsonrpc::INVALID_PARAMS, text)),
        None,
    )
}

/// The parked-call token of a retry's gateway-minted `requestState`; `None` for any other
/// request.
pub fn parked_token(message: &Value) -> Option<&str> {
    jsonrpc::params(message)
        .get("requestState")
        .and_then(Value::as_str)?
        .strip_prefix(STATE_PREFIX)
}

/// Resumes a parked call when `message` is a retry carrying a `requestState` the gateway
/// minted; `None` for any other request (a modern upstream's own state passes through).
/// The retry is decided and audited like a new call; its pending audit outcome comes with
/// the reply.
pub async fn retry(
    gw: &Gateway,
    session: &Session,
    principal: &Principal,
    id: &Value,
    method: &str,
    message: &Value,
) -> Option<(Reply, Option<Pending>)> {
    let params = jsonrpc::params(message);
    let token = parked_token(message)?;
    let Some(entry) = gw.modern.parked.take(token) else {
        return Some(refusal(id, "unknown or expired requestState"));
    };
    let field = super::ladder::name_field(method);
    let name = field.and_then(|f| params.get(f)).and_then(Value::as_str);
    if entry.principal != principal.id {
        // Not the caller's: leave it for its owner.
        gw.modern.parked.insert(token.to_owned(), entry);
        return Some(refusal(id, "unknown or expired requestState"));
    }
    if let Some(h) = &gw.handoff {
        h.forget(token);
    }
    if entry.session != session.sid || entry.method != method || entry.name.as_deref() != name {
        return Some(refusal(id, "requestState belongs to another request"));
    }
    let shown = name.unwrap_or_default();
    let loaded = gw.program.load_full();
    let started = std::time::Instant::now();
    let target = retry_target(gw, session, method, shown, &entry);
    let mut outcome = Outcome::Unknown;
    let mut pending = None;
    let mut failed = None;
    let paused = target
        .as_ref()
        .and_then(|(server, local)| decide::paused(gw, session, target_of(method, server, local)));
    if let Some(text) = paused {
        outcome = Outcome::Deny(text);
    } else if let Some((server, local)) = &target {
        let null = Value::Null;
        let args = params.get("arguments").unwrap_or(&null);
        let t = target_of(method, server, local);
        let refusal = if method == "tools/call" {
            crate::gateway::lock_gate::check_call(gw, &loaded, session, server, local, args).await
        } else {
            None
        };
        let caller = decide::caller(&loaded, session);
        let mut d = decide::decide(gw, &loaded, &caller, session, t, args, refusal);
        d.latency = started.elapsed();
        match audit::record_decision(gw.audit.get(), &loaded, &d, method, id).await {
            Ok(p) => pending = p,
            Err(e) => failed = Some(e),
        }
        outcome = d.outcome;
    }
    let go = outcome == Outcome::Allow && failed.is_none();
    let answers = params.get("inputResponses").and_then(Value::as_object);
    for (key, server, uid) in &entry.pending {
        let answer = match (go, answers.and_then(|a| a.get(key))) {
            (true, Some(result)) => json!({"jsonrpc": "2.0", "id": uid, "result": result}),
            (true, None) => jsonrpc::error(
                uid.clone(),
                jsonrpc::INVALID_PARAMS,
                "the client gave no answer to this request",
            ),
            (false, _) => jsonrpc::error(
                uid.clone(),
                jsonrpc::INVALID_REQUEST,
                "the call was refused",
            ),
        };
        if let Some(up) = session.upstreams.get(server) {
            let up = up.clone();
            tokio::spawn(async move {
                let _ = up.notify(answer).await;
            });
        }
    }
    if let Some(e) = failed {
        return Some((Reply::Json(e), None));
    }
    Some(match outcome {
        Outcome::Allow => (Reply::Stream(entry.rx), pending),
        other => (
            Reply::Json(match (method, &other) {
                ("tools/call", Outcome::Deny(t)) => decide::denied_tool_result(id.clone(), t),
                (_, Outcome::Deny(t)) => decide::denied_error(id.clone(), t),
                ("tools/call", _) => decide::unknown_tool(id.clone(), shown),
                ("prompts/get", _) => decide::unknown_prompt(id.clone(), shown),
                _ => decide::unknown_resource(id.clone(), shown),
            }),
            None,
        ),
    })
}

fn target_of<'a>(method: &str, server: &'a str, name: &'a str) -> Target<'a> {
    match method {
        "tools/call" => Target::Tool { server, tool: name },
        "prompts/get" => Target::Prompt { server, name },
        _ => Target::Resource { server, uri: name },
    }
}

/// The (server, upstream name) a retry addresses, as the original call did.
fn retry_target(
    gw: &Gateway,
    session: &Session,
    method: &str,
    name: &str,
    entry: &Entry,
) -> Option<(String, String)> {
    let sep = gw.config.namespace_separator.as_str();
    match (&session.endpoint, method) {
        (Endpoint::Server(s), _) => Some((s.clone(), name.to_owned())),
        (Endpoint::Aggregate, "tools/call" | "prompts/get") => {
            aggregate::split_name(name, sep, session.upstreams.keys())
                .map(|(s, n)| (s.to_owned(), n.to_owned()))
        }
        (Endpoint::Aggregate, _) => entry
            .pending
            .first()
            .map(|(_, s, _)| (s.clone(), name.to_owned())),
    }
}
