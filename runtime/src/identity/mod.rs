//! Who is calling: gateway-issued grant tokens (hashed in `state.db`, revocable) and OIDC
//! JWTs, presented as `Authorization: Bearer ...` on every request. [`Authenticator`] turns
//! the headers of one request into an [`Authenticated`] caller or an [`AuthError`] (a 401).
//!
//! Without an `identity` section every caller is `anonymous`, as before.
//!
//! Owns tokens and JWT checks. May use: the bottom layer (`state`, `http_client`, `clock`).

pub mod jwt;
pub mod metadata;
pub mod outage;
pub mod postgres;
pub mod time;
pub mod tokens;

use crate::clock::now_secs;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use mcpgate_compiler::Principal;
use mcpgate_compiler::config::IdentityConfig;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use tokens::{TokenError, TokenStore};

/// How a caller proved who they are. Holds ids, never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// No credential (a gateway without `identity`, or `anonymous: true`).
    Anonymous,
    /// A gateway token, by its public id (`tok_...`).
    Token { id: String },
    /// An OIDC JWT of `issuer` for `subject` (`sub`).
    Oidc { issuer: String, subject: String },
    /// An agent's token under a person's delegation, by the delegation's id (`dlg_...`).
    Delegation { id: String },
}

impl Credential {
    /// What a session is bound to: another credential presenting the session id is refused.
    /// Empty for anonymous callers (as sessions sealed before identity existed).
    pub fn binding(&self) -> String {
        match self {
            Credential::Anonymous => String::new(),
            Credential::Token { id } => format!("token:{id}"),
            Credential::Oidc { issuer, subject } => format!("oidc:{issuer}#{subject}"),
            Credential::Delegation { id } => format!("delegation:{id}"),
        }
    }

    /// The token id, if the caller used a gateway token.
    pub fn token_id(&self) -> Option<&str> {
        match self {
            Credential::Token { id } => Some(id),
            _ => None,
        }
    }
}

/// A caller whose credential checked out.
#[derive(Clone, Debug, PartialEq)]
pub struct Authenticated {
    /// The principal as the credential describes it (groups from `principals.yaml` are
    /// merged at decision time, from the live program).
    pub principal: Principal,
    pub credential: Credential,
    /// The servers the credential may reach; `None`: any server the policy allows.
    pub servers: Option<Vec<String>>,
}

impl Authenticated {
    /// The caller of a gateway without identity.
    pub fn anonymous() -> Authenticated {
        Authenticated {
            principal: Principal::anonymous(),
            credential: Credential::Anonymous,
            servers: None,
        }
    }

    /// Whether the credential's scope includes `server` (policy decides the rest).
    pub fn allows_server(&self, server: &str) -> bool {
        self.servers
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == server))
    }
}

/// Why a request is not authenticated: a 401. The text is safe to show and log (it never
/// holds the token).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header, and anonymous callers are not let in.
    #[error("a bearer token is required")]
    Missing,
    /// A token was given and refused.
    #[error("{0}")]
    Invalid(String),
    /// The token store could not be read: refused, never let through.
    #[error("the identity store is unavailable")]
    Unavailable,
}

impl AuthError {
    /// Whether a token was presented (the 401 then says `error="invalid_token"`).
    pub fn token_given(&self) -> bool {
        !matches!(self, AuthError::Missing)
    }
}

/// Every agent token issued under a delegation starts with this.
pub const DELEGATION_TOKEN_PREFIX: &str = "mcpgd_";

/// Checks an agent's delegation token: implemented by the delegation service, which
/// identity does not import.
pub trait DelegationVerifier: Send + Sync + std::fmt::Debug {
    /// The caller a presented delegation token stands for at `now`.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] for an unknown, expired or revoked delegation, or one whose
    /// person lost their access; [`AuthError::Unavailable`] when the store fails.
    fn verify(&self, token: &str, now: u64) -> Result<Authenticated, AuthError>;
}

/// Checks the credentials of each request.
#[derive(Debug)]
pub struct Authenticator {
    /// `None`: no `identity` section; everyone is anonymous.
    config: Option<IdentityConfig>,
    tokens: Option<TokenStore>,
    oidc: Option<Arc<jwt::Oidc>>,
    delegations: Option<Arc<dyn DelegationVerifier>>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator::anonymous_only()
    }
}

/// The bearer token of a request, if any (`None` also for another scheme).
fn bearer(headers: &HeaderMap) -> Option<Result<&str, AuthError>> {
    let value = headers.get(AUTHORIZATION)?;
    let Ok(text) = value.to_str() else {
        return Some(Err(AuthError::Invalid(
            "malformed Authorization header".into(),
        )));
    };
    let (scheme, rest) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Some(Err(AuthError::Invalid(
            "the Authorization scheme must be Bearer".into(),
        )));
    }
    let token = rest.trim();
    if token.is_empty() {
        return Some(Err(AuthError::Invalid("empty bearer token".into())));
    }
    Some(Ok(token))
}

impl Authenticator {
    /// No identity configured: every caller is anonymous.
    pub fn anonymous_only() -> Authenticator {
        Authenticator {
            config: None,
            tokens: None,
            oidc: None,
            delegations: None,
        }
    }

