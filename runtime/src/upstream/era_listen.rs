//! The server-initiated stream of a modern upstream: a `subscriptions/listen` request for
//! every list change (and the resources subscribed to), opened again when it ends (the
//! request timeout also ends a quiet one) or when the subscribed resources change, its
//! notifications relayed without the subscription's `_meta`.
//!
//! A modern upstream has no `resources/subscribe`: in a legacy client's session the gateway
//! answers that request itself, keeps the URI in the session's [`Subscribed`] set, and
//! listens for it.

use super::era::META_SUBSCRIPTION;
use super::{Exchange, Message, UpstreamSession};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Listen requests in a row that fail or are never acknowledged, before giving up.
const MAX_EMPTY_RETRIES: u32 = 5;
const BUFFER: usize = 256;
/// Most resources one session subscribes to at a modern upstream.
pub const MAX_SUBSCRIPTIONS: usize = 1024;

static NEXT: AtomicU64 = AtomicU64::new(1);

/// The resources a legacy client subscribed to in a session with a modern upstream.
#[derive(Debug)]
pub(super) struct Subscribed {
    uris: Mutex<BTreeSet<String>>,
    changed: watch::Sender<u64>,
}

impl Default for Subscribed {
    fn default() -> Self {
        Subscribed {
            uris: Mutex::new(BTreeSet::new()),
            changed: watch::Sender::new(0),
        }
    }
}

impl Subscribed {
    fn snapshot(&self) -> Vec<String> {
        self.uris
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Answers `resources/subscribe` and `resources/unsubscribe` on the upstream's behalf;
    /// `None` for any other message.
    pub(super) fn answer(&self, message: &Message) -> Option<Exchange> {
        let method = message.get("method").and_then(Value::as_str)?;
        let subscribe = match method {
            "resources/subscribe" => true,
            "resources/unsubscribe" => false,
            _ => return None,
        };
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        let uri = message.pointer("/params/uri").and_then(Value::as_str);
        let response = match uri {
            None => json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32602, "message": "`uri` is required"}}),
            Some(uri) => {
                let mut uris = self
                    .uris
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let changed = if subscribe {
                    uris.len() < MAX_SUBSCRIPTIONS && uris.insert(uri.to_owned())
                } else {
                    uris.remove(uri)
                };
                let full = subscribe && !changed && !uris.contains(uri);
                drop(uris);
                if changed {
                    self.changed.send_modify(|n| *n = n.wrapping_add(1));
                }
                if full {
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603,
                        "message": format!("too many resource subscriptions (at most {MAX_SUBSCRIPTIONS})")}})
                } else {
                    json!({"jsonrpc": "2.0", "id": id, "result": {}})
                }
            }
        };
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Ok(response));
        Some(rx.into())
    }
}

/// What a listen stream asks the upstream for.
enum Source {
    /// The session's own subscriptions (a legacy client's GET stream), followed as they change.
    Session,
    /// A fixed set of resources (one modern client's `subscriptions/listen`).
    Fixed(Vec<String>),
}

/// Opens the stream for every list change and the session's subscribed resources; the
/// receiver ends when the upstream refuses to listen.
pub(super) fn listen(session: UpstreamSession) -> mpsc::Receiver<Message> {
    run(session, Source::Session, None)
}

/// Opens the stream for every list change and updates of `uris`; the second receiver
/// resolves once the upstream acknowledged the subscription (or gave up).
pub(super) fn listen_with(
    session: UpstreamSession,
    uris: Vec<String>,
) -> (mpsc::Receiver<Message>, oneshot::Receiver<()>) {
    let (ready, acked) = oneshot::channel();
    (run(session, Source::Fixed(uris), Some(ready)), acked)
}

fn filter(uris: &[String]) -> Value {
    let mut f = json!({"toolsListChanged": true, "promptsListChanged": true,
        "resourcesListChanged": true});
    if !uris.is_empty() {
        f["resourceSubscriptions"] = json!(uris);
    }
    f
}

