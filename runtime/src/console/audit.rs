//! The audit explorer: records selected by principal, tool, verdict, rule, time range and
//! policy commit, newest first; a record's page shows its place in the hash chain and whether
//! the live policy re-derives its verdict.

use super::layout::{self, Viewer};
use super::web;
use crate::audit::query::{self, Filter};
use crate::audit::{read, record, verify};
use crate::decision::LoadedProgram;
use maud::{Markup, html};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// Most records a search shows.
pub const MAX_SHOWN: usize = 200;

/// A search, as the form holds it.
#[derive(Debug, Default, Clone)]
pub struct Search {
    pub filter: Filter,
    pub rule: Option<String>,
    pub commit: Option<String>,
    pub until: Option<jiff::Timestamp>,
    /// The form's fields, to fill it in again.
    pub fields: HashMap<String, String>,
}

impl Search {
    /// Reads the query string; a time that cannot be read is an error for the form.
    ///
    /// # Errors
    /// The message to show above the form.
    pub fn from_query(fields: HashMap<String, String>, now_secs: u64) -> Result<Search, String> {
        let f = |k: &str| web::field(&fields, k).map(str::to_owned);
        let time = |k: &str| -> Result<Option<jiff::Timestamp>, String> {
            f(k).map(|t| query::parse_since(&t, now_secs)).transpose()
        };
        Ok(Search {
            filter: Filter {
                principal: f("principal"),
                on_behalf_of: f("on_behalf_of"),
                tool: f("tool"),
                verdict: f("verdict"),
                kind: f("type"),
                since: time("since")?,
            },
            rule: f("rule"),
            commit: f("commit"),
            until: time("until")?,
            fields,
        })
    }

    fn matches(&self, r: &Value) -> bool {
        let s = |p: &str| r.pointer(p).and_then(Value::as_str);
        if let Some(rule) = &self.rule
            && s("/rule") != Some(rule.as_str())
        {
            return false;
        }
        if let Some(c) = &self.commit
            && !s("/policy/commit").is_some_and(|x| x.starts_with(c.as_str()))
        {
            return false;
        }
        if let Some(until) = self.until
            && s("/time")
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_none_or(|t| t > until)
        {
            return false;
        }
        self.filter.matches(r)
    }
}

/// The newest records of the log in `dir` that `search` selects (at most [`MAX_SHOWN`]).
///
/// # Errors
/// When the log cannot be read.
pub fn find(dir: &Path, search: &Search) -> Result<Vec<Value>, String> {
    let files = read::files(dir)?;
    let mut out = VecDeque::new();
    read::for_each_line(&files, |line| {
        if let Ok(r) = serde_json::from_str::<Value>(&line.text)
            && search.matches(&r)
        {
            if out.len() == MAX_SHOWN {
                out.pop_front();
            }
            out.push_back(r);
        }
    })?;
    Ok(out.into_iter().rev().collect())
}

/// A record and where it sits in the chain.
#[derive(Debug)]
pub struct Found {
    pub record: Value,
    pub hash: String,
    pub file: PathBuf,
    pub line: usize,
    /// Whether the next record's `prev` is this record's hash (`None`: it is the last).
    pub next_links: Option<bool>,
}

/// Record `seq` of the log in `dir`.
///
/// # Errors
/// When the log cannot be read.
pub fn record(dir: &Path, seq: u64) -> Result<Option<Found>, String> {
    let files = read::files(dir)?;
    let mut found: Option<Found> = None;
    let mut done = false;
    read::for_each_line(&files, |line| {
        if done {
            return;
        }
        let Ok(r) = serde_json::from_str::<Value>(&line.text) else {
            return;
        };
        if let Some(f) = &mut found {
            f.next_links = Some(r.get("prev").and_then(Value::as_str) == Some(f.hash.as_str()));
            done = true;
            return;
        }
        if r.get("seq").and_then(Value::as_u64) == Some(seq) {
            found = Some(Found {
                hash: record::hash_hex(line.text.as_bytes()),
                record: r,
                file: files.get(line.file).cloned().unwrap_or_default(),
                line: line.line,
                next_links: None,
            });
        }
    })?;
    Ok(found)
}

/// What re-evaluating a decision record with the live policy says.
pub fn rederive(live: &LoadedProgram, r: &Value) -> Option<Result<(), String>> {
    if r.get("type").and_then(Value::as_str) != Some("decision") {
        return None;
    }
    let recorded = r.pointer("/policy/hash").and_then(Value::as_str);
    if recorded != Some(live.hash.as_str()) {
        return Some(Err(format!(
            "decided by program {}, the live one is {}: run `mcpgate audit verify --repo` to \
             check it against its own commit",
            recorded.unwrap_or("(unknown)"),
            live.hash
        )));
    }
    Some(match verify::check_decision(&live.program, r) {
        None => Ok(()),
        Some(diff) => Err(diff),
    })
}

