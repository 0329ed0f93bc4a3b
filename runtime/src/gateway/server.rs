//! The listener: accepts connections, serves them with hyper, reaps idle sessions, and
//! shuts down gracefully (stop accepting, let in-flight requests finish within a bound,
//! close upstream sessions).

use crate::gateway::Gateway;
use crate::gateway::http;
use crate::session::now_secs;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client may take to send request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may run after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long closing upstream sessions may take at shutdown.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves until `shutdown` completes, then drains and returns.
pub async fn serve(listener: TcpListener, gw: Arc<Gateway>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let reaper = tokio::spawn(reap_idle(gw.clone()));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are small and written whole: do not let Nagle hold them for an ACK.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let gw = gw.clone();
        let service = service_fn(move |req| http::handle(gw.clone(), req));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(
                TokioIo::new(crate::busy_poll::Stream::new(stream, 0)),
                service,
            );
        // Polled again in place when it wakes itself (reading a request's body does).
        let conn = crate::in_place::InPlace::new(graceful.watch(conn));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down");
    gw.shutdown.cancel();
    reaper.abort();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time");
    }
    let sessions = gw.sessions.take_all();
    let closing = futures_util::future::join_all(sessions.iter().map(|s| s.close()));
    let _ = tokio::time::timeout(CLOSE_GRACE, closing).await;
}

/// Ends sessions idle longer than `gateway.session_idle_secs`.
async fn reap_idle(gw: Arc<Gateway>) {
    let idle = gw.config.session_idle_secs.max(1);
    let every = Duration::from_secs(idle.clamp(1, 30));
    loop {
        tokio::time::sleep(every).await;
        for s in gw.sessions.take_idle(now_secs().saturating_sub(idle)) {
            tracing::info!(session = %s.sid, "session expired after being idle");
            s.close().await;
        }
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    // The handlers are installed here, not on the first poll, so a SIGTERM that arrives as
    // soon as the gateway says it listens is a graceful stop rather than the default kill.
    #[cfg(unix)]
    let streams = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        match streams {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
