//! Client sessions: what the gateway remembers about one `Mcp-Session-Id`, the table of
//! live sessions, and the request-id maps that keep ids from colliding across upstreams.
//!
//! Below the gateway, above the services: may use `identity` (credentials), `upstream`
//! (connections) and the bottom layer.

pub mod inputs;
pub mod seal;
mod tool_map;

pub use crate::clock::now_secs;
pub use crate::identity::Credential;
use crate::mcp_headers::Mark;
use crate::upstream::UpstreamSession;
use mcpgate_compiler::{Principal, ToolAnnotations};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tool_map::ToolMap;

/// Server-to-client requests awaiting the client's answer, per session, at most.
const MAX_PENDING_SERVER_REQUESTS: usize = 1024;

/// Which client-facing endpoint a session belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/mcp`: every upstream, names namespaced.
    Aggregate,
    /// `/mcp/{server}`.
    Server(String),
}

impl Endpoint {
    /// How the endpoint is written into a sealed session id.
    pub fn key(&self) -> &str {
        match self {
            Endpoint::Aggregate => "",
            Endpoint::Server(s) => s,
        }
    }

    /// The endpoint's path.
    pub fn path(&self) -> String {
        match self {
            Endpoint::Aggregate => "/mcp".into(),
            Endpoint::Server(s) => format!("/mcp/{s}"),
        }
    }
}

