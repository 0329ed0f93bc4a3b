//! A bounded memory of a shared table's last answers (`state.outage_grace`), served only
//! while the table does not answer, and only answers younger than the grace. The table is
//! still read on every request while it answers, so a revocation is seen at once then;
//! during an outage nothing can be revoked anywhere, and the grace bounds how old an
//! answer a replica may still act on (a revocation made just before the outage that this
//! replica had not read yet is honoured when the grace runs out).
//!
//! Bottom layer: uses nothing of the crate.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most answers kept; past it, the stale ones go, then any one.
pub const CAPACITY: usize = 10_000;

/// Last answers by key, for `grace`.
#[derive(Debug)]
pub struct OutageCache<K, V> {
    what: &'static str,
    grace: Duration,
    map: Mutex<HashMap<K, (V, Instant)>>,
    /// Whether answers are being served from memory (logged once per outage).
    serving: AtomicBool,
}

impl<K: Eq + Hash + Clone, V: Clone> OutageCache<K, V> {
    /// A cache for the table `what` (named in the logs), keeping answers for `grace`.
    pub fn new(what: &'static str, grace: Duration) -> Self {
        OutageCache {
            what,
            grace,
            map: Mutex::new(HashMap::new()),
            serving: AtomicBool::new(false),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `read`'s answer, remembered; when `read` fails, the answer remembered for `key` if
    /// it is younger than the grace, else the failure.
    ///
    /// # Errors
    /// `read`'s error, when nothing fresh enough is remembered.
    pub fn read<E: std::fmt::Display>(
        &self,
        key: &K,
        read: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        match read() {
            Ok(v) => {
                let mut map = self.map();
                if map.len() >= CAPACITY && !map.contains_key(key) {
                    map.retain(|_, (_, at)| at.elapsed() <= self.grace);
                    if map.len() >= CAPACITY
                        && let Some(any) = map.keys().next().cloned()
                    {
                        map.remove(&any);
                    }
                }
                map.insert(key.clone(), (v.clone(), Instant::now()));
                drop(map);
                if self.serving.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        table = self.what,
                        "answers again; no longer served from memory"
                    );
                }
                Ok(v)
            }
            Err(e) => {
                let fresh = self
                    .map()
                    .get(key)
                    .filter(|(_, at)| at.elapsed() <= self.grace)
                    .map(|(v, _)| v.clone());
                match fresh {
                    Some(v) => {
                        if !self.serving.swap(true, Ordering::Relaxed) {
                            tracing::warn!(table = self.what, error = %e, grace = ?self.grace, "does not answer: serving its answers read within the grace from memory");
                        }
                        Ok(v)
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// Forgets everything (this process changed the table: its old answers may be wrong).
    pub fn clear(&self) {
        self.map().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_served_only_after_a_failure_and_within_the_grace() {
        let c = OutageCache::new("t", Duration::from_millis(200));
        assert_eq!(c.read(&1, || Ok::<_, String>("one")), Ok("one"));
        // Read again while the table answers: its new answer, never the memory.
        assert_eq!(c.read(&1, || Ok::<_, String>("uno")), Ok("uno"));
        assert_eq!(c.read(&1, || Err("down".to_owned())), Ok("uno"));
        // Nothing remembered for another key: the failure.
        assert_eq!(
            c.read(&2, || Err::<&str, _>("down".to_owned())),
            Err("down".into())
        );
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(
            c.read(&1, || Err::<&str, _>("down".to_owned())),
            Err("down".into())
        );
        c.read(&1, || Ok::<_, String>("one")).unwrap();
        c.clear();
        assert_eq!(
            c.read(&1, || Err::<&str, _>("down".to_owned())),
            Err("down".into())
        );
    }

    #[test]
    fn the_memory_is_bounded() {
        let c = OutageCache::new("t", Duration::from_secs(60));
        for k in 0..CAPACITY + 10 {
            c.read(&k, || Ok::<_, String>(k)).unwrap();
        }
        assert!(c.map().len() <= CAPACITY);
        // The newest is always kept.
        let last = CAPACITY + 9;
        assert_eq!(c.read(&last, || Err("down".to_owned())), Ok(last));
    }
}