fn s<'a>(r: &'a Value, p: &str) -> &'a str {
    r.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn form(search: &Search) -> Markup {
    let v = |k: &str| search.fields.get(k).cloned().unwrap_or_default();
    html! {
        form.search method="get" action="/console/audit" {
            label { "Principal " input type="text" name="principal" value=(v("principal")); }
            label { "On behalf of " input type="text" name="on_behalf_of" value=(v("on_behalf_of")); }
            label { "Tool " input type="text" name="tool" placeholder="server.tool or glob" value=(v("tool")); }
            label { "Verdict "
                select name="verdict" {
                    @for opt in ["", "allow", "deny", "hide", "approve"] {
                        option value=(opt) selected[v("verdict") == opt] { (if opt.is_empty() { "any" } else { opt }) }
                    }
                }
            }
            label { "Type "
                select name="type" {
                    @for opt in ["", "decision", "outcome", "list", "event"] {
                        option value=(opt) selected[v("type") == opt] { (if opt.is_empty() { "any" } else { opt }) }
                    }
                }
            }
            label { "Rule " input type="text" name="rule" value=(v("rule")); }
            label { "Since " input type="text" name="since" placeholder="2026-12-06T10:00:00Z or 2h" value=(v("since")); }
            label { "Until " input type="text" name="until" placeholder="RFC 3339 time" value=(v("until")); }
            label { "Commit " input type="text" name="commit" value=(v("commit")); }
            button type="submit" { "Search" }
        }
    }
}

/// The explorer page: the form, and the records or why there are none.
pub fn page(viewer: &Viewer<'_>, search: &Search, result: &Result<Vec<Value>, String>) -> Markup {
    let body = html! {
        h1 { "Audit log" }
        (form(search))
        @match result {
            Err(e) => p.error role="alert" { (e) },
            Ok(records) if records.is_empty() => p.empty { "No records match." },
            Ok(records) => {
                p.hint { (records.len()) " newest matching records" @if records.len() == MAX_SHOWN { " (refine the search to see older ones)" } "." }
                table.records {
                    thead { tr { th { "#" } th { "Time" } th { "Type" } th { "Principal" } th { "Target" } th { "Verdict" } th { "Rule" } } }
                    tbody {
                        @for r in records {
                            @let seq = r.get("seq").and_then(Value::as_u64).unwrap_or(0);
                            tr.record data-seq=(seq) {
                                td { a href={ "/console/audit/" (seq) } { (seq) } }
                                td { (s(r, "/time")) }
                                td { (s(r, "/type")) @if !s(r, "/event").is_empty() { " " (s(r, "/event")) } }
                                td { (s(r, "/principal/id")) }
                                td { @if !s(r, "/server").is_empty() { code { (s(r, "/server")) @if !s(r, "/target/name").is_empty() { "." (s(r, "/target/name")) } } } }
                                td class={ "verdict " (s(r, "/verdict")) } { (s(r, "/verdict")) }
                                td { (s(r, "/rule")) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page("Audit", "/console/audit", Some(viewer), &body)
}

/// One record's page.
pub fn record_page(
    viewer: &Viewer<'_>,
    seq: u64,
    found: &Found,
    check: Option<&Result<(), String>>,
) -> Markup {
    let r = &found.record;
    let body = html! {
        h1 { "Audit record #" (seq) }
        h2 { "Chain" }
        dl.chain {
            dt { "Position" } dd { "record " (seq) ", line " (found.line) " of " (read::name(&found.file)) }
            dt { "Previous hash" } dd { code { (s(r, "/prev")) } }
            dt { "This record's hash" } dd { code.hash { (found.hash) } }
            dt { "Next record" }
            dd { @match found.next_links {
                None => "none yet (the newest record)",
                Some(true) => "links to this hash",
                Some(false) => strong.bad { "does NOT link to this hash: run `mcpgate audit verify`" },
            } }
        }
        @if let Some(check) = check {
            h2 { "Verdict" }
            @match check {
                Ok(()) => p.rederived.ok { "The live policy re-derives this verdict (" (s(r, "/verdict")) ", rule " (s(r, "/rule")) ")." },
                Err(e) => p.rederived.bad { "Not re-derived: " (e) },
            }
        }
        h2 { "Record" }
        pre.record { (serde_json::to_string_pretty(r).unwrap_or_default()) }
        p { a href="/console/audit" { "Back to the search" } }
    };
    layout::page("Audit record", "/console/audit", Some(viewer), &body)
}
