//! Multi round-trip calls for legacy clients in front of stateless upstreams. A stateless
//! (2026-07-28) server that needs input mid-call answers `resultType: "input_required"` with
//! `inputRequests` (elicitation, sampling, roots) and a `requestState`. A legacy client knows
//! nothing of that, but it takes server-to-client requests on the call's response stream: the
//! gateway sends each input request there (under an id unique in the session), collects the
//! client's answers, and retries the call upstream with `inputResponses` keyed as the server
//! asked and its `requestState` echoed, until the server gives a final result.
//!
//! The retry is the same client call, already decided and audited: the call's one audit
//! outcome is recorded from the final answer. Rounds are bounded, and so is each wait (the
//! upstream's timeout); a client that disconnects or cancels the call ends it.

mod requests;

use crate::gateway::relay::{self, Reply, Transform};
use crate::jsonrpc;
use crate::session::Session;
use crate::session::inputs::id_key;
use crate::upstream::{Exchange, ExtraHeader, UpstreamError, UpstreamSession};
use requests::{declared, input_requests, is_input_required};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Most `input_required` rounds one call may take.
pub const MAX_ROUNDS: usize = 8;
/// Methods a stateless server may answer with `input_required`.
const BRIDGED_METHODS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// Whether `message`, sent to `upstream` in `session`, runs through the bridge.
pub fn applies(session: &Session, upstream: &UpstreamSession, message: &Value) -> bool {
    upstream.is_modern()
        && session.inputs.enabled()
        && jsonrpc::method(message).is_some_and(|m| BRIDGED_METHODS.contains(&m))
}

/// Hands a client's answer to the input request it answers; gives the message back when it
/// answers none of the bridge's requests.
pub fn deliver(session: &Session, message: Value) -> Option<Value> {
    let Some(id) = message.get("id") else {
        return Some(message);
    };
    match session.inputs.take_waiter(id) {
        Some(tx) => {
            // The call may have ended meanwhile: the answer is then dropped.
            let _ = tx.send(message);
            None
        }
        None => Some(message),
    }
}

/// Cancels the bridged call the client names in `notifications/cancelled`; `false` when no
/// such call runs here.
pub fn cancel(session: &Session, client_id: &Value) -> bool {
    session.inputs.cancel(client_id)
}

/// Registers a running call, and forgets it (and its unanswered input requests) on drop.
struct Running {
    session: Arc<Session>,
    client_key: String,
    token: Arc<CancellationToken>,
    asked: Vec<String>,
}

impl Running {
    fn new(session: Arc<Session>, client_id: &Value) -> Running {
        let token = Arc::new(CancellationToken::new());
        let client_key = id_key(client_id);
        session.inputs.start_call(client_key.clone(), token.clone());
        Running {
            session,
            client_key,
            token,
            asked: Vec::new(),
        }
    }

    /// A fresh client-facing id for an input request, and where its answer arrives.
    fn ask(&mut self) -> (Value, oneshot::Receiver<Value>) {
        let id = self.session.next_id();
        let (tx, rx) = oneshot::channel();
        let key = id_key(&id);
        self.session.inputs.wait_for(key.clone(), tx);
        self.session.announce(&id);
        self.asked.push(key);
        (id, rx)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A newer call may reuse the client's id: forget only this one.
        self.session.inputs.end_call(&self.client_key, &self.token);
        self.session.inputs.forget_waits(&self.asked);
    }
}

/// Forwards a call to a stateless upstream and drives its `input_required` rounds with the
/// legacy client. Answers with plain JSON when the first round is final and nothing came
/// before it, otherwise with a stream. `extra` (the call's signed assertion) rides on every
/// round.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    session: Arc<Session>,
    server: &str,
    upstream: &UpstreamSession,
    message: Value,
    client_id: Value,
    transform: Option<Transform>,
    timeout: Duration,
    extra: Option<ExtraHeader>,
) -> Reply {
    let (tx, mut rx) = mpsc::channel(64);
    let call = Call {
        running: Running::new(session.clone(), &client_id),
        session,
        server: server.to_owned(),
        upstream: upstream.clone(),
        message,
        timeout,
        tx,
        extra,
    };
    let answer_id = client_id.clone();
    // In the call's span: its upstream requests carry the call's `traceparent`.
    let task = async move {
        let mut call = call;
        if let Some(last) = call.drive().await {
            let last = jsonrpc::with_id(last, client_id);
            let last = match transform {
                Some(t) => t.apply(last),
                None => last,
            };
            let _ = call.tx.send(last).await;
        }
    };
    tokio::spawn(tracing::Instrument::in_current_span(task));
    let Some(first) = rx.recv().await else {
        return Reply::Json(jsonrpc::error(
            answer_id,
            jsonrpc::INTERNAL_ERROR,
            "the call was cancelled",
        ));
    };
    if jsonrpc::is_response(&first) {
        return Reply::Json(first);
    }
    let (out, stream) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut next = Some(first);
        while let Some(m) = next {
            if out.send(m).await.is_err() {
                // The client went away: dropping `rx` ends the call.
                return;
            }
            next = rx.recv().await;
        }
    });
    Reply::Stream(stream)
}

