//! The Markdown of a policy diff, for a pull request comment.

use super::{Flip, PolicyDiff};

/// Rows shown per target before the rest fold into a collapsed block.
const ROWS_SHOWN: usize = 10;

/// The marker the GitHub Action looks for to update its own comment.
pub const COMMENT_MARKER: &str = "<!-- mcpgate-diff -->";

/// A pull request comment: a summary line, the rule changes, one table per target of the
/// flipped verdicts (widening ones in bold), and the details folded.
pub fn markdown(d: &PolicyDiff, base: &str) -> String {
    let mut out = format!("{COMMENT_MARKER}\n### mcpgate policy diff\n\n");
    let icon = if d.widens() {
        "⚠️ "
    } else if d.flips.is_empty() {
        ""
    } else {
        "ℹ️ "
    };
    out.push_str(&format!(
        "{icon}**{}** (against `{}`)\n\n",
        d.summary(),
        short(base)
    ));
    let r = &d.rules;
    if !(r.added.is_empty()
        && r.removed.is_empty()
        && r.changed.is_empty()
        && r.moved.is_empty()
        && r.memberships.is_empty())
    {
        out.push_str("| rule | change | where |\n|---|---|---|\n");
        for a in &r.added {
            out.push_str(&format!(
                "| `{}` | added ({}) | {} |\n",
                a.id, a.effect, a.source
            ));
        }
        for a in &r.removed {
            out.push_str(&format!(
                "| `{}` | removed ({}) | {} |\n",
                a.id, a.effect, a.source
            ));
        }
        for c in &r.changed {
            out.push_str(&format!(
                "| `{}` | changed: {} | {} |\n",
                c.id,
                c.fields.join(", "),
                c.after
            ));
        }
        for m in &r.moved {
            out.push_str(&format!(
                "| `{}` | moved, same meaning | {} → {} |\n",
                m.id, m.from, m.to
            ));
        }
        for m in &r.memberships {
            let mut change: Vec<String> = m.added.iter().map(|g| format!("+{g}")).collect();
            change.extend(m.removed.iter().map(|g| format!("-{g}")));
            out.push_str(&format!(
                "| principal `{}` | groups {} | principals.yaml |\n",
                m.id,
                change.join(" ")
            ));
        }
        out.push('\n');
    }
    for (target, flips) in d.by_target() {
        let widen = flips.iter().filter(|f| f.widens).count();
        out.push_str(&format!(
            "#### `{target}`: {} flip{}{}\n\n",
            flips.len(),
            if flips.len() == 1 { "" } else { "s" },
            if widen > 0 {
                format!(", {widen} widen")
            } else {
                String::new()
            }
        ));
        let (shown, rest) = flips.split_at(flips.len().min(ROWS_SHOWN));
        table(&mut out, shown);
        if !rest.is_empty() {
            out.push_str(&format!(
                "<details><summary>{} more</summary>\n\n",
                rest.len()
            ));
            table(&mut out, rest);
            out.push_str("</details>\n\n");
        }
    }
    exact(&mut out, &d.exact);
    out.push_str(&format!(
        "<details><summary>How this was computed</summary>\n\n\
         Both policies were compiled and evaluated by the gateway's VM on {} requests: every \
         policy test of both sides, and probes for each target the policies name, each \
         principal their conditions distinguish, and argument values at the boundaries of \
         their literals{}. Order for review: hide < deny < approve < allow; a flip toward \
         `approve` or `allow` widens access.\n\n</details>\n",
        d.evaluated,
        if d.probes_truncated {
            " (the probe bound was reached: some requests were not tried)"
        } else {
            ""
        }
    ));
    out
}

fn conds(list: &[crate::analysis::Condition], none: &str) -> String {
    if list.is_empty() {
        return none.to_owned();
    }
    list.iter()
        .map(|c| format!("{}: {}", c.on, c.is).replace('|', "\\|"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The exact comparison: per target, the regions whose verdict changes.
fn exact(out: &mut String, e: &crate::analysis::ExactDiff) {
    out.push_str("#### Exact comparison\n\n");
    if e.flips.is_empty() {
        out.push_str(&format!(
            "No request to the {} targets compared changes verdict{}.\n\n",
            e.targets,
            if e.exact {
                " (proved on the decision trees)"
            } else {
                "; parts were opaque to the analysis (see below)"
            }
        ));
    } else {
        out.push_str(
            "| target | who | when | before | after | exact |\n|---|---|---|---|---|---|\n",
        );
        let (shown, rest) = e.flips.split_at(e.flips.len().min(ROWS_SHOWN * 3));
        for f in shown {
            let after = if f.widens {
                format!("**{}** (`{}`)", f.after, f.after_rule)
            } else {
                format!("{} (`{}`)", f.after, f.after_rule)
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} (`{}`) | {after} | {} |\n",
                f.target,
                conds(&f.who, "anyone"),
                conds(&f.when, "any call"),
                f.before,
                f.before_rule,
                if f.exact { "yes" } else { "opaque parts" }
            ));
        }
        if !rest.is_empty() {
            out.push_str(&format!(
                "\n{} more regions in `--format json`.\n",
                rest.len()
            ));
        }
        out.push('\n');
    }
    if !e.opaque_targets.is_empty() {
        out.push_str(&format!(
            "Opaque parts (regexes, lengths, values compared with each other, nested paths) on: {}; a region listed there may hold no request.\n\n",
            e.opaque_targets.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    if !e.incomplete_targets.is_empty() || e.truncated {
        out.push_str(&format!(
            "Not exhaustive on: {}{}; the probes above still apply there.\n\n",
            e.incomplete_targets
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if e.truncated {
                " (region bound reached)"
            } else {
                ""
            }
        ));
    }
}

fn table(out: &mut String, flips: &[&Flip]) {
    out.push_str("| who | arguments | before | after | from |\n|---|---|---|---|---|\n");
    for f in flips {
        let args = match &f.args {
            serde_json::Value::Null => "(none)".to_owned(),
            a => format!("`{}`", a.to_string().replace('|', "\\|")),
        };
        let after = if f.widens {
            format!("**{}** (`{}`)", f.after, f.after_rule)
        } else {
            format!("{} (`{}`)", f.after, f.after_rule)
        };
        let from = match &f.test {
            Some(name) => format!("test: {}", name.replace('|', "\\|")),
            None => f.origin.to_owned(),
        };
        out.push_str(&format!(
            "| {} | {args} | {} (`{}`) | {after} | {from} |\n",
            f.principal, f.before, f.before_rule
        ));
    }
    out.push('\n');
}

fn short(rev: &str) -> &str {
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        rev.get(..12).unwrap_or(rev)
    } else {
        rev
    }
}
