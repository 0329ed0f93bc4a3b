//! Counting events in sliding windows. The store is a trait: [`MemoryCounters`] keeps them
//! in this process, `responders::redis::RedisCounters` where every replica sees them.
//!
//! Memory is bounded: a key keeps at most `count` timestamps (older ones cannot matter), and
//! the number of keys is capped, stale keys (nothing within their window) going first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys kept; beyond it stale keys are dropped, then the least recently hit.
pub const MAX_KEYS: usize = 100_000;

/// Where trigger counts live.
pub trait CounterStore: Send + Sync + std::fmt::Debug {
    /// Counts one event for `key` at `now`; `true` when it makes `count` events within
    /// `within` (the key then starts over, so the next firing needs `count` new events).
    fn hit(&self, key: &str, count: u32, within: Duration, now: Instant) -> bool;

    /// `true` when `key` has not fired within `quiet` (and marks it fired at `now`).
    fn once_per(&self, key: &str, quiet: Duration, now: Instant) -> bool;
}

#[derive(Debug)]
struct Entry {
    times: VecDeque<Instant>,
    within: Duration,
}

impl Entry {
    fn last(&self) -> Option<Instant> {
        self.times.back().copied()
    }

    fn stale(&self, now: Instant) -> bool {
        self.last()
            .is_none_or(|t| now.saturating_duration_since(t) > self.within)
    }
}

/// Counts in this process.
#[derive(Debug)]
pub struct MemoryCounters {
    entries: Mutex<HashMap<String, Entry>>,
    max_keys: usize,
}

impl Default for MemoryCounters {
    fn default() -> Self {
        MemoryCounters::with_max_keys(MAX_KEYS)
    }
}

impl MemoryCounters {
    pub fn with_max_keys(max_keys: usize) -> MemoryCounters {
        MemoryCounters {
            entries: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Counts are advisory: a panic elsewhere must not stop counting.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn entry<'m>(
        &self,
        map: &'m mut HashMap<String, Entry>,
        key: &str,
        within: Duration,
        now: Instant,
    ) -> &'m mut Entry {
        if !map.contains_key(key) && map.len() >= self.max_keys {
            evict(map, now, self.max_keys);
        }
        let e = map.entry(key.to_owned()).or_insert_with(|| Entry {
            times: VecDeque::new(),
            within,
        });
        e.within = within;
        e
    }
}

/// Drops stale keys; when that is not enough, the least recently hit, down to 90%.
fn evict(map: &mut HashMap<String, Entry>, now: Instant, max: usize) {
    map.retain(|_, e| !e.stale(now));
    let target = max - max / 10;
    if map.len() >= max {
        let mut by_age: Vec<(Option<Instant>, String)> =
            map.iter().map(|(k, e)| (e.last(), k.clone())).collect();
        by_age.sort();
        for (_, k) in by_age.into_iter().take(map.len().saturating_sub(target)) {
            map.remove(&k);
        }
    }
}

impl CounterStore for MemoryCounters {
    fn hit(&self, key: &str, count: u32, within: Duration, now: Instant) -> bool {
        let mut map = self.lock();
        let e = self.entry(&mut map, key, within, now);
        while e
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > within)
        {
            e.times.pop_front();
        }
        e.times.push_back(now);
        let count = usize::try_from(count.max(1)).unwrap_or(usize::MAX);
        while e.times.len() > count {
            e.times.pop_front();
        }
        if e.times.len() >= count {
            e.times.clear();
            // Kept (empty) until evicted, so a burst does not re-create it each time.
            return true;
        }
        false
    }

    fn once_per(&self, key: &str, quiet: Duration, now: Instant) -> bool {
        let mut map = self.lock();
        let e = self.entry(&mut map, key, quiet, now);
        let fire = e
            .last()
            .is_none_or(|t| now.saturating_duration_since(t) >= quiet);
        if fire {
            e.times.clear();
            e.times.push_back(now);
        }
        fire
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn fires_on_the_nth_event_within_the_window_and_starts_over() {
        let c = MemoryCounters::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!c.hit("k", 3, MIN, at(0)));
        assert!(!c.hit("k", 3, MIN, at(10)));
        assert!(c.hit("k", 3, MIN, at(20)));
        // Counted anew after firing.
        assert!(!c.hit("k", 3, MIN, at(21)));
        assert!(!c.hit("k", 3, MIN, at(22)));
        // Events older than the window do not count: 21 and 22 have slid out by 90.
        assert!(!c.hit("k", 3, MIN, at(90)));
        assert!(!c.hit("k", 3, MIN, at(91)));
        assert!(c.hit("k", 3, MIN, at(92)));
        // Keys are apart.
        assert!(!c.hit("other", 2, MIN, at(92)));
    }

    #[test]
    fn memory_is_bounded_per_key_and_in_keys() {
        let c = MemoryCounters::with_max_keys(100);
        let t0 = Instant::now();
        for i in 0..10_000u64 {
            c.hit("one", 5, MIN, t0 + Duration::from_millis(i * 100));
        }
        assert!(c.lock()["one"].times.len() <= 5);
        for i in 0..1000u64 {
            c.hit(&format!("p{i}"), 5, MIN, t0 + Duration::from_millis(i));
        }
        assert!(c.len() <= 100, "{}", c.len());
        // The most recent keys are kept.
        assert!(c.lock().contains_key("p999"));
    }

    #[test]
    fn once_per_stays_quiet_for_its_period() {
        let c = MemoryCounters::default();
        let t0 = Instant::now();
        assert!(c.once_per("held", MIN, t0));
        assert!(!c.once_per("held", MIN, t0 + Duration::from_secs(30)));
        assert!(c.once_per("held", MIN, t0 + Duration::from_secs(61)));
        assert!(c.once_per("other", MIN, t0));
    }
}
