//! Where console sessions are kept: in this process's memory (one gateway), or in
//! PostgreSQL (`state.postgres`), where every replica of a fleet finds a session any of them
//! started. Either way a session holds the credential it was started with and the caller
//! re-checks it on every request, so a revoked or expired token ends the session at once.

pub mod postgres;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long a console session lasts, whatever happens in it.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Most console sessions one process keeps in memory; the oldest goes first beyond it.
const MAX_SESSIONS: usize = 1000;

/// What a live session holds.
#[derive(Debug)]
pub struct Stored {
    /// The credential it was started with (a gateway token, or an OIDC ID token).
    pub token: Zeroizing<String>,
    pub csrf: String,
}

/// The store could not be read or written: the request is refused, never let in unchecked.
#[derive(Debug, thiserror::Error)]
#[error("console session store: {0}")]
pub struct SessionStoreError(pub String);

impl From<crate::state::postgres::PgError> for SessionStoreError {
    fn from(e: crate::state::postgres::PgError) -> Self {
        SessionStoreError(e.to_string())
    }
}

/// Keeps console sessions by the id their cookie carries.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Records session `id` for `token` (already checked) with its CSRF token; drops
    /// expired sessions and keeps the store within its bounds.
    ///
    /// # Errors
    /// When the store cannot be written.
    fn start(&self, id: &str, token: &str, csrf: &str) -> Result<(), SessionStoreError>;

    /// The live session `id`, if any.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn find(&self, id: &str) -> Result<Option<Stored>, SessionStoreError>;

    /// Ends session `id` (for every replica sharing the store).
    ///
    /// # Errors
    /// When the store cannot be written.
    fn end(&self, id: &str) -> Result<(), SessionStoreError>;

    /// `"memory"` or `"postgres"`.
    fn kind(&self) -> &'static str;
}

/// One signed-in browser, in memory.
#[derive(Debug)]
struct Entry {
    token: Zeroizing<String>,
    csrf: String,
    started: Instant,
}

/// The console sessions of this process.
#[derive(Debug, Default)]
pub struct MemorySessions {
    map: Mutex<HashMap<String, Entry>>,
}

impl MemorySessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A poisoned map only means a request panicked while holding it; the map is whole.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SessionStore for MemorySessions {
    fn start(&self, id: &str, token: &str, csrf: &str) -> Result<(), SessionStoreError> {
        let mut map = self.lock();
        map.retain(|_, e| e.started.elapsed() < LIFETIME);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.started)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.to_owned(),
            Entry {
                token: Zeroizing::new(token.to_owned()),
                csrf: csrf.to_owned(),
                started: Instant::now(),
            },
        );
        Ok(())
    }

    fn find(&self, id: &str) -> Result<Option<Stored>, SessionStoreError> {
        let mut map = self.lock();
        let Some(entry) = map.get(id) else {
            return Ok(None);
        };
        if entry.started.elapsed() >= LIFETIME {
            map.remove(id);
            return Ok(None);
        }
        Ok(Some(Stored {
            token: entry.token.clone(),
            csrf: entry.csrf.clone(),
        }))
    }

    fn end(&self, id: &str) -> Result<(), SessionStoreError> {
        self.lock().remove(id);
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
