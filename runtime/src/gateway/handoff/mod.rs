//! Retries of parked calls, and clients' answers, across the replicas of a fleet. The replica that parks a call
//! records it in the shared database with its own URL ([`crate::parked`]); a replica that
//! gets a retry whose `requestState` it does not hold finds the owner there and forwards
//! the client's request to it, signed with a key every replica derives from the shared
//! session key, then relays the owner's answer to the client unchanged. The owner checks
//! the signature, authenticates the client again from the forwarded headers, and resumes
//! the call as if the retry had reached it directly: the decision stays with it.
//!
//! A legacy client's answer to a request the gateway sent it (an upstream's sampling or
//! elicitation request) travels the same way to the replica waiting for it: each request
//! sent to the client is recorded under its session and id.
//!
//! An owner that does not answer (the replica is gone, and the call with it) gives the
//! client a clear JSON-RPC error, never a hang. Without `state.postgres` none of this runs.

mod forward;
mod serve;

pub use forward::{answer_elsewhere, elsewhere};
pub use serve::serve;

use crate::gateway::Gateway;
use crate::http_client::{self, HttpClient};
use crate::parked::{Owner, ParkedStore, Record};
use serde_json::Value;
use std::sync::Arc;

/// Label of the key the replicas sign forwarded retries with.
const KEY_LABEL: &[u8] = b"mcpgate fleet retry v1";
/// Longest a client's answer is looked for on another replica (no upstream waits longer by
/// default).
const ANSWER_WAIT_SECS: u64 = 600;
/// Headers of a hop, never forwarded or relayed.
const HOP: [&str; 8] = [
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// What a replica of a fleet needs to hand retries to the replica holding their call.
pub struct Handoff {
    store: Arc<dyn ParkedStore>,
    me: Owner,
    key: [u8; 32],
    client: HttpClient,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("me", &self.me)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Handoff {
    /// This replica, reachable at `url` and named `replica`, records its parked calls in
    /// `store`; forwarded retries are signed under a key derived from `sealer`'s.
    ///
    /// # Errors
    /// When `url` is not an `http(s)://` URL or the HTTP client cannot be built.
    pub fn new(
        store: Arc<dyn ParkedStore>,
        url: &str,
        replica: String,
        sealer: &crate::session::seal::Sealer,
    ) -> Result<Handoff, String> {
        http_client::parse_url(url).map_err(|e| format!("state.advertise: {e}"))?;
        Ok(Handoff {
            store,
            me: Owner {
                url: url.trim_end_matches('/').to_owned(),
                replica,
            },
            key: sealer.derive(KEY_LABEL),
            client: http_client::build_client()?,
        })
    }

    /// This replica's URL, as recorded for its parked calls.
    pub fn url(&self) -> &str {
        &self.me.url
    }

    /// Records that this replica holds the call `token` of `principal` until `expires`. A
    /// call that cannot be recorded still waits here, for a retry that reaches this replica.
    pub fn record(&self, token: &str, principal: &str, expires: u64) {
        let record = Record {
            owner: self.me.clone(),
            principal: principal.to_owned(),
        };
        if let Err(e) = crate::state::blocking(|| self.store.record(token, &record, expires)) {
            tracing::warn!(error = %e, "a parked call could not be recorded in the shared database; its retry must reach this replica");
        }
    }

    /// Forgets `token`, in the background (its call was resumed here).
    pub fn forget(self: &Arc<Self>, token: &str) {
        let this = self.clone();
        let token = token.to_owned();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = this.store.forget(&token) {
                tracing::debug!(error = %e, "a resumed call's record was not removed; it expires");
            }
        });
    }
}

/// The key a client's answer to the request `id` of session `sid` is recorded under.
fn answer_key(sid: &str, id: &Value) -> String {
    format!(
        "answer\u{0}{sid}\u{0}{}",
        crate::session::inputs::id_key(id)
    )
}

impl crate::session::AnswerRoutes for Handoff {
    fn asked(&self, session: &crate::session::Session, id: &Value) {
        // A stateless client's bridge session: its answers come as retries of the parked
        // call, recorded when it is parked.
        if !session.inputs.enabled() {
            return;
        }
        let expires = crate::clock::now_secs() + ANSWER_WAIT_SECS;
        self.record(
            &answer_key(&session.sid, id),
            &session.principal.id,
            expires,
        );
    }
}

/// Makes `session` announce the requests it sends its client, in a fleet: a legacy client's
/// answer that lands on another replica is then forwarded here. Each replica's copy of a
/// session takes its own random range of ids.
pub fn attach(gw: &Gateway, session: &crate::session::Session) {
    if let Some(h) = &gw.handoff {
        // Below 2^52: ids stay exact in clients that read numbers as doubles.
        let base = u64::from(rand::random::<u32>()) << 20;
        session.route_answers(h.clone(), base.max(1));
    }
}
