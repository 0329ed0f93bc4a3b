//! OIDC bearer tokens: JWTs checked against the provider's JWKS (a file, or an https URL
//! fetched at start, again on an unknown `kid` at most once a minute, and periodically).
//! The algorithm must be one the config pins and must fit the key's type, so neither `none`
//! nor an HMAC token "signed" with a public key can pass.

use crate::http_client::{HttpClient, build_client, parse_url};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcpgate_compiler::Principal;
use mcpgate_compiler::config::{ClaimMapping, JwtAlgorithm, OidcConfig};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a JWT was refused. The text goes to the client (`error_description`) and the log:
/// it never contains the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm `{0}` is not accepted")]
    Algorithm(String),
    #[error("no key of the issuer matches the token")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(String),
    #[error("the token was refused: {0}")]
    Other(String),
}

/// One usable public key from the JWKS.
struct Key {
    kid: Option<String>,
    /// The algorithm the JWK pins, if it does.
    alg: Option<String>,
    key: DecodingKey,
}

#[derive(Default)]
struct Keys {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({})", self.keys.len())
    }
}

#[derive(Debug, Clone)]
enum Source {
    File,
    Url(String),
}

/// The OIDC verifier: config, the current key set, and its refresh state.
pub struct Oidc {
    issuer: String,
    audience: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    claims: ClaimMapping,
    source: Source,
    refresh: Duration,
    /// Fewest seconds between two fetches an unknown `kid` causes.
    min_refetch: Duration,
    keys: ArcSwap<Keys>,
    /// When the keys were last fetched (or a fetch was tried).
    fetched: Mutex<Option<Instant>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    client: Option<HttpClient>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// Reads the public keys of a JWKS document; HMAC (`oct`) keys and encryption keys are
/// left out: the gateway verifies signatures with public keys only.
fn parse_jwks(text: &[u8]) -> Result<Keys, String> {
    let set: JwkSet =
        serde_json::from_slice(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            alg: jwk.common.key_algorithm.map(|a| a.to_string()),
            key,
        });
    }
    if keys.is_empty() {
        return Err("the JWKS holds no usable public signing key".into());
    }
    Ok(Keys { keys })
}

impl Oidc {
    /// Builds the verifier; reads a `jwks_file` now (a `jwks_url` is fetched by
    /// [`Oidc::start`]). `base` resolves a relative `jwks_file` (the policy folder).
    ///
    /// # Errors
    /// When the JWKS file cannot be read or holds no usable key, or the URL is not usable.
    pub fn new(cfg: &OidcConfig, base: &Path) -> Result<Oidc, String> {
        let (source, keys, client) = match (&cfg.jwks_file, &cfg.jwks_url) {
            (Some(f), None) => {
                let path = base.join(f);
                let text = std::fs::read(&path)
                    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
                let keys = parse_jwks(&text).map_err(|e| format!("`{}`: {e}", path.display()))?;
                (Source::File, keys, None)
            }
            (None, Some(u)) => {
                jwks_url(u)?;
                let client = build_client()?;
                (Source::Url(u.clone()), Keys::default(), Some(client))
            }
            _ => {
                return Err(
                    "`identity.oidc` needs exactly one of `jwks_file` and `jwks_url`".into(),
                );
            }
        };
        let algorithms: Vec<Algorithm> = cfg.algorithms.iter().copied().map(algorithm).collect();
        if algorithms.is_empty() {
            return Err("`identity.oidc.algorithms` is empty".into());
        }
        Ok(Oidc {
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.to_vec(),
            algorithms,
            leeway: cfg.leeway_secs,
            claims: cfg.claims.clone(),
            source,
            refresh: Duration::from_secs(cfg.jwks_refresh_secs.max(60)),
            min_refetch: Duration::from_secs(cfg.jwks_min_refetch_secs),
            keys: ArcSwap::from_pointee(keys),
            fetched: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            client,
        })
    }

