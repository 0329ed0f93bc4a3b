//! Keeping a core awake while the thread on it blocks in an fdatasync a lone call waits for.
//!
//! A thread that blocks in a sync leaves its core idle until the disk answers; on a
//! virtual machine whose idle cores halt at once (no halt polling in the guest), the
//! disk's completion interrupt then has to wake a halted virtual CPU before the thread can
//! go on, tens of microseconds on top of the sync, and the call resumes on cold caches.
//! While at most one call is in flight and busy polling is on ([`crate::busy_poll`]), a
//! keeper thread runs on that core meanwhile: it spins, yielding, until the sync returns
//! (at most the busy-polling budget, `gateway.busy_poll_us`: a sync slower than that is
//! long enough that a wake-up matters less, and the core is left to idle). It runs under
//! `SCHED_IDLE`, the lowest class: any other thread that wants the core has it at once
//! (the woken syncing thread first), and the scheduler still counts the core as idle when
//! it places a waking thread.
//!
//! The keeper is pinned to the core of the thread that syncs (re-pinned when that thread
//! moved); the gateway starts it with the audit log ([`prepare`]). Where `SCHED_IDLE`
//! cannot be had, there is no keeper: one of ordinary priority would take the core from
//! the work it is meant to wait for.
//!
//! Bottom layer: uses the busy-polling module's count of calls and budget only.

use std::time::Duration;

/// Runs `f` (a blocking sync) with the core kept awake, when at most one call is in flight
/// and busy polling is on; otherwise just runs it.
pub fn awake_while<T>(f: impl FnOnce() -> T) -> T {
    let budget = crate::busy_poll::budget();
    let _keeping = if budget > Duration::ZERO && crate::busy_poll::alone() {
        keeper::start(budget)
    } else {
        None
    };
    f()
}

/// Starts the keeper now, so that the first call does not wait for its thread.
pub fn prepare() {
    keeper::prepare();
}

