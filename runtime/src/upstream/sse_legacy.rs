//! The HTTP+SSE transport of protocol revision 2024-11-05 (`transport: sse`): a GET opens an
//! event stream whose first `endpoint` event names the URI to POST messages to; every message
//! from the server, responses included, arrives on that stream.

use super::client::{self, ConfiguredHeaders, HttpClient, MAX_MESSAGE_BYTES};
use super::router::{Router, forget_connection, initialized, spawn_reaper};
use super::sse::{SseEvent, SseParser};
use super::{Exchange, Message, SessionState, UpstreamError};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// A configured legacy SSE server.
pub(crate) struct LegacyUpstream {
    name: String,
    url: Uri,
    shared: Arc<Shared>,
    idle: Duration,
}

struct Shared {
    headers: ConfiguredHeaders,
    client: HttpClient,
    timeout: Duration,
    sessions: Mutex<HashMap<String, Arc<Connection>>>,
    reaper_started: AtomicBool,
}

impl std::fmt::Debug for LegacyUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyUpstream")
            .field("name", &self.name)
            .field("url", &client::redacted_url(&self.url))
            .finish_non_exhaustive()
    }
}

/// One open event stream and the endpoint it named.
struct Connection {
    key: String,
    router: Arc<Router>,
    endpoint: Uri,
    reader: tokio::task::AbortHandle,
    protocol_version: Mutex<String>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A session with a legacy SSE server. Cheap to clone.
#[derive(Clone)]
pub(crate) struct LegacySession {
    shared: Arc<Shared>,
    conn: Arc<Connection>,
}

impl std::fmt::Debug for LegacySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacySession")
            .field("gateway_session", &self.conn.key)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LegacyUpstream {
    pub(crate) fn new(
        name: &str,
        url: Uri,
        headers: ConfiguredHeaders,
        timeout: Duration,
        idle: Duration,
        client: HttpClient,
    ) -> LegacyUpstream {
        LegacyUpstream {
            name: name.to_owned(),
            url,
            idle,
            shared: Arc::new(Shared {
                headers,
                client,
                timeout,
                sessions: Mutex::new(HashMap::new()),
                reaper_started: AtomicBool::new(false),
            }),
        }
    }

    /// Opens the event stream, waits for the endpoint, and initializes.
    pub(crate) async fn connect(
        &self,
        gateway_session: &str,
        initialize: Message,
    ) -> Result<(LegacySession, Message), UpstreamError> {
        let old = lock(&self.shared.sessions).remove(gateway_session);
        if let Some(old) = old {
            old.router.end(
                UpstreamError::Unavailable("the session was replaced".into()),
                UpstreamError::SessionExpired,
            );
            old.reader.abort();
        }
        let timeout = self.shared.timeout;
        let mut b = Request::builder()
            .method(Method::GET)
            .uri(self.url.clone())
            .header(ACCEPT, "text/event-stream");
        for (name, value) in &self.shared.headers.map {
            b = b.header(name, value);
        }
        let req = b
            .body(Full::new(Bytes::new()))
            .map_err(|e| UpstreamError::Protocol(format!("cannot build request: {e}")))?;
        let resp = client::send(&self.shared.client, req, timeout).await?;
        let status = resp.status();
        if !status.is_success() {
            let body = client::read_body(resp.into_body(), timeout.min(client::SIDE_BODY_WAIT))
                .await
                .unwrap_or_default();
            return Err(client::status_error(status, &body, &self.shared.headers).into());
        }
        let media = client::media_type(resp.headers());
        if media != "text/event-stream" {
            return Err(UpstreamError::Protocol(format!(
                "unexpected content type `{}` for the event stream",
                client::truncate(&media, 80)
            )));
        }
        let mut body = resp.into_body();
        let mut parser = SseParser::new(MAX_MESSAGE_BYTES);
        let mut early = Vec::new();
        let endpoint = tokio::time::timeout(
            timeout,
            wait_for_endpoint(&mut body, &mut parser, &mut early),
        )
        .await
        .map_err(|_| UpstreamError::Timeout)??;
        let endpoint = resolve_endpoint(&self.url, &endpoint)?;
        let router = Arc::new(Router::new(&self.name, timeout));
        for event in early {
            route_event(&router, &self.name, event);
        }
        let reader = tokio::spawn(read_stream(
            body,
            parser,
            Arc::clone(&router),
            self.name.clone(),
        ));
        let conn = Arc::new(Connection {
            key: gateway_session.to_owned(),
            router,
            endpoint,
            reader: reader.abort_handle(),
            protocol_version: Mutex::new(String::new()),
        });
        let session = LegacySession {
            shared: Arc::clone(&self.shared),
            conn: Arc::clone(&conn),
        };
        let response = initialized(
            &self.name,
            session.request(initialize),
            &conn.protocol_version,
        )
        .await?;
        lock(&self.shared.sessions).insert(gateway_session.to_owned(), conn);
        self.start_reaper();
        Ok((session, response))
    }

    /// The live session of `gateway_session`, if this gateway holds its event stream.
    pub(crate) fn resume(&self, gateway_session: &str) -> Option<LegacySession> {
        let conn = lock(&self.shared.sessions)
            .get(gateway_session)
            .filter(|c| c.router.ended().is_none())
            .cloned()?;
        Some(LegacySession {
            shared: Arc::clone(&self.shared),
            conn,
        })
    }

    fn start_reaper(&self) {
        let idle = self.idle;
        spawn_reaper(
            &self.shared.reaper_started,
            &self.shared,
            idle,
            move |shared: &Shared| {
                lock(&shared.sessions).retain(|_, c| {
                    let stale = c.router.ended().is_some()
                        || (c.router.in_flight() == 0 && c.router.idle_for() >= idle);
                    if stale {
                        c.router.end(
                            UpstreamError::Unavailable("the session was idle".into()),
                            UpstreamError::SessionExpired,
                        );
                        c.reader.abort();
                    }
                    !stale
                });
            },
        );
    }
}

impl LegacySession {
    /// No session id to seal: the session lives in this gateway's event stream.
    pub(crate) fn state(&self) -> SessionState {
        SessionState {
            session_id: None,
            protocol_version: lock(&self.conn.protocol_version).clone(),
            client_capabilities: None,
        }
    }