    /// The issuer, named as the authorization server in the resource metadata.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Fetches a `jwks_url` once and keeps refreshing it in the background until
    /// `shutdown`. A failed first fetch is logged; tokens are refused until one succeeds.
    pub fn start(self: &std::sync::Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        if !matches!(self.source, Source::Url(_)) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.refetch(true).await;
                tokio::select! {
                    () = tokio::time::sleep(me.refresh) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }

    /// Fetches the JWKS again (a URL), unless one was fetched within `jwks_min_refetch_secs` and
    /// `force` is false. Returns whether the keys changed.
    async fn refetch(&self, force: bool) -> bool {
        let Source::Url(url) = &self.source else {
            return false;
        };
        let _one = self.fetching.lock().await;
        {
            let mut last = self
                .fetched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !force && last.is_some_and(|t| t.elapsed() < self.min_refetch) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match tokio::time::timeout(FETCH_TIMEOUT, self.fetch(url)).await {
            Ok(Ok(keys)) => {
                tracing::info!(keys = keys.keys.len(), "OIDC keys fetched");
                self.keys.store(std::sync::Arc::new(keys));
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot fetch the OIDC keys");
                false
            }
            Err(_) => {
                tracing::warn!("fetching the OIDC keys timed out");
                false
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<Keys, String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let uri = parse_url(url)?;
        let req = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("the JWKS URL answered {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        parse_jwks(&body)
    }

    /// Checks a JWT and builds its principal. Returns (principal, issuer, subject).
    ///
    /// # Errors
    /// Why the token is refused.
    pub async fn verify(&self, token: &str) -> Result<(Principal, String), JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(JwtError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.as_deref();
        let mut result = self.verify_with_keys(token, header.alg, kid);
        if matches!(result, Err(JwtError::UnknownKey)) {
            // Checked again even when this call fetched nothing: a fetch running
            // concurrently (the one at start, or another request's) may have brought the key.
            self.refetch(false).await;
            result = self.verify_with_keys(token, header.alg, kid);
        }
        let claims = result?;
        self.principal(&claims)
    }

    fn verify_with_keys(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Map<String, Value>, JwtError> {
        let keys = self.keys.load();
        let alg_name = format!("{alg:?}");
        let candidates = keys.keys.iter().filter(|k| {
            kid.is_none_or(|kid| k.kid.as_deref() == Some(kid))
                && k.key.family() == alg.family()
                && k.alg.as_ref().is_none_or(|a| *a == alg_name)
        });
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let mut last = JwtError::UnknownKey;
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = match e.kind() {
                        K::InvalidSignature => JwtError::Signature,
                        K::ExpiredSignature => return Err(JwtError::Expired),
                        K::ImmatureSignature => return Err(JwtError::NotYetValid),
                        K::InvalidIssuer => return Err(JwtError::Issuer),
                        K::InvalidAudience => return Err(JwtError::Audience),
                        K::MissingRequiredClaim(c) => {
                            return Err(JwtError::MissingClaim(c.clone()));
                        }
                        K::InvalidAlgorithm => {
                            return Err(JwtError::Algorithm(alg_name.clone()));
                        }
                        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => {
                            return Err(JwtError::Malformed);
                        }
                        other => JwtError::Other(format!("{other:?}")),
                    };
                }
            }
        }
        Err(last)
    }

    fn principal(&self, claims: &Map<String, Value>) -> Result<(Principal, String), JwtError> {
        let text = |name: &str| match claims.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        let id =
            text(&self.claims.id).ok_or_else(|| JwtError::MissingClaim(self.claims.id.clone()))?;
        let subject = text("sub").unwrap_or_else(|| id.clone());
        let groups = match claims.get(&self.claims.groups) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            // Some providers send one group as a string, or a space-separated list.
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let mut attrs = Map::new();
        for (name, claim) in &self.claims.attrs {
            if let Some(v) = claims.get(claim) {
                attrs.insert(name.clone(), v.clone());
            }
        }
        Ok((
            Principal {
                id,
                kind: self.claims.kind.into(),
                groups,
                attrs,
            },
            subject,
        ))
    }
}

/// Whether a bearer value has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(s: &str) -> bool {
    s.split('.').count() == 3
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

/// Checks a `jwks_url`: the keys decide who gets in, so they come over TLS, except from this
/// machine (a provider or test double on loopback).
fn jwks_url(u: &str) -> Result<(), String> {
    let uri = parse_url(u).map_err(|e| format!("`jwks_url`: {e}"))?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if uri.scheme_str() != Some("https") && !loopback {
        return Err(format!(
            "`jwks_url` `{u}` must use https:// (plain http only for a loopback address)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Tokens are signed here with a freshly generated Ed25519 key (ed25519-dalek) and
    //! assembled by hand, so the refusals below do not depend on the library under test
    //! producing them.
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use ed25519_dalek::{Signer, SigningKey};
    use hmac::Mac;
    use serde_json::json;

    #[test]
    fn a_jwks_url_needs_tls_unless_on_loopback() {
        assert!(jwks_url("https://idp.example.com/jwks").is_ok());
        assert!(jwks_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(jwks_url("http://[::1]:8080/jwks").is_ok());
        assert!(jwks_url("http://localhost/jwks").is_ok());
        let plain = jwks_url("http://idp.example.com/jwks").unwrap_err();
        assert!(plain.contains("https://"), "{plain}");
        assert!(jwks_url("ftp://idp.example.com/jwks").is_err());
    }

    const ISS: &str = "https://idp.example.com";
    const AUD: &str = "mcpgate";

    fn key() -> SigningKey {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        SigningKey::from_bytes(&seed)
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn claims() -> Value {
        json!({"iss": ISS, "aud": AUD, "sub": "u-1", "email": "alice@example.com",
               "exp": now() + 600, "nbf": now() - 10, "groups": ["finance"]})
    }

    fn encode(header: &Value, claims: &Value) -> String {
        format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        )
    }

    fn sign(key: &SigningKey, claims: &Value) -> String {
        let input = encode(&json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}), claims);
        let sig = key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(sig.to_bytes()))
    }

    /// A verifier trusting `key` through a JWKS file, as `identity.oidc.jwks_file` does.
    fn verifier(key: &SigningKey) -> (Oidc, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA",
            "use": "sig", "x": B64.encode(key.verifying_key().to_bytes())}]});
        std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
        let cfg: OidcConfig = serde_json::from_value(json!({
            "issuer": ISS, "audience": AUD, "jwks_file": "jwks.json",
            "algorithms": ["EdDSA"], "leeway_secs": 0,
            "claims": {"id": "email", "groups": "groups"}
        }))
        .unwrap();
        (Oidc::new(&cfg, dir.path()).unwrap(), dir)
    }

