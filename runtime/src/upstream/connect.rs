//! Opening a session with an upstream: the era probe (`server/discover`) under `auto` or
//! `2026-07-28`, then `initialize` on the transport for a legacy server; and re-attaching
//! to a session from the state sealed in the client's token.

use super::session::{ModernContext, SessionKind};
use super::{
    Message, SessionState, Upstream, UpstreamError, UpstreamSession, UpstreamTransport, era,
    era_listen,
};
use mcpgate_compiler::config::Protocol;
use serde_json::Value;
use std::sync::Arc;

impl Upstream {
    /// Opens a session for the client session `gateway_session`: spawns the process (stdio)
    /// or connects (HTTP), sends `initialize` (the message as the core built it, id included)
    /// and returns the session with the upstream's `initialize` response. The core then sends
    /// `notifications/initialized` through [`UpstreamSession::notify`]. The response may be a
    /// JSON-RPC error; the core should then [`UpstreamSession::close`] the session. Messages
    /// the server sends before its response are dropped. For stdio and legacy SSE, a second
    /// `connect` with the same `gateway_session` replaces the earlier session.
    ///
    /// # Errors
    /// See [`UpstreamError`]; stdio gives [`UpstreamError::Busy`] at the process cap.
    pub async fn connect(
        &self,
        gateway_session: &str,
        initialize: Message,
    ) -> Result<(UpstreamSession, Message), UpstreamError> {
        let id = initialize.get("id").cloned().unwrap_or(Value::Null);
        let params = initialize.get("params");
        let capabilities = params
            .and_then(|p| p.get("capabilities"))
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        let requested = params
            .and_then(|p| p.get("protocolVersion"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let detect = match self.protocol {
            Protocol::Legacy => false,
            Protocol::Stateless20260728 => true,
            Protocol::Auto => {
                !matches!(self.transport, UpstreamTransport::Sse(_))
                    && self.era.get() != era::Era::Legacy
            }
        };
        if detect {
            let probe = era::discover_request(id.clone(), &capabilities);
            // A server configured as stateless gets the whole request timeout: its answer
            // to the probe is the only way in.
            let wait = match self.protocol {
                Protocol::Stateless20260728 => self.timeout,
                _ => self.timeout.min(self.probe_timeout),
            };
            let probed =
                tokio::time::timeout(wait, self.connect_transport(gateway_session, probe)).await;
            if self.protocol == Protocol::Stateless20260728 {
                return self
                    .require_stateless(probed, id, capabilities, &requested)
                    .await;
            }
            match probed {
                Ok(Ok((session, response))) => {
                    if let Some(done) =
                        self.stateless_session(session, &response, &id, &capabilities, &requested)
                    {
                        return Ok(done);
                    }
                    tracing::info!(target: "upstream", server = %self.name, "upstream speaks the legacy era");
                    self.era.set(era::Era::Legacy);
                }
                Ok(Err(e @ (UpstreamError::Unavailable(_) | UpstreamError::Busy))) => {
                    self.era.reset();
                    return Err(e);
                }
                Ok(Err(e)) => {
                    tracing::debug!(target: "upstream", server = %self.name, error = %e, "legacy era (`server/discover` failed)");
                    self.era.set(era::Era::Legacy);
                }
                Err(_) => {
                    tracing::debug!(target: "upstream", server = %self.name, "legacy era (`server/discover` unanswered)");
                    self.era.set(era::Era::Legacy);
                }
            }
        }
        let connected = self.connect_transport(gateway_session, initialize).await;
        match connected {
            Ok((session, response)) => Ok((
                UpstreamSession {
                    era: Some(self.era.clone()),
                    ..session
                },
                response,
            )),
            Err(e) => {
                self.era.reset();
                Err(e)
            }
        }
    }

    /// The session and `initialize` answer of an upstream whose `server/discover` response
    /// lists a stateless version the gateway speaks; `None` for any other response.
    fn stateless_session(
        &self,
        session: UpstreamSession,
        response: &Message,
        id: &Value,
        capabilities: &Value,
        requested: &str,
    ) -> Option<(UpstreamSession, Message)> {
        let version = era::modern_version_of(response)?;
        let result = response.get("result")?;
        if self.era.get() == era::Era::Unknown {
            tracing::info!(target: "upstream", server = %self.name, version, "upstream speaks the stateless era");
        }
        self.era.set(era::Era::Modern(result.clone()));
        let init = era::initialize_result(&self.name, result, requested);
        let session = UpstreamSession {
            modern: Some(Arc::new(ModernContext {
                version: version.to_owned(),
                capabilities: capabilities.clone(),
                subscribed: era_listen::Subscribed::default(),
            })),
            era: Some(self.era.clone()),
            ..session
        };
        Some((
            session,
            serde_json::json!({"jsonrpc": "2.0", "id": id, "result": init}),
        ))
    }

    /// Under `protocol: 2026-07-28` the probe is the only way in: anything but a stateless
    /// answer is an error (never a fall back to `initialize`).
    async fn require_stateless(
        &self,
        probed: Result<
            Result<(UpstreamSession, Message), UpstreamError>,
            tokio::time::error::Elapsed,
        >,
        id: Value,
        capabilities: Value,
        requested: &str,
    ) -> Result<(UpstreamSession, Message), UpstreamError> {
        let why = match probed {
            Ok(Ok((session, response))) => {
                let why = match response.get("error") {
                    Some(e) => format!(
                        "it answered `server/discover` with error {}",
                        e.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("(no message)")
                    ),
                    None => "its `server/discover` result does not list 2026-07-28".to_owned(),
                };
                match self.stateless_session(
                    session.clone(),
                    &response,
                    &id,
                    &capabilities,
                    requested,
                ) {
                    Some(done) => return Ok(done),
                    None => {
                        session.close().await;
                        why
                    }
                }
            }
            Ok(Err(e @ (UpstreamError::Unavailable(_) | UpstreamError::Busy))) => return Err(e),
            Ok(Err(e)) => format!("`server/discover` failed: {e}"),
            Err(_) => format!(
                "no answer to `server/discover` within {} s",
                self.timeout.as_secs()
            ),
        };
        self.era.reset();
        tracing::warn!(target: "upstream", server = %self.name, reason = %why, "upstream does not speak protocol 2026-07-28");
        Err(UpstreamError::Protocol(format!(
            "server `{}` is configured with `protocol: 2026-07-28` but {why}; \
             set `protocol: legacy` or `auto` for a server of the legacy era",
            self.name
        )))
    }

    /// Sends `message` as the first message of a new session on the transport.
    async fn connect_transport(
        &self,
        gateway_session: &str,
        initialize: Message,
    ) -> Result<(UpstreamSession, Message), UpstreamError> {
        let (kind, response) = match &self.transport {
            UpstreamTransport::Http(up) => {
                let (s, r) = up.connect(initialize).await?;
                (SessionKind::Http(s), r)
            }
            UpstreamTransport::Stdio(up) => {
                let (s, r) = up.connect(gateway_session, initialize).await?;
                (SessionKind::Stdio(s), r)
            }
            UpstreamTransport::Sse(up) => {
                let (s, r) = up.connect(gateway_session, initialize).await?;
                (SessionKind::Sse(s), r)
            }
        };
        Ok((
            UpstreamSession {
                kind,
                modern: None,
                era: None,
            },
            response,
        ))
    }

    /// Re-attaches to a session from its sealed state: always possible for HTTP; for stdio
    /// and legacy SSE only on the replica that runs the process or holds the event stream
    /// (`None` otherwise: the client re-initializes).
    pub fn resume(&self, gateway_session: &str, state: &SessionState) -> Option<UpstreamSession> {
        let kind = match &self.transport {
            UpstreamTransport::Http(up) => SessionKind::Http(up.resume(state)),
            UpstreamTransport::Stdio(up) => SessionKind::Stdio(up.resume(gateway_session)?),
            UpstreamTransport::Sse(up) => SessionKind::Sse(up.resume(gateway_session)?),
        };
        let modern = era::is_modern_version(&state.protocol_version).then(|| {
            Arc::new(ModernContext {
                version: state.protocol_version.clone(),
                capabilities: state
                    .client_capabilities
                    .clone()
                    .unwrap_or_else(|| serde_json::json!({})),
                subscribed: era_listen::Subscribed::default(),
            })
        });
        Some(UpstreamSession {
            kind,
            modern,
            era: Some(self.era.clone()),
        })
    }
}
