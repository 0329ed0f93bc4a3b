//! The approvals inbox: the pending calls the signed-in person may decide (a member of one of
//! the rule's `by` groups, never the caller), approve or deny with a reason, and a stream that
//! tells the page when the list changed.

use super::layout::{self, Viewer};
use super::web;
use crate::approvals::approval::{self, Approval};
use crate::approvals::{Approvals, Approver, api, authorize};
use crate::gateway::Gateway;
use crate::gateway::http::Body;
use crate::sse;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use maud::{Markup, html};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most pending approvals listed.
const MAX_LISTED: usize = 500;
/// How often an idle event stream gets a comment line.
const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// The pending approvals `approver` may decide, oldest first.
pub async fn pending(approvals: &Approvals, approver: &Approver) -> Result<Vec<Approval>, String> {
    let all = approvals
        .db(|s| {
            s.expire_overdue(approval::now_ms())?;
            s.list(false, MAX_LISTED)
        })
        .await
        .ok_or("the state database is unavailable")?
        .map_err(|e| format!("state database: {e}"))?;
    let mut mine: Vec<Approval> = all
        .into_iter()
        .filter(|a| authorize(a, approver).is_ok())
        .collect();
    mine.sort_by_key(|a| a.created_ms);
    Ok(mine)
}

/// The list of pending approvals: the part of the page the script refreshes.
pub fn list(items: &[Approval], csrf: &str) -> Markup {
    html! {
        div #inbox data-count=(items.len()) {
            @if items.is_empty() {
                p.empty { "Nothing waits for your decision." }
            }
            @for a in items {
                article.approval data-id=(a.id) {
                    h2 { code { (a.server) "." (a.tool) } }
                    dl {
                        dt { "Requested by" }
                        dd.requester {
                            (a.principal.id)
                            @if !a.principal.groups.is_empty() { " (" (a.principal.groups.join(", ")) ")" }
                            @if let Some(agent) = &a.agent { ", agent " (agent) }
                        }
                        dt { "Rule" }
                        dd { code { (a.rule) } " at " (a.rule_source)
                            @if let Some(r) = &a.reason { ": " (r) } }
                        dt { "Decided by" }
                        dd.approvers { "a member of " (a.approvers.join(" or ")) }
                        dt { "Requested" }
                        dd { (layout::time_ms(a.created_ms)) }
                        dt { "Expires" }
                        dd { (layout::time_ms(a.expires_ms)) }
                    }
                    h3 { "Arguments" }
                    pre.arguments { (serde_json::to_string_pretty(&a.arguments).unwrap_or_default()) }
                    div.decide {
                        form method="post" action={ "/console/approvals/" (a.id) "/approve" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="text" name="note" placeholder="Note (optional)" aria-label="Note";
                            button.approve type="submit" { "Approve" }
                        }
                        form method="post" action={ "/console/approvals/" (a.id) "/deny" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="text" name="reason" required placeholder="Reason (required)" aria-label="Reason";
                            button.deny type="submit" { "Deny" }
                        }
                    }
                }
            }
        }
    }
}

/// The inbox page.
pub fn page(viewer: &Viewer<'_>, items: &[Approval], flash: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Pending approvals" }
        @if let Some(f) = flash { p.flash role="status" { (f) } }
        p.hint { "Calls held by an " code { "approve" } " rule that you may decide. The list updates by itself." }
        (list(items, viewer.csrf))
    };
    layout::page("Approvals", "/console", Some(viewer), &body)
}

/// Approves or denies `id` from the console's form; the approvals API's own checks apply.
pub async fn decide(
    approvals: &Approvals,
    approver: &Approver,
    id: &str,
    approve: bool,
    fields: &HashMap<String, String>,
) -> Result<String, (StatusCode, String)> {
    let note = web::field(fields, if approve { "note" } else { "reason" }).map(str::to_owned);
    if !approve && note.is_none() {
        return Err((StatusCode::BAD_REQUEST, "A denial needs a reason.".into()));
    }
    let (status, value) = api::decide(approvals, approver, id, approve, note).await;
    if status == StatusCode::OK {
        let verb = if approve { "Approved" } else { "Denied" };
        Ok(format!("{verb} {id}."))
    } else {
        let text = value
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("the decision was refused")
            .to_owned();
        Err((status, text))
    }
}

/// `text/event-stream` of `changed` events, one whenever the approvals may have changed
/// (the script then fetches the list again); ends with the gateway.
pub fn events(gw: &Arc<Gateway>, approvals: &Arc<Approvals>) -> Response<Body> {
    let mut changed = approvals.subscribe();
    let shutdown = gw.shutdown.clone();
    let (tx, mut rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEEP_ALIVE);
        tick.tick().await;
        // A first event: the page refreshes whatever changed before it connected.
        if tx.send(event()).await.is_err() {
            return;
        }
        loop {
            let next = tokio::select! {
                c = changed.changed() => match c {
                    Ok(()) => event(),
                    Err(_) => return,
                },
                _ = tick.tick() => sse::keep_alive(),
                () = shutdown.cancelled() => return,
                () = tx.closed() => return,
            };
            if tx.send(next).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    r
}

fn event() -> Bytes {
    Bytes::from_static(b"event: changed\ndata: approvals\n\n")
}
