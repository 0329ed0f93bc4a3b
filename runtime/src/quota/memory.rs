//! The in-process quota store: token buckets in a sharded mutex map, with idle buckets
//! evicted so memory stays bounded.

use super::{Ask, Cause, QuotaStore, Refusal};
use mcpgate_compiler::ir::Limit;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
/// Most buckets per shard; a new key beyond this (after evicting idle ones) is refused.
const MAX_PER_SHARD: usize = 1 << 16;
/// Idle buckets are swept when a shard grows past this many entries since the last sweep.
const SWEEP_EVERY: usize = 1024;

/// One bucket: calls left (fractional while refilling) as of `at`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// The window of the limit it counts for: idle that long, it is full again.
    window: Duration,
}

#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<String, Bucket>,
    since_sweep: usize,
}

/// Token buckets per (rule id, key), in [`SHARDS`] mutex-guarded maps.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

fn capacity(l: Limit) -> f64 {
    l.count as f64
}

/// Calls per second the bucket refills.
fn rate(l: Limit) -> f64 {
    l.count as f64 / l.window.seconds() as f64
}

impl Bucket {
    fn refill(&mut self, l: Limit, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        // A changed limit (same rule id) keeps the stored calls, capped at the new size.
        self.tokens = (self.tokens + elapsed * rate(l)).min(capacity(l));
        self.at = now;
        self.window = Duration::from_secs(l.window.seconds());
    }

