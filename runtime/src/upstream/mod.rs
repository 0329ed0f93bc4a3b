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
//! - [`UpstreamSession::listen`] opens the server-initiated stream (HTTP GET; for stdio and
//!   the legacy SSE transport, every message that belongs to no in-flight request).
//!
//! On the transports that share one channel for everything (stdio, legacy SSE), a message from
//! the server goes to the request it belongs to: a response by its `id`; a notification with a
//! `progressToken` to the request whose `params._meta.progressToken` matches; any other
//! notification or server-to-client request to the only request in flight if there is exactly
//! one, otherwise to the listen stream (buffered, bounded).
//!
//! Call order for the core: [`Upstream::connect`] (sends `initialize`, returns its response),
//! then `notifications/initialized` through [`UpstreamSession::notify`], then requests.
//! Dropping an [`Exchange`] abandons the request without telling the server: the core sends
//! `notifications/cancelled` itself if it wants the work stopped.
//!
//! Below the gateway, above the services: may use `vault` (secret references) and the
//! bottom layer (`http_client`, `mcp_headers`, `protocol_version`).
//!
//! Files: `build.rs` (config to [`Upstream`]), `connect.rs` (the era probe, `initialize`,
//! resuming), `session.rs` ([`UpstreamSession`]), `error.rs`; one per transport (`http.rs`,
//! `stdio/`, `sse_legacy.rs`), `router.rs` (id routing where one channel carries everything),
//! `era.rs` and `era_listen.rs` (the stateless era), `inventory.rs` (listing a server's tools
//! for the lock).

mod build;
mod connect;
pub mod era;
mod era_listen;
mod error;
mod exchange;
mod http;
pub mod inventory;
mod param_headers;
mod router;
mod session;
pub mod sse;
mod sse_legacy;
mod stdio;

pub use crate::vault::references::{EnvSecrets, SecretResolver};
// The HTTP client and secret references live below the connections; the transports
// name them as before.
use crate::http_client as client;
use crate::vault::references as secrets;
pub use build::DEFAULT_TIMEOUT;
pub use error::UpstreamError;
pub use exchange::{Exchange, RawResponse};
pub(crate) use session::final_response;
pub use session::{ExtraHeader, SessionState, UpstreamSession};
pub use stdio::StdioProcesses;

use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// One JSON-RPC message, parsed.
pub type Message = Value;

use mcpgate_compiler::config::Protocol;

/// One configured upstream server, shared by every client session. Built once per config.
#[derive(Debug)]
pub struct Upstream {
    name: String,
    timeout: Duration,
    transport: UpstreamTransport,
    era: Arc<era::EraCache>,
    /// The era configured (`protocol:`); `auto` detects it.
    protocol: Protocol,
    /// Longest wait for the `server/discover` probe under `auto`.
    probe_timeout: Duration,
}

#[derive(Debug)]
enum UpstreamTransport {
    Http(Arc<http::HttpUpstream>),
    Stdio(stdio::StdioUpstream),
    Sse(sse_legacy::LegacyUpstream),
}

impl Upstream {
    /// The server's name in config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The per-request timeout (`timeout_secs`, or [`DEFAULT_TIMEOUT`]).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The transport: `streamable-http`, `sse` or `stdio`.
    pub fn transport(&self) -> &'static str {
        match self.transport {
            UpstreamTransport::Http(_) => "streamable-http",
            UpstreamTransport::Stdio(_) => "stdio",
            UpstreamTransport::Sse(_) => "sse",
        }
    }

    /// Whether a session survives only on the replica that opened it (stdio, legacy SSE).
    pub fn is_local(&self) -> bool {
        !matches!(self.transport, UpstreamTransport::Http(_))
    }

    /// The era detected for this upstream.
    pub fn era(&self) -> era::Era {
        self.era.get()
    }
}
