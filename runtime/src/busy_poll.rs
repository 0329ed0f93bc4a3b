//! Busy polling while the gateway is otherwise idle.
//!
//! A thread that sleeps until a socket is readable, or until another thread hands it
//! something, is woken by the kernel; on a virtual machine whose idle cores halt at once
//! (no halt polling in the guest), that wake-up is an interrupt to a halted virtual CPU and
//! costs tens of microseconds, several times the gateway's own work on a call. When at most
//! one call is in flight, the gateway instead polls for a short while ([`set_budget`])
//! before it sleeps: the answer it waits for usually arrives within that time, and no
//! wake-up is paid. Only one thread polls at a time, so the other core stays free for the
//! peers the gateway waits for, and nothing polls once two calls are in flight: under load
//! the cores are busy anyway, and polling would only take time from other calls.
//!
//! Bottom layer: uses nothing of the crate.

use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Longest poll, in nanoseconds; 0 turns polling off.
static BUDGET_NS: AtomicU64 = AtomicU64::new(0);
/// Calls the gateway is handling now.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Whether some thread is polling now.
static POLLING: AtomicBool = AtomicBool::new(false);

/// Sets the longest a wait is polled before the thread sleeps (zero: never).
pub fn set_budget(budget: Duration) {
    let ns = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
    BUDGET_NS.store(ns, Ordering::Relaxed);
}

/// The longest a wait is polled.
pub fn budget() -> Duration {
    Duration::from_nanos(BUDGET_NS.load(Ordering::Relaxed))
}

/// Counts one call in flight while it lives.
pub struct InFlight(());

