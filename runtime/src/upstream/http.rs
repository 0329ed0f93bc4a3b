//! The Streamable HTTP transport: one endpoint; POST per message, GET for the server's own
//! stream, DELETE to end the session.

use super::client::{self, ConfiguredHeaders, HttpClient, MAX_MESSAGE_BYTES};
use super::param_headers::ParamHeaders;
use super::router::{id_key, is_response};
use super::sse::SseParser;
use super::{Exchange, Message, SessionState, UpstreamError};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

// Header names and fixed values as constants: parsing a `&str` name or value copies it,
// on every request.
const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
const VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
const LAST_EVENT_HEADER: HeaderName = HeaderName::from_static("last-event-id");
const METHOD_HEADER: HeaderName = HeaderName::from_static("mcp-method");
const NAME_HEADER: HeaderName = HeaderName::from_static("mcp-name");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// Reconnections in a row without a new event, when a response stream drops before its
/// response.
const MAX_RESUMES: u32 = 3;
/// Reconnections in a row, without a message in between, for the listen stream.
const MAX_LISTEN_RECONNECTS: u32 = 5;
/// Upper bound on a server-requested reconnection delay.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
const LISTEN_BUFFER: usize = 256;

/// One Streamable HTTP upstream: its endpoint, headers and pooled client.
pub(crate) struct HttpUpstream {
    name: String,
    url: Uri,
    headers: ConfiguredHeaders,
    client: HttpClient,
    timeout: Duration,
    params: ParamHeaders,
}

impl std::fmt::Debug for HttpUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpUpstream")
            .field("name", &self.name)
            .field("url", &client::redacted_url(&self.url))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A session with a Streamable HTTP upstream; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct HttpSession {
    up: Arc<HttpUpstream>,
    session_id: Option<HeaderValue>,
    protocol_version: Option<HeaderValue>,
}

fn request_key(message: &Message) -> Result<String, UpstreamError> {
    message
        .get("id")
        .and_then(id_key)
        .ok_or_else(|| UpstreamError::Protocol("request without a string or number `id`".into()))
}

impl HttpUpstream {
    pub(crate) fn new(
        name: &str,
        url: Uri,
        headers: ConfiguredHeaders,
        timeout: Duration,
        client: HttpClient,
    ) -> HttpUpstream {
        HttpUpstream {
            name: name.to_owned(),
            url,
            headers,
            client,
            timeout,
            params: ParamHeaders::default(),
        }
    }

    /// Sends `initialize` and returns the session with the upstream's response.
    pub(crate) async fn connect(
        self: &Arc<Self>,
        initialize: Message,
    ) -> Result<(HttpSession, Message), UpstreamError> {
        let mut session = HttpSession {
            up: Arc::clone(self),
            session_id: None,
            protocol_version: None,
        };
        let key = request_key(&initialize)?;
        let resp = session.post(&initialize, None).await?;
        let session_id = match resp.headers().get(SESSION_HEADER) {
            Some(v) if v.to_str().is_ok() && !v.is_empty() => Some(v.clone()),
            Some(_) => {
                return Err(UpstreamError::Protocol(
                    "malformed `Mcp-Session-Id` header".into(),
                ));
            }
            None => None,
        };
        let mut exchange = session.open_exchange(resp, key, false).await?;
        let response = super::final_response(&self.name, &mut exchange).await?;
        session.session_id = session_id;
        session.protocol_version = response
            .pointer("/result/protocolVersion")
            .and_then(|v| v.as_str())
            .and_then(|v| HeaderValue::from_str(v).ok());
        Ok((session, response))
    }

    /// Re-attaches to a session from its sealed state.
    pub(crate) fn resume(self: &Arc<Self>, state: &SessionState) -> HttpSession {
        HttpSession {
            up: Arc::clone(self),
            session_id: state
                .session_id
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok()),
            protocol_version: (!state.protocol_version.is_empty())
                .then(|| HeaderValue::from_str(&state.protocol_version).ok())
                .flatten(),
        }
    }
}

