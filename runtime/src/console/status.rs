//! The status page: the live policy (commit, when it went live, the last sync error), the
//! upstreams, the tool changes held since review, and the signed-in person's own tokens and
//! the delegations they gave agents, each with a revoke button. Secrets never appear: tokens
//! and delegations are listed by their public id.

use super::layout::{self, Viewer};
use crate::delegation::{Delegation, Delegations};
use crate::gateway::Gateway;
use crate::identity::tokens::{TokenRecord, TokenStore};
use crate::lock::gate::HeldTool;
use maud::{Markup, html};
use serde_json::Value;

/// The signed-in person's tokens (revoked and expired ones too), newest first.
///
/// # Errors
/// When the token store cannot be read.
pub fn own_tokens(store: &TokenStore, subject: &str) -> Result<Vec<TokenRecord>, String> {
    let mut mine: Vec<TokenRecord> = store
        .list()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|t| t.subject == subject)
        .collect();
    mine.sort_by_key(|t| std::cmp::Reverse(t.created));
    Ok(mine)
}

/// A delegation as the page lists it: the record and where it stands (`active`, `expired`,
/// `revoked`, or `ended` when the token it was made with no longer holds).
pub type Standing = (Delegation, &'static str);

/// The delegations `person` gave (ended ones too), newest first.
///
/// # Errors
/// When the delegation or token store cannot be read.
pub fn own_delegations(
    delegations: &Delegations,
    person: &str,
    now: u64,
) -> Result<Vec<Standing>, String> {
    let mut mine = Vec::new();
    for d in delegations.list().map_err(|e| e.to_string())? {
        if d.person == person {
            let standing = delegations.standing(&d, now).map_err(|e| e.to_string())?;
            mine.push((d, standing));
        }
    }
    mine.sort_by_key(|(d, _)| std::cmp::Reverse(d.created));
    Ok(mine)
}

fn secs(t: u64) -> String {
    layout::time_secs(t)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn policy(p: Option<&Value>) -> Markup {
    let Some(p) = p else {
        return html! { p { "No policy follower (the program was given at start)." } };
    };
    let g = |ptr: &str| p.pointer(ptr).map(text).unwrap_or_else(|| "-".into());
    html! {
        dl.policy {
            dt { "Source" }
            dd { @match p.pointer("/source/url").and_then(Value::as_str) {
                Some(url) => { "git " code { (url) } " branch " code { (g("/source/branch")) } },
                None => { "folder " code { (g("/source/path")) } },
            } }
            dt { "Live commit" }
            dd { @match p.pointer("/live/commit").and_then(Value::as_str) {
                Some(c) => code.commit { (c) },
                None => "none (a folder)",
            } }
            dt { "Program hash" } dd { code { (g("/live/hash")) } }
            dt { "Live since" }
            dd.live-since {
                (p.pointer("/live/loaded_at").and_then(Value::as_u64).map_or_else(|| "-".to_owned(), secs))
                " (" (g("/live/from")) ")"
            }
            dt { "Rules" } dd { (g("/live/rules")) }
            dt { "Last fetch" } dd { (g("/last_fetch/at")) @if p.pointer("/last_fetch/error").is_some_and(|e| !e.is_null()) { " — " span.bad { (g("/last_fetch/error")) } } }
            dt { "Last sync error" }
            dd.last-error {
                @match p.get("last_error").filter(|e| !e.is_null()) {
                    None => "none",
                    Some(e) => span.bad { "commit " (e.get("commit").map(text).unwrap_or_default()) " at "
                        (e.get("at").map(text).unwrap_or_default()) ": "
                        (e.get("errors").map(text).unwrap_or_default()) }
                }
            }
            @if p.get("fail_closed").and_then(Value::as_bool) == Some(true) {
                dt { "Fail closed" } dd.bad { "yes: the policy could not be loaded, every call is denied" }
            }
        }
    }
}

fn pretty(v: Option<&Value>) -> String {
    v.map_or_else(
        || "(absent)".to_owned(),
        |v| serde_json::to_string_pretty(v).unwrap_or_default(),
    )
}

/// The held tools, each changed field as pinned beside as listed now.
fn held(tools: &[HeldTool]) -> Markup {
    html! {
        @if tools.is_empty() {
            p.empty { "No tool changes are held." }
        } @else {
            p.hint { "Review, then pin what you accept with " code { "mcpgate lock" } " and commit the lock file." }
            @for t in tools {
                article.held data-tool={ (t.server) "." (t.tool) } {
                    h3 { code { (t.server) "." (t.tool) } " " span.bad { (t.reason) } }
                    @if t.changes.is_empty() {
                        p.empty { "No field to show." }
                    } @else {
                        table.diff {
                            thead { tr { th { "Field" } th { "Pinned" } th { "Listed now" } } }
                            tbody {
                                @for c in &t.changes {
                                    tr {
                                        td { code { (c.field) } }
                                        td.pinned { pre { (pretty(c.pinned.as_ref())) } }
                                        td.listed { pre { (pretty(c.listed.as_ref())) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The status page.
pub fn page(
    gw: &Gateway,
    viewer: &Viewer<'_>,
    tokens: &Result<Vec<TokenRecord>, String>,
    delegations: &Result<Vec<Standing>, String>,
    flash: Option<&str>,
) -> Markup {
    let loaded = gw.program.load_full();
    let policy_json = gw.policy.get().map(|p| p.status_json());
    let held_tools = crate::lock::gate::held_changes(&loaded.pins);
    let now = crate::clock::now_secs();
    let body = html! {
        h1 { "Gateway status" }
        @if let Some(f) = flash { p.flash role="status" { (f) } }
        h2 { "Policy" }
        (policy(policy_json.as_ref()))
        h2 { "Upstreams" }
        p { (gw.sessions.len()) " client sessions open." }
        table.upstreams {
            thead { tr { th { "Server" } th { "Request timeout" } th { "Calls answered" } th { "Mean latency" } th { "Failures since start" } } }
            tbody {
                @for (name, up) in &gw.upstreams {
                    @let stats = crate::metrics::upstream(name);
                    @let failures = stats.failures();
                    tr {
                        td { (name) }
                        td { (up.timeout().as_secs()) " s" }
                        td { (stats.answered()) }
                        td { (stats.mean().map_or_else(|| "-".to_owned(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))) }
                        td class=[(!failures.is_empty()).then_some("bad")] {
                            @if failures.is_empty() { "none" } @else {
                                (failures.iter().map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", "))
                            }
                        }
                    }
                }
            }
        }
        h2 { "Held tool changes" }
        (held(&held_tools))
        h2 { "Your tokens" }
        @match tokens {
            Err(e) => p.error { (e) },
            Ok(list) if list.is_empty() => p.empty { "No gateway tokens are issued to you." },
            Ok(list) => table.tokens {
                thead { tr { th { "Id" } th { "Issued" } th { "Expires" } th { "Servers" } th { "Reason" } th { "Status" } th {} } }
                tbody {
                    @for t in list {
                        @let status = t.status(now);
                        tr data-token=(t.id) {
                            td { code { (t.id) } }
                            td { (secs(t.created)) }
                            td { (t.expires.map_or_else(|| "never".to_owned(), secs)) }
                            td { (t.servers.as_ref().map_or_else(|| "any".to_owned(), |s| s.join(", "))) }
                            td { (t.reason) }
                            td { (status.as_str()) }
                            td { @if status == crate::identity::tokens::Status::Active {
                                form method="post" action={ "/console/tokens/" (t.id) "/revoke" } {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    button.deny type="submit" { "Revoke" }
                                }
                            } }
                        }
                    }
                }
            },
        }
        h2 { "Your delegations" }
        (own_delegations_table(viewer, delegations))
    };
    layout::page("Status", "/console/status", Some(viewer), &body)
}

/// The agents the signed-in person lets act for them, each active one with **Revoke**.
fn own_delegations_table(viewer: &Viewer<'_>, list: &Result<Vec<Standing>, String>) -> Markup {
    html! {
        @match list {
            Err(e) => p.error { (e) },
            Ok(list) if list.is_empty() => p.empty { "You have delegated nothing to an agent." },
            Ok(list) => table.delegations {
                thead { tr { th { "Id" } th { "Agent" } th { "Tools" } th { "Reason" } th { "Expires" } th { "Status" } th {} } }
                tbody {
                    @for (d, standing) in list {
                        tr data-delegation=(d.id) {
                            td { code { (d.id) } }
                            td { (d.agent) }
                            td { (d.tools.join(", ")) }
                            td { (d.reason) }
                            td { (secs(d.expires)) }
                            td.status { (standing) }
                            td { @if *standing == "active" {
                                form method="post" action={ "/console/delegations/" (d.id) "/revoke" } {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    button.deny type="submit" { "Revoke" }
                                }
                            } }
                        }
                    }
                }
            },
        }
    }
}