    async fn post(&self, message: &Message) -> Result<(), UpstreamError> {
        let body = serde_json::to_vec(message)
            .map_err(|e| UpstreamError::Protocol(format!("cannot encode message: {e}")))?;
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(self.conn.endpoint.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in &self.shared.headers.map {
            b = b.header(name, value);
        }
        let req = b
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| UpstreamError::Protocol(format!("cannot build request: {e}")))?;
        let timeout = self.shared.timeout;
        let resp = client::send(&self.shared.client, req, timeout).await?;
        let status = resp.status();
        let bytes = client::read_body(resp.into_body(), timeout.min(client::SIDE_BODY_WAIT))
            .await
            .unwrap_or_default();
        if status.is_success() {
            self.conn.router.touch();
            return Ok(());
        }
        if status == StatusCode::NOT_FOUND {
            return Err(UpstreamError::SessionExpired);
        }
        Err(client::status_error(status, &bytes, &self.shared.headers).into())
    }

    pub(crate) async fn request(&self, message: Message) -> Result<Exchange, UpstreamError> {
        self.conn.router.send(&message, self.post(&message)).await
    }

    pub(crate) async fn notify(&self, message: Message) -> Result<(), UpstreamError> {
        self.conn.router.notify(self.post(&message)).await
    }

    pub(crate) fn listen(&self) -> mpsc::Receiver<Message> {
        self.conn.router.listener()
    }

