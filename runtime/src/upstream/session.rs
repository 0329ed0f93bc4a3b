//! A session with one upstream, whatever its transport and era: requests, notifications,
//! the server-initiated stream, and the state sealed into the client's token.

use super::{Exchange, Message, UpstreamError, era, era_listen, http, router, sse_legacy, stdio};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;

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
    /// A modern (stateless) upstream: the client capabilities each request carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_capabilities: Option<Value>,
}

/// Reads an exchange to its response, dropping what comes before it.
pub(crate) async fn final_response(
    server: &str,
    exchange: &mut Exchange,
) -> Result<Message, UpstreamError> {
    while let Some(item) = exchange.recv().await {
        let message = item?;
        if router::is_response(&message) {
            return Ok(message);
        }
        tracing::debug!(target: "upstream", server = %server, "dropping a message sent before the response");
    }
    Err(UpstreamError::Protocol("no response to the request".into()))
}

/// One more header for one upstream HTTP request.
pub type ExtraHeader = (::http::HeaderName, ::http::HeaderValue);

/// A session with one upstream. Cheap to clone; all clones share the connection.
#[derive(Clone, Debug)]
pub struct UpstreamSession {
    pub(super) kind: SessionKind,
    /// Set when the upstream speaks the stateless era: what each request carries.
    pub(super) modern: Option<Arc<ModernContext>>,
    /// The upstream's era cache, forgotten when the upstream fails.
    pub(super) era: Option<Arc<era::EraCache>>,
}

/// What a session with a modern upstream stamps on every request.
#[derive(Debug)]
pub(super) struct ModernContext {
    pub(super) version: String,
    pub(super) capabilities: Value,
    /// Resources a legacy client subscribed to (the upstream has no `resources/subscribe`).
    pub(super) subscribed: era_listen::Subscribed,
}

#[derive(Clone, Debug)]
pub(super) enum SessionKind {
    Http(http::HttpSession),
    Stdio(stdio::StdioSession),
    Sse(sse_legacy::LegacySession),
}

impl UpstreamSession {
    /// Sends a request; see the module docs for what the [`Exchange`] yields. The request
    /// timeout runs from the request, and again from each message that belongs to it, to the
    /// next one; when it runs out the exchange ends with [`UpstreamError::Timeout`]. Dropping
    /// the exchange abandons the request (on HTTP the response stream is closed).
    ///
    /// # Errors
    /// The request could not be sent; later failures arrive in the exchange.
    pub async fn request(&self, message: Message) -> Result<Exchange, UpstreamError> {
        self.request_with(message, None).await
    }

    /// As [`UpstreamSession::request`], with one more HTTP header on the request (a signed
    /// assertion). Only HTTP upstreams carry it; the gateway refuses to configure it for
    /// others.
    ///
    /// # Errors
    /// As [`UpstreamSession::request`].
    pub async fn request_with(
        &self,
        message: Message,
        extra: Option<&ExtraHeader>,
    ) -> Result<Exchange, UpstreamError> {
        if let Some(answer) = self
            .modern
            .as_ref()
            .and_then(|m| m.subscribed.answer(&message))
        {
            return Ok(answer);
        }
        let message = match &self.modern {
            Some(m) => era::to_modern(message, &m.version, &m.capabilities),
            None => message,
        };
        let sent = match &self.kind {
            SessionKind::Http(s) => s.request(message, extra).await,
            SessionKind::Stdio(s) => s.request(message).await,
            SessionKind::Sse(s) => s.request(message).await,
        };
        if let Err(
            UpstreamError::Unavailable(_)
            | UpstreamError::SessionExpired
            | UpstreamError::Exited(_),
        ) = &sent
            && let Some(era) = &self.era
        {
            era.reset();
        }
        sent
    }

    /// Whether the upstream speaks the stateless era (2026-07-28).
    pub fn is_modern(&self) -> bool {
        self.modern.is_some()
    }

    /// The client capabilities each request to a stateless upstream carries (the client's
    /// own, from its `initialize`); `None` for a legacy upstream.
    pub fn client_capabilities(&self) -> Option<&Value> {
        self.modern.as_ref().map(|m| &m.capabilities)
    }

    /// Sends a notification or a response to a server-to-client request.
    ///
    /// # Errors
    /// The message could not be delivered.
    pub async fn notify(&self, message: Message) -> Result<(), UpstreamError> {
        if self.modern.is_some() {
            // The stateless era has no client-to-server notifications (cancellation is
            // closing the response stream) and no server-to-client requests to answer.
            return Ok(());
        }
        match &self.kind {
            SessionKind::Http(s) => s.notify(message).await,
            SessionKind::Stdio(s) => s.notify(message).await,
            SessionKind::Sse(s) => s.notify(message).await,
        }
    }

    /// The server-initiated message stream; `None` when the upstream offers none (HTTP 405).
    /// On stdio and legacy SSE a second call replaces the earlier stream.
    ///
    /// # Errors
    /// HTTP: the GET failed ([`UpstreamError::SessionExpired`] on 404).
    pub async fn listen(&self) -> Result<Option<mpsc::Receiver<Message>>, UpstreamError> {
        if self.modern.is_some() {
            return Ok(Some(era_listen::listen(self.clone())));
        }
        match &self.kind {
            SessionKind::Http(s) => s.listen().await,
            SessionKind::Stdio(s) => Ok(Some(s.listen())),
            SessionKind::Sse(s) => Ok(Some(s.listen())),
        }
    }

    /// A modern upstream's stream of list changes and updates of `uris` (its own
    /// `subscriptions/listen`), and a signal that resolves once the upstream acknowledged it
    /// (or gave up); `None` for a legacy upstream, which is asked with `resources/subscribe`
    /// and heard on [`UpstreamSession::listen`].
    pub fn listen_resources(
        &self,
        uris: Vec<String>,
    ) -> Option<(mpsc::Receiver<Message>, tokio::sync::oneshot::Receiver<()>)> {
        self.modern
            .is_some()
            .then(|| era_listen::listen_with(self.clone(), uris))
    }

    /// Ends the session (HTTP DELETE; stdio: close stdin, wait, SIGTERM, SIGKILL).
    pub async fn close(&self) {
        match &self.kind {
            SessionKind::Http(s) => s.close().await,
            SessionKind::Stdio(s) => s.close().await,
            SessionKind::Sse(s) => s.close().await,
        }
    }

    /// What the core seals into the client's session token.
    pub fn state(&self) -> SessionState {
        let mut state = match &self.kind {
            SessionKind::Http(s) => s.state(),
            SessionKind::Stdio(s) => s.state(),
            SessionKind::Sse(s) => s.state(),
        };
        if let Some(m) = &self.modern {
            state.protocol_version = m.version.clone();
            state.client_capabilities = Some(m.capabilities.clone());
        }
        state
    }

    /// The transport's own server-initiated channel (stdio: messages that belong to no
    /// request), without the modern `subscriptions/listen` on top.
    pub(super) async fn transport_listen(
        &self,
    ) -> Result<Option<mpsc::Receiver<Message>>, UpstreamError> {
        match &self.kind {
            SessionKind::Http(_) => Ok(None),
            SessionKind::Stdio(s) => Ok(Some(s.listen())),
            SessionKind::Sse(s) => Ok(Some(s.listen())),
        }
    }
}
