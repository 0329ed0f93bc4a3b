//! The owner's side: a retry or an answer another replica forwarded here, checked and then
//! handled as if the client had sent it here.

use crate::gateway::Gateway;
use crate::gateway::http::{Body, plain};
use crate::gateway::modern;
use crate::identity::metadata;
use crate::jsonrpc;
use crate::parked::envelope::{Envelope, SIGNATURE_HEADER};
use crate::session::Endpoint;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;

/// Serves [`crate::parked::envelope::PATH`]: a retry another replica forwarded here, checked (signature, time,
/// client credential, principal) and then handled as if the client had sent it here.
pub async fn serve(gw: &Arc<Gateway>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let Some(handoff) = gw.handoff.as_ref() else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let (parts, body) = req.into_parts();
    // The envelope carries the client's body and headers: room for both.
    let max = gw.config.max_body_bytes.saturating_mul(2) + 64 * 1024;
    let bytes = match http_body_util::Limited::new(body, max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "forwarded request too large"),
    };
    let signature = parts
        .headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let envelope = match Envelope::open(&handoff.key, &bytes, signature, crate::clock::now_secs()) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "a forwarded retry was refused");
            let mut r = plain(
                StatusCode::FORBIDDEN,
                &format!("forwarded request refused: {e}"),
            );
            r.headers_mut()
                .insert(SIGNATURE_HEADER, HeaderValue::from_static("refused"));
            return r;
        }
    };
    let Some(endpoint) = gw.endpoint(&envelope.endpoint) else {
        return plain(StatusCode::NOT_FOUND, "no such endpoint");
    };
    let mut headers = HeaderMap::new();
    for (n, v) in &envelope.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(n, v);
        }
    }
    let auth = match gw.identity.authenticate(&headers).await {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(from = %envelope.from, error = %e, "forwarded retry refused: not authenticated");
            return metadata::unauthorized(&gw.identity, &headers, &endpoint.path(), &e);
        }
    };
    if let Endpoint::Server(server) = &endpoint
        && !auth.allows_server(server)
    {
        return metadata::out_of_scope(&gw.identity, &headers, &endpoint.path(), server);
    }
    if auth.principal.id != envelope.principal {
        tracing::warn!(from = %envelope.from, "forwarded retry refused: the credential is not the forwarded principal's");
        return plain(StatusCode::FORBIDDEN, "the principal does not match");
    }
    let version = headers
        .get(crate::gateway::http::VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(crate::gateway::version::DEFAULT);
    match jsonrpc::parse(envelope.body.as_bytes(), version) {
        Ok(jsonrpc::Body::Single(message)) if modern::is_modern(&message, &headers) => {
            modern::post(gw, &endpoint, auth, &headers, message).await
        }
        // A legacy client's answer, with its session header.
        Ok(jsonrpc::Body::Single(message)) if jsonrpc::is_response(&message) => {
            crate::gateway::http::single(gw, &endpoint, auth, &headers, message).await
        }
        Ok(_) => plain(StatusCode::BAD_REQUEST, "not a forwarded retry or answer"),
        Err(e) => crate::gateway::http::json_response(StatusCode::BAD_REQUEST, &e),
    }
}
