//! Console sign-in with the `identity.oidc` provider: the authorization code flow with PKCE
//! (S256), as a public client. The provider's endpoints come from its discovery document;
//! the ID token it returns is checked by the gateway's own identity check (issuer, audience,
//! signature, expiry), then its `nonce` against the one this sign-in sent. The pending
//! sign-ins (state, verifier, nonce) live in memory for ten minutes.

use crate::http_client;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{Method, Request};
use http_body_util::Full;
use mcpgate_compiler::config::ConsoleOidcConfig;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a sign-in may take at the provider.
pub const PENDING_FOR: Duration = Duration::from_secs(600);
/// Most sign-ins pending at once; the oldest goes first beyond it.
const MAX_PENDING: usize = 1000;
/// How long one request to the provider may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The provider's endpoints, from its discovery document.
#[derive(Clone, Debug)]
struct Endpoints {
    authorization: String,
    token: String,
}

/// One sign-in waiting for the provider's answer.
#[derive(Debug)]
struct Pending {
    verifier: String,
    nonce: String,
    redirect: String,
    started: Instant,
}

/// The console's OIDC client.
#[derive(Debug)]
pub struct Flow {
    cfg: ConsoleOidcConfig,
    issuer: String,
    client: http_client::HttpClient,
    endpoints: Mutex<Option<Endpoints>>,
    pending: Mutex<HashMap<String, Pending>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a request panicked while holding it; the value is whole.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The S256 code challenge of a verifier (RFC 7636).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The default redirect URL for a request's `Host`: `http` on loopback, else `https`.
pub fn default_redirect(host: &str) -> String {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let scheme = if loopback { "http" } else { "https" };
    format!("{scheme}://{host}/console/login/callback")
}

impl Flow {
    /// A client of `issuer` (from `identity.oidc`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(cfg: ConsoleOidcConfig, issuer: &str) -> Result<Flow, String> {
        Ok(Flow {
            cfg,
            issuer: issuer.trim_end_matches('/').to_owned(),
            client: http_client::build_client()?,
            endpoints: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// The provider's issuer, for the sign-in button.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn get_json(&self, req: Request<Full<Bytes>>) -> Result<Value, String> {
        let resp = http_client::send(&self.client, req, TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = http_client::read_body(resp.into_body(), TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("the provider answered {status} without JSON"))?;
        if !status.is_success() {
            let error = value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("error");
            return Err(format!("the provider refused: {status} {error}"));
        }
        Ok(value)
    }

    async fn endpoints(&self) -> Result<Endpoints, String> {
        if let Some(e) = lock(&self.endpoints).clone() {
            return Ok(e);
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let req = Request::builder()
            .method(Method::GET)
            .uri(http_client::parse_url(&url)?)
            .header(ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let doc = self
            .get_json(req)
            .await
            .map_err(|e| format!("discovery at {url}: {e}"))?;
        let s = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
        if s("issuer").as_deref().map(|i| i.trim_end_matches('/')) != Some(self.issuer.as_str()) {
            return Err(format!(
                "the discovery document at {url} names another issuer"
            ));
        }
        let (Some(authorization), Some(token)) = (s("authorization_endpoint"), s("token_endpoint"))
        else {
            return Err(format!(
                "the discovery document at {url} names no authorization or token endpoint"
            ));
        };
        let e = Endpoints {
            authorization,
            token,
        };
        *lock(&self.endpoints) = Some(e.clone());
        Ok(e)
    }

    /// Starts a sign-in: the provider URL to send the browser to, and the `state` to keep in
    /// the browser's cookie. `host` is the request's `Host`.
    ///
    /// # Errors
    /// When the provider's discovery document cannot be read.
    pub async fn begin(&self, host: &str) -> Result<(String, String), String> {
        let endpoints = self.endpoints().await?;
        let state = super::auth::random_id();
        let nonce = super::auth::random_id();
        let verifier = super::auth::random_id();
        let redirect = self
            .cfg
            .redirect_url
            .clone()
            .unwrap_or_else(|| default_redirect(host));
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("redirect_uri", &redirect)
            .append_pair("scope", &self.cfg.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge(&verifier))
            .append_pair("code_challenge_method", "S256")
            .finish();
        let sep = if endpoints.authorization.contains('?') {
            '&'
        } else {
            '?'
        };
        let location = format!("{}{sep}{query}", endpoints.authorization);
        let mut pending = lock(&self.pending);
        pending.retain(|_, p| p.started.elapsed() < PENDING_FOR);
        if pending.len() >= MAX_PENDING
            && let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| k.clone())
        {
            pending.remove(&oldest);
        }
        pending.insert(
            state.clone(),
            Pending {
                verifier,
                nonce,
                redirect,
                started: Instant::now(),
            },
        );
        Ok((location, state))
    }

    /// Ends a sign-in: exchanges `code` for the ID token, with the verifier of `state`
    /// (used once). Returns the ID token and the nonce it must carry.
    ///
    /// # Errors
    /// An unknown or expired state, or the provider's refusal.
    pub async fn finish(&self, state: &str, code: &str) -> Result<(String, String), String> {
        let pending = lock(&self.pending)
            .remove(state)
            .filter(|p| p.started.elapsed() < PENDING_FOR)
            .ok_or("this sign-in is unknown or took too long; start again")?;
        let endpoints = self.endpoints().await?;
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &pending.redirect)
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("code_verifier", &pending.verifier)
            .finish();
        let req = Request::builder()
            .method(Method::POST)
            .uri(http_client::parse_url(&endpoints.token)?)
            .header(ACCEPT, "application/json")
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let answer = self.get_json(req).await?;
        let id_token = answer
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or("the provider returned no ID token")?;
        Ok((id_token.to_owned(), pending.nonce))
    }
}

/// The `nonce` claim of an ID token the identity check has already verified.
pub fn nonce_of(id_token: &str) -> Option<String> {
    jsonwebtoken::dangerous::insecure_decode_claims::<Value>(id_token)
        .ok()?
        .get("nonce")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_default_redirect_is_https_off_loopback() {
        assert_eq!(
            default_redirect("127.0.0.1:8080"),
            "http://127.0.0.1:8080/console/login/callback"
        );
        assert_eq!(
            default_redirect("localhost"),
            "http://localhost/console/login/callback"
        );
        assert_eq!(
            default_redirect("[::1]:80"),
            "http://[::1]:80/console/login/callback"
        );
        assert_eq!(
            default_redirect("mcp.example.com"),
            "https://mcp.example.com/console/login/callback"
        );
    }
}
