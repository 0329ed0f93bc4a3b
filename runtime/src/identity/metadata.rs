//! The gateway as an OAuth protected resource (RFC 9728, MCP authorization): 401 answers
//! that point at the resource metadata, 403 for a server outside the token's scope, and the
//! metadata documents at `/.well-known/oauth-protected-resource` and its path-inserted forms
//! (`/.well-known/oauth-protected-resource/mcp/github`).

use super::{AuthError, Authenticator};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::convert::Infallible;

/// The well-known path of the metadata.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The resource's base URL: the configured `resource`, else `http://` and the request's
/// `Host` (already checked against the allowed hosts).
pub fn base_url(auth: &Authenticator, headers: &HeaderMap) -> String {
    if let Some(r) = auth.resource() {
        return r.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The metadata URL of the resource at `path` (`/mcp/github`): the well-known segment goes
/// between the origin and the path (RFC 9728 section 3.1).
pub fn metadata_url(base: &str, path: &str) -> String {
    let (origin, base_path) = match base.split_once("://") {
        Some((scheme, rest)) => match rest.find('/') {
            Some(i) => (format!("{scheme}://{}", &rest[..i]), &rest[i..]),
            None => (base.to_owned(), ""),
        },
        None => (base.to_owned(), ""),
    };
    format!("{origin}{WELL_KNOWN}{base_path}{path}")
}

fn quoted(s: &str) -> String {
    s.replace(['"', '\\'], "")
}

fn json_body(status: StatusCode, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn with_challenge(mut r: Response<Body>, challenge: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The 401 for a request to `path` without a valid credential.
pub fn unauthorized(
    auth: &Authenticator,
    headers: &HeaderMap,
    path: &str,
    err: &AuthError,
) -> Response<Body> {
    let base = base_url(auth, headers);
    let mut challenge = format!(
        "Bearer resource_metadata=\"{}\"",
        quoted(&metadata_url(&base, path))
    );
    if err.token_given() {
        challenge.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{}\"",
            quoted(&err.to_string())
        ));
    }
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32001, "message": format!("unauthorized: {err}")}
    });
    with_challenge(json_body(StatusCode::UNAUTHORIZED, &body), &challenge)
}

/// The 403 for a server outside the credential's scope.
pub fn out_of_scope(
    auth: &Authenticator,
    headers: &HeaderMap,
    path: &str,
    server: &str,
) -> Response<Body> {
    let base = base_url(auth, headers);
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", resource_metadata=\"{}\", error_description=\"the token does not grant server {}\"",
        quoted(&metadata_url(&base, path)),
        quoted(server)
    );
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32001, "message": format!("forbidden: the token does not grant server `{server}`")}
    });
    with_challenge(json_body(StatusCode::FORBIDDEN, &body), &challenge)
}

/// Answers a request under [`WELL_KNOWN`]: the metadata of the gateway (no suffix), of `/mcp`,
/// or of `/mcp/{server}` for a known server; `None` for any other path (a 404).
pub fn serve(
    auth: &Authenticator,
    headers: &HeaderMap,
    path: &str,
    known: impl Fn(&str) -> bool,
) -> Option<Response<Body>> {
    let suffix = path.strip_prefix(WELL_KNOWN)?;
    let suffix = suffix.strip_suffix('/').unwrap_or(suffix);
    let ok =
        suffix.is_empty() || suffix == "/mcp" || suffix.strip_prefix("/mcp/").is_some_and(&known);
    if !ok || !auth.enabled() {
        return None;
    }
    let base = base_url(auth, headers);
    let mut doc = json!({
        "resource": format!("{base}{suffix}"),
        "bearer_methods_supported": ["header"],
        "resource_name": "mcpgate",
    });
    let servers = auth.authorization_servers();
    if !servers.is_empty() {
        doc["authorization_servers"] = json!(servers);
    }
    Some(json_body(StatusCode::OK, &doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_insert_the_well_known_segment_after_the_origin() {
        assert_eq!(
            metadata_url("https://mcp.example.com", "/mcp/github"),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp/github"
        );
        assert_eq!(
            metadata_url("https://example.com/gw", "/mcp"),
            "https://example.com/.well-known/oauth-protected-resource/gw/mcp"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:8080", ""),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource"
        );
    }
}