/// The key of a JSON-RPC id in maps: its JSON text, so `1` and `"1"` stay distinct.
fn id_key(id: &Value) -> String {
    id.to_string()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another task panicked mid-update of plain maps.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `x-mcp-header` marks of one tool.
type Marks = Arc<[Mark]>;

#[derive(Default, Debug)]
struct ServerRequests {
    /// Client-facing id -> (server, the upstream's id).
    by_gateway: HashMap<String, (String, Value)>,
    /// (server, upstream id key) -> client-facing id.
    by_upstream: HashMap<(String, String), Value>,
    order: std::collections::VecDeque<String>,
}

/// Told of each request the gateway sends the client under a session id, so that the
/// client's answer, wherever it lands in a fleet, can reach the replica waiting for it. The
/// gateway implements it; the session only calls it.
pub trait AnswerRoutes: Send + Sync + std::fmt::Debug {
    /// `session` sent the client a request under `id`, and waits here for its answer.
    fn asked(&self, session: &Session, id: &Value);
}

/// One client session.
#[derive(Debug)]
pub struct Session {
    /// The gateway's own id (random hex), sealed inside `token`.
    pub sid: String,
    /// The `Mcp-Session-Id` the client holds.
    pub token: String,
    pub endpoint: Endpoint,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    /// The protocol version agreed with the client.
    pub protocol_version: String,
    pub principal: Principal,
    /// The credential that opened the session (a token id, never the token): requests with
    /// another credential do not find it.
    pub credential: Credential,
    pub created: u64,
    /// Connected upstreams by server name.
    pub upstreams: BTreeMap<String, UpstreamSession>,
    last_used: AtomicU64,
    next_id: AtomicU64,
    annotations: Mutex<ToolMap<ToolAnnotations>>,
    /// The `x-mcp-header` marks of each tool as listed to this session.
    param_marks: Mutex<ToolMap<Marks>>,
    /// SHA-256 of each tool definition as listed to this session (`mcpgate.lock` checks).
    tool_digests: Mutex<ToolMap<[u8; 32]>>,
    /// Servers whose whole tool list the gateway read for this session.
    tools_fetched: Mutex<std::collections::HashSet<String>>,
    resource_routes: Mutex<HashMap<String, String>>,
    in_flight: Mutex<HashMap<String, (String, Value)>>,
    server_requests: Mutex<ServerRequests>,
    /// Calls of this session waiting on a stateless upstream's `input_required` rounds.
    pub inputs: inputs::SessionInputs,
    /// Where requests sent to the client are announced (a fleet's replicas).
    routes: std::sync::OnceLock<Arc<dyn AnswerRoutes>>,
}

/// What a new [`Session`] is made of.
#[derive(Debug)]
pub struct SessionParts {
    pub sid: String,
    pub token: String,
    pub endpoint: Endpoint,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub protocol_version: String,
    pub principal: Principal,
    pub credential: Credential,
    pub created: u64,
    pub upstreams: BTreeMap<String, UpstreamSession>,
}

impl Session {
    pub fn new(p: SessionParts) -> Session {
        Session {
            sid: p.sid,
            token: p.token,
            endpoint: p.endpoint,
            client_name: p.client_name,
            client_version: p.client_version,
            protocol_version: p.protocol_version,
            principal: p.principal,
            credential: p.credential,
            created: p.created,
            upstreams: p.upstreams,
            last_used: AtomicU64::new(now_secs()),
            next_id: AtomicU64::new(1),
            annotations: Mutex::default(),
            param_marks: Mutex::default(),
            tool_digests: Mutex::default(),
            tools_fetched: Mutex::default(),
            resource_routes: Mutex::default(),
            in_flight: Mutex::default(),
            server_requests: Mutex::default(),
            inputs: Default::default(),
            routes: std::sync::OnceLock::new(),
        }
    }

    /// Announces every request sent to the client under this session to `routes`, under
    /// ids from `base` on: replicas holding the same session each take their own range,
    /// so one replica's ids are never another's.
    pub fn route_answers(&self, routes: Arc<dyn AnswerRoutes>, base: u64) {
        if self.routes.set(routes).is_ok() {
            self.next_id.fetch_max(base, Ordering::Relaxed);
        }
    }

    /// Tells the routes (if any) that the request `id` was sent to the client.
    pub fn announce(&self, id: &Value) {
        if let Some(r) = self.routes.get() {
            r.asked(self, id);
        }
    }

    /// Whether this replica waits for the client's answer `id` (a relayed server request
    /// or an input request of the bridge).
    pub fn awaits_answer(&self, id: &Value) -> bool {
        self.inputs.waits_for(id)
            || lock(&self.server_requests)
                .by_gateway
                .contains_key(&id_key(id))
    }

    /// Marks the session used now.
    pub fn touch(&self) {
        self.last_used.store(now_secs(), Ordering::Relaxed);
    }

    pub fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// A fresh id for a message the gateway sends (upstream requests, and server requests
    /// relayed to the client): unique within the session, so never colliding.
    pub fn next_id(&self) -> Value {
        Value::from(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Records a client request forwarded to `server` under the gateway id returned.
    pub fn begin_call(&self, client_id: &Value, server: &str) -> Value {
        let gid = self.next_id();
        lock(&self.in_flight).insert(id_key(client_id), (server.to_owned(), gid.clone()));
        gid
    }

    /// Forgets a finished client request.
    pub fn end_call(&self, client_id: &Value) {
        lock(&self.in_flight).remove(&id_key(client_id));
    }

    /// Where a client request is in flight: (server, gateway id).
    pub fn in_flight(&self, client_id: &Value) -> Option<(String, Value)> {
        lock(&self.in_flight).get(&id_key(client_id)).cloned()
    }

    /// Gives a server-to-client request from `server` a client-facing id.
    pub fn map_server_request(&self, server: &str, upstream_id: &Value) -> Value {
        let gid = self.next_id();
        let mut map = lock(&self.server_requests);
        if map.order.len() >= MAX_PENDING_SERVER_REQUESTS
            && let Some(old) = map.order.pop_front()
            && let Some((s, uid)) = map.by_gateway.remove(&old)
        {
            map.by_upstream.remove(&(s, id_key(&uid)));
        }
        let key = id_key(&gid);
        map.by_gateway
            .insert(key.clone(), (server.to_owned(), upstream_id.clone()));
        map.by_upstream
            .insert((server.to_owned(), id_key(upstream_id)), gid.clone());
        map.order.push_back(key);
        drop(map);
        self.announce(&gid);
        gid
    }

    /// The client-facing id of a pending server request, if any.
    pub fn server_request_id(&self, server: &str, upstream_id: &Value) -> Option<Value> {
        lock(&self.server_requests)
            .by_upstream
            .get(&(server.to_owned(), id_key(upstream_id)))
            .cloned()
    }

    /// Takes a pending server request answered by the client: (server, upstream id).
    pub fn take_server_request(&self, gid: &Value) -> Option<(String, Value)> {
        let mut map = lock(&self.server_requests);
        let key = id_key(gid);
        let (server, uid) = map.by_gateway.remove(&key)?;
        map.by_upstream.remove(&(server.clone(), id_key(&uid)));
        map.order.retain(|k| *k != key);
        Some((server, uid))
    }

    /// Remembers the annotations `server` reported for `tool`.
    pub fn set_annotations(&self, server: &str, tool: &str, a: ToolAnnotations) {
        let mut map = lock(&self.annotations);
        // Bounded: a server listing endless tools cannot grow the session without limit.
        if map.len() < 100_000 {
            map.insert(server, tool, a);
        }
    }

    /// The annotations `server` reported for `tool` (unknown: all `None`).
    pub fn annotations(&self, server: &str, tool: &str) -> ToolAnnotations {
        lock(&self.annotations)
            .get(server, tool)
            .copied()
            .unwrap_or_default()
    }

    /// Remembers the `x-mcp-header` marks of the input schema `server` listed for `tool`.
    pub fn set_param_marks(&self, server: &str, tool: &str, marks: Vec<Mark>) {
        let mut map = lock(&self.param_marks);
        if map.len() < 100_000 || map.contains(server, tool) {
            map.insert(server, tool, marks.into());
        }
    }

    /// The marks of `tool` as `server` last listed it in this session (`None`: not listed).
    pub fn param_marks(&self, server: &str, tool: &str) -> Option<Arc<[Mark]>> {
        lock(&self.param_marks).get(server, tool).cloned()
    }

    /// Remembers the hash of the definition `server` listed for `tool`.
    pub fn set_tool_digest(&self, server: &str, tool: &str, digest: [u8; 32]) {
        let mut map = lock(&self.tool_digests);
        if map.len() < 100_000 {
            map.insert(server, tool, digest);
        }
    }

    /// The hash of the definition `server` last listed for `tool` in this session.
    pub fn tool_digest(&self, server: &str, tool: &str) -> Option<[u8; 32]> {
        lock(&self.tool_digests).get(server, tool).copied()
    }

    /// Records that the gateway read every page of `server`'s tool list.
    pub fn set_tools_fetched(&self, server: &str) {
        lock(&self.tools_fetched).insert(server.to_owned());
    }

    /// Whether the gateway read every page of `server`'s tool list for this session.
    pub fn tools_fetched(&self, server: &str) -> bool {
        lock(&self.tools_fetched).contains(server)
    }

    /// Remembers which server listed a resource URI (for `/mcp`).
    pub fn set_resource_route(&self, uri: &str, server: &str) {
        let mut map = lock(&self.resource_routes);
        if map.len() < 100_000 {
            map.insert(uri.to_owned(), server.to_owned());
        }
    }

    pub fn resource_route(&self, uri: &str) -> Option<String> {
        lock(&self.resource_routes).get(uri).cloned()
    }

    /// Closes every upstream session.
    pub async fn close(&self) {
        let closing = self.upstreams.values().map(UpstreamSession::close);
        futures_util::future::join_all(closing).await;
    }
}

/// The live sessions of this replica, and the ids ended here (so a deleted session's
/// token cannot be replayed to rebuild it).
#[derive(Debug, Default)]
pub struct Store {
    live: Mutex<HashMap<String, Arc<Session>>>,
    /// Live sessions by the token their client holds: a known token skips unsealing.
    by_token: Mutex<HashMap<String, Arc<Session>>>,
    ended: Mutex<HashMap<String, u64>>,
}

impl Store {
    pub fn get(&self, sid: &str) -> Option<Arc<Session>> {
        lock(&self.live).get(sid).cloned()
    }

    pub fn insert(&self, session: Arc<Session>) {
        let old = lock(&self.live).insert(session.sid.clone(), session.clone());
        let mut by_token = lock(&self.by_token);
        if let Some(old) = old
            && old.token != session.token
        {
            by_token.remove(&old.token);
        }
        by_token.insert(session.token.clone(), session);
    }

    /// The live session a client token names, if this replica holds it.
    pub fn by_token(&self, token: &str) -> Option<Arc<Session>> {
        lock(&self.by_token).get(token).cloned()
    }

    fn forget_tokens(&self, sessions: &[Arc<Session>]) {
        let mut by_token = lock(&self.by_token);
        for s in sessions {
            by_token.remove(&s.token);
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.live).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the session was ended on this replica.
    pub fn is_ended(&self, sid: &str) -> bool {
        lock(&self.ended).contains_key(sid)
    }

    /// Removes a session and remembers it ended until `forget_after` (epoch seconds).
    pub fn end(&self, sid: &str, forget_after: u64) -> Option<Arc<Session>> {
        let mut ended = lock(&self.ended);
        if ended.len() >= 100_000 {
            let now = now_secs();
            ended.retain(|_, t| *t > now);
        }
        ended.insert(sid.to_owned(), forget_after);
        drop(ended);
        let removed = lock(&self.live).remove(sid);
        if let Some(s) = &removed {
            self.forget_tokens(std::slice::from_ref(s));
        }
        removed
    }

    /// Removes and returns the sessions idle since before `cutoff` (epoch seconds).
    pub fn take_idle(&self, cutoff: u64) -> Vec<Arc<Session>> {
        let mut live = lock(&self.live);
        let idle: Vec<String> = live
            .iter()
            .filter(|(_, s)| s.last_used() < cutoff)
            .map(|(k, _)| k.clone())
            .collect();
        let now = now_secs();
        lock(&self.ended).retain(|_, t| *t > now);
        let taken: Vec<Arc<Session>> = idle.iter().filter_map(|k| live.remove(k)).collect();
        drop(live);
        self.forget_tokens(&taken);
        taken
    }

    /// Removes and returns every session (shutdown).
    pub fn take_all(&self) -> Vec<Arc<Session>> {
        let taken: Vec<Arc<Session>> = lock(&self.live).drain().map(|(_, s)| s).collect();
        self.forget_tokens(&taken);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session() -> Session {
        Session::new(SessionParts {
            sid: "s".into(),
            token: "t".into(),
            endpoint: Endpoint::Aggregate,
            client_name: None,
            client_version: None,
            protocol_version: "2025-06-18".into(),
            principal: Principal::anonymous(),
            credential: Credential::Anonymous,
            created: 0,
            upstreams: BTreeMap::new(),
        })
    }

    #[test]
    fn routed_sessions_take_ids_from_their_base_and_announce_requests() {
        #[derive(Debug, Default)]
        struct Seen(Mutex<Vec<Value>>);
        impl AnswerRoutes for Seen {
            fn asked(&self, _: &Session, id: &Value) {
                lock(&self.0).push(id.clone());
            }
        }
        let s = session();
        let seen = Arc::new(Seen::default());
        s.route_answers(seen.clone(), 1 << 20);
        let gid = s.map_server_request("a", &json!(7));
        assert_eq!(gid, json!(1u64 << 20));
        assert_eq!(*lock(&seen.0), vec![gid.clone()]);
        assert!(s.awaits_answer(&gid));
        assert!(!s.awaits_answer(&json!(3)));
    }

    #[test]
    fn server_request_ids_never_collide_across_upstreams() {
        let s = session();
        let a = s.map_server_request("a", &json!(0));
        let b = s.map_server_request("b", &json!(0));
        assert_ne!(a, b);
        assert_eq!(s.server_request_id("b", &json!(0)), Some(b.clone()));
        assert_eq!(s.take_server_request(&a), Some(("a".into(), json!(0))));
        assert_eq!(s.take_server_request(&a), None);
        assert_eq!(s.take_server_request(&b), Some(("b".into(), json!(0))));
    }

    #[test]
    fn in_flight_ids_distinguish_numbers_and_strings() {
        let s = session();
        let g1 = s.begin_call(&json!(1), "a");
        let g2 = s.begin_call(&json!("1"), "b");
        assert_ne!(g1, g2);
        assert_eq!(s.in_flight(&json!(1)), Some(("a".into(), g1)));
        s.end_call(&json!(1));
        assert_eq!(s.in_flight(&json!(1)), None);
        assert_eq!(s.in_flight(&json!("1")), Some(("b".into(), g2)));
    }

    #[test]
    fn ended_sessions_are_remembered() {
        let store = Store::default();
        store.insert(Arc::new(session()));
        assert_eq!(store.len(), 1);
        assert!(store.by_token("t").is_some());
        assert!(store.end("s", u64::MAX).is_some());
        assert!(store.is_ended("s"));
        assert!(store.get("s").is_none());
        assert!(store.by_token("t").is_none());
    }
}