/// Resolves when the subscribed resources change; never for a fixed set.
async fn changed(rx: &mut Option<watch::Receiver<u64>>) {
    match rx {
        Some(r) => {
            if r.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

fn run(
    session: UpstreamSession,
    source: Source,
    mut ready: Option<oneshot::Sender<()>>,
) -> mpsc::Receiver<Message> {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        // Stdio carries notifications that belong to no open request on its own channel.
        if let Ok(Some(mut side)) = session.transport_listen().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(m) = side.recv().await {
                    if let Some(m) = relayable(m)
                        && tx.send(m).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
        let subscribed = session.modern.clone();
        let mut watch = match (&source, &subscribed) {
            (Source::Session, Some(m)) => Some(m.subscribed.changed.subscribe()),
            _ => None,
        };
        let mut empty = 0;
        while !tx.is_closed() && empty < MAX_EMPTY_RETRIES {
            let uris = match (&source, &subscribed) {
                (Source::Fixed(uris), _) => uris.clone(),
                (Source::Session, Some(m)) => {
                    if let Some(w) = watch.as_mut() {
                        w.borrow_and_update();
                    }
                    m.subscribed.snapshot()
                }
                (Source::Session, None) => Vec::new(),
            };
            let id = format!("mcpgate-listen-{}", NEXT.fetch_add(1, Ordering::Relaxed));
            let request = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
                "params": {"notifications": filter(&uris)}});
            let mut delivered = false;
            match session.request(request).await {
                Ok(mut exchange) => loop {
                    let item = tokio::select! {
                        i = exchange.recv() => i,
                        () = tx.closed() => return,
                        () = changed(&mut watch) => {
                            // Listen again with the new set (closing this stream ends it).
                            delivered = true;
                            break;
                        }
                    };
                    let Some(Ok(m)) = item else { break };
                    if m.get("method").is_none() {
                        // The result (graceful end) or an error: listen again.
                        if m.get("error").is_some() {
                            tracing::debug!(target: "upstream", error = %m["error"], "subscriptions/listen refused");
                            empty = MAX_EMPTY_RETRIES;
                        }
                        break;
                    }
                    // The acknowledgement counts: the stream is open.
                    delivered = true;
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                    if let Some(m) = relayable(m)
                        && tx.send(m).await.is_err()
                    {
                        return;
                    }
                },
                Err(e) => {
                    tracing::debug!(target: "upstream", error = %e, "subscriptions/listen failed");
                }
            }
            empty = if delivered { 0 } else { empty + 1 };
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    rx
}

/// A notification from the listen stream as a legacy session would carry it; `None` for the
/// acknowledgement and anything that is not a notification.
fn relayable(mut m: Message) -> Option<Message> {
    let method = m.get("method")?.as_str()?;
    if m.get("id").is_some() || method == "notifications/subscriptions/acknowledged" {
        return None;
    }
    if let Some(meta) = m
        .get_mut("params")
        .and_then(|p| p.get_mut("_meta"))
        .and_then(Value::as_object_mut)
    {
        meta.remove(META_SUBSCRIPTION);
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribe_is_answered_and_tracked() {
        let s = Subscribed::default();
        let mut rx = s.changed.subscribe();
        let sub = json!({"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe",
            "params": {"uri": "memo://a"}});
        let mut x = s.answer(&sub).unwrap();
        assert_eq!(x.recv().await.unwrap().unwrap()["result"], json!({}));
        assert!(rx.has_changed().unwrap());
        assert_eq!(s.snapshot(), vec!["memo://a".to_owned()]);
        rx.borrow_and_update();
        // Subscribing twice changes nothing.
        s.answer(&sub).unwrap();
        assert!(!rx.has_changed().unwrap());
        let unsub = json!({"jsonrpc": "2.0", "id": 4, "method": "resources/unsubscribe",
            "params": {"uri": "memo://a"}});
        s.answer(&unsub).unwrap();
        assert!(s.snapshot().is_empty());
        let bad = json!({"jsonrpc": "2.0", "id": 5, "method": "resources/subscribe"});
        let mut x = s.answer(&bad).unwrap();
        assert!(x.recv().await.unwrap().unwrap().get("error").is_some());
        assert!(
            s.answer(&json!({"method": "tools/list", "id": 1}))
                .is_none()
        );
    }

    #[test]
    fn filter_lists_resources_only_when_asked() {
        assert!(filter(&[]).get("resourceSubscriptions").is_none());
        assert_eq!(
            filter(&["memo://a".to_owned()])["resourceSubscriptions"],
            json!(["memo://a"])
        );
    }
}
