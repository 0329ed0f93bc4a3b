//! `who-can` and `can` reports as text for a terminal and as Markdown for review.

use super::reach::{Access, Condition, Reach};

fn conds(list: &[Condition], none: &str) -> String {
    if list.is_empty() {
        return none.to_owned();
    }
    list.iter()
        .map(|c| format!("{}: {}", c.on, c.is))
        .collect::<Vec<_>>()
        .join("; ")
}

fn verdict(a: &Access) -> String {
    let mut s = a.verdict.to_string();
    if !a.approvers.is_empty() {
        s.push_str(&format!(" [{}]", a.approvers.join(", ")));
    }
    if a.undecided {
        s.push_str(" (condition undecidable: applies, failing closed)");
    }
    s
}

fn caveats(r: &Reach) -> Vec<String> {
    let mut out = Vec::new();
    if !r.opaque.is_empty() {
        out.push(format!(
            "opaque to the analysis (split on true/false; some regions may hold no request): {}",
            r.opaque.join("; ")
        ));
    }
    if !r.overlapping.is_empty() {
        out.push(format!(
            "paths inside other tested paths (some regions may hold no request): {}",
            r.overlapping.join(", ")
        ));
    }
    if !r.incomplete.is_empty() {
        out.push(format!(
            "classes may miss some values of: {}",
            r.incomplete.join(", ")
        ));
    }
    out
}

fn status(r: &Reach) -> &'static str {
    if r.exact {
        "exact"
    } else if r.complete {
        "complete, with opaque parts"
    } else {
        "approximate"
    }
}

fn refusals(r: &Reach) -> String {
    r.refused_by
        .iter()
        .map(|x| format!("{} ({})", x.rule, x.verdict))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plain text, one block per target; `who` shows the conditions on the caller (off for a
/// report about one principal).
pub fn plain(reports: &[Reach], who: bool) -> String {
    let mut out = String::new();
    for r in reports {
        let what = if r.pattern {
            format!("{} (any name only this pattern matches)", r.target)
        } else {
            r.target.clone()
        };
        out.push_str(&format!("{what} [{}]\n", status(r)));
        if r.access.is_empty() {
            out.push_str("  no one\n");
        }
        for a in &r.access {
            out.push_str(&format!(
                "  {} by rule {} ({})",
                verdict(a),
                a.rule,
                a.source
            ));
            if let Some(c) = &a.condition {
                out.push_str(&format!(": when {c}"));
            }
            out.push('\n');
            if who {
                out.push_str(&format!("    who:  {}\n", conds(&a.who, "anyone")));
            }
            out.push_str(&format!("    when: {}\n", conds(&a.when, "any call")));
            for l in &a.limits {
                let when = l
                    .when
                    .as_ref()
                    .map_or(String::new(), |w| format!(" when {w}"));
                out.push_str(&format!("    limit: {} ({}){when}\n", l.quota, l.rule));
            }
        }
        if !r.refused_by.is_empty() {
            out.push_str(&format!("  refused otherwise by: {}\n", refusals(r)));
        }
        for c in caveats(r) {
            out.push_str(&format!("  note: {c}\n"));
        }
    }
    out
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Markdown: a heading per target and a table of who gets through, when, and why; `who`
/// as for [`plain`].
pub fn markdown(title: &str, reports: &[Reach], who: bool) -> String {
    let mut out = format!("# {title}\n");
    for r in reports {
        out.push_str(&format!("\n## `{}`\n\n", r.target));
        if r.pattern {
            out.push_str("Any name only this pattern matches.\n\n");
        }
        out.push_str(&format!("Analysis: {}.\n\n", status(r)));
        if r.access.is_empty() {
            out.push_str("No one.\n");
        } else {
            out.push_str(if who {
                "| verdict | who | when | rule | limits |\n|---|---|---|---|---|\n"
            } else {
                "| verdict | when | rule | limits |\n|---|---|---|---|\n"
            });
            for a in &r.access {
                let limits: Vec<String> = a
                    .limits
                    .iter()
                    .map(|l| {
                        let when = l
                            .when
                            .as_ref()
                            .map_or(String::new(), |w| format!(" when `{w}`"));
                        format!("{} (`{}`){when}", l.quota, l.rule)
                    })
                    .collect();
                let who_cell = if who {
                    format!(" {} |", cell(&conds(&a.who, "anyone")))
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "| {} |{who_cell} {} | `{}` | {} |\n",
                    cell(&verdict(a)),
                    cell(&conds(&a.when, "any call")),
                    cell(&a.rule),
                    cell(&limits.join("; "))
                ));
            }
        }
        if !r.refused_by.is_empty() {
            out.push_str(&format!(
                "\nRefused otherwise by: {}.\n",
                cell(&refusals(r))
            ));
        }
        for c in caveats(r) {
            out.push_str(&format!("\nNote: {}.\n", cell(&c)));
        }
    }
    out
}
