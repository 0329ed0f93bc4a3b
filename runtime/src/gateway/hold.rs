//! Holding one tool call for the approvals service: use an approval its caller left undelivered, or wait on a pending
//! one (new or the same call's), streaming progress notifications if the client asked for
//! them, then forward the call or answer the denial.

use crate::approvals::approval::{self, Approval, CallKey, NewApproval, Status};
use crate::approvals::{Approvals, group_list};
use crate::audit::decision::Pending;
use crate::decision::LoadedProgram;
use crate::decision::outcome::{Hold, Outcome, denied_tool_result};
use crate::decision::quota::{self, Claim, QuotaStore};
use crate::gateway::relay::{self, Reply, Transform};
use crate::jsonrpc;
use crate::session::Session;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a waiting client that asked for progress hears from the gateway.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// A held call whose upstream timeout is unknown waits this long for the upstream.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(65);

/// The held call: which session, what it asks for, under which client id.
pub struct Call {
    pub session: Arc<Session>,
    pub server: String,
    pub tool: String,
    /// The `tools/call` message as it goes upstream (the upstream's tool name).
    pub message: Value,
    pub client_id: Value,
    /// How long to wait for the upstream once approved.
    pub upstream_timeout: Duration,
    /// The audit log's record of this request, awaiting its outcome.
    pub audit: Option<Pending>,
    /// The `redact` rules' masks for the result.
    pub masks: Option<Transform>,
    /// The deciding program's `limit` buckets the call counts against when it runs.
    pub quotas: Option<Quotas>,
    /// The signed assertion its server expects, signed when the call is forwarded.
    pub assertion: Option<crate::gateway::assertion::Prepared>,
}

/// Where a held call takes its calls from when it runs: the deciding program, the store
/// and the buckets its decision named.
pub struct Quotas {
    pub loaded: Arc<LoadedProgram>,
    pub store: Arc<dyn QuotaStore>,
    pub claims: Vec<Claim>,
}

impl Call {
    pub fn new(
        session: &Arc<Session>,
        server: &str,
        tool: &str,
        message: Value,
        client_id: Value,
        audit: Option<Pending>,
    ) -> Call {
        Call {
            session: session.clone(),
            server: server.to_owned(),
            tool: tool.to_owned(),
            message,
            client_id,
            upstream_timeout: UPSTREAM_TIMEOUT,
            audit,
            masks: None,
            quotas: None,
            assertion: None,
        }
    }

    /// Forwarded with this assertion, signed when it runs.
    pub fn assertion(mut self, assertion: Option<crate::gateway::assertion::Prepared>) -> Call {
        self.assertion = assertion;
        self
    }

    /// With the `redact` rules' masks for the result.
    pub fn masks(mut self, masks: Option<Transform>) -> Call {
        self.masks = masks;
        self
    }

    /// Counted against the `limit` buckets of its decision when it runs.
    pub fn quotas(mut self, quotas: Quotas) -> Call {
        self.quotas = Some(quotas);
        self
    }

    /// With the upstream's timeout.
    pub fn timeout(mut self, t: Duration) -> Call {
        self.upstream_timeout = t;
        self
    }

