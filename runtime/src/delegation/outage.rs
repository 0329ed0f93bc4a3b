//! The shared delegation table read through an [`OutageCache`] (`state.outage_grace`):
//! while PostgreSQL does not answer, an agent token this replica checked within the grace
//! is still served as it was then (its expiry still applies); an unknown one is refused.

use crate::delegation::record::{Delegation, NewDelegation};
use crate::delegation::store::{DelegationStore, StoreError, hash};
use crate::state::outage_cache::OutageCache;
use std::sync::Arc;
use std::time::Duration;

/// A delegation store whose lookups survive a short outage.
#[derive(Debug)]
pub struct CachedDelegations {
    inner: Arc<dyn DelegationStore>,
    /// By the SHA-256 of the agent's token: no token is kept in memory.
    by_token: OutageCache<[u8; 32], Option<Delegation>>,
    by_id: OutageCache<String, Option<Delegation>>,
}

impl CachedDelegations {
    /// `inner`, its lookups remembered for `grace`.
    pub fn new(inner: Arc<dyn DelegationStore>, grace: Duration) -> Self {
        CachedDelegations {
            inner,
            by_token: OutageCache::new("the delegation table", grace),
            by_id: OutageCache::new("the delegation table", grace),
        }
    }

    fn forget(&self) {
        self.by_token.clear();
        self.by_id.clear();
    }
}

impl DelegationStore for CachedDelegations {
    fn insert(&self, new: NewDelegation, now: u64) -> Result<(String, Delegation), StoreError> {
        self.inner.insert(new, now)
    }

    fn get(&self, id: &str) -> Result<Option<Delegation>, StoreError> {
        self.by_id.read(&id.to_owned(), || self.inner.get(id))
    }

    fn by_token(&self, token: &str) -> Result<Option<Delegation>, StoreError> {
        self.by_token
            .read(&hash(token), || self.inner.by_token(token))
    }

    fn list(&self) -> Result<Vec<Delegation>, StoreError> {
        self.inner.list()
    }

    fn revoke(&self, id: &str, by: &str, now: u64) -> Result<bool, StoreError> {
        self.forget();
        self.inner.revoke(id, by, now)
    }

    fn revoke_person(&self, person: &str, by: &str, now: u64) -> Result<usize, StoreError> {
        self.forget();
        self.inner.revoke_person(person, by, now)
    }
}
