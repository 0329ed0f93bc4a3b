//! The fleet fan-out of `serve` (with `state.redis`): a commit that goes live here, or a
//! pause set here, is announced; the other replicas' announcements start a sync or a
//! reread of the pauses at once (see [`crate::state::fanout`]).

use crate::gitops::Syncer;
use crate::responders::Responders;
use crate::state::fanout::{Announce, Event, Fanout};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Least time between two syncs started by announcements: a burst (or a flood on the
/// channel) costs at most one fetch a second; the poll goes on regardless.
const SYNC_SPACING: Duration = Duration::from_secs(1);

/// Starts announcing and listening; a failure to start is logged, not fatal (the polls
/// and sweeps still bring every replica along).
pub fn start(
    redis: &crate::quota::RedisStore,
    replica: &str,
    syncer: &Arc<Syncer>,
    responders: &Arc<Responders>,
) {
    let fanout = match Fanout::start(redis.client().clone(), replica) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the fleet announcements");
            return;
        }
    };
    let out = fanout.clone();
    syncer.announce_with(Announce(Box::new(move |e| out.publish(e))));
    let out = fanout.clone();
    responders.announce_with(Announce(Box::new(move |e| out.publish(e))));

    let runtime = tokio::runtime::Handle::current();
    let queued = Arc::new(AtomicBool::new(false));
    let last = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let (syncer, responders) = (syncer.clone(), responders.clone());
    let heard = fanout.listen(move |event| match event {
        Event::Policy { commit } => {
            if syncer.live_commit().as_deref() == Some(commit.as_str())
                || queued.swap(true, Ordering::AcqRel)
            {
                // Live already, or a sync is queued that will fetch it.
                return;
            }
            tracing::debug!(%commit, "another replica went live with a new commit: syncing");
            let (syncer, queued, last) = (syncer.clone(), queued.clone(), last.clone());
            runtime.spawn(async move {
                let wait = last
                    .lock()
                    .ok()
                    .and_then(|l| *l)
                    .map_or(Duration::ZERO, |at| {
                        SYNC_SPACING.saturating_sub(at.elapsed())
                    });
                tokio::time::sleep(wait).await;
                if let Ok(mut l) = last.lock() {
                    *l = Some(Instant::now());
                }
                // Announcements heard from now on queue the next sync.
                queued.store(false, Ordering::Release);
                syncer.sync().await;
            });
        }
        Event::Pauses => responders.sweep(),
    });
    if let Err(e) = heard {
        tracing::warn!(error = %e, "cannot listen for fleet announcements");
    }
}
