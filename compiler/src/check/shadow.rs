//! Rules that can never decide because a stronger unconditional rule covers them.

use super::Code;
use crate::diag::{Diagnostic, Severity};
use crate::ir::{Effect, NamePattern, Rule, Target, UriPattern};
use crate::source::FileId;
use mcpgate_grammar::Span;
use std::collections::HashMap;

/// A rule every target of which is covered by an unconditional `deny` or `hide`.
pub const W0401: Code = Code {
    code: "W0401",
    severity: Severity::Warning,
    name: "shadowed-rule",
    doc: r#"
### What it does
Warns about a rule that can never decide: every one of its targets is also covered by an
unconditional rule of stronger effect (`hide` beats `deny`, both beat `approve` and
`allow`; a `limit` only counts calls that are allowed). The warning names the covering
rule.

### Why is this bad?
Precedence does not depend on order, so the rule is dead code: usually the covering rule
is broader than intended, or needs a `when`.

### Example
```
deny demo.*;
allow demo.echo;        # never decides: `deny demo.*` covers it
```
"#,
};

pub const CODES: &[Code] = &[W0401];

/// Where a lowered rule was written.
#[derive(Clone, Copy, Debug)]
pub struct Site {
    pub file: FileId,
    /// The whole rule.
    pub span: Span,
}

/// Precedence rank for the purpose of shadowing: higher wins.
fn rank(e: Effect) -> u8 {
    match e {
        Effect::Hide => 4,
        Effect::Deny => 3,
        Effect::Approve => 2,
        Effect::Allow => 1,
        // A limit counts allowed calls: anything that refuses a call also silences it.
        Effect::Limit => 0,
        // Never reported: argument redaction applies to the audit records of refused calls.
        Effect::Redact => 0,
    }
}

/// Reports each rule covered by unconditional `deny`/`hide` rules of higher precedence.
pub fn check_shadowed(rules: &[Rule], sites: &[Site], out: &mut Vec<Diagnostic>) {
    let blockers: Vec<usize> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.condition.is_none() && matches!(r.effect, Effect::Deny | Effect::Hide))
        .map(|(i, _)| i)
        .collect();
    if blockers.is_empty() {
        return;
    }
    // Index blockers by exact server name so that a large policy does not compare every
    // rule with every blocker; blockers with a server glob are checked for every rule.
    let mut by_server: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut any_server: Vec<usize> = Vec::new();
    for &b in &blockers {
        for t in &rules[b].targets {
            match server_of(t) {
                NamePattern::Exact(s) => by_server.entry(s.as_str()).or_default().push(b),
                NamePattern::Glob(_) => any_server.push(b),
            }
        }
    }
    for list in by_server.values_mut() {
        list.dedup();
    }
    any_server.dedup();
    for (i, rule) in rules.iter().enumerate() {
        if rule.targets.is_empty() || rule.effect == Effect::Redact {
            continue;
        }
        let mut covering = Vec::new();
        let all = rule.targets.iter().all(|t| {
            let server = server_of(t).as_str();
            let exact = by_server.get(server).map(Vec::as_slice).unwrap_or_default();
            let by = exact.iter().chain(&any_server).copied().find(|&b| {
                b != i
                    && rank(rules[b].effect) > rank(rule.effect)
                    && rules[b].targets.iter().any(|bt| covers(bt, t))
            });
            if let Some(b) = by {
                covering.push(b);
            }
            by.is_some()
        });
        if !all {
            continue;
        }
        covering.dedup();
        let (Some(site), Some(&first)) = (sites.get(i), covering.first()) else {
            continue;
        };
        let blocker = &rules[first];
        let mut d = W0401
            .at(
                format!(
                    "rule `{}` can never decide: `{}` rule `{}` covers all of its targets",
                    rule.id, blocker.effect, blocker.id
                ),
                site.file,
                site.span,
            )
            .with_label_message("never decides");
        for &b in &covering {
            if let Some(s) = sites.get(b) {
                d = d.with_secondary(s.file, s.span, format!("covered by `{}`", rules[b].id));
            }
        }
        out.push(d.with_help(format!(
            "narrow the targets of `{}` or give it a `when` condition, or remove this rule",
            blocker.id
        )));
    }
}

fn server_of(t: &Target) -> &NamePattern {
    match t {
        Target::Tool { server, .. }
        | Target::Prompt { server, .. }
        | Target::Resource { server, .. } => server,
    }
}

/// Whether every request matched by `inner` is matched by `outer`.
pub fn covers(outer: &Target, inner: &Target) -> bool {
    match (outer, inner) {
        (
            Target::Tool {
                server: os,
                tool: ot,
            },
            Target::Tool {
                server: is,
                tool: it,
            },
        )
        | (
            Target::Prompt {
                server: os,
                name: ot,
            },
            Target::Prompt {
                server: is,
                name: it,
            },
        ) => name_covers(os, is) && name_covers(ot, it),
        (
            Target::Resource {
                server: os,
                uri: ou,
            },
            Target::Resource {
                server: is,
                uri: iu,
            },
        ) => name_covers(os, is) && uri_covers(ou, iu),
        _ => false,
    }
}

/// A glob covers another pattern when it matches the other's text read literally: each
/// `*` of the inner pattern is then absorbed by a `*` of the outer one, whatever it stands
/// for.
fn name_covers(outer: &NamePattern, inner: &NamePattern) -> bool {
    outer.matches(inner.as_str())
}

/// Resource globs distinguish `*` from `**`, so only the safe cases count: the same
/// pattern, a pattern of `**` alone, or an inner URI without globs.
fn uri_covers(outer: &UriPattern, inner: &UriPattern) -> bool {
    outer.0 == inner.0 || outer.0 == "**" || (!inner.0.contains('*') && outer.matches(&inner.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(s: &str, t: &str) -> Target {
        let p = |x: &str| {
            if x.contains('*') {
                NamePattern::Glob(x.into())
            } else {
                NamePattern::Exact(x.into())
            }
        };
        Target::Tool {
            server: p(s),
            tool: p(t),
        }
    }

    #[test]
    fn glob_coverage() {
        assert!(covers(&tool("demo", "*"), &tool("demo", "echo")));
        assert!(covers(&tool("*", "*"), &tool("demo", "get_*")));
        assert!(covers(&tool("demo", "get_*"), &tool("demo", "get_foo*")));
        assert!(!covers(&tool("demo", "get_*"), &tool("demo", "*")));
        assert!(!covers(&tool("demo", "a*b"), &tool("demo", "a*")));
        assert!(!covers(&tool("demo", "echo"), &tool("other", "echo")));
    }
}
