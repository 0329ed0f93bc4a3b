//! The server-initiated stream of a modern upstream: a `subscriptions/listen` request for
//! every list change, opened again when it ends (the request timeout also ends a quiet one),
//! its notifications relayed without the subscription's `_meta`.

use super::era::META_SUBSCRIPTION;
use super::{Message, UpstreamSession};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Listen requests in a row that fail or are never acknowledged, before giving up.
const MAX_EMPTY_RETRIES: u32 = 5;
const BUFFER: usize = 256;

static NEXT: AtomicU64 = AtomicU64::new(1);

/// Opens the stream; the receiver ends when the upstream refuses to listen.
pub(super) fn listen(session: UpstreamSession) -> mpsc::Receiver<Message> {
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
        let mut empty = 0;
        while !tx.is_closed() && empty < MAX_EMPTY_RETRIES {
            let id = format!("mcpgate-listen-{}", NEXT.fetch_add(1, Ordering::Relaxed));
            let request = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
                "params": {"notifications": {"toolsListChanged": true,
                    "promptsListChanged": true, "resourcesListChanged": true}}});
            let mut delivered = false;
            match session.request(request).await {
                Ok(mut exchange) => loop {
                    let item = tokio::select! {
                        i = exchange.recv() => i,
                        () = tx.closed() => return,
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