#[cfg(target_os = "linux")]
mod keeper {
    use rustix::process::Pid;
    use rustix::thread::CpuSet;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, OnceLock};
    use std::thread::Thread;
    use std::time::{Duration, Instant};
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };

    /// The process's keeper, started on first use.
    static KEEPER: OnceLock<Option<Keeper>> = OnceLock::new();

    pub fn prepare() {
        KEEPER.get_or_init(Keeper::spawn);
    }

    /// Sets the process's keeper spinning on this thread's core until dropped, for at
    /// most `most`; `None` when there is none.
    pub fn start(most: Duration) -> Option<Keeping<'static>> {
        KEEPER.get_or_init(Keeper::spawn).as_ref()?.start(most)
    }

    /// A keeper thread.
    pub struct Keeper {
        thread: Thread,
        tid: Pid,
        shared: Arc<Shared>,
    }

    #[derive(Default)]
    struct Shared {
        /// Syncs it keeps the core awake for now.
        keeping: AtomicUsize,
        /// Counts the syncs asked for, so that a keeper done with one sees the next.
        asked: AtomicU64,
        /// The core it is pinned to, plus one (0: none yet).
        pinned: AtomicUsize,
        /// Longest it spins for one sync, in nanoseconds.
        most: AtomicU64,
        stop: AtomicBool,
    }

    /// Keeps the core awake until dropped.
    pub struct Keeping<'a>(&'a Shared);

    impl Drop for Keeping<'_> {
        fn drop(&mut self) {
            self.0.keeping.fetch_sub(1, Ordering::AcqRel);
        }
    }

    impl Keeper {
        /// Starts a keeper; `None` unless it runs under `SCHED_IDLE`.
        pub fn spawn() -> Option<Keeper> {
            let shared = Arc::new(Shared::default());
            let (tx, rx) = std::sync::mpsc::channel();
            let theirs = shared.clone();
            let handle = std::thread::Builder::new()
                .name("mcpgate-keeper".into())
                .spawn(move || {
                    let idle = set_thread_priority_and_policy(
                        thread_native_id(),
                        thread_priority::ThreadPriority::Min,
                        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
                    );
                    if idle.is_err() {
                        let _ = tx.send(None);
                        return;
                    }
                    let _ = tx.send(Some(rustix::thread::gettid()));
                    run(&theirs);
                })
                .ok()?;
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(Some(tid)) => Some(Keeper {
                    thread: handle.thread().clone(),
                    tid,
                    shared,
                }),
                _ => {
                    tracing::debug!(
                        "no keeper for cores waiting on a sync: SCHED_IDLE unavailable"
                    );
                    None
                }
            }
        }

        /// Pins the keeper to this thread's core (when it is not there yet) and sets it
        /// spinning until the result is dropped, for at most `most`; `None` when it cannot
        /// be pinned.
        pub fn start(&self, most: Duration) -> Option<Keeping<'_>> {
            let cpu = rustix::thread::sched_getcpu();
            if cpu >= CpuSet::MAX_CPU {
                // Beyond what a CPU set can name (`CpuSet::set` would panic).
                return None;
            }
            if self.shared.pinned.load(Ordering::Relaxed) != cpu + 1 {
                let mut set = CpuSet::new();
                set.set(cpu);
                rustix::thread::sched_setaffinity(Some(self.tid), &set).ok()?;
                self.shared.pinned.store(cpu + 1, Ordering::Relaxed);
            }
            let most = u64::try_from(most.as_nanos()).unwrap_or(u64::MAX);
            self.shared.most.store(most, Ordering::Release);
            self.shared.keeping.fetch_add(1, Ordering::AcqRel);
            self.shared.asked.fetch_add(1, Ordering::AcqRel);
            self.thread.unpark();
            Some(Keeping(&self.shared))
        }

        #[cfg(test)]
        pub fn tid(&self) -> Pid {
            self.tid
        }

        #[cfg(test)]
        pub fn keeping(&self) -> usize {
            self.shared.keeping.load(Ordering::SeqCst)
        }

        #[cfg(test)]
        pub fn pinned(&self) -> Option<usize> {
            self.shared.pinned.load(Ordering::SeqCst).checked_sub(1)
        }
    }

    impl Drop for Keeper {
        fn drop(&mut self) {
            self.shared.stop.store(true, Ordering::Release);
            self.thread.unpark();
        }
    }

    fn run(shared: &Shared) {
        let mut seen = 0;
        while !shared.stop.load(Ordering::Acquire) {
            let asked = shared.asked.load(Ordering::Acquire);
            if asked == seen || shared.keeping.load(Ordering::Acquire) == 0 {
                std::thread::park();
                continue;
            }
            seen = asked;
            let most = Duration::from_nanos(shared.most.load(Ordering::Acquire));
            let until = Instant::now() + most;
            while shared.keeping.load(Ordering::Acquire) > 0 && Instant::now() < until {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod keeper {
    pub struct Keeping(());

    pub fn prepare() {}

    pub fn start(_most: std::time::Duration) -> Option<Keeping> {
        None
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::keeper::Keeper;
    use super::*;

    /// A line's value in a /proc file of one of this process's threads.
    fn proc_value(tid: rustix::process::Pid, file: &str, key: &str) -> String {
        let text =
            std::fs::read_to_string(format!("/proc/self/task/{}/{file}", tid.as_raw_nonzero()))
                .unwrap();
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split(':').nth(1))
            .unwrap()
            .trim()
            .to_owned()
    }

    #[test]
    fn the_keeper_runs_idle_on_the_syncing_threads_core_while_asked_then_sleeps() {
        let keeper = Keeper::spawn().expect("SCHED_IDLE is open to unprivileged threads");
        let tid = keeper.tid();
        assert_eq!(proc_value(tid, "sched", "policy"), "5", "SCHED_IDLE");
        assert_eq!(keeper.pinned(), None);
        let keeping = keeper.start(Duration::from_millis(1)).expect("pinned");
        assert_eq!(keeper.keeping(), 1);
        let pinned = keeper.pinned().expect("pinned");
        assert_eq!(
            proc_value(tid, "status", "Cpus_allowed_list"),
            pinned.to_string(),
            "one core, the one this thread was on"
        );
        drop(keeping);
        assert_eq!(keeper.keeping(), 0);
        // Done spinning, it sleeps (at the latest once the millisecond has gone by).
        let asleep = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(5));
            proc_value(tid, "status", "State").starts_with('S')
        });
        assert!(asleep, "the keeper went on running");
        // Two syncs at once: it keeps spinning until both are done.
        let most = Duration::from_millis(1);
        let (a, b) = (keeper.start(most), keeper.start(most));
        assert_eq!(keeper.keeping(), 2);
        drop(a);
        assert_eq!(keeper.keeping(), 1);
        drop(b);
        assert_eq!(keeper.keeping(), 0);
    }

    #[test]
    fn awake_while_returns_what_it_ran() {
        assert_eq!(awake_while(|| 7), 7);
    }
}
