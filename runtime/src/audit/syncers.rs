//! The syncer threads of `durability: batched`: the writer hands them the acknowledgements
//! of a batch it has just written, and goes on writing the next batch while they sync.
//!
//! A syncer that starts takes every batch waiting and syncs them with one `fdatasync`
//! (each batch was written before it was handed over, so a sync that starts now covers
//! it); one that finishes takes what waited meanwhile without sleeping at all.
//!
//! One sync runs at a time while syncs are quick: a batch handed over during a sync waits
//! for its end, and merges with the others that came meanwhile. Under load every wake-up
//! is a thread switch the calls pay for in CPU, and a syncer waking preempts a thread
//! serving calls: on two cores this served 4 connections x1.24 and x1.00 as fast as four
//! syncs overlapping at once (paired runs, both orders), with fewer preemptions of the
//! gateway's workers at 16 (0.30 per call against 0.39-0.52; docs/PERFORMANCE.md). A sync running longer than [`SLOW_SYNC`] does not hold the
//! next batch: that batch wakes another syncer, up to [`SYNCERS`] syncs in flight. On a
//! loaded virtual machine a lone sync was seen to wait a whole timer tick (4 ms) where
//! concurrent ones did not.
//!
//! A batch wakes one idle syncer, and only one: each syncer waits on its own condition
//! variable, so no other is woken to find the work gone.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::audit::writer::Ack;

/// Most fdatasyncs in flight at once (one thread each).
pub const SYNCERS: usize = 4;

/// How long a sync runs before the next batch gets a sync of its own rather than
/// waiting for it (a quick disk's sync takes 50-400 us).
pub const SLOW_SYNC: Duration = Duration::from_millis(1);

/// Records waiting for a sync, and the file they are in (as each syncer opened it).
struct SyncJob {
    files: Arc<Vec<File>>,
    acks: Vec<(u64, Ack)>,
}

/// The syncer threads. Each syncs through its own open file description of the log file:
/// a write-back error is reported once per description, so every syncer whose sync could
/// have covered a failed page sees the error (one shared description would report it to
/// whichever sync came first, and the others would succeed falsely).
pub struct Syncers {
    pool: Arc<Pool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    files: Arc<Vec<File>>,
}

struct Pool {
    state: Mutex<State>,
    /// One per syncer: signalled when it is handed work, or told to stop.
    wake: Vec<Condvar>,
    broken: Mutex<Option<String>>,
    /// Jobs handed over and not answered yet.
    in_flight: AtomicUsize,
}

struct State {
    pending: Vec<SyncJob>,
    /// Per syncer: waiting for work (and not handed any since).
    idle: Vec<bool>,
    /// Per syncer: when the sync it runs started.
    syncing: Vec<Option<Instant>>,
    stopping: bool,
}

impl State {
    /// The idle syncer a new batch should wake: none while a quick sync runs (the batch
    /// waits for it to end).
    fn to_wake(&self) -> Option<usize> {
        let idle = self.idle.iter().position(|i| *i)?;
        let quick = |since: &Option<Instant>| since.is_some_and(|s| s.elapsed() < SLOW_SYNC);
        (!self.syncing.iter().any(quick)).then_some(idle)
    }
}

impl Pool {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Syncers {
    /// Starts the syncers of the log file `path`.
    ///
    /// # Errors
    /// When a thread cannot be started or the file cannot be opened.
    pub fn start(path: &Path) -> std::io::Result<Syncers> {
        let pool = Arc::new(Pool {
            state: Mutex::new(State {
                pending: Vec::new(),
                idle: vec![false; SYNCERS],
                syncing: vec![None; SYNCERS],
                stopping: false,
            }),
            wake: (0..SYNCERS).map(|_| Condvar::new()).collect(),
            broken: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
        });
        let files = Arc::new(open_for_syncers(path)?);
        let mut syncers = Syncers {
            pool: pool.clone(),
            threads: Vec::with_capacity(SYNCERS),
            files,
        };
        for i in 0..SYNCERS {
            let pool = pool.clone();
            let thread = std::thread::Builder::new()
                .name("mcpgate-audit-sync".into())
                .spawn(move || sync_loop(i, &pool));
            match thread {
                Ok(t) => syncers.threads.push(t),
                Err(e) => {
                    syncers.stop();
                    return Err(e);
                }
            }
        }
        Ok(syncers)
    }

    /// Syncs the file `path` from now on (after a rotation).
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn follow(&mut self, path: &Path) -> std::io::Result<()> {
        self.files = Arc::new(open_for_syncers(path)?);
        Ok(())
    }

    /// Hands over the acknowledgements of records just written: they are answered after
    /// a sync that started after this call.
    pub fn sync(&self, acks: Vec<(u64, Ack)>) {
        let job = SyncJob {
            files: self.files.clone(),
            acks,
        };
        let mut st = self.pool.state();
        if st.stopping {
            drop(st);
            for (_, a) in job.acks {
                let _ = a.send(Err("the audit log syncers have stopped".into()));
            }
            return;
        }
        self.pool.in_flight.fetch_add(1, Ordering::AcqRel);
        st.pending.push(job);
        let idle = st.to_wake();
        if let Some(i) = idle {
            st.idle[i] = false;
        }
        drop(st);
        // Woken after the lock is let go, so that it does not wake only to wait for it.
        if let Some(i) = idle {
            self.pool.wake[i].notify_one();
        }
    }