    fn arguments(&self) -> Value {
        self.message
            .pointer("/params/arguments")
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn key(&self) -> CallKey {
        CallKey {
            principal: self.session.principal.id.clone(),
            // An agent under a delegation reuses only approvals of the same person.
            on_behalf_of: self.session.principal.on_behalf_of().map(str::to_owned),
            server: self.server.clone(),
            tool: self.tool.clone(),
            args_hash: approval::args_hash(&self.arguments()),
        }
    }
}

/// The denial `text` as the held call's answer, with its outcome in the audit log.
fn refused(call: &mut Call, text: &str) -> Value {
    let answer = denied_tool_result(call.client_id.clone(), text);
    if let Some(p) = call.audit.as_mut() {
        p.finish(&answer);
    }
    answer
}

/// Holds `call` under the `approve` rule `hold`; `program` is the deciding program's hash.
pub async fn hold(approvals: Arc<Approvals>, mut call: Call, hold: &Hold, program: &str) -> Reply {
    let key = call.key();
    let now = approval::now_ms();
    // The requester as the decision saw it: with its `principals.yaml` groups and agent.
    let principal = match &call.quotas {
        Some(q) => q.loaded.principal(&call.session.principal).into_owned(),
        None => call.session.principal.clone(),
    };
    let new = NewApproval {
        on_behalf_of: principal.on_behalf_of().map(str::to_owned),
        server: call.server.clone(),
        tool: call.tool.clone(),
        arguments: call.arguments(),
        agent: crate::decision::caller::agent_of(&principal).map(str::to_owned),
        principal,
        client: call.session.client_name.clone(),
        session: call.session.sid.clone(),
        rule: hold.rule.clone(),
        rule_source: hold.source.clone(),
        reason: hold.reason.clone(),
        approvers: hold.groups.clone(),
        program: program.to_owned(),
        timeout: approvals.timeout,
        grant: approvals.grant,
        request_id: call.audit.as_ref().map(|p| p.request_id().to_owned()),
    };
    // An approval the caller never received (it went away, or the gateway restarted) lets
    // the same call through once; a pending approval of the same call is waited on.
    let found = approvals
        .db(
            move |s| -> crate::approvals::store::Result<(Approval, bool, bool)> {
                if let Some(a) = s.take_grant(&key, now)? {
                    return Ok((a, true, false));
                }
                if let Some(a) = s.pending_for(&key, now)? {
                    return Ok((a, false, false));
                }
                Ok((s.create(&new, now)?, false, true))
            },
        )
        .await;
    let (approval, granted, created) = match found {
        Some(Ok(x)) => x,
        other => {
            if let Some(Err(e)) = other {
                tracing::error!(error = %e, "cannot record an approval");
            }
            let text = hold.refusal("the gateway could not record the approval request");
            return Reply::Json(refused(&mut call, &text));
        }
    };
    if granted {
        approvals.notify();
        return forward(&mut call).await;
    }
    if created {
        approvals.announce(&approval);
        approvals.notify();
    }
    tracing::info!(
        approval = %approval.id,
        principal = %approval.principal.id,
        call = %hold.target,
        by = %group_list(&approval.approvers),
        "call held for approval"
    );
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(wait(approvals, call, approval, tx));
    Reply::Stream(rx)
}

/// A `notifications/progress` for `token`, if the client asked for progress.
fn progress(token: Option<&Value>, approval: &Approval, now: i64, text: &str) -> Option<Value> {
    let token = token?;
    let elapsed = (now - approval.created_ms).max(0) / 1000;
    let total = (approval.expires_ms - approval.created_ms).max(0) / 1000;
    Some(jsonrpc::notification(
        "notifications/progress",
        json!({"progressToken": token, "progress": elapsed, "total": total, "message": text}),
    ))
}

/// Waits for the decision, then answers on `tx`. If the client goes away, the approval
/// stays pending (a later approval becomes a grant for the client's retry).
async fn wait(
    approvals: Arc<Approvals>,
    mut call: Call,
    approval: Approval,
    tx: mpsc::Sender<Value>,
) {
    let token = call.message.pointer("/params/_meta/progressToken").cloned();
    let waiting = format!(
        "waiting for approval {} by {} (rule {})",
        approval.id,
        group_list(&approval.approvers),
        approval.rule
    );
    if let Some(p) = progress(token.as_ref(), &approval, approval::now_ms(), &waiting)
        && tx.send(p).await.is_err()
    {
        return;
    }
    let mut changes = approvals.subscribe();
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    let remaining = u64::try_from(approval.expires_ms - approval::now_ms()).unwrap_or(0);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(remaining);
    let mut timed_out = false;
    let id = approval.id.clone();
    let current = loop {
        let now = approval::now_ms();
        let expire = timed_out;
        let id2 = id.clone();
        let read = approvals
            .db(move |s| {
                if expire {
                    s.expire(&id2, now)?;
                }
                s.get(&id2)
            })
            .await;
        match read {
            Some(Ok(Some(a))) if a.status != Status::Pending => break a,
            Some(Ok(Some(_))) => {}
            Some(Ok(None)) | Some(Err(_)) | None => {
                let text = format!("approval {id} could not be read from the state database");
                let _ = tx.send(refused(&mut call, &text)).await;
                return;
            }
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep_until(deadline), if !timed_out => timed_out = true,
            // Past the deadline and still pending: another process holds the write lock.
            () = tokio::time::sleep(Duration::from_millis(500)), if timed_out => {}
            _ = tick.tick() => {
                if let Some(p) = progress(token.as_ref(), &approval, approval::now_ms(), &waiting)
                    && tx.send(p).await.is_err()
                {
                    return;
                }
            }
            () = tx.closed() => {
                tracing::info!(approval = %id, "the caller of a held call went away; the approval stays pending");
                return;
            }
        }
    };
    let answer = match current.status {
        Status::Approved => {
            let id2 = id.clone();
            let claimed = approvals
                .db(move |s| s.claim(&id2, approval::now_ms()))
                .await;
            if let Some(Ok(true)) = claimed {
                if let Some(p) = progress(
                    token.as_ref(),
                    &current,
                    approval::now_ms(),
                    &format!(
                        "approved by {}",
                        current.decided_by.as_deref().unwrap_or("an approver")
                    ),
                ) && tx.send(p).await.is_err()
                {
                    return;
                }
                approvals.notify();
                let reply = forward(&mut call).await;
                relay_all(reply, &tx, &call.client_id).await;
                return;
            }
            format!(
                "approval {id} was approved, but the approved call has already run once \
                 (a retry used it)"
            )
        }
        Status::Denied => {
            let mut text = format!(
                "denied: approval {id} was refused by {}",
                current.decided_by.as_deref().unwrap_or("an approver")
            );
            if let Some(note) = &current.note {
                text.push_str(": ");
                text.push_str(note);
            }
            text.push_str(&format!(" (rule {})", current.rule));
            text
        }
        Status::Expired => {
            let secs = (current.expires_ms - current.created_ms).max(0) / 1000;
            format!(
                "denied: approval {id} timed out after {secs}s; nobody in {} decided (rule {})",
                group_list(&current.approvers),
                current.rule
            )
        }
        Status::Executed => format!("approval {id} was already used by a retry of this call"),
        Status::Pending => return,
    };
    let _ = tx.send(refused(&mut call, &answer)).await;
}

/// Forwards the approved call upstream, once it has room in every matching `limit`.
async fn forward(call: &mut Call) -> Reply {
    if let Some(q) = call.quotas.take() {
        let outcome = quota::take(q.store.as_ref(), &q.loaded.program, &q.claims);
        if let Outcome::Deny(text) = outcome {
            tracing::info!(call = %format!("{}.{}", call.server, call.tool), "approved call refused by a limit");
            return Reply::Json(refused(call, &text));
        }
    }
    let Some(up) = call.session.upstreams.get(&call.server) else {
        return Reply::SessionGone;
    };
    // Signed now, so its lifetime counts from the approval, not from the request.
    let assertion = match call.assertion.as_ref().map(|p| p.sign()).transpose() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "approved call refused: its assertion cannot be signed");
            return Reply::Json(refused(
                call,
                "the gateway could not sign this call's assertion; it was not forwarded",
            ));
        }
    };
    // In the call's span: the approved call's upstream request carries its `traceparent`.
    let span = call
        .audit
        .as_ref()
        .map_or_else(tracing::Span::none, |p| p.span().clone());
    let transform = crate::gateway::redact::with_audit(call.audit.take(), call.masks.take());
    tracing::Instrument::instrument(
        relay::forward_with(
            call.session.clone(),
            &call.server,
            up,
            call.message.clone(),
            call.client_id.clone(),
            transform,
            call.upstream_timeout,
            assertion,
        ),
        span,
    )
    .await
}

/// Passes a forwarded call's reply into the held call's stream.
async fn relay_all(reply: Reply, tx: &mpsc::Sender<Value>, client_id: &Value) {
    match reply {
        Reply::Json(v) => {
            let _ = tx.send(v).await;
        }
        Reply::Raw(bytes) => {
            let _ = tx.send(relay::decode(&bytes)).await;
        }
        Reply::Stream(mut rx) => {
            while let Some(m) = rx.recv().await {
                if tx.send(m).await.is_err() {
                    return;
                }
            }
        }
        Reply::Accepted => {}
        Reply::SessionGone => {
            let _ = tx
                .send(jsonrpc::error(
                    client_id.clone(),
                    jsonrpc::INVALID_REQUEST,
                    "session not found upstream; initialize again",
                ))
                .await;
        }
    }
}