    /// Builds the authenticator of an `identity` section. `state_dir` holds the token table;
    /// `policy_dir` resolves a relative `jwks_file`.
    ///
    /// # Errors
    /// When the token store cannot be opened or the OIDC keys cannot be read.
    pub fn from_config(
        cfg: &IdentityConfig,
        state_dir: &Path,
        policy_dir: &Path,
    ) -> Result<Authenticator, String> {
        let tokens = if cfg.tokens {
            Some(TokenStore::open(state_dir).map_err(|e| format!("token store: {e}"))?)
        } else {
            None
        };
        let oidc = match &cfg.oidc {
            Some(o) => Some(Arc::new(
                jwt::Oidc::new(o, policy_dir).map_err(|e| format!("identity.oidc: {e}"))?,
            )),
            None => None,
        };
        Ok(Authenticator {
            config: Some(cfg.clone()),
            tokens,
            oidc,
            delegations: None,
        })
    }

    /// Keeps gateway tokens in `tokens` (PostgreSQL for a fleet) instead of `state.db`;
    /// nothing changes when the `identity` section does not accept tokens.
    #[must_use]
    pub fn with_token_store(mut self, tokens: TokenStore) -> Authenticator {
        if self.tokens.is_some() {
            self.tokens = Some(tokens);
        }
        self
    }

    /// The token store, if gateway tokens are accepted.
    pub fn tokens(&self) -> Option<&TokenStore> {
        self.tokens.as_ref()
    }

    /// An authenticator over a given token store (tests, embedding).
    pub fn with_tokens(cfg: IdentityConfig, tokens: TokenStore) -> Authenticator {
        Authenticator {
            config: Some(cfg),
            tokens: Some(tokens),
            oidc: None,
            delegations: None,
        }
    }

    /// Accepts agents' delegation tokens, checked by `verifier`.
    pub fn set_delegations(&mut self, verifier: Arc<dyn DelegationVerifier>) {
        self.delegations = Some(verifier);
    }

    /// Whether an `identity` section is in force.
    pub fn enabled(&self) -> bool {
        self.config.is_some()
    }

    /// The configured resource URL, if any.
    pub fn resource(&self) -> Option<&str> {
        self.config.as_ref().and_then(|c| c.resource.as_deref())
    }

    /// The authorization servers named in the resource metadata.
    pub fn authorization_servers(&self) -> Vec<String> {
        self.oidc.iter().map(|o| o.issuer().to_owned()).collect()
    }

    /// Starts background work (refreshing a JWKS URL) until `shutdown`.
    pub fn start(&self, shutdown: tokio_util::sync::CancellationToken) {
        if let Some(o) = &self.oidc {
            o.start(shutdown);
        }
    }

    /// Authenticates one request from its headers.
    ///
    /// # Errors
    /// [`AuthError::Missing`] without a token (unless anonymous callers are allowed),
    /// [`AuthError::Invalid`] for a refused token, [`AuthError::Unavailable`] when the token
    /// store fails.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Authenticated, AuthError> {
        let mut auth = self.authenticate_any(headers).await?;
        // Only a delegation may say its principal acts for someone.
        if !matches!(auth.credential, Credential::Delegation { .. }) {
            auth.principal.strip_reserved();
        }
        Ok(auth)
    }

    async fn authenticate_any(&self, headers: &HeaderMap) -> Result<Authenticated, AuthError> {
        let Some(cfg) = &self.config else {
            return Ok(Authenticated::anonymous());
        };
        let token = match bearer(headers) {
            None if cfg.anonymous => return Ok(Authenticated::anonymous()),
            None => return Err(AuthError::Missing),
            Some(t) => t?,
        };
        if token.starts_with(DELEGATION_TOKEN_PREFIX) {
            return match &self.delegations {
                Some(d) => d.verify(token, now_secs()),
                None => Err(AuthError::Invalid(
                    "delegation tokens are not accepted here".into(),
                )),
            };
        }
        if tokens::looks_like_token(token) {
            let Some(store) = &self.tokens else {
                return Err(AuthError::Invalid(
                    "gateway tokens are not accepted here".into(),
                ));
            };
            return match store.verify(token, now_secs()) {
                Ok(record) => Ok(Authenticated::from_token(&record)),
                Err(e @ (TokenError::Unknown | TokenError::Expired | TokenError::Revoked)) => {
                    Err(AuthError::Invalid(e.to_string()))
                }
                Err(e) => {
                    tracing::error!(error = %e, "token store unavailable; request refused");
                    Err(AuthError::Unavailable)
                }
            };
        }
        if let Some(oidc) = &self.oidc
            && jwt::looks_like_jwt(token)
        {
            return match oidc.verify(token).await {
                Ok((principal, subject)) => Ok(Authenticated {
                    principal,
                    credential: Credential::Oidc {
                        issuer: oidc.issuer().to_owned(),
                        subject,
                    },
                    servers: None,
                }),
                Err(e) => Err(AuthError::Invalid(e.to_string())),
            };
        }
        Err(AuthError::Invalid("unknown token".into()))
    }
}

impl Authenticated {
    /// The caller a gateway token's record describes.
    pub fn from_token(r: &tokens::TokenRecord) -> Authenticated {
        from_record(r)
    }
}

fn from_record(r: &tokens::TokenRecord) -> Authenticated {
    let mut attrs = serde_json::Map::new();
    if let Some(agent) = &r.agent {
        attrs.insert("agent".into(), Value::String(agent.clone()));
    }
    Authenticated {
        principal: Principal {
            id: r.subject.clone(),
            kind: r.kind,
            groups: r.groups.clone(),
            attrs,
        },
        credential: Credential::Token { id: r.id.clone() },
        servers: r.servers.clone(),
    }
}