impl HttpSession {
    /// What the core seals into the client's session token.
    pub(crate) fn state(&self) -> SessionState {
        SessionState {
            session_id: self
                .session_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            protocol_version: self
                .protocol_version
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            client_capabilities: None,
        }
    }

    fn builder(&self, method: Method, accept: &'static str) -> http::request::Builder {
        let mut b = Request::builder()
            .method(method)
            .uri(self.up.url.clone())
            .header(ACCEPT, HeaderValue::from_static(accept));
        for (name, value) in &self.up.headers.map {
            b = b.header(name, value);
        }
        if let Some(id) = &self.session_id {
            b = b.header(SESSION_HEADER, id);
        }
        if let Some(v) = &self.protocol_version {
            b = b.header(VERSION_HEADER, v);
        }
        b
    }

    async fn post(
        &self,
        message: &Message,
        extra: Option<&super::session::ExtraHeader>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let body = serde_json::to_vec(message)
            .map_err(|e| UpstreamError::Protocol(format!("cannot encode message: {e}")))?;
        let mut b = self
            .builder(Method::POST, "application/json, text/event-stream")
            .header(CONTENT_TYPE, JSON);
        if let Some(headers) = b.headers_mut() {
            modern_headers(message, headers, &self.up.params);
            if let Some((name, value)) = extra {
                headers.insert(name.clone(), value.clone());
            }
            crate::telemetry::inject(headers);
        }
        let req = b
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| UpstreamError::Protocol(format!("cannot build request: {e}")))?;
        Ok(client::send(&self.up.client, req, self.up.timeout).await?)
    }

    async fn get_stream(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<Option<Incoming>, UpstreamError> {
        let mut b = self.builder(Method::GET, "text/event-stream");
        if let Some(id) = last_event_id {
            b = b.header(LAST_EVENT_HEADER, id);
        }
        let req = b
            .body(Full::new(Bytes::new()))
            .map_err(|e| UpstreamError::Protocol(format!("cannot build request: {e}")))?;
        let resp = client::send(&self.up.client, req, self.up.timeout).await?;
        let status = resp.status();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            return Ok(None);
        }
        if status == StatusCode::NOT_FOUND && self.session_id.is_some() {
            return Err(UpstreamError::SessionExpired);
        }
        if !status.is_success() {
            let body = client::read_body(
                resp.into_body(),
                self.up.timeout.min(client::SIDE_BODY_WAIT),
            )
            .await
            .unwrap_or_default();
            return Err(client::status_error(status, &body, &self.up.headers).into());
        }
        let media = client::media_type(resp.headers());
        if media != "text/event-stream" {
            return Err(UpstreamError::Protocol(format!(
                "unexpected content type `{}` for the event stream",
                client::truncate(&media, 80)
            )));
        }
        Ok(Some(resp.into_body()))
    }

    /// Sends a request; the [`Exchange`] yields related messages, then the response.
    pub(crate) async fn request(
        &self,
        message: Message,
        extra: Option<&super::session::ExtraHeader>,
    ) -> Result<Exchange, UpstreamError> {
        let key = request_key(&message)?;
        let lists_tools = message.get("method").and_then(Message::as_str) == Some("tools/list");
        let resp = self.post(&message, extra).await?;
        self.open_exchange(resp, key, lists_tools).await
    }

    /// The exchange for a request's HTTP answer; `lists_tools`: learn `Mcp-Param-*` marks
    /// from the response.
    async fn open_exchange(
        &self,
        resp: http::Response<Incoming>,
        key: String,
        lists_tools: bool,
    ) -> Result<Exchange, UpstreamError> {
        let status = resp.status();
        let media = client::media_type(resp.headers());
        let body = resp.into_body();
        if status == StatusCode::ACCEPTED {
            return Err(UpstreamError::Protocol(
                "HTTP 202 with no response to a request".into(),
            ));
        }
        if status.is_success() {
            return match media.as_str() {
                "application/json" => {
                    let bytes = client::read_body(body, self.up.timeout).await?;
                    if !lists_tools {
                        // Parsed when read: a relay that only swaps the id copies it as is.
                        return Ok(Exchange::raw(bytes, key));
                    }
                    let message = parse_response(&bytes, &key).ok_or_else(|| {
                        UpstreamError::Protocol(
                            "response body is not the JSON-RPC response to the request".into(),
                        )
                    })?;
                    if lists_tools {
                        self.up.params.learn(&message);
                    }
                    let (tx, rx) = mpsc::channel(1);
                    let _ = tx.try_send(Ok(message));
                    Ok(rx.into())
                }
                "text/event-stream" => {
                    let (tx, rx) = mpsc::channel(64);
                    tokio::spawn(
                        self.clone()
                            .relay_response_stream(body, key, tx, lists_tools),
                    );
                    Ok(rx.into())
                }
                other => Err(UpstreamError::Protocol(format!(
                    "unexpected content type `{}`",
                    client::truncate(other, 80)
                ))),
            };
        }
        if status == StatusCode::NOT_FOUND && self.session_id.is_some() {
            return Err(UpstreamError::SessionExpired);
        }
        let bytes = client::read_body(body, self.up.timeout.min(client::SIDE_BODY_WAIT))
            .await
            .unwrap_or_default();
        // A JSON-RPC error for this request (e.g. an unknown method) is an answer to relay.
        // Error bodies may echo what the request carried: credentials are scrubbed from it.
        if let Some(message) = parse_response(&bytes, &key)
            .filter(|m| m.get("error").is_some())
            .and_then(|m| serde_json::from_str(&self.up.headers.scrub(&m.to_string())).ok())
        {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(Ok(message));
            return Ok(rx.into());
        }
        Err(client::status_error(status, &bytes, &self.up.headers).into())
    }

    async fn relay_response_stream(
        self,
        mut body: Incoming,
        key: String,
        tx: mpsc::Sender<Result<Message, UpstreamError>>,
        lists_tools: bool,
    ) {
        let observer = lists_tools.then_some(&self.up.params);
        let mut parser = SseParser::new(MAX_MESSAGE_BYTES);
        // Resumptions in a row that brought no new event (servers that poll close the
        // stream after each event, so progress resets the count).
        let mut resumes = 0;
        let mut deadline = Instant::now() + self.up.timeout;
        loop {
            let before = parser.last_event_id().map(str::to_owned);
            let end = relay_events(
                &mut body,
                &mut parser,
                &tx,
                Some(&key),
                Some((&mut deadline, self.up.timeout)),
                observer,
            )
            .await;
            match end {
                StreamEnd::Done => return,
                StreamEnd::Failed(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                StreamEnd::Dropped => {}
            }
            // Best effort: resume from the last event id the server gave.
            let Some(last) = parser.last_event_id().map(str::to_owned) else {
                break;
            };
            resumes = if before.as_deref() == Some(last.as_str()) {
                resumes + 1
            } else {
                1
            };
            if resumes > MAX_RESUMES {
                break;
            }
            let wait = retry_delay(&parser, Duration::ZERO);
            if Instant::now() + wait >= deadline {
                let _ = tx.send(Err(UpstreamError::Timeout)).await;
                return;
            }
            tokio::time::sleep(wait).await;
            match self.get_stream(Some(&last)).await {
                Ok(Some(next)) => {
                    body = next;
                    let retry = parser.retry_ms();
                    parser = SseParser::new(MAX_MESSAGE_BYTES);
                    parser.set_last_event_id(Some(last));
                    parser.set_retry_ms(retry);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
        let _ = tx
            .send(Err(UpstreamError::Protocol(
                "event stream ended before the response".into(),
            )))
            .await;
    }

    /// Sends a notification or a response; the upstream answers 202.
    pub(crate) async fn notify(&self, message: Message) -> Result<(), UpstreamError> {
        let resp = self.post(&message, None).await?;
        let status = resp.status();
        let bytes = client::read_body(
            resp.into_body(),
            self.up.timeout.min(client::SIDE_BODY_WAIT),
        )
        .await
        .unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::NOT_FOUND && self.session_id.is_some() {
            return Err(UpstreamError::SessionExpired);
        }
        Err(client::status_error(status, &bytes, &self.up.headers).into())
    }

    /// Opens the server-initiated stream (GET); `None` on 405.
    pub(crate) async fn listen(&self) -> Result<Option<mpsc::Receiver<Message>>, UpstreamError> {
        let Some(body) = self.get_stream(None).await? else {
            return Ok(None);
        };
        let (tx, rx) = mpsc::channel(LISTEN_BUFFER);
        tokio::spawn(self.clone().relay_listen_stream(body, tx));
        Ok(Some(rx))
    }

    async fn relay_listen_stream(self, mut body: Incoming, tx: mpsc::Sender<Message>) {
        // Adapts the listen channel (plain messages) to the shared relay (results).
        let (rtx, mut rrx) = mpsc::channel::<Result<Message, UpstreamError>>(LISTEN_BUFFER);
        let name = self.up.name.clone();
        let forward = tokio::spawn(async move {
            while let Some(item) = rrx.recv().await {
                match item {
                    Ok(m) => {
                        if tx.send(m).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(target: "upstream", server = %name, "listen stream: {e}");
                        return;
                    }
                }
            }
        });
        let mut parser = SseParser::new(MAX_MESSAGE_BYTES);
        let mut reconnects = 0;
        loop {
            let before = parser.last_event_id().map(str::to_owned);
            match relay_events(&mut body, &mut parser, &rtx, None, None, None).await {
                StreamEnd::Done => break,
                StreamEnd::Failed(e) => {
                    let _ = rtx.send(Err(e)).await;
                    break;
                }
                StreamEnd::Dropped => {}
            }
            // Reconnect only when the server said how to (an event id or a retry delay).
            let last = parser.last_event_id().map(str::to_owned);
            if last.is_none() && parser.retry_ms().is_none() {
                break;
            }
            reconnects = if last != before { 1 } else { reconnects + 1 };
            if reconnects > MAX_LISTEN_RECONNECTS || rtx.is_closed() {
                break;
            }
            tokio::time::sleep(retry_delay(&parser, Duration::from_secs(1))).await;
            match self.get_stream(last.as_deref()).await {
                Ok(Some(next)) => body = next,
                Ok(None) => break,
                Err(e) => {
                    let _ = rtx.send(Err(e)).await;
                    break;
                }
            }
        }
        drop(rtx);
        let _ = forward.await;
    }

    /// Ends the session with DELETE (a 405 or any failure is ignored).
    pub(crate) async fn close(&self) {
        if self.session_id.is_none() {
            return;
        }
        let Ok(req) = self
            .builder(Method::DELETE, "application/json, text/event-stream")
            .body(Full::new(Bytes::new()))
        else {
            return;
        };
        if let Ok(resp) = client::send(&self.up.client, req, self.up.timeout).await {
            let _ = client::read_body(
                resp.into_body(),
                self.up.timeout.min(client::SIDE_BODY_WAIT),
            )
            .await;
        }
    }
}

/// A message of the stateless era (2026-07-28) names its protocol version in `_meta`; its
/// HTTP headers must then mirror the body: `MCP-Protocol-Version`, `Mcp-Method`, and
/// `Mcp-Name` for the methods that address one named thing.
fn modern_headers(message: &Message, headers: &mut http::HeaderMap, params_marks: &ParamHeaders) {
    let Some(params) = message.get("params") else {
        return;
    };
    // `get` chains, not `pointer`: a pointer allocates per segment, and this runs per call.
    let Some(version) = params
        .get("_meta")
        .and_then(|m| m.get(super::era::META_VERSION))
        .and_then(Message::as_str)
        .and_then(|v| HeaderValue::from_str(v).ok())
    else {
        return;
    };
    headers.insert(VERSION_HEADER, version);
    let Some(method) = message.get("method").and_then(Message::as_str) else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(method) {
        headers.insert(METHOD_HEADER, v);
    }
    if method == "tools/call" {
        params_marks.apply(params, headers);
    }
    let name = match method {
        "tools/call" | "prompts/get" => params.get("name"),
        "resources/read" => params.get("uri"),
        _ => None,
    };
    if let Some(v) = name
        .and_then(Message::as_str)
        .and_then(|n| HeaderValue::from_str(&crate::mcp_headers::encode_value(n)).ok())
    {
        headers.insert(NAME_HEADER, v);
    }
}

fn retry_delay(parser: &SseParser, default: Duration) -> Duration {
    parser
        .retry_ms()
        .map_or(default, Duration::from_millis)
        .min(MAX_RETRY_DELAY)
}

/// A JSON body that is the response to the request `key`.
fn parse_response(bytes: &[u8], key: &str) -> Option<Message> {
    let message: Message = serde_json::from_slice(bytes).ok()?;
    (is_response(&message) && message.get("id").and_then(id_key).as_deref() == Some(key))
        .then_some(message)
}

/// How reading an event stream stopped.
pub(crate) enum StreamEnd {
    /// The response arrived, or nobody reads any more.
    Done,
    /// The stream ended or broke; resuming may help.
    Dropped,
    /// Garbage or a timeout: report and stop.
    Failed(UpstreamError),
}

/// Relays the `message` events of `body` to `tx` until the stream ends, the response to
/// `key` arrives, or (with `deadline`) no message comes in time.
pub(crate) async fn relay_events(
    body: &mut Incoming,
    parser: &mut SseParser,
    tx: &mpsc::Sender<Result<Message, UpstreamError>>,
    key: Option<&str>,
    mut deadline: Option<(&mut Instant, Duration)>,
    observer: Option<&ParamHeaders>,
) -> StreamEnd {
    let mut events = Vec::new();
    loop {
        let wait = deadline.as_ref().map(|(d, _)| **d);
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = sleep_until(wait) => return StreamEnd::Failed(UpstreamError::Timeout),
            () = tx.closed() => return StreamEnd::Done,
        };
        let data = match frame {
            None | Some(Err(_)) => return StreamEnd::Dropped,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
        };
        if let Err(e) = parser.feed(&data, &mut events) {
            return StreamEnd::Failed(UpstreamError::Protocol(e.to_string()));
        }
        for event in events.drain(..) {
            if event.event != "message" || event.data.trim().is_empty() {
                continue;
            }
            let message: Message = match serde_json::from_str(&event.data) {
                Ok(m @ Message::Object(_)) => m,
                _ => {
                    return StreamEnd::Failed(UpstreamError::Protocol(
                        "event stream carries a message that is not a JSON-RPC object".into(),
                    ));
                }
            };
            let last = key.is_some()
                && is_response(&message)
                && message.get("id").and_then(id_key).as_deref() == key;
            if let Some((d, timeout)) = deadline.as_mut() {
                **d = Instant::now() + *timeout;
            }
            if let (true, Some(observer)) = (last, observer) {
                observer.learn(&message);
            }
            if tx.send(Ok(message)).await.is_err() || last {
                return StreamEnd::Done;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modern_messages_mirror_their_body_in_headers() {
        let mut headers = http::HeaderMap::new();
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "get_issue",
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        modern_headers(&call, &mut headers, &ParamHeaders::default());
        assert_eq!(headers[VERSION_HEADER], "2026-07-28");
        assert_eq!(headers[METHOD_HEADER], "tools/call");
        assert_eq!(headers[NAME_HEADER], "get_issue");

        let mut legacy = http::HeaderMap::new();
        modern_headers(
            &json!({"id": 2, "method": "tools/call", "params": {"name": "x"}}),
            &mut legacy,
            &ParamHeaders::default(),
        );
        assert!(legacy.is_empty());
    }
}