impl InFlight {
    pub fn enter() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether at most one call is in flight (the caller's own): work done on the caller's
/// thread then keeps nothing else waiting.
pub fn alone() -> bool {
    IN_FLIGHT.load(Ordering::Relaxed) <= 1
}

/// Calls `attempt` until it gives a value, for at most the budget, while no more than
/// `most` calls are in flight and no other thread polls. `None` when it gave up: the
/// caller then waits as usual.
pub fn poll<T>(most: usize, attempt: impl FnMut() -> Option<T>) -> Option<T> {
    match poll_for(most, attempt) {
        Polled::Seen(v) => Some(v),
        Polled::GaveUp | Polled::Skipped => None,
    }
}

/// What [`poll_for`] came to.
enum Polled<T> {
    /// `attempt` gave a value.
    Seen(T),
    /// Polled for the whole budget in vain (or until a second call came in).
    GaveUp,
    /// Not polled: no budget, too many calls in flight, or another thread polls.
    Skipped,
}

fn poll_for<T>(most: usize, mut attempt: impl FnMut() -> Option<T>) -> Polled<T> {
    let budget = BUDGET_NS.load(Ordering::Relaxed);
    if budget == 0 || IN_FLIGHT.load(Ordering::Relaxed) > most {
        return Polled::Skipped;
    }
    if POLLING.swap(true, Ordering::Acquire) {
        return Polled::Skipped;
    }
    let budget = Duration::from_nanos(budget);
    let start = Instant::now();
    let found = loop {
        if let Some(v) = attempt() {
            break Polled::Seen(v);
        }
        if start.elapsed() >= budget || IN_FLIGHT.load(Ordering::Relaxed) > most {
            break Polled::GaveUp;
        }
        // A thread woken meanwhile may have been queued on this core: let it run.
        std::thread::yield_now();
    };
    POLLING.store(false, Ordering::Release);
    found
}

/// A peer whose answers lately took longer than the budget is still polled for once in
/// this many asks: only a poll measures an answer's time (one read after a wake-up measures
/// the wake-up too), so without a fresh look a peer once slow would never be polled again.
const PROBE_EVERY: u32 = 8;
/// Each look that finds the peer still slow doubles the asks until the next, up to this
/// many: a client that thinks between its calls costs one budget of polling in a
/// thousand asks, not one in eight.
const PROBE_EVERY_MOST: u32 = 1024;

/// A TCP stream that, once it has sent something and is flushed, polls for the answer
/// (see the module) before it lets its task wait for readiness, when its peer's answers
/// lately came within the budget (a slow peer is polled for only now and then, to notice
/// when it is quick again). The poll happens in `poll_flush`, the last step of hyper's
/// connection loop: polling in `poll_read` would also hold back what hyper writes after
/// reading. `most`: the calls in flight up to which it polls (0 for a client connection
/// waiting for its next request, 1 for an upstream answer to the call in flight).
pub struct Stream {
    inner: TcpStream,
    most: usize,
    /// Written since the last read that got data: an answer is expected.
    awaiting: bool,
    /// A poll saw data the reactor may not have reported yet: read the socket directly.
    readable: bool,
    /// When the last answer was asked for (the last flush after a write), until a poll
    /// saw it or a read got it.
    asked: Option<Instant>,
    /// How long answers took lately, as polls saw them (a moving average; a poll that gave
    /// up counts twice the budget): a peer that answers slower than the budget is polled
    /// for only once in `probe_every` asks.
    typical: Duration,
    /// Asks not polled for since the last poll, the peer being slow.
    unpolled: u32,
    /// Asks between two looks at a slow peer: [`PROBE_EVERY`], doubled by each look
    /// that gives up, back to [`PROBE_EVERY`] when a poll sees an answer.
    probe_every: u32,
}

impl Stream {
    pub fn new(inner: TcpStream, most: usize) -> Stream {
        Stream {
            inner,
            most,
            awaiting: false,
            readable: false,
            asked: None,
            typical: Duration::ZERO,
            unpolled: 0,
            probe_every: PROBE_EVERY,
        }
    }

    /// Polls for the answer just asked for; when it comes in time, the task is polled again
    /// to read it.
    fn poll_for_answer(&mut self, cx: &mut Context<'_>) {
        let socket = socket2::SockRef::from(&self.inner);
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        let polled = poll_for(self.most, || match socket.peek(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => None,
            // Data, the end of the stream, or an error: the next read reports it.
            _ => Some(()),
        });
        let took = match polled {
            Polled::Skipped => return,
            Polled::GaveUp => {
                if self.typical > budget() {
                    self.probe_every = (self.probe_every * 2).min(PROBE_EVERY_MOST);
                }
                2 * budget()
            }
            Polled::Seen(()) => {
                self.probe_every = PROBE_EVERY;
                self.readable = true;
                // Polled again on this thread once its worker has nothing else to run; the
                // read takes it from there. A plain self-wake would count as a yield, and
                // tokio hands a yielded task to an idle worker, waking it (an interrupt to
                // a halted virtual CPU) for work this thread is about to do.
                let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
                self.asked
                    .take()
                    .map_or(Duration::ZERO, |asked| asked.elapsed())
            }
        };
        self.unpolled = 0;
        self.typical = (self.typical * 3 + took) / 4;
    }

    /// Notes a write that sent something: an answer is expected from now on.
    fn wrote(&mut self, written: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.awaiting = true;
        }
        written
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let mut result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if result.is_pending() && std::mem::take(&mut this.readable) {
            // The reactor has not seen the data yet (it looks when a worker parks); the
            // socket is non-blocking, so read it here. Its readiness is left as it is: at
            // worst the task is polled once more.
            let socket = socket2::SockRef::from(&this.inner);
            match (&*socket).read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    result = Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => result = Poll::Ready(Err(e)),
            }
        }
        if result.is_ready() && buf.filled().len() > before {
            this.awaiting = false;
            this.asked = None;
        }
        result
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if !flushed.is_ready() || !this.awaiting {
            return flushed;
        }
        let budget = budget();
        match this.asked {
            None => this.asked = Some(Instant::now()),
            // Still unanswered since an earlier flush (a stream of events the peer does
            // not answer): that wait counts (as a poll that gave up would at most), so
            // such a peer is polled for only now and then.
            Some(asked) => this.typical = this.typical.max(asked.elapsed().min(2 * budget)),
        }
        if !this.readable {
            let slow = this.typical > budget;
            if slow {
                this.unpolled += 1;
            }
            if !slow || this.unpolled >= this.probe_every {
                this.poll_for_answer(cx);
            }
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl hyper_util::client::legacy::connect::Connection for Stream {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // One test: the budget and the count of calls are the process's.
    #[tokio::test]
    async fn answers_are_read_whether_polled_for_or_not_and_slow_peers_are_polled_only_now_and_then()
     {
        set_budget(Duration::from_millis(5));
        {
            let calls = [InFlight::enter(), InFlight::enter()];
            assert!(!alone());
            assert_eq!(poll(1, || Some(())), None, "two calls in flight");
            drop(calls);
        }
        let _call = InFlight::enter();
        assert!(alone());
        // The peer answers from its own thread, after the delays given (milliseconds).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            for delay in [0u64, 0, 20, 20, 20, 20, 20, 0] {
                let n = std::io::Read::read(&mut peer, &mut buf).unwrap();
                std::thread::sleep(Duration::from_millis(delay));
                peer.write_all(&buf[..n]).unwrap();
            }
        });
        let mut ours = Stream::new(TcpStream::connect(addr).await.unwrap(), 1);
        // A peer that reads and never answers.
        let mut quiet = Some(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        fn addr2(l: &mut Option<std::net::TcpListener>) -> std::net::SocketAddr {
            let l = l.take().unwrap();
            let addr = l.local_addr().unwrap();
            std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 64];
                while std::io::Read::read(&mut s, &mut buf).is_ok_and(|n| n > 0) {}
            });
            addr
        }
        let mut buf = [0u8; 64];
        let mut polled = Vec::new();
        for i in 0..8u8 {
            ours.write_all(&[i; 3]).await.unwrap();
            ours.flush().await.unwrap();
            polled.push(ours.readable);
            let n = ours.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &[i; 3], "answer {i}");
        }
        // Quick answers were seen by the poll; after slow ones the peer is no longer
        // polled for (its typical answer takes longer than the budget).
        assert!(polled[0] || polled[1], "{polled:?}");
        assert!(ours.typical > budget(), "{:?}", ours.typical);
        assert!(!polled[7], "{polled:?}");
        // The peer closing is read as the end of the stream.
        peer.join().unwrap();
        // Writes the peer does not answer (events on a stream): after the budget has gone
        // by unanswered, a flush no longer polls.
        let mut events = Stream::new(TcpStream::connect(addr2(&mut quiet)).await.unwrap(), 1);
        events.write_all(b"event 1").await.unwrap();
        events.flush().await.unwrap();
        std::thread::sleep(budget());
        events.write_all(b"event 2").await.unwrap();
        events.flush().await.unwrap();
        assert!(events.typical >= budget(), "{:?}", events.typical);
        assert!(!events.readable);
        // Looked at now and then, and less often each time it is still unanswered: after
        // 8 asks, then 16 more.
        for _ in 0..3 * PROBE_EVERY {
            events.write_all(b"event").await.unwrap();
            events.flush().await.unwrap();
        }
        assert_eq!(events.probe_every, 4 * PROBE_EVERY);
        assert!(!events.readable);
        assert_eq!(ours.read(&mut buf).await.unwrap(), 0);
        // A peer once slow and now quick: its answers are read late when nobody polls for
        // them, so only the polls made now and then find it quick again; then every answer
        // is polled for once more.
        set_budget(Duration::from_millis(200));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            while let Ok(n @ 1..) = std::io::Read::read(&mut peer, &mut buf) {
                peer.write_all(&buf[..n]).unwrap();
            }
        });
        let mut quick = Stream::new(TcpStream::connect(addr).await.unwrap(), 1);
        quick.typical = budget() * 3;
        let mut polled = Vec::new();
        for i in 0..5 * PROBE_EVERY {
            quick.write_all(&[i as u8; 2]).await.unwrap();
            quick.flush().await.unwrap();
            polled.push(quick.readable);
            let n = quick.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &[i as u8; 2], "answer {i}");
        }
        let every = PROBE_EVERY as usize;
        assert!(!polled[..every - 1].contains(&true), "{polled:?}");
        assert!(polled[every - 1], "the probe: {polled:?}");
        assert!(!polled[4 * every..].contains(&false), "{polled:?}");
        assert!(quick.typical <= budget(), "{:?}", quick.typical);
        drop(quick);
        echo.join().unwrap();
        set_budget(Duration::ZERO);
        assert_eq!(poll(1, || Some(())), None, "no budget");
    }
}
