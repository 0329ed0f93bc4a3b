//! The resources a `subscriptions/listen` stream asks for (`resourceSubscriptions`). Each URI
//! is decided like a `resources/read` of it by the caller at the upstream that serves it (on
//! `/mcp`: the one that listed it, else every upstream); one the caller may not read is left
//! out of the acknowledged filter, without saying why. The rest are subscribed upstream: at
//! a legacy upstream with `resources/subscribe` on the bridge session (and
//! `resources/unsubscribe` once the last stream that wants the URI ends), at a modern one
//! through its own `subscriptions/listen`.

use crate::audit::decision as audit;
use crate::gateway::Gateway;
use crate::gateway::decide::{self, Outcome};
use crate::gateway::relay;
use crate::session::{Endpoint, Session};
use mcpgate_compiler::Target;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Most resources one listen request may name.
pub const MAX_URIS: usize = 256;
/// Longest wait for modern upstreams to acknowledge their subscriptions.
const ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest resource URI accepted.
const MAX_URI_BYTES: usize = 8192;

/// The honored resource subscriptions of one stream.
#[derive(Debug, Default)]
pub struct Wanted {
    /// Upstream -> the URIs subscribed there.
    by_server: BTreeMap<String, Vec<String>>,
    /// The URIs acknowledged to the client, in the order it asked.
    honored: Vec<String>,
}

impl Wanted {
    /// The URIs acknowledged to the client.
    pub fn honored(&self) -> &[String] {
        &self.honored
    }

    /// Whether an update of `uri` from `server` belongs to this stream: a subscribed URI or
    /// a resource below one (the specification lets an update name a sub-resource).
    pub fn covers(&self, server: &str, uri: &str) -> bool {
        self.by_server.get(server).is_some_and(|uris| {
            uris.iter().any(|u| {
                uri == u
                    || uri
                        .strip_prefix(u.as_str())
                        .is_some_and(|rest| u.ends_with('/') || rest.starts_with('/'))
            })
        })
    }
}

/// The `resourceSubscriptions` of a listen request, without duplicates.
///
/// # Errors
/// A message for the client when the field is not a list of at most [`MAX_URIS`] strings.
pub fn requested(message: &Value) -> Result<Vec<String>, String> {
    let Some(field) = message.pointer("/params/notifications/resourceSubscriptions") else {
        return Ok(Vec::new());
    };
    if field.is_null() {
        return Ok(Vec::new());
    }
    let Some(items) = field.as_array() else {
        return Err("`resourceSubscriptions` must be a list of URIs".into());
    };
    if items.len() > MAX_URIS {
        return Err(format!(
            "`resourceSubscriptions` names {} resources; at most {MAX_URIS} are allowed",
            items.len()
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Some(uri) = item.as_str().filter(|u| u.len() <= MAX_URI_BYTES) else {
            return Err("`resourceSubscriptions` must be a list of URIs".into());
        };
        if !out.iter().any(|u| u == uri) {
            out.push(uri.to_owned());
        }
    }
    Ok(out)
}

/// Decides every requested URI for the session's principal and records each decision.
pub async fn decide(gw: &Gateway, session: &Session, id: &Value, uris: Vec<String>) -> Wanted {
    let loaded = gw.program.load_full();
    let caller = decide::caller(&loaded, session);
    let mut wanted = Wanted::default();
    for uri in uris {
        let servers: Vec<String> = match &session.endpoint {
            Endpoint::Server(s) => vec![s.clone()],
            Endpoint::Aggregate => match session.resource_route(&uri) {
                Some(s) => vec![s],
                None => session.upstreams.keys().cloned().collect(),
            },
        };
        let mut allowed = false;
        for server in servers
            .iter()
            .filter(|s| session.upstreams.contains_key(*s))
        {
            let target = Target::Resource { server, uri: &uri };
            let d = decide::decide(gw, &loaded, &caller, session, target, &Value::Null, None);
            // A decision that cannot be recorded is a refusal.
            let recorded =
                audit::record_decision(gw.audit.get(), &loaded, &d, "subscriptions/listen", id)
                    .await;
            let Ok(pending) = recorded else {
                continue;
            };
            if let Some(mut p) = pending {
                p.finish(&json!({"result": {}}));
            }
            if d.outcome == Outcome::Allow {
                allowed = true;
                wanted
                    .by_server
                    .entry(server.clone())
                    .or_default()
                    .push(uri.clone());
            }
        }
        if allowed {
            wanted.honored.push(uri);
        }
    }
    wanted
}

/// How many open streams want each (bridge session, upstream, URI) subscribed at a legacy
/// upstream: the first subscribes, the last unsubscribes.
#[derive(Debug, Default)]
pub struct Holders(Mutex<HashMap<(String, String, String), usize>>);

impl Holders {
    /// Counts one more holder; `true` for the first.
    fn hold(&self, key: (String, String, String)) -> bool {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(key).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Counts one holder less; `true` for the last.
    fn release(&self, key: &(String, String, String)) -> bool {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get_mut(key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                map.remove(key);
                true
            }
            None => false,
        }
    }
}

/// The legacy subscriptions of one stream; dropping it unsubscribes those no other stream
/// holds.
pub struct Held {
    gw: Arc<Gateway>,
    session: Arc<Session>,
    keys: Vec<(String, String, String)>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let last: Vec<(String, String)> = self
            .keys
            .iter()
            .filter(|k| self.gw.modern.holders.release(k))
            .map(|(_, server, uri)| (server.clone(), uri.clone()))
            .collect();
        if last.is_empty() {
            return;
        }
        let (gw, session) = (self.gw.clone(), self.session.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                for (server, uri) in last {
                    call(&gw, &session, &server, "resources/unsubscribe", &uri).await;
                }
            });
        }
    }
}