    pub(crate) async fn close(&self) {
        forget_connection(&self.shared.sessions, &self.conn.key, &self.conn);
        self.conn.router.end(
            UpstreamError::Unavailable("the session was closed".into()),
            UpstreamError::SessionExpired,
        );
        self.conn.reader.abort();
    }
}

/// Reads events until the `endpoint` event; message events before it are kept.
async fn wait_for_endpoint(
    body: &mut Incoming,
    parser: &mut SseParser,
    early: &mut Vec<SseEvent>,
) -> Result<String, UpstreamError> {
    let mut events = Vec::new();
    loop {
        let data = match body.frame().await {
            None | Some(Err(_)) => {
                return Err(UpstreamError::Protocol(
                    "event stream ended before the `endpoint` event".into(),
                ));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
        };
        parser
            .feed(&data, &mut events)
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let mut drained = events.drain(..);
        while let Some(event) = drained.next() {
            if event.event == "endpoint" {
                early.extend(drained);
                return Ok(event.data);
            }
            early.push(event);
        }
    }
}

fn route_event(router: &Router, server: &str, event: SseEvent) {
    if event.event != "message" || event.data.trim().is_empty() {
        return;
    }
    match serde_json::from_str::<Message>(&event.data) {
        Ok(message @ Message::Object(_)) => router.route(message),
        _ => tracing::warn!(
            target: "upstream",
            server = %server,
            "skipping an event that is not a JSON-RPC message ({} bytes)",
            event.data.len()
        ),
    }
}

/// Routes the stream's messages until it ends; then every session user learns it ended.
async fn read_stream(
    mut body: Incoming,
    mut parser: SseParser,
    router: Arc<Router>,
    server: String,
) {
    let mut events = Vec::new();
    let reason = loop {
        let data = match body.frame().await {
            None => break "the event stream closed".to_owned(),
            Some(Err(e)) => break format!("the event stream broke: {e}"),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
        };
        if let Err(e) = parser.feed(&data, &mut events) {
            break e.to_string();
        }
        for event in events.drain(..) {
            route_event(&router, &server, event);
        }
    };
    tracing::info!(target: "upstream", server = %server, "{reason}");
    router.end(
        UpstreamError::Unavailable(reason),
        UpstreamError::SessionExpired,
    );
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn same_origin(a: &Uri, b: &Uri) -> bool {
    let scheme = |u: &Uri| u.scheme_str().unwrap_or_default().to_ascii_lowercase();
    let host = |u: &Uri| u.host().unwrap_or_default().to_ascii_lowercase();
    let port = |u: &Uri| u.port_u16().or_else(|| default_port(&scheme(u)));
    scheme(a) == scheme(b) && host(a) == host(b) && port(a) == port(b)
}

/// Resolves the `endpoint` event's URI against the SSE URL; another origin is refused.
pub(crate) fn resolve_endpoint(base: &Uri, endpoint: &str) -> Result<Uri, UpstreamError> {
    let endpoint = endpoint.trim();
    let shown = || client::truncate(endpoint, 200);
    let invalid = || UpstreamError::Protocol(format!("invalid `endpoint` event `{}`", shown()));
    let lower = endpoint.to_ascii_lowercase();
    let absolute = if lower.starts_with("http://") || lower.starts_with("https://") {
        Some(endpoint.to_owned())
    } else if endpoint.starts_with("//") {
        Some(format!(
            "{}:{endpoint}",
            base.scheme_str().unwrap_or("http")
        ))
    } else {
        None
    };
    if let Some(absolute) = absolute {
        let uri: Uri = absolute.parse().map_err(|_| invalid())?;
        if !same_origin(base, &uri) {
            return Err(UpstreamError::Protocol(format!(
                "`endpoint` event `{}` is on another origin than the event stream",
                shown()
            )));
        }
        return Ok(uri);
    }
    let path_and_query = if endpoint.starts_with('/') {
        endpoint.to_owned()
    } else {
        let base_path = base.path();
        let dir = base_path
            .rfind('/')
            .map_or("/", |i| base_path.get(..=i).unwrap_or("/"));
        format!("{dir}{}", endpoint.strip_prefix("./").unwrap_or(endpoint))
    };
    let pq: PathAndQuery = path_and_query.parse().map_err(|_| invalid())?;
    let scheme: Scheme = base.scheme().cloned().ok_or_else(invalid)?;
    let authority: Authority = base.authority().cloned().ok_or_else(invalid)?;
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(pq)
        .build()
        .map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_resolution() {
        let base: Uri = "http://127.0.0.1:9000/api/sse?x=1".parse().unwrap();
        let r = |e: &str| resolve_endpoint(&base, e).map(|u| u.to_string());
        assert_eq!(
            r("/messages?sessionId=a").unwrap(),
            "http://127.0.0.1:9000/messages?sessionId=a"
        );
        assert_eq!(
            r("messages?s=1").unwrap(),
            "http://127.0.0.1:9000/api/messages?s=1"
        );
        assert_eq!(
            r("http://127.0.0.1:9000/m").unwrap(),
            "http://127.0.0.1:9000/m"
        );
        assert!(r("http://evil.example:9000/m").is_err());
        assert!(r("//evil.example/m").is_err());
        assert!(r("https://127.0.0.1:9000/m").is_err());
    }
}