/// One bridged call.
struct Call {
    running: Running,
    session: Arc<Session>,
    server: String,
    upstream: UpstreamSession,
    message: Value,
    timeout: Duration,
    tx: mpsc::Sender<Value>,
    extra: Option<ExtraHeader>,
}

/// How a wait ended early.
enum Stop {
    /// The client went away or cancelled the call: nothing more to send.
    Gone,
    /// The answer to send the client (a response without its final id).
    Answer(Value),
}

impl Call {
    /// Runs the rounds: the final response (its id still to be set), or `None` when the
    /// client is gone.
    async fn drive(&mut self) -> Option<Value> {
        let mut retry: Option<(Map<String, Value>, Option<Value>)> = None;
        for round in 0..=MAX_ROUNDS {
            let response = match self.round(retry.take()).await {
                Ok(r) => r,
                Err(Stop::Gone) => return None,
                Err(Stop::Answer(a)) => return Some(a),
            };
            let Some(result) = response.get("result").filter(|r| is_input_required(r)) else {
                return Some(response);
            };
            if round == MAX_ROUNDS {
                let text = format!(
                    "server `{}` asked for input more than {MAX_ROUNDS} times; the call was ended",
                    self.server
                );
                return Some(self.failure(&text));
            }
            let asked = match input_requests(result) {
                Ok(a) => a,
                Err(e) => {
                    let text = format!("server `{}` asked for input: {e}", self.server);
                    return Some(self.failure(&text));
                }
            };
            let state = result.get("requestState").cloned();
            let answers = match self.ask_client(asked).await {
                Ok(a) => a,
                Err(Stop::Gone) => return None,
                Err(Stop::Answer(a)) => return Some(a),
            };
            retry = Some((answers, state));
        }
        None
    }

    /// The refusal the client gets instead of a result: an `isError` result for a tool
    /// call, a JSON-RPC error otherwise.
    fn failure(&self, text: &str) -> Value {
        if jsonrpc::method(&self.message) == Some("tools/call") {
            json!({"jsonrpc": "2.0", "id": Value::Null, "result": {
                "content": [{"type": "text", "text": text}],
                "isError": true,
            }})
        } else {
            jsonrpc::error(Value::Null, jsonrpc::INTERNAL_ERROR, text)
        }
    }

    fn upstream_error(&self, e: &UpstreamError) -> Stop {
        Stop::Answer(jsonrpc::error(
            Value::Null,
            jsonrpc::INTERNAL_ERROR,
            &format!("server `{}`: {e}", self.server),
        ))
    }

