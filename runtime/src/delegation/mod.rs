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
pub mod outage;
pub mod postgres;
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

    /// The service of a fleet: delegations and the people's tokens in PostgreSQL (opened
    /// with [`postgres::MIGRATIONS`] and the token table's).
    pub fn shared(pg: &Arc<crate::state::postgres::Pg>, tokens: TokenStore) -> Self {
        Delegations::with_store(Arc::new(postgres::PgStore::new(pg.clone())), Some(tokens))
    }

    /// As [`Delegations::shared`], lookups served from memory for `grace` while the
    /// database does not answer (`state.outage_grace`).
    pub fn shared_with_grace(
        pg: &Arc<crate::state::postgres::Pg>,
        tokens: TokenStore,
        grace: std::time::Duration,
    ) -> Self {
        let store = Arc::new(postgres::PgStore::new(pg.clone()));
        Delegations::with_store(
            Arc::new(outage::CachedDelegations::new(store, grace)),
            Some(tokens),
        )
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
        let token = tokens
            .get(id)
            .map_err(|e| GrantError::Store(e.to_string()))?;
        Ok(token.and_then(|t| t.expires))
    }

    /// The delegation with this id.
    ///
    /// # Errors
    /// When the store fails.
    pub fn get(&self, id: &str) -> Result<Option<Delegation>, StoreError> {
        self.store.get(id)
    }

    /// Where a delegation stands at `now`, its person's token included: `active`,
    /// `expired`, `revoked`, or `ended` (the token it was made with is revoked or expired).
    ///
    /// # Errors
    /// When the token store fails.
    pub fn standing(&self, d: &Delegation, now: u64) -> Result<&'static str, StoreError> {
        let own = d.status(now);
        if own != Status::Active {
            return Ok(own.as_str());
        }
        let (Some(parent), Some(tokens)) = (&d.parent_token, &self.tokens) else {
            return Ok(own.as_str());
        };
        match tokens.status_of(parent, now) {
            Ok(Some(TokenStatus::Active)) => Ok("active"),
            Ok(_) => Ok("ended"),
            Err(e) => Err(StoreError::Tokens(e.to_string())),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::tokens::NewToken;
    use mcpgate_compiler::repo::{SourceFile, check_files};
    use mcpgate_compiler::{Principal, PrincipalKind};

    fn program() -> mcpgate_compiler::Program {
        let files = vec![SourceFile {
            path: "policies/a.mcpg".into(),
            text: "allow gh.get_me, gh.list when \"eng\" in principal.groups;\n".into(),
        }];
        check_files(files).program(None)
    }

    fn ask(tools: &[&str], ttl_secs: u64) -> GrantRequest {
        GrantRequest {
            agent: "claude-code".into(),
            tools: tools.iter().map(|t| (*t).to_owned()).collect(),
            ttl_secs,
            reason: "TICKET-1".into(),
        }
    }

    fn setup() -> (Delegations, String, Authenticated) {
        let tokens = TokenStore::in_memory().unwrap();
        let (_, rec) = tokens
            .issue(
                NewToken {
                    issuer: "ops".into(),
                    subject: "ada@example.com".into(),
                    kind: PrincipalKind::Human,
                    agent: None,
                    groups: vec!["eng".into()],
                    servers: None,
                    reason: "r".into(),
                    ttl_secs: Some(1000),
                },
                100,
            )
            .unwrap();
        let ada = Authenticated::from_token(&rec);
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        (Delegations::with_store(store, Some(tokens)), rec.id, ada)
    }

    #[test]
    fn a_delegation_is_checked_at_creation_and_at_every_request() {
        let (d, token_id, ada) = setup();
        let p = program();
        let wider = d.create(&p, &ada, ask(&["gh.get_me", "gh.delete"], 60), 100);
        assert!(
            matches!(&wider, Err(GrantError::Wider { tools, .. }) if tools.len() == 1 && tools[0].starts_with("gh.delete")),
            "{wider:?}"
        );
        assert!(matches!(
            d.create(&p, &ada, ask(&["gh.*"], 60), 100),
            Err(GrantError::Invalid(_))
        ));
        assert!(matches!(
            d.create(
                &p,
                &Authenticated::anonymous(),
                ask(&["gh.get_me"], 60),
                100
            ),
            Err(GrantError::NotAllowed(_))
        ));
        // Capped at the token's expiry (1100).
        let (secret, rec) = d.create(&p, &ada, ask(&["gh.get_me"], 5000), 100).unwrap();
        assert_eq!(rec.expires, 1100);
        let agent = d.verify(&secret, 200).unwrap();
        assert_eq!(agent.principal.id, "claude-code");
        assert_eq!(agent.principal.on_behalf_of(), Some("ada@example.com"));
        assert_eq!(agent.servers.as_deref(), Some(&["gh".to_owned()][..]));
        assert!(matches!(
            d.create(&p, &agent, ask(&["gh.get_me"], 60), 200),
            Err(GrantError::NotAllowed(_))
        ));
        assert!(d.verify(&secret, 1100).is_err(), "expired");
        assert!(d.verify("mcpgd_nope", 200).is_err());
        // The person's token revoked: the agent is refused.
        let tokens = d.tokens.as_ref().unwrap();
        assert!(tokens.revoke(&token_id, "ops", 300).unwrap());
        let e = d.verify(&secret, 301).unwrap_err();
        assert!(e.to_string().contains("no longer valid"), "{e}");
    }

    #[test]
    fn a_revoked_delegation_is_refused_and_listed_as_revoked() {
        let (d, _, ada) = setup();
        let (secret, rec) = d
            .create(&program(), &ada, ask(&["gh.list"], 60), 100)
            .unwrap();
        assert!(d.revoke(&rec.id, "ops", 110).unwrap());
        assert!(!d.revoke(&rec.id, "ops", 111).unwrap());
        assert!(
            d.verify(&secret, 112)
                .unwrap_err()
                .to_string()
                .contains("revoked")
        );
        assert_eq!(
            d.get(&rec.id).unwrap().unwrap().status(112),
            Status::Revoked
        );
        let bob = Principal {
            id: "bob".into(),
            ..Principal::anonymous()
        };
        assert_eq!(d.revoke_person(&bob.id, "ops", 113).unwrap(), 0);
    }
}
