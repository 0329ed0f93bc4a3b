//! The console's HTTP plumbing: HTML responses with the security headers every page carries,
//! redirects, forms and query strings.

use crate::gateway::http::Body;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::collections::HashMap;

/// Scripts and styles only from the console's own files: no inline script, no `eval`, no
/// framing, forms post only back to the gateway.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// Largest form accepted (a reason, a token).
const MAX_FORM: usize = 16 * 1024;

fn secure(r: &mut Response<Body>) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` with
    // form posts, which the gateway's Origin check refuses.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// A response with `bytes` of `content_type`, with the security headers.
pub fn bytes(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure(&mut r);
    r
}

/// An HTML page.
pub fn html(status: StatusCode, page: maud::Markup) -> Response<Body> {
    bytes(status, "text/html; charset=utf-8", page.into_string())
}

/// `303 See Other` to `to` (a path of the console).
pub fn redirect(to: &str) -> Response<Body> {
    let mut r = bytes(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The query string's fields (later duplicates win).
pub fn query(uri: &http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect::<HashMap<_, _>>()
        })
        .unwrap_or_default()
}

/// An `application/x-www-form-urlencoded` body's fields.
///
/// # Errors
/// When the body is too large or cut short.
pub async fn form(body: Incoming) -> Result<HashMap<String, String>, &'static str> {
    let bytes = Limited::new(body, MAX_FORM)
        .collect()
        .await
        .map_err(|_| "the form is too large or was cut short")?
        .to_bytes();
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// A field of a form or query, trimmed, `None` when empty.
pub fn field<'a>(fields: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    fields.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}
