//! Routing of messages that arrive on one shared channel (a stdio process's stdout, a legacy
//! SSE stream) to the [`Exchange`] of the request they belong to, or to the listen stream.

use super::{Exchange, Message, UpstreamError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Messages buffered for an [`Exchange`] the core has not read yet.
const EXCHANGE_BUFFER: usize = 64;
/// Messages buffered for the listen stream; more are dropped (with a warning).
pub(crate) const LISTEN_BUFFER: usize = 256;

type Feed = mpsc::UnboundedSender<Result<Message, UpstreamError>>;

struct Pending {
    tx: Feed,
    progress_token: Option<String>,
}

struct Inner {
    pending: HashMap<String, Pending>,
    listen_tx: mpsc::Sender<Message>,
    listen_rx: Option<mpsc::Receiver<Message>>,
    /// Set once the channel is gone: the error later requests get.
    ended: Option<UpstreamError>,
    last_activity: Instant,
}

/// Routes one upstream channel's messages; shared by the reader task and the session.
pub(crate) struct Router {
    server: String,
    timeout: Duration,
    inner: Mutex<Inner>,
}

/// The routing key of a JSON-RPC id: strings and numbers stay distinct (`"1"` is not `1`).
pub(crate) fn id_key(id: &Value) -> Option<String> {
    match id {
        Value::String(_) | Value::Number(_) => Some(id.to_string()),
        _ => None,
    }
}

/// Whether `message` is a response (result or error) rather than a request or notification.
pub(crate) fn is_response(message: &Message) -> bool {
    message.get("method").is_none()
        && message.get("id").is_some()
        && (message.get("result").is_some() || message.get("error").is_some())
}

/// The `params._meta.progressToken` of a request, as a routing key.
pub(crate) fn request_progress_token(message: &Message) -> Option<String> {
    message
        .get("params")?
        .get("_meta")?
        .get("progressToken")
        .and_then(id_key)
}

impl Router {
    pub(crate) fn new(server: &str, timeout: Duration) -> Router {
        let (listen_tx, listen_rx) = mpsc::channel(LISTEN_BUFFER);
        Router {
            server: server.to_owned(),
            timeout,
            inner: Mutex::new(Inner {
                pending: HashMap::new(),
                listen_tx,
                listen_rx: Some(listen_rx),
                ended: None,
                last_activity: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of plain maps.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers the request `message` before it is written; returns its key and feed.
    pub(crate) fn register(
        &self,
        message: &Message,
    ) -> Result<
        (
            String,
            mpsc::UnboundedReceiver<Result<Message, UpstreamError>>,
        ),
        UpstreamError,
    > {
        let key = message.get("id").and_then(id_key).ok_or_else(|| {
            UpstreamError::Protocol("request without a string or number `id`".into())
        })?;
        let mut inner = self.lock();
        if let Some(err) = &inner.ended {
            return Err(err.clone());
        }
        if inner.pending.contains_key(&key) {
            return Err(UpstreamError::Protocol(format!(
                "request id `{key}` is already in flight"
            )));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        inner.pending.insert(
            key.clone(),
            Pending {
                tx,
                progress_token: request_progress_token(message),
            },
        );
        inner.last_activity = Instant::now();
        Ok((key, rx))
    }

    /// Sends a request over the connection's one channel: registered first, so an answer
    /// that arrives before `write` returns is routed; forgotten again if the write fails.
    pub(crate) async fn send<F>(
        self: &Arc<Self>,
        message: &Message,
        write: F,
    ) -> Result<Exchange, UpstreamError>
    where
        F: Future<Output = Result<(), UpstreamError>>,
    {
        let (key, feed) = self.register(message)?;
        if let Err(e) = write.await {
            self.forget(&key);
            return Err(e);
        }
        Ok(self.exchange(key, feed))
    }

    /// Sends a notification (or an answer to the server), unless the connection ended.
    pub(crate) async fn notify<F>(&self, write: F) -> Result<(), UpstreamError>
    where
        F: Future<Output = Result<(), UpstreamError>>,
    {
        if let Some(e) = self.ended() {
            return Err(e);
        }
        write.await
    }

    /// Drops a request that will not be answered (write failed, timed out, abandoned).
    pub(crate) fn forget(&self, key: &str) {
        self.lock().pending.remove(key);
    }

    /// Marks traffic on the channel, for idle reaping.
    pub(crate) fn touch(&self) {
        self.lock().last_activity = Instant::now();
    }

    /// The error a new request gets, if the channel has ended.
    pub(crate) fn ended(&self) -> Option<UpstreamError> {
        self.lock().ended.clone()
    }

    /// Requests waiting for a response.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    /// Time since the last message either way.
    pub(crate) fn idle_for(&self) -> Duration {
        self.lock().last_activity.elapsed()
    }

    /// The listen stream: the buffered messages so far, then every later one. A second call
    /// replaces the stream (the earlier receiver ends).
    pub(crate) fn listener(&self) -> mpsc::Receiver<Message> {
        let mut inner = self.lock();
        if let Some(rx) = inner.listen_rx.take() {
            return rx;
        }
        let (tx, rx) = mpsc::channel(LISTEN_BUFFER);
        inner.listen_tx = tx;
        rx
    }

    /// Delivers one message from upstream to the request it belongs to, or to the listen
    /// stream.
    pub(crate) fn route(&self, message: Message) {
        let mut inner = self.lock();
        inner.last_activity = Instant::now();
        if message.get("method").is_none() {
            let key = message.get("id").and_then(id_key);
            match key.and_then(|k| inner.pending.remove(&k)) {
                // Removing the entry drops its feed: the response is the last message.
                Some(p) => {
                    let _ = p.tx.send(Ok(message));
                }
                None => tracing::warn!(
                    target: "upstream",
                    server = %self.server,
                    "dropping a response that matches no request in flight"
                ),
            }
            return;
        }
        let token = (message.get("id").is_none())
            .then(|| message.get("params")?.get("progressToken").and_then(id_key))
            .flatten();
        let target = match &token {
            Some(t) => inner
                .pending
                .values()
                .find(|p| p.progress_token.as_ref() == Some(t)),
            None if inner.pending.len() == 1 => inner.pending.values().next(),
            None => None,
        };
        if let Some(p) = target {
            let _ = p.tx.send(Ok(message));
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = inner.listen_tx.try_send(message) {
            tracing::warn!(
                target: "upstream",
                server = %self.server,
                "listen buffer full: dropping a server message"
            );
        }
    }

    /// Ends every request in flight with `now` and every later request with `later`.
    pub(crate) fn end(&self, now: UpstreamError, later: UpstreamError) {
        let mut inner = self.lock();
        if inner.ended.is_none() {
            inner.ended = Some(later);
        }
        for (_, p) in inner.pending.drain() {
            let _ = p.tx.send(Err(now.clone()));
        }
        // A fresh closed sender ends the listen stream once its buffer is read.
        let (tx, _) = mpsc::channel(1);
        inner.listen_tx = tx;
    }

    /// Turns a registered request's feed into the [`Exchange`] the core reads, enforcing the
    /// request timeout: the time allowed from the request, or from the last message that
    /// belongs to it, to the next message.
    pub(crate) fn exchange(
        self: &Arc<Self>,
        key: String,
        mut feed: mpsc::UnboundedReceiver<Result<Message, UpstreamError>>,
    ) -> Exchange {
        let (tx, out) = mpsc::channel(EXCHANGE_BUFFER);
        let router = Arc::clone(self);
        tokio::spawn(async move {
            let mut finished = false;
            loop {
                let item = tokio::select! {
                    item = tokio::time::timeout(router.timeout, feed.recv()) => item,
                    () = tx.closed() => break,
                };
                match item {
                    Ok(Some(Ok(message))) => {
                        finished = is_response(&message);
                        if tx.send(Ok(message)).await.is_err() {
                            break;
                        }
                    }
                    Ok(Some(Err(e))) => {
                        finished = true;
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                    Ok(None) => {
                        if !finished {
                            let _ = tx
                                .send(Err(UpstreamError::Unavailable(
                                    "the request was abandoned".into(),
                                )))
                                .await;
                        }
                        return;
                    }
                    Err(_) => {
                        router.forget(&key);
                        let _ = tx.send(Err(UpstreamError::Timeout)).await;
                        return;
                    }
                }
            }
            if !finished {
                router.forget(&key);
            }
        });
        out.into()
    }
}

/// Removes `key` from a transport's table of live connections, unless a newer connection
/// took its place meanwhile.
pub(crate) fn forget_connection<T>(
    table: &std::sync::Mutex<std::collections::HashMap<String, Arc<T>>>,
    key: &str,
    conn: &Arc<T>,
) {
    let mut table = table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if table.get(key).is_some_and(|c| Arc::ptr_eq(c, conn)) {
        table.remove(key);
    }
}

/// Reads the answer to `initialize` sent on a new one-channel connection (stdio, legacy
/// SSE), and keeps the protocol version it names in `version`, for the sealed state.
pub(crate) async fn initialized<F>(
    server: &str,
    sent: F,
    version: &std::sync::Mutex<String>,
) -> Result<Message, UpstreamError>
where
    F: Future<Output = Result<Exchange, UpstreamError>>,
{
    let mut exchange = sent.await?;
    let response = super::final_response(server, &mut exchange).await?;
    if let Some(v) = response
        .pointer("/result/protocolVersion")
        .and_then(|v| v.as_str())
    {
        *version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = v.to_owned();
    }
    Ok(response)
}

/// Sweeps a transport's table of live connections every quarter of `idle` (50 ms to 30 s)
/// while the transport exists; `sweep` ends what went idle. Started once per transport.
pub(crate) fn spawn_reaper<S, F>(
    started: &std::sync::atomic::AtomicBool,
    shared: &Arc<S>,
    idle: Duration,
    sweep: F,
) where
    S: Send + Sync + 'static,
    F: Fn(&S) + Send + 'static,
{
    if started.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    let weak = Arc::downgrade(shared);
    let tick = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(tick).await;
            let Some(shared) = weak.upgrade() else {
                return;
            };
            sweep(&shared);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn routes_by_id_progress_token_and_single_flight() {
        let router = Arc::new(Router::new("t", Duration::from_secs(5)));
        let req1 = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":"p1"}}});
        let req2 = json!({"jsonrpc":"2.0","id":"1","method":"tools/call"});
        let (k1, f1) = router.register(&req1).unwrap();
        let (k2, f2) = router.register(&req2).unwrap();
        let mut ex1 = router.exchange(k1, f1);
        let mut ex2 = router.exchange(k2, f2);
        router.route(json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p1","progress":1}}));
        router.route(json!({"jsonrpc":"2.0","method":"notifications/message","params":{}}));
        router.route(json!({"jsonrpc":"2.0","id":"1","result":{}}));
        router.route(json!({"jsonrpc":"2.0","id":1,"result":{}}));
        let p = ex1.recv().await.unwrap().unwrap();
        assert_eq!(p["method"], "notifications/progress");
        assert_eq!(ex1.recv().await.unwrap().unwrap()["id"], 1);
        assert!(ex1.recv().await.is_none());
        assert_eq!(ex2.recv().await.unwrap().unwrap()["id"], "1");
        assert!(ex2.recv().await.is_none());
        let mut listen = router.listener();
        assert_eq!(
            listen.recv().await.unwrap()["method"],
            "notifications/message"
        );
    }

    #[tokio::test]
    async fn end_fails_in_flight_and_later_requests() {
        let router = Arc::new(Router::new("t", Duration::from_secs(5)));
        let (k, f) = router.register(&json!({"id": 3, "method": "x"})).unwrap();
        let mut ex = router.exchange(k, f);
        router.end(
            UpstreamError::Exited("status 1".into()),
            UpstreamError::SessionExpired,
        );
        assert_eq!(
            ex.recv().await.unwrap(),
            Err(UpstreamError::Exited("status 1".into()))
        );
        assert_eq!(
            router
                .register(&json!({"id": 4, "method": "x"}))
                .unwrap_err(),
            UpstreamError::SessionExpired
        );
    }
}