    /// Whether no sync is waiting or in flight.
    pub fn idle(&self) -> bool {
        self.pool.in_flight.load(Ordering::Acquire) == 0
    }

    /// Why syncing failed, once it did: nothing is acknowledged after that.
    pub fn broken(&self) -> Option<String> {
        self.pool
            .broken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Lets the syncers finish what is waiting, and waits for them.
    pub fn join(mut self) {
        self.stop();
    }

    /// As [`Syncers::join`]; a second call finds no thread to wait for.
    fn stop(&mut self) {
        self.pool.state().stopping = true;
        for w in &self.pool.wake {
            w.notify_one();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Dropped without [`Syncers::join`] (a writer that is dropped, not stopped), the threads
/// still end: they would otherwise wait for work forever.
impl Drop for Syncers {
    fn drop(&mut self) {
        self.stop();
    }
}

fn open_for_syncers(path: &Path) -> std::io::Result<Vec<File>> {
    (0..SYNCERS)
        .map(|_| OpenOptions::new().write(true).open(path))
        .collect()
}

/// Syncer `i`: takes every job waiting, syncs each file they name once, then answers
/// them; waits for work on its own condition variable.
fn sync_loop(i: usize, pool: &Pool) {
    loop {
        let jobs = {
            let mut st = pool.state();
            loop {
                if !st.pending.is_empty() {
                    st.syncing[i] = Some(Instant::now());
                    break std::mem::take(&mut st.pending);
                }
                if st.stopping {
                    return;
                }
                // Answered until here: counts as syncing, so the next batch waits for
                // this syncer rather than waking another.
                st.syncing[i] = None;
                st.idle[i] = true;
                while st.idle[i] && !st.stopping {
                    st = pool.wake[i]
                        .wait(st)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                // Handed work (another syncer may have taken it first), or stopping.
                st.idle[i] = false;
            }
        };
        let mut failed: Option<String> = None;
        let mut synced: Vec<&Arc<Vec<File>>> = Vec::new();
        for job in &jobs {
            if synced.iter().any(|f| Arc::ptr_eq(f, &job.files)) {
                continue;
            }
            synced.push(&job.files);
            let Some(file) = job.files.get(i) else {
                failed = Some("no file to sync".into());
                continue;
            };
            if let Err(e) = file.sync_data() {
                failed = Some(format!("the audit log could not be synced: {e}"));
            }
        }
        let why = {
            let mut b = pool.broken.lock().unwrap_or_else(PoisonError::into_inner);
            if let (None, Some(f)) = (&*b, &failed) {
                tracing::error!(error = %f, "audit log sync failed: every call is refused from now on");
                *b = Some(f.clone());
            }
            b.clone()
        };
        let n = jobs.len();
        for job in jobs {
            for (seq, a) in job.acks {
                let _ = a.send(why.clone().map_or(Ok(seq), Err));
            }
        }
        pool.in_flight.fetch_sub(n, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    /// Syncers of a one-byte file in a fresh folder (kept while the syncers live).
    fn started() -> (tempfile::TempDir, Syncers) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"x").unwrap();
        let syncers = Syncers::start(&path).unwrap();
        (dir, syncers)
    }

    #[test]
    fn syncers_dropped_without_a_join_end_their_threads() {
        let (_dir, syncers) = started();
        let pool = syncers.pool.clone();
        assert_eq!(Arc::strong_count(&pool), 2 + SYNCERS);
        drop(syncers);
        // Every thread held the pool: none is left waiting.
        assert_eq!(Arc::strong_count(&pool), 1);
    }

    #[test]
    fn a_batch_waits_for_a_quick_sync_and_not_for_a_slow_one() {
        let mut st = State {
            pending: Vec::new(),
            idle: vec![false, true, true, false],
            syncing: vec![None; 4],
            stopping: false,
        };
        // Nothing syncing: the first idle syncer.
        assert_eq!(st.to_wake(), Some(1));
        // A sync just started: the batch waits for it.
        st.syncing[0] = Some(Instant::now());
        assert_eq!(st.to_wake(), None);
        // That sync has run past SLOW_SYNC: the batch gets a sync of its own.
        st.syncing[0] = Instant::now().checked_sub(SLOW_SYNC * 2);
        assert_eq!(st.to_wake(), Some(1));
        // No syncer idle: the batch waits for whichever ends first.
        st.idle = vec![false; 4];
        assert_eq!(st.to_wake(), None);
    }

    #[test]
    fn every_batch_is_answered_once_synced_and_none_after_the_stop() {
        let (_dir, syncers) = started();
        let mut waits = Vec::new();
        // Batches faster than the syncs: some wait, and are taken by whichever syncer ends.
        for n in 0..200u64 {
            let (ack, wait) = oneshot::channel();
            syncers.sync(vec![(n, ack)]);
            waits.push((n, wait));
        }
        for (n, w) in waits {
            assert_eq!(w.blocking_recv().unwrap(), Ok(n));
        }
        assert!(syncers.idle() && syncers.broken().is_none());
        let pool = syncers.pool.clone();
        syncers.join();
        assert!(pool.state().stopping);
        // A batch handed over after the stop is refused, not left waiting.
        let stopped = Syncers {
            pool,
            threads: Vec::new(),
            files: Arc::new(Vec::new()),
        };
        let (ack, wait) = oneshot::channel();
        stopped.sync(vec![(7, ack)]);
        assert!(wait.blocking_recv().unwrap().is_err());
    }
}