    /// Whether the bucket has been idle for `idle`.
    fn idle(&self, now: Instant, idle: Duration) -> bool {
        now.saturating_duration_since(self.at) >= idle
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn key(ask: &Ask<'_>) -> String {
        // The rule id and the key, separated by a byte neither contains in practice; a
        // collision could only merge two counts of one rule, never skip one.
        let mut k = String::with_capacity(ask.rule.len() + ask.key.len() + 1);
        k.push_str(ask.rule);
        k.push('\u{0}');
        k.push_str(&ask.key);
        k
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        // `i < SHARDS == shards.len()`.
        &self.shards[i]
    }

    /// [`QuotaStore::acquire`] at a given instant (tests drive the clock).
    ///
    /// # Errors
    /// [`Refusal`] when some bucket has no call left.
    pub fn acquire_at(&self, asks: &[Ask<'_>], now: Instant) -> Result<(), Refusal> {
        let mut taken: Vec<(String, Limit)> = Vec::with_capacity(asks.len());
        for (index, ask) in asks.iter().enumerate() {
            let key = Self::key(ask);
            match self.take(&key, ask.limit, now) {
                Ok(()) => taken.push((key, ask.limit)),
                Err(retry_after) => {
                    for (k, l) in &taken {
                        self.give_back(k, *l);
                    }
                    return Err(Refusal {
                        index,
                        retry_after,
                        cause: Cause::Empty,
                    });
                }
            }
        }
        Ok(())
    }

    fn take(&self, key: &str, l: Limit, now: Instant) -> Result<(), Duration> {
        // A poisoned shard means a panic while holding it: refuse rather than guess.
        let Ok(mut shard) = self.shard(key).lock() else {
            return Err(Duration::from_secs(1));
        };
        if !shard.buckets.contains_key(key) {
            shard.since_sweep += 1;
            if shard.since_sweep >= SWEEP_EVERY || shard.buckets.len() >= MAX_PER_SHARD {
                shard.since_sweep = 0;
                // A bucket idle for its whole window is full: the same as no bucket.
                shard.buckets.retain(|_, b| !b.idle(now, b.window));
                if shard.buckets.len() >= MAX_PER_SHARD {
                    tracing::warn!(target: "mcpgate::quota", "quota store full: call refused");
                    return Err(Duration::from_secs(1));
                }
            }
            shard.buckets.insert(
                key.to_owned(),
                Bucket {
                    tokens: capacity(l),
                    at: now,
                    window: Duration::from_secs(l.window.seconds()),
                },
            );
        }
        let Some(b) = shard.buckets.get_mut(key) else {
            return Err(Duration::from_secs(1));
        };
        b.refill(l, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - b.tokens;
            Err(Duration::from_secs_f64(missing / rate(l)))
        }
    }

    fn give_back(&self, key: &str, l: Limit) {
        if let Ok(mut shard) = self.shard(key).lock()
            && let Some(b) = shard.buckets.get_mut(key)
        {
            b.tokens = (b.tokens + 1.0).min(capacity(l));
        }
    }

    /// Number of buckets held; for tests and metrics.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.buckets.len()))
            .sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets buckets idle for at least `idle` (they would be full again), as of `now`.
    pub fn evict_idle(&self, now: Instant, idle: Duration) {
        for s in &self.shards {
            if let Ok(mut s) = s.lock() {
                s.buckets.retain(|_, b| !b.idle(now, idle));
                s.since_sweep = 0;
            }
        }
    }
}

impl QuotaStore for MemoryStore {
    fn acquire(&self, asks: &[Ask<'_>]) -> Result<(), Refusal> {
        self.acquire_at(asks, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgate_compiler::ir::{LimitKey, Window};
    use std::borrow::Cow;
    use std::sync::Arc;

    fn ask<'a>(rule: &'a str, key: &'a str, count: u64, window: Window) -> Ask<'a> {
        Ask {
            rule,
            key: Cow::Borrowed(key),
            limit: Limit {
                count,
                window,
                key: LimitKey::Principal,
            },
        }
    }

    #[test]
    fn n_calls_then_refused_then_refilled() {
        let s = MemoryStore::new();
        let t0 = Instant::now();
        let a = [ask("r", "alice", 3, Window::Minute)];
        for _ in 0..3 {
            assert_eq!(s.acquire_at(&a, t0), Ok(()));
        }
        let refusal = s.acquire_at(&a, t0).unwrap_err();
        assert_eq!(refusal.index, 0);
        // One call refills every 20 s.
        assert_eq!(refusal.retry_after.as_secs(), 20);
        assert!(s.acquire_at(&a, t0 + Duration::from_secs(19)).is_err());
        assert_eq!(s.acquire_at(&a, t0 + Duration::from_secs(40)), Ok(()));
        // Another key has its own bucket.
        assert_eq!(
            s.acquire_at(&[ask("r", "bob", 3, Window::Minute)], t0),
            Ok(())
        );
        // A full minute later the bucket is full again, and holds no more than 3.
        let later = t0 + Duration::from_secs(600);
        let ok = (0..10).filter(|_| s.acquire_at(&a, later).is_ok()).count();
        assert_eq!(ok, 3);
    }

    #[test]
    fn all_or_nothing_across_limits() {
        let s = MemoryStore::new();
        let t0 = Instant::now();
        let both = [
            ask("wide", "alice", 10, Window::Hour),
            ask("narrow", "alice", 1, Window::Hour),
        ];
        assert_eq!(s.acquire_at(&both, t0), Ok(()));
        assert_eq!(s.acquire_at(&both, t0).unwrap_err().index, 1);
        // The refused call took nothing from `wide`: 9 calls remain there.
        let wide = [ask("wide", "alice", 10, Window::Hour)];
        let ok = (0..20).filter(|_| s.acquire_at(&wide, t0).is_ok()).count();
        assert_eq!(ok, 9);
    }

    #[test]
    fn a_changed_count_keeps_the_calls_made() {
        let s = MemoryStore::new();
        let t0 = Instant::now();
        for _ in 0..5 {
            s.acquire_at(&[ask("r", "k", 10, Window::Day)], t0).unwrap();
        }
        // Lowered to 3: the bucket (5 left) is capped at 3.
        let ok = (0..10)
            .filter(|_| s.acquire_at(&[ask("r", "k", 3, Window::Day)], t0).is_ok())
            .count();
        assert_eq!(ok, 3);
    }

    #[test]
    fn concurrent_callers_never_overshoot() {
        let s = Arc::new(MemoryStore::new());
        let t0 = Instant::now();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..200)
                        .filter(|_| s.acquire_at(&[ask("r", "k", 50, Window::Day)], t0).is_ok())
                        .count()
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 50);
    }

    #[test]
    fn idle_buckets_are_evicted() {
        let s = MemoryStore::new();
        let t0 = Instant::now();
        for i in 0..100 {
            let key = format!("user{i}");
            s.acquire_at(&[ask("r", &key, 5, Window::Second)], t0)
                .unwrap();
        }
        assert_eq!(s.len(), 100);
        s.evict_idle(t0 + Duration::from_secs(2), Duration::from_secs(1));
        assert!(s.is_empty());
    }
}
