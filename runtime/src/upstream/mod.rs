//! Connections to upstream MCP servers: Streamable HTTP, stdio processes, and the old
//! HTTP+SSE transport. The gateway core sees only [`Upstream`] and [`UpstreamSession`]:
//! one session per (client session, server), carrying JSON-RPC messages both ways.
//!
//! Message routing, whatever the transport:
//! - [`UpstreamSession::request`] sends one JSON-RPC request and returns an [`Exchange`]: every
//!   message the server sends in relation to it (progress and logging notifications,
//!   server-to-client requests such as sampling or elicitation), in order, ending with the
//!   response whose `id` equals the request's. Ids are the gateway's own (the core maps the
//!   client's ids), so they never collide inside one upstream session.
//! - [`UpstreamSession::notify`] sends a notification, or a response to a server-to-client
//!   request.
//! - [`UpstreamSession::listen`] opens the server-initiated stream (HTTP GET; for stdio, every
//!   message that belongs to no in-flight request).

use serde_json::Value;
use std::fmt;
use tokio::sync::mpsc;

/// One JSON-RPC message, parsed.
pub type Message = Value;

/// Messages arriving from upstream for one request, ending with its response.
/// The channel closes after the response, or early when the upstream fails (then the last
/// item is an `Err`).
pub type Exchange = mpsc::Receiver<Result<Message, UpstreamError>>;

/// Why an upstream could not be used. `Display` never includes credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// Connection refused, DNS failure, process could not start.
    Unavailable(String),
    /// No answer in time.
    Timeout,
    /// The upstream answered something that is not MCP (bad JSON, bad status, bad SSE).
    Protocol(String),
    /// The upstream no longer knows the session (HTTP 404 on a session id); the core
    /// re-initializes.
    SessionExpired,
    /// The stdio process exited.
    Exited(String),
    /// Too many stdio processes are running.
    Busy,
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Unavailable(m) => write!(f, "upstream unavailable: {m}"),
            UpstreamError::Timeout => f.write_str("upstream timed out"),
            UpstreamError::Protocol(m) => write!(f, "upstream protocol error: {m}"),
            UpstreamError::SessionExpired => f.write_str("upstream session expired"),
            UpstreamError::Exited(m) => write!(f, "upstream process exited: {m}"),
            UpstreamError::Busy => f.write_str("too many upstream processes"),
        }
    }
}

impl std::error::Error for UpstreamError {}

use mcpgate_compiler::config::{GatewayConfig, ServerConfig};
use serde::{Deserialize, Serialize};

/// What must survive in the client's sealed session token to reach an upstream session
/// again, from any replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// The upstream's `Mcp-Session-Id` (HTTP), if it issued one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The protocol version negotiated with the upstream.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol_version: String,
}

/// Resolves `${secret:NAME}` and `${env:NAME}` references in upstream config.
pub trait SecretResolver: Send + Sync {
    /// The value of the reference, or `None` if unknown.
    fn resolve(&self, kind: &str, name: &str) -> Option<String>;
}

/// One configured upstream server, shared by every client session. Built once per config.
#[derive(Debug)]
pub struct Upstream {
    name: String,
}

impl Upstream {
    /// Builds the upstream from reviewed config. Header values with `${secret:..}`/`${env:..}`
    /// references are resolved here (`secrets`); the error names the missing reference only.
    pub fn from_config(
        name: &str,
        config: &ServerConfig,
        gateway: &GatewayConfig,
        secrets: &dyn SecretResolver,
    ) -> Result<Upstream, String> {
        let _ = (config, gateway, secrets);
        Ok(Upstream {
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens a session for the client session `gateway_session`: spawns the process (stdio)
    /// or connects (HTTP), sends `initialize` (the message as the core built it, id included)
    /// and returns the session with the upstream's `initialize` response. The core then sends
    /// `notifications/initialized` through [`UpstreamSession::notify`].
    pub async fn connect(
        &self,
        gateway_session: &str,
        initialize: Message,
    ) -> Result<(UpstreamSession, Message), UpstreamError> {
        let _ = (gateway_session, initialize);
        Err(UpstreamError::Unavailable(format!(
            "{}: not built",
            self.name
        )))
    }

    /// Re-attaches to a session from its sealed state: always possible for HTTP; for stdio
    /// only on the replica that runs the process (`None` otherwise: the client re-initializes).
    pub fn resume(&self, gateway_session: &str, state: &SessionState) -> Option<UpstreamSession> {
        let _ = (gateway_session, state);
        None
    }
}

/// A session with one upstream. Cheap to clone; all clones share the connection.
#[derive(Clone, Debug)]
pub struct UpstreamSession {
    state: SessionState,
}

impl UpstreamSession {
    /// Sends a request; see the module docs for what the [`Exchange`] yields.
    pub async fn request(&self, message: Message) -> Result<Exchange, UpstreamError> {
        let _ = message;
        Err(UpstreamError::Unavailable("not built".into()))
    }

    /// Sends a notification or a response to a server-to-client request.
    pub async fn notify(&self, message: Message) -> Result<(), UpstreamError> {
        let _ = message;
        Err(UpstreamError::Unavailable("not built".into()))
    }

    /// The server-initiated message stream; `None` when the upstream offers none (HTTP 405).
    pub async fn listen(&self) -> Result<Option<mpsc::Receiver<Message>>, UpstreamError> {
        Ok(None)
    }

    /// Ends the session (HTTP DELETE; stdio: close stdin, wait, SIGTERM, SIGKILL).
    pub async fn close(&self) {}

    pub fn state(&self) -> SessionState {
        self.state.clone()
    }
}
