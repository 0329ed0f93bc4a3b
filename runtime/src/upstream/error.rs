//! Why an upstream could not be used.

use crate::http_client as client;
use std::fmt;

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

impl UpstreamError {
    /// The kind, as `/metrics` labels it (`mcpgate_upstream_errors_total`).
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Unavailable(_) => "unavailable",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Protocol(_) => "protocol",
            UpstreamError::SessionExpired => "session_expired",
            UpstreamError::Exited(_) => "exited",
            UpstreamError::Busy => "busy",
        }
    }
}

impl From<client::HttpError> for UpstreamError {
    fn from(e: client::HttpError) -> UpstreamError {
        match e {
            client::HttpError::Unavailable(m) => UpstreamError::Unavailable(m),
            client::HttpError::Timeout => UpstreamError::Timeout,
            client::HttpError::Protocol(m) => UpstreamError::Protocol(m),
        }
    }
}