async fn call(gw: &Gateway, session: &Session, server: &str, method: &str, uri: &str) {
    let Some(up) = session.upstreams.get(server) else {
        return;
    };
    let params = json!({ "uri": uri });
    if let Err(e) = relay::call(session, server, up, method, params, gw.timeout(server)).await {
        tracing::debug!(server, uri, method, error = %e, "resource subscription not changed upstream");
    }
}

/// Opens the upstream streams a listen request needs, tagged with the upstream's name:
/// every upstream's when list changes are wanted, else those with subscribed resources.
/// `None` when no upstream offers a stream.
pub async fn streams(
    gw: &Arc<Gateway>,
    session: &Arc<Session>,
    wanted: &Wanted,
    lists: bool,
) -> (Option<mpsc::Receiver<(String, Value)>>, Held) {
    let (tx, rx) = mpsc::channel(64);
    let mut held = Held {
        gw: gw.clone(),
        session: session.clone(),
        keys: Vec::new(),
    };
    let mut any = false;
    let mut acks = Vec::new();
    for (name, up) in &session.upstreams {
        let uris = wanted.by_server.get(name).cloned().unwrap_or_default();
        if !lists && uris.is_empty() {
            continue;
        }
        let stream = if up.is_modern() && !uris.is_empty() {
            up.listen_resources(uris.clone()).map(|(rx, acked)| {
                acks.push(acked);
                rx
            })
        } else {
            match up.listen().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(server = %name, error = %e, "could not open the server stream");
                    None
                }
            }
        };
        let Some(mut stream) = stream else { continue };
        any = true;
        if !up.is_modern() {
            // After the stream is open, so no update is sent before anyone listens.
            for uri in uris {
                let key = (session.sid.clone(), name.clone(), uri.clone());
                if gw.modern.holders.hold(key.clone()) {
                    call(gw, session, name, "resources/subscribe", &uri).await;
                }
                held.keys.push(key);
            }
        }
        let tx = tx.clone();
        let name = name.clone();
        tokio::spawn(async move {
            loop {
                let m = tokio::select! {
                    m = stream.recv() => m,
                    () = tx.closed() => None,
                };
                let Some(m) = m else { return };
                if tx.send((name.clone(), m)).await.is_err() {
                    return;
                }
            }
        });
    }
    // The client's acknowledgement waits for the upstreams' (bounded), so an update made
    // right after it is heard.
    let _ = tokio::time::timeout(ACK_WAIT, futures_util::future::join_all(acks)).await;
    (any.then_some(rx), held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_requested_uris() {
        let m = |v: Value| json!({"params": {"notifications": {"resourceSubscriptions": v}}});
        assert_eq!(
            requested(&m(json!(["a://x", "a://y", "a://x"]))).unwrap(),
            vec!["a://x".to_owned(), "a://y".to_owned()]
        );
        assert!(requested(&json!({"params": {}})).unwrap().is_empty());
        assert!(requested(&m(json!("a://x"))).is_err());
        assert!(requested(&m(json!([1]))).is_err());
        let many: Vec<String> = (0..=MAX_URIS).map(|i| format!("a://{i}")).collect();
        assert!(requested(&m(json!(many))).is_err());
    }

    #[test]
    fn covers_subscribed_uris_and_their_sub_resources() {
        let mut w = Wanted::default();
        w.by_server
            .insert("s".into(), vec!["file:///a".into(), "memo://b/".into()]);
        assert!(w.covers("s", "file:///a"));
        assert!(w.covers("s", "file:///a/c"));
        assert!(w.covers("s", "memo://b/c"));
        assert!(!w.covers("s", "file:///ab"));
        assert!(!w.covers("t", "file:///a"));
    }

    #[test]
    fn the_last_holder_releases() {
        let h = Holders::default();
        let k = ("s".to_owned(), "a".to_owned(), "u".to_owned());
        assert!(h.hold(k.clone()));
        assert!(!h.hold(k.clone()));
        assert!(!h.release(&k));
        assert!(h.release(&k));
        assert!(!h.release(&k));
    }
}