    /// Sends the call (a retry carries the answers and the echoed state) under a new id and
    /// relays what comes before its response.
    async fn round(
        &mut self,
        retry: Option<(Map<String, Value>, Option<Value>)>,
    ) -> Result<Value, Stop> {
        let gid = self.session.next_id();
        let mut message = jsonrpc::with_id(self.message.clone(), gid.clone());
        if let Some((answers, state)) = retry
            && let Some(params) = message.get_mut("params").and_then(Value::as_object_mut)
        {
            params.insert("inputResponses".into(), Value::Object(answers));
            match state {
                Some(s) => params.insert("requestState".into(), s),
                None => params.remove("requestState"),
            };
        }
        let token = self.running.token.clone();
        let sent = tokio::select! {
            sent = self.upstream.request_with(message, self.extra.as_ref()) => sent,
            () = token.cancelled() => return Err(Stop::Gone),
            () = self.tx.closed() => return Err(Stop::Gone),
        };
        let mut exchange: Exchange = match sent {
            Ok(x) => x,
            Err(e) => return Err(self.upstream_error(&e)),
        };
        loop {
            // Dropping the exchange on the way out closes the upstream's response stream,
            // which is the stateless era's cancellation.
            let item = tokio::select! {
                item = tokio::time::timeout(self.timeout, exchange.recv()) => item,
                () = token.cancelled() => return Err(Stop::Gone),
                () = self.tx.closed() => return Err(Stop::Gone),
            };
            let m = match item {
                Err(_) => return Err(self.upstream_error(&UpstreamError::Timeout)),
                Ok(None) => {
                    return Err(self.upstream_error(&UpstreamError::Protocol(
                        "the exchange ended without a response".into(),
                    )));
                }
                Ok(Some(Err(e))) => return Err(self.upstream_error(&e)),
                Ok(Some(Ok(m))) => m,
            };
            if jsonrpc::is_response(&m) && m.get("id") == Some(&gid) {
                return Ok(m);
            }
            // Progress and logging pass; the stateless era has no server-to-client requests.
            if jsonrpc::is_request(&m) {
                continue;
            }
            if let Some(m) = relay::from_upstream(&self.session, &self.server, m)
                && self.tx.send(m).await.is_err()
            {
                return Err(Stop::Gone);
            }
        }
    }

    /// Sends the input requests to the client and waits for every answer.
    async fn ask_client(
        &mut self,
        asked: Vec<(String, String, Option<Value>)>,
    ) -> Result<Map<String, Value>, Stop> {
        let capabilities = self
            .upstream
            .client_capabilities()
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some((_, method, _)) = asked
            .iter()
            .find(|(_, method, params)| !declared(&capabilities, method, params.as_ref()))
        {
            let text = format!(
                "server `{}` needs the client to answer `{method}`, but the client did not \
                 declare that capability in `initialize`; the call was ended",
                self.server
            );
            return Err(Stop::Answer(self.failure(&text)));
        }
        let mut pending = Vec::with_capacity(asked.len());
        for (key, method, params) in asked {
            let (id, answer) = self.running.ask();
            let mut request = json!({"jsonrpc": "2.0", "id": id, "method": method});
            if let Some(p) = params {
                request["params"] = p;
            }
            if self.tx.send(request).await.is_err() {
                return Err(Stop::Gone);
            }
            pending.push((key, method, id, answer));
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let token = self.running.token.clone();
        let mut answers = Map::new();
        let mut unanswered: Vec<Value> = pending.iter().map(|(_, _, id, _)| id.clone()).collect();
        for (key, method, id, answer) in pending {
            let got = tokio::select! {
                got = tokio::time::timeout_at(deadline, answer) => got,
                () = token.cancelled() => {
                    self.withdraw(&unanswered, "the call was cancelled").await;
                    return Err(Stop::Gone);
                }
                () = self.tx.closed() => return Err(Stop::Gone),
            };
            let reply = match got {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => {
                    let text = format!("the answer to `{method}` was lost; the call was ended");
                    return Err(Stop::Answer(self.failure(&text)));
                }
                Err(_) => {
                    self.withdraw(&unanswered, "timed out").await;
                    let text = format!(
                        "the client did not answer `{method}` within {} s; the call was ended",
                        self.timeout.as_secs()
                    );
                    return Err(Stop::Answer(jsonrpc::error(
                        Value::Null,
                        jsonrpc::INTERNAL_ERROR,
                        &text,
                    )));
                }
            };
            unanswered.retain(|u| *u != id);
            match reply.get("result") {
                Some(result) => {
                    answers.insert(key, result.clone());
                }
                None => {
                    self.withdraw(&unanswered, "another request was refused")
                        .await;
                    let why = reply
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("no result");
                    let text = format!("the client refused `{method}`: {why}");
                    return Err(Stop::Answer(self.failure(&text)));
                }
            }
        }
        Ok(answers)
    }

    /// Tells the client the input requests it has not answered are no longer wanted.
    async fn withdraw(&self, ids: &[Value], reason: &str) {
        for id in ids {
            let note = jsonrpc::notification(
                "notifications/cancelled",
                json!({"requestId": id, "reason": reason}),
            );
            if self.tx.send(note).await.is_err() {
                return;
            }
        }
    }
}