    #[tokio::test]
    async fn a_valid_token_gives_its_principal() {
        let k = key();
        let (oidc, _dir) = verifier(&k);
        let (p, _) = oidc.verify(&sign(&k, &claims())).await.unwrap();
        assert_eq!(p.id, "alice@example.com");
        assert_eq!(p.groups, vec!["finance".to_owned()]);
    }

    #[tokio::test]
    async fn expired_wrong_audience_and_wrong_issuer_are_refused() {
        let k = key();
        let (oidc, _dir) = verifier(&k);
        let mut expired = claims();
        expired["exp"] = json!(now() - 120);
        assert!(matches!(
            oidc.verify(&sign(&k, &expired)).await,
            Err(JwtError::Expired)
        ));
        let mut early = claims();
        early["nbf"] = json!(now() + 600);
        assert!(matches!(
            oidc.verify(&sign(&k, &early)).await,
            Err(JwtError::NotYetValid)
        ));
        let mut aud = claims();
        aud["aud"] = json!("someone-else");
        assert!(matches!(
            oidc.verify(&sign(&k, &aud)).await,
            Err(JwtError::Audience)
        ));
        let mut iss = claims();
        iss["iss"] = json!("https://evil.example.com");
        assert!(matches!(
            oidc.verify(&sign(&k, &iss)).await,
            Err(JwtError::Issuer)
        ));
    }

    #[tokio::test]
    async fn a_token_signed_by_another_key_is_refused() {
        let (oidc, _dir) = verifier(&key());
        let forged = sign(&key(), &claims());
        assert!(matches!(
            oidc.verify(&forged).await,
            Err(JwtError::Signature)
        ));
    }

    #[tokio::test]
    async fn alg_none_and_hmac_with_the_public_key_are_refused() {
        let k = key();
        let (oidc, _dir) = verifier(&k);
        let none = format!(
            "{}.",
            encode(&json!({"alg": "none", "typ": "JWT"}), &claims())
        );
        assert!(oidc.verify(&none).await.is_err(), "alg none accepted");
        // Algorithm confusion: an HS256 token keyed with the (public) verification key.
        let input = encode(
            &json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}),
            &claims(),
        );
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&k.verifying_key().to_bytes()).unwrap();
        mac.update(input.as_bytes());
        let hs = format!("{input}.{}", B64.encode(mac.finalize().into_bytes()));
        assert!(matches!(
            oidc.verify(&hs).await,
            Err(JwtError::Algorithm(_))
        ));
    }
}
