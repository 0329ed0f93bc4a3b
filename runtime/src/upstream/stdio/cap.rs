//! The cap on stdio processes running at once, gateway-wide.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The cap on stdio processes running at once, shared by every upstream that holds a clone.
#[derive(Clone, Debug)]
pub struct StdioProcesses {
    counter: Arc<Counter>,
}

#[derive(Debug)]
struct Counter {
    running: AtomicUsize,
    max: AtomicUsize,
}

/// One slot of the cap, released when the process has exited.
pub(super) struct Permit(Arc<Counter>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl StdioProcesses {
    /// A cap of `max` processes.
    pub fn new(max: usize) -> StdioProcesses {
        StdioProcesses {
            counter: Arc::new(Counter {
                running: AtomicUsize::new(0),
                max: AtomicUsize::new(max),
            }),
        }
    }

    /// The gateway-wide cap used by [`crate::upstream::Upstream::from_config`], set to `max`.
    pub fn global(max: usize) -> StdioProcesses {
        static GLOBAL: OnceLock<StdioProcesses> = OnceLock::new();
        let global = GLOBAL.get_or_init(|| StdioProcesses::new(max));
        global.set_max(max);
        global.clone()
    }

    /// Changes the cap; running processes above a lowered cap keep running.
    pub fn set_max(&self, max: usize) {
        self.counter.max.store(max, Ordering::Release);
    }

    /// Processes running now (including those shutting down).
    pub fn running(&self) -> usize {
        self.counter.running.load(Ordering::Acquire)
    }

    pub(super) fn try_acquire(&self) -> Option<Permit> {
        let max = self.counter.max.load(Ordering::Acquire);
        self.counter
            .running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(Arc::clone(&self.counter)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_counts_permits() {
        let cap = StdioProcesses::new(1);
        let first = cap.try_acquire();
        assert!(first.is_some());
        assert!(cap.try_acquire().is_none());
        drop(first);
        assert_eq!(cap.running(), 0);
        assert!(cap.try_acquire().is_some());
    }
}
