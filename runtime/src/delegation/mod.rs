//! Delegated agent sessions: a person authenticated by a gateway token or OIDC lets an
//! agent act for them on a few tools, for a while, for a stated reason. The agent gets its
//! own token (`mcpgd_...`), bound to both the person and the agent's name; its calls are
//! decided with the agent as `principal`, the person as `principal.on_behalf_of` and the
//! delegation readable as `delegation.*` (see `decision::delegation`).
//!
//! A delegation is never wider than its person: at creation every listed tool must be one
//! the compiled policy lists to the person (and within their token's servers), and at every
//! call the person's own verdict must allow it too. Revoking the person's token, or all
//! their tokens, ends their delegations on the next request.
//!
//! Public API for other services (a responder pausing an agent): [`Delegations::get`] and
//! [`Delegations::revoke`]. May use: `identity`, `decision`, `state`, `audit::record` (hex).

pub mod grant;
pub mod record;
pub mod store;

pub use grant::{GrantError, Request as GrantRequest};
pub use record::{Delegation, NewDelegation, Status};
pub use store::{DelegationStore, SqliteStore, StoreError};

use crate::identity::tokens::{Status as TokenStatus, TokenStore};
use crate::identity::{AuthError, Authenticated, Credential, DelegationVerifier};
use std::path::Path;
use std::sync::Arc;

/// The delegation service: creation (checked against the policy), lookups, revocation and
/// the check of an agent's token on each request.
#[derive(Debug)]
pub struct Delegations {
    store: Arc<dyn DelegationStore>,
    /// The person's tokens, to end a delegation when its token is revoked or expires.
    tokens: Option<TokenStore>,
}

impl Delegations {
    /// The service over the state dir's database.
    ///
    /// # Errors
    /// When the database cannot be opened.
    pub fn open(state_dir: &Path) -> Result<Delegations, String> {
        let store = SqliteStore::open(state_dir).map_err(|e| e.to_string())?;
        let tokens = TokenStore::open(state_dir).map_err(|e| format!("token store: {e}"))?;
        Ok(Delegations {
            store: Arc::new(store),
            tokens: Some(tokens),
        })
    }

    /// The service over another store (tests, other backends).
    pub fn with_store(store: Arc<dyn DelegationStore>, tokens: Option<TokenStore>) -> Self {
        Delegations { store, tokens }
    }

    /// Creates a delegation for `person` after checking it against `program` (see
    /// [`grant::check`]); returns the agent's token (shown once) and the record.
    ///
    /// # Errors
    /// [`GrantError`] saying what is wider than the person's rights or malformed, or a
    /// store failure.
    pub fn create(
        &self,
        program: &mcpgate_compiler::Program,
        person: &Authenticated,
        req: GrantRequest,
        now: u64,
    ) -> Result<(String, Delegation), GrantError> {
        let mut new = grant::check(program, person, req)?;
        // Never outlive the token it was made with.
        if let Some(parent) = &new.parent_token
            && let Some(expires) = self.token_expiry(parent)?
        {
            new.ttl_secs = new.ttl_secs.min(expires.saturating_sub(now));
        }
        self.store
            .insert(new, now)
            .map_err(|e| GrantError::Store(e.to_string()))
    }

    fn token_expiry(&self, id: &str) -> Result<Option<u64>, GrantError> {
        let Some(tokens) = &self.tokens else {
            return Ok(None);
        };
        let all = tokens
            .list()
            .map_err(|e| GrantError::Store(e.to_string()))?;
        Ok(all.into_iter().find(|t| t.id == id).and_then(|t| t.expires))
    }

    /// The delegation with this id.
    ///
    /// # Errors
    /// When the store fails.
    pub fn get(&self, id: &str) -> Result<Option<Delegation>, StoreError> {
        self.store.get(id)
    }

    /// Every delegation, newest first.
    ///
    /// # Errors
    /// When the store fails.
    pub fn list(&self) -> Result<Vec<Delegation>, StoreError> {
        self.store.list()
    }

    /// Revokes one delegation by id: its agent's next request gets 401. `false` when no
    /// unrevoked delegation has that id.
    ///
    /// # Errors
    /// When the store fails.
    pub fn revoke(&self, id: &str, by: &str, now: u64) -> Result<bool, StoreError> {
        self.store.revoke(id, by, now)
    }

    /// Revokes every delegation `person` made; returns how many.
    ///
    /// # Errors
    /// When the store fails.
    pub fn revoke_person(&self, person: &str, by: &str, now: u64) -> Result<usize, StoreError> {
        self.store.revoke_person(person, by, now)
    }
}

impl DelegationVerifier for Delegations {
    fn verify(&self, token: &str, now: u64) -> Result<Authenticated, AuthError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "delegation store unavailable; request refused");
            AuthError::Unavailable
        };
        let d = self
            .store
            .by_token(token)
            .map_err(|e| unavailable(&e))?
            .ok_or_else(|| AuthError::Invalid("unknown token".into()))?;
        match d.status(now) {
            Status::Active => {}
            Status::Expired => return Err(AuthError::Invalid("the delegation expired".into())),
            Status::Revoked => {
                return Err(AuthError::Invalid("the delegation was revoked".into()));
            }
        }
        if let Some(parent) = &d.parent_token {
            // Fails closed: without the token table no delegation made with a token passes.
            let status = match &self.tokens {
                Some(t) => t.status_of(parent, now).map_err(|e| unavailable(&e))?,
                None => None,
            };
            if status != Some(TokenStatus::Active) {
                return Err(AuthError::Invalid(
                    "the delegating person's token is no longer valid".into(),
                ));
            }
        }
        let delegated = d.delegated();
        let servers = delegated
            .tools
            .iter()
            .filter_map(|t| t.split_once('.').map(|(s, _)| s.to_owned()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(Authenticated {
            principal: delegated.principal(),
            credential: Credential::Delegation { id: d.id },
            servers: Some(servers),
        })
    }
}
