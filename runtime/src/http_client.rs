//! The pooled HTTP(S) client shared by the Streamable HTTP and legacy SSE transports, and
//! small helpers for their requests and responses. Also used by the services that call out
//! over HTTP (OIDC key sets, approval webhooks).
//!
//! Bottom layer: uses nothing of the crate.

use crate::http_proxy::ProxyConnector;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Why an HTTP exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Connection refused, DNS failure, TLS failure.
    Unavailable(String),
    /// No answer in time.
    Timeout,
    /// An answer that cannot be used (bad status, unreadable or too large body).
    Protocol(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Unavailable(m) => write!(f, "upstream unavailable: {m}"),
            HttpError::Timeout => f.write_str("upstream timed out"),
            HttpError::Protocol(m) => write!(f, "upstream protocol error: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Time allowed to open a TCP (and TLS) connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a body that is only inspected (an acknowledgement or an error page), so a
/// server that never finishes one cannot hold up a notification.
pub(crate) const SIDE_BODY_WAIT: Duration = Duration::from_secs(2);
/// Largest single message accepted from upstream (a JSON body or one SSE event).
pub(crate) const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The pooled client type.
pub(crate) type HttpClient = Client<HttpsConnector<ProxyConnector>, Full<Bytes>>;

/// Builds a pooled client for http and https (rustls with ring), trusting the platform's
/// root certificates and the bundled webpki roots.
pub(crate) fn build_client() -> Result<HttpClient, String> {
    build_client_trusting(None)
}

/// Like [`build_client`], also trusting the CA certificates of the PEM file `ca_file`.
///
/// # Errors
/// The file cannot be read or holds no certificate, or TLS cannot be set up.
pub(crate) fn build_client_trusting(ca_file: Option<&Path>) -> Result<HttpClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("cannot set up TLS: {e}"))?
    .with_root_certificates(roots(ca_file)?)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(ProxyConnector::from_env(http));
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}

/// The roots an https upstream is checked against: the bundled webpki roots, the
/// platform's store (a company CA installed on the host counts), and `ca_file`.
fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    // Read and parsed once per process; each client starts from a copy.
    static BASE: OnceLock<rustls::RootCertStore> = OnceLock::new();
    let mut roots = BASE
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(target: "upstream", error = %e, "a platform root certificate was not read");
            }
            // A platform certificate rustls cannot use is skipped, as browsers do.
            let _ = roots.add_parsable_certificates(found.certs);
            roots
        })
        .clone();
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("`ca_file` {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("`ca_file` {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "`ca_file` {} holds no PEM certificate",
                path.display()
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("`ca_file` {}: {e}", path.display()))?;
        }
    }
    Ok(roots)
}

/// Headers configured for an upstream, resolved, with credentials marked sensitive.
#[derive(Clone, Default)]
pub(crate) struct ConfiguredHeaders {
    pub map: HeaderMap,
    /// Resolved credential values, scrubbed from anything the gateway reports.
    pub secrets: Vec<String>,
}

impl ConfiguredHeaders {
    /// Replaces every credential value in `text` (from an upstream answer) by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        // Longest first, so a secret that contains another is replaced whole.
        let mut secrets: Vec<&String> = self.secrets.iter().collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in secrets {
            if s.len() >= 4 {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// Header names the transport sets itself: configuring them is refused.
pub(crate) const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
];

/// Parses a configured header.
pub(crate) fn header(
    name: &str,
    value: &str,
    sensitive: bool,
) -> Result<(HeaderName, HeaderValue), String> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name `{name}`"))?;
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(format!(
            "header `{name}` is set by the gateway and cannot be configured"
        ));
    }
    let mut value =
        HeaderValue::from_str(value).map_err(|_| format!("invalid value for header `{name}`"))?;
    value.set_sensitive(sensitive);
    Ok((name, value))
}

/// Parses an upstream URL: `http` or `https` with a host.
pub(crate) fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|_| format!("invalid url `{url}`"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("url `{url}` must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("url `{url}` has no host"));
    }
    Ok(uri)
}

/// [`parse_url`] for a URL whose references were resolved: when they brought in a secret (a
/// Slack webhook's path, a token in the query), the error does not repeat the URL.
pub(crate) fn parse_resolved_url(url: &str, sensitive: bool) -> Result<Uri, String> {
    parse_url(url).map_err(|e| {
        if sensitive {
            "the url, once its references are resolved, is not an http(s) URL with a host".into()
        } else {
            e
        }
    })
}

/// A URL as `Debug` output shows it: no user info, and a query only as `?<redacted>` (either
/// may carry a credential).
pub(crate) fn redacted_url(uri: &Uri) -> String {
    let mut out = String::new();
    if let Some(scheme) = uri.scheme_str() {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(host) = uri.host() {
        out.push_str(host);
    }
    if let Some(port) = uri.port_u16() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(uri.path());
    if uri.query().is_some() {
        out.push_str("?<redacted>");
    }
    out
}

/// Sends `req`, waiting at most `timeout` for the response head.
pub(crate) async fn send(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Response<Incoming>, HttpError> {
    match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => Err(HttpError::Timeout),
        Ok(Err(e)) => Err(HttpError::Unavailable(describe_client_error(&e))),
        Ok(Ok(resp)) => Ok(resp),
    }
}

fn describe_client_error(e: &hyper_util::client::legacy::Error) -> String {
    // The source chain says what went wrong (refused, DNS, TLS) without any header values.
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    truncate(&msg, 300)
}

/// Reads a whole body of at most [`MAX_MESSAGE_BYTES`] within `timeout`.
pub(crate) async fn read_body(body: Incoming, timeout: Duration) -> Result<Bytes, HttpError> {
    match tokio::time::timeout(timeout, Limited::new(body, MAX_MESSAGE_BYTES).collect()).await {
        Err(_) => Err(HttpError::Timeout),
        Ok(Err(_)) => Err(HttpError::Protocol(
            "response body unreadable or too large".into(),
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// The media type of a response, lowercased, without parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", text.get(..end).unwrap_or_default())
}

/// The error for an unexpected HTTP status: the status, and the JSON-RPC error message of the
/// body if it has one (scrubbed of credentials, truncated); never the raw body.
pub(crate) fn status_error(
    status: http::StatusCode,
    body: &[u8],
    headers: &ConfiguredHeaders,
) -> HttpError {
    let detail = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.get("message")?.as_str().map(str::to_owned))
        .map(|m| format!(": {}", truncate(&headers.scrub(&m), 200)))
        .unwrap_or_default();
    HttpError::Protocol(format!(
        "unexpected HTTP status {}{detail}",
        status.as_u16()
    ))
}
