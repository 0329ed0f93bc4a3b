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

pub mod era;
mod era_listen;
mod http;
pub mod inventory;
mod param_headers;
mod router;
pub mod sse;
mod sse_legacy;
mod stdio;

pub use crate::vault::references::{EnvSecrets, SecretResolver};
// The HTTP client and secret references live below the connections; the transports
// name them as before.
use crate::http_client as client;
use crate::vault::references as secrets;
pub use stdio::StdioProcesses;

use serde_json::Value;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
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

impl From<client::HttpError> for UpstreamError {
    fn from(e: client::HttpError) -> UpstreamError {
        match e {
            client::HttpError::Unavailable(m) => UpstreamError::Unavailable(m),
            client::HttpError::Timeout => UpstreamError::Timeout,
            client::HttpError::Protocol(m) => UpstreamError::Protocol(m),
        }
    }
}

use mcpgate_compiler::config::{GatewayConfig, Protocol, ServerConfig, Transport};
use serde::{Deserialize, Serialize};

/// Per-request timeout when the config names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// Builds the upstream from reviewed config. Header values with `${secret:..}`/`${env:..}`
    /// references are resolved here (`secrets`); the error names the missing reference only.
    /// Stdio processes count against the gateway-wide cap ([`StdioProcesses::global`]).
    ///
    /// # Errors
    /// Config that cannot work: neither or both of `url` and `command`, a bad URL or header,
    /// an unknown reference.
    pub fn from_config(
        name: &str,
        config: &ServerConfig,
        gateway: &GatewayConfig,
        secrets: &dyn SecretResolver,
    ) -> Result<Upstream, String> {
        let processes = StdioProcesses::global(gateway.max_stdio_processes);
        Upstream::from_config_with(name, config, gateway, secrets, &processes)
    }

    /// Like [`Upstream::from_config`], with stdio processes counted against `processes`.
    ///
    /// # Errors
    /// As [`Upstream::from_config`].
    pub fn from_config_with(
        name: &str,
        config: &ServerConfig,
        gateway: &GatewayConfig,
        secrets: &dyn SecretResolver,
        processes: &StdioProcesses,
    ) -> Result<Upstream, String> {
        let timeout = match config.timeout_secs {
            Some(0) => {
                return Err(format!(
                    "server `{name}`: `timeout_secs` must be at least 1"
                ));
            }
            Some(s) => Duration::from_secs(s),
            None => DEFAULT_TIMEOUT,
        };
        let protocol = config.protocol.unwrap_or_default();
        if protocol == Protocol::Stateless20260728 && config.transport == Some(Transport::Sse) {
            return Err(format!(
                "server `{name}`: `transport: sse` cannot speak protocol `2026-07-28`"
            ));
        }
        let probe_timeout = match config.probe_timeout_secs {
            Some(0) => {
                return Err(format!(
                    "server `{name}`: `probe_timeout_secs` must be at least 1"
                ));
            }
            Some(s) => Duration::from_secs(s),
            None if config.command.is_some() => era::PROBE_TIMEOUT_STDIO,
            None => era::PROBE_TIMEOUT,
        };
        let idle = Duration::from_secs(gateway.session_idle_secs.max(1));
        let transport = match (&config.url, &config.command) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "server `{name}` has both `url` and `command`; give one"
                ));
            }
            (None, None) => {
                return Err(format!("server `{name}` needs a `url` or a `command`"));
            }
            (Some(url), None) => {
                let uri = client::parse_url(url).map_err(|e| format!("server `{name}`: {e}"))?;
                let headers = resolve_headers(config, secrets)
                    .map_err(|e| format!("server `{name}`: {e}"))?;
                match config.transport.unwrap_or(Transport::StreamableHttp) {
                    Transport::StreamableHttp => UpstreamTransport::Http(Arc::new(
                        http::HttpUpstream::new(name, uri, headers, timeout)?,
                    )),
                    Transport::Sse => UpstreamTransport::Sse(sse_legacy::LegacyUpstream::new(
                        name, uri, headers, timeout, idle,
                    )?),
                }
            }
            (None, Some(command)) => {
                if config.transport.is_some() || !config.headers.is_empty() {
                    return Err(format!(
                        "server `{name}`: `transport` and `headers` apply to `url` servers only"
                    ));
                }
                if command.trim().is_empty() {
                    return Err(format!("server `{name}`: `command` is empty"));
                }
                let mut env = Vec::with_capacity(config.env.len());
                for (key, value) in &config.env {
                    let v = secrets::resolve_references(value, secrets)
                        .map_err(|e| format!("server `{name}`: env `{key}`: {e}"))?;
                    env.push((key.clone(), v.value));
                }
                UpstreamTransport::Stdio(stdio::StdioUpstream::new(
                    name,
                    command.clone(),
                    config.args.clone(),
                    env,
                    config.cwd.as_ref().map(PathBuf::from),
                    timeout,
                    idle,
                    processes.clone(),
                ))
            }
        };
        let era = Arc::new(era::EraCache::default());
        if protocol == Protocol::Legacy {
            era.set(era::Era::Legacy);
        }
        Ok(Upstream {
            name: name.to_owned(),
            timeout,
            transport,
            era,
            protocol,
            probe_timeout,
        })
    }

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

    /// The era detected for this upstream.
    pub fn era(&self) -> era::Era {
        self.era.get()
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

fn resolve_headers(
    config: &ServerConfig,
    secrets: &dyn SecretResolver,
) -> Result<client::ConfiguredHeaders, String> {
    let mut headers = client::ConfiguredHeaders::default();
    for (name, value) in &config.headers {
        let resolved = secrets::resolve_references(value, secrets)
            .map_err(|e| format!("header `{name}`: {e}"))?;
        let (n, v) = client::header(name, &resolved.value, resolved.sensitive)?;
        headers.secrets.extend(resolved.substituted);
        headers.map.append(n, v);
    }
    Ok(headers)
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

/// A session with one upstream. Cheap to clone; all clones share the connection.
#[derive(Clone, Debug)]
pub struct UpstreamSession {
    kind: SessionKind,
    /// Set when the upstream speaks the stateless era: what each request carries.
    modern: Option<Arc<ModernContext>>,
    /// The upstream's era cache, forgotten when the upstream fails.
    era: Option<Arc<era::EraCache>>,
}

/// What a session with a modern upstream stamps on every request.
#[derive(Debug)]
struct ModernContext {
    version: String,
    capabilities: Value,
    /// Resources a legacy client subscribed to (the upstream has no `resources/subscribe`).
    subscribed: era_listen::Subscribed,
}

#[derive(Clone, Debug)]
enum SessionKind {
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
            SessionKind::Http(s) => s.request(message).await,
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
    async fn transport_listen(&self) -> Result<Option<mpsc::Receiver<Message>>, UpstreamError> {
        match &self.kind {
            SessionKind::Http(_) => Ok(None),
            SessionKind::Stdio(s) => Ok(Some(s.listen())),
            SessionKind::Sse(s) => Ok(Some(s.listen())),
        }
    }
}

#[cfg(test)]
mod secret_tests {
    use super::SecretResolver;

    #[test]
    fn debug_output_never_shows_resolved_credentials() {
        use mcpgate_compiler::config::{GatewayConfig, ServerConfig};
        struct Secret;
        impl SecretResolver for Secret {
            fn resolve(&self, _kind: &str, _name: &str) -> Option<String> {
                Some("hunter2-credential".into())
            }
        }
        let http = ServerConfig {
            url: Some("https://user:pw@example.com/mcp?token=abc".into()),
            headers: [("Authorization".into(), "Bearer ${secret:gh}".into())].into(),
            ..ServerConfig::default()
        };
        let stdio = ServerConfig {
            command: Some("server".into()),
            env: [("API_KEY".into(), "${secret:gh}".into())].into(),
            ..ServerConfig::default()
        };
        let gateway = GatewayConfig::default();
        let processes = super::StdioProcesses::new(1);
        for config in [http, stdio] {
            let up = super::Upstream::from_config_with("s", &config, &gateway, &Secret, &processes)
                .unwrap();
            let shown = format!("{up:?} {config:?}");
            for leak in ["hunter2", "Bearer", "pw@", "token=abc"] {
                assert!(!shown.contains(leak), "`{leak}` in {shown}");
            }
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }
}
