//! Polling a future again at once, in place, when it wakes itself while being polled.
//!
//! A hyper connection wakes its own task in the middle of a call: the handler reading the
//! request body takes the chunk hyper's connection put there, and hyper then wakes the
//! connection (the same task) so that it may read more. Tokio treats a task woken while it
//! runs as one that yields: it goes to the back of the queue, and an idle worker is woken to
//! take it (an eventfd write, and an interrupt to a halted virtual CPU that then competes
//! for work this thread was about to do). [`InPlace`] gives the future a waker of its own:
//! a wake during its poll only marks it, and it is polled again before the task returns;
//! a wake from anywhere else wakes the task as usual.
//!
//! Bottom layer: uses nothing of the crate.

use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

/// Polls in place at most this many times in a row before the task yields for real, so a
/// future that keeps waking itself cannot hold its thread.
const MAX_IN_PLACE: usize = 8;

/// `inner`, polled again in place when it wakes itself during a poll.
pub struct InPlace<F> {
    inner: Pin<Box<F>>,
    local: Arc<Local>,
    waker: Waker,
}

struct Local {
    /// The future is being polled now.
    polling: AtomicBool,
    /// Woken since its poll began.
    woken: AtomicBool,
    /// The task's own waker.
    outer: AtomicWaker,
}

impl Wake for Local {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        // During a poll the poller sees the mark; otherwise the task must be woken.
        if !self.polling.load(Ordering::SeqCst) {
            self.outer.wake();
        }
    }
}

impl<F: Future> InPlace<F> {
    pub fn new(inner: F) -> InPlace<F> {
        let local = Arc::new(Local {
            polling: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            outer: AtomicWaker::new(),
        });
        InPlace {
            inner: Box::pin(inner),
            waker: Waker::from(local.clone()),
            local,
        }
    }
}

impl<F: Future> Future for InPlace<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.local.outer.register(cx.waker());
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..MAX_IN_PLACE {
            this.local.woken.store(false, Ordering::SeqCst);
            this.local.polling.store(true, Ordering::SeqCst);
            let polled = this.inner.as_mut().poll(&mut inner_cx);
            this.local.polling.store(false, Ordering::SeqCst);
            if polled.is_ready() {
                return polled;
            }
            // A wake that saw `polling` set left only its mark: poll again here. One that
            // came after `polling` was cleared has woken the task itself.
            if !this.local.woken.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A future that wakes itself `left` times during its polls, then is ready.
    struct SelfWaking {
        left: usize,
        polls: Arc<AtomicUsize>,
    }

    impl Future for SelfWaking {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.left == 0 {
                return Poll::Ready(());
            }
            self.left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    /// Counts the wakes of the task's own waker.
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn outer() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn self_wakes_are_polled_in_place_without_waking_the_task() {
        let polls = Arc::new(AtomicUsize::new(0));
        let mut f = InPlace::new(SelfWaking {
            left: 3,
            polls: polls.clone(),
        });
        let (count, waker) = outer();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut f).poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 4);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_yields_for_real() {
        let polls = Arc::new(AtomicUsize::new(0));
        let mut f = InPlace::new(SelfWaking {
            left: 100,
            polls: polls.clone(),
        });
        let (count, waker) = outer();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), MAX_IN_PLACE);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the task is woken to go on"
        );
    }

    #[test]
    fn a_wake_from_elsewhere_wakes_the_task() {
        /// Pending until `go` is set; keeps the waker it was given.
        struct Waits {
            go: Arc<AtomicBool>,
            kept: Arc<std::sync::Mutex<Option<Waker>>>,
        }
        impl Future for Waits {
            type Output = ();
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
                if self.go.load(Ordering::SeqCst) {
                    return Poll::Ready(());
                }
                *self.kept.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
        let go = Arc::new(AtomicBool::new(false));
        let kept = Arc::new(std::sync::Mutex::new(None));
        let mut f = InPlace::new(Waits {
            go: go.clone(),
            kept: kept.clone(),
        });
        let (count, waker) = outer();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        go.store(true, Ordering::SeqCst);
        let inner_waker = kept.lock().unwrap().take().unwrap();
        std::thread::spawn(move || inner_waker.wake())
            .join()
            .unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut f).poll(&mut cx).is_ready());
    }
}
