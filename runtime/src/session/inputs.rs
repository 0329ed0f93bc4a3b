//! The input bridge's state in one client session: the bridged calls running (so a client's
//! `notifications/cancelled` can stop one) and the server-to-client input requests waiting
//! for the client's answer. The rounds themselves are driven by `gateway::input_bridge`.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The bridge's state in one client session.
#[derive(Debug, Default)]
pub struct SessionInputs {
    /// Set for sessions the gateway holds for stateless clients, which take
    /// `input_required` as it is.
    off: AtomicBool,
    /// Client-facing id of an input request -> where its answer goes.
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    /// Client id of a running call -> its cancellation.
    calls: Mutex<HashMap<String, Arc<CancellationToken>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The key a JSON-RPC id is kept under (its JSON text: `1` and `"1"` differ).
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

impl SessionInputs {
    /// Turns the bridge off: the session's client speaks the stateless era itself.
    pub fn disable(&self) {
        self.off.store(true, Ordering::Relaxed);
    }

    /// Whether calls of this session run through the bridge.
    pub fn enabled(&self) -> bool {
        !self.off.load(Ordering::Relaxed)
    }

    /// The waiter of the input request `id`, taken out: `None` when the bridge asked
    /// nothing under that id.
    pub fn take_waiter(&self, id: &Value) -> Option<oneshot::Sender<Value>> {
        lock(&self.waiting).remove(&id_key(id))
    }

    /// Whether an input request waits for an answer under `id`.
    pub fn waits_for(&self, id: &Value) -> bool {
        lock(&self.waiting).contains_key(&id_key(id))
    }

    /// Waits for the answer to the input request kept under `key`.
    pub fn wait_for(&self, key: String, tx: oneshot::Sender<Value>) {
        lock(&self.waiting).insert(key, tx);
    }

    /// Forgets input requests that will not be answered any more.
    pub fn forget_waits(&self, keys: &[String]) {
        let mut waiting = lock(&self.waiting);
        for key in keys {
            waiting.remove(key);
        }
    }

    /// Cancels the running call with the client id `client_id`; `false` when none runs.
    pub fn cancel(&self, client_id: &Value) -> bool {
        match lock(&self.calls).get(&id_key(client_id)) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Registers a running call under its client key.
    pub fn start_call(&self, client_key: String, token: Arc<CancellationToken>) {
        lock(&self.calls).insert(client_key, token);
    }

    /// Forgets a running call, unless a newer call reused the client's id.
    pub fn end_call(&self, client_key: &str, token: &Arc<CancellationToken>) {
        let mut calls = lock(&self.calls);
        if calls.get(client_key).is_some_and(|t| Arc::ptr_eq(t, token)) {
            calls.remove(client_key);
        }
    }
}
