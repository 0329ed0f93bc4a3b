//! The shared token table read through an [`OutageCache`] (`state.outage_grace`): while
//! PostgreSQL does not answer, a token this replica checked within the grace is still
//! served as it was then; an unknown one is refused as before.

use crate::identity::tokens::{TokenError, TokenRecord, TokenTable};
use crate::state::outage_cache::OutageCache;
use std::sync::Arc;
use std::time::Duration;

/// A token table whose lookups survive a short outage.
#[derive(Debug)]
pub struct CachedTokens {
    inner: Box<dyn TokenTable>,
    by_hash: OutageCache<[u8; 32], Option<Arc<TokenRecord>>>,
    by_id: OutageCache<String, Option<TokenRecord>>,
}

impl CachedTokens {
    /// `inner`, its lookups remembered for `grace`.
    pub fn new(inner: Box<dyn TokenTable>, grace: Duration) -> Self {
        CachedTokens {
            inner,
            by_hash: OutageCache::new("the token table", grace),
            by_id: OutageCache::new("the token table", grace),
        }
    }

    fn forget(&self) {
        self.by_hash.clear();
        self.by_id.clear();
    }
}

impl TokenTable for CachedTokens {
    fn insert(&self, record: &TokenRecord, hash: &[u8; 32]) -> Result<(), TokenError> {
        self.inner.insert(record, hash)
    }

    fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        self.inner.list()
    }

    fn revoke(&self, id: &str, by: &str, now: u64) -> Result<bool, TokenError> {
        self.forget();
        self.inner.revoke(id, by, now)
    }

    fn revoke_subject(&self, subject: &str, by: &str, now: u64) -> Result<usize, TokenError> {
        self.forget();
        self.inner.revoke_subject(subject, by, now)
    }

    fn find(&self, hash: &[u8; 32]) -> Result<Option<Arc<TokenRecord>>, TokenError> {
        self.by_hash.read(hash, || self.inner.find(hash))
    }

    fn get(&self, id: &str) -> Result<Option<TokenRecord>, TokenError> {
        self.by_id.read(&id.to_owned(), || self.inner.get(id))
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn probe(&self) -> Option<String> {
        self.inner.probe()
    }
}
