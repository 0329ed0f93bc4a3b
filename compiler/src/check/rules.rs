//! Rules: ids, targets, effects and their clauses.

use super::Code;
use crate::diag::{Diagnostic, Severity};
use crate::ir;
use crate::source::FileId;
use mcpgate_grammar::Span;
use mcpgate_grammar::ast::{self, Effect, Pattern, Spanned, Target};
use std::collections::HashMap;

/// Two rules with the same id.
pub const E0301: Code = Code {
    code: "E0301",
    severity: Severity::Error,
    name: "duplicate-id",
    doc: r#"
### What it does
Reports a rule id used twice in the repository (in any files, DSL or YAML), showing both
places. `default` is reserved for the built-in rule.

### Why is this bad?
Decisions, audit records and tests name rules by id; two rules with one id make them
ambiguous.

### Example
```
@id("payments") allow demo.send_payment when args.amount <= 100;
@id("payments") deny demo.send_payment when args.amount > 100;
```
"#,
};

/// A rule without targets, or a target that cannot match anything.
pub const E0302: Code = Code {
    code: "E0302",
    severity: Severity::Error,
    name: "bad-target",
    doc: r#"
### What it does
Reports a rule with an empty target list, a server name outside `[a-z0-9_-]+` (globs
allowed), or an empty tool, prompt or resource name.

### Example
```yaml
rules:
  - effect: allow
    tools: []
```
"#,
};

/// An effect that is not `allow`, `deny`, `hide`, `approve` or `limit`.
pub const E0303: Code = Code {
    code: "E0303",
    severity: Severity::Error,
    name: "unknown-effect",
    doc: r#"
### What it does
Reports a YAML rule whose `effect` is not one of `allow`, `deny`, `hide`, `approve`,
`limit`, with the closest one.

### Example
```yaml
rules:
  - effect: block
    tools: demo.delete_note
```
Use instead: `deny` (or `hide` to make the tool invisible).
"#,
};

/// An `approve` rule without approvers.
pub const E0304: Code = Code {
    code: "E0304",
    severity: Severity::Error,
    name: "approve-without-by",
    doc: r#"
### What it does
Reports an `approve` rule without a `by` clause naming the groups that may approve.

### Why is this bad?
Nobody could approve the call; it would always time out and be denied.

### Example
```
approve demo.send_payment;
```
Use instead: `approve demo.send_payment by "finance";`
"#,
};

/// `by` on a rule that is not `approve`.
pub const W0305: Code = Code {
    code: "W0305",
    severity: Severity::Warning,
    name: "by-without-approve",
    doc: r#"
### What it does
Warns about a `by` clause on a rule other than `approve`, where it has no effect.

### Example
```
allow demo.send_payment by "finance";
```
"#,
};

/// A limit of zero calls, or an invalid rate.
pub const E0306: Code = Code {
    code: "E0306",
    severity: Severity::Error,
    name: "invalid-rate",
    doc: r#"
### What it does
Reports a `limit` of zero calls per window, or a YAML `rate` that is not
`N per second|minute|hour|day`, or a `per` that is not `principal`, `agent`, `server` or
`tool`.

### Example
```
limit demo.* 0 per hour;
```
Use instead: `hide` or `deny` to refuse every call.
"#,
};

/// A rate so high that it limits nothing.
pub const W0307: Code = Code {
    code: "W0307",
    severity: Severity::Warning,
    name: "absurd-rate",
    doc: r#"
### What it does
Warns about a `limit` above a million calls per second, which limits nothing and usually
means a wrong window (`per second` for `per day`) or a typo in the number.
"#,
};

/// `rate`/`per` on a rule that is not `limit`, or a `limit` without `rate`.
pub const E0308: Code = Code {
    code: "E0308",
    severity: Severity::Error,
    name: "limit-fields",
    doc: r#"
### What it does
Reports a YAML rule with `rate` or `per` whose effect is not `limit`, and a `limit` rule
without `rate`.

### Example
```yaml
rules:
  - effect: allow
    tools: demo.*
    rate: 100 per hour
```
"#,
};

/// A `redact` path that names neither an argument nor a result field.
pub const E0309: Code = Code {
    code: "E0309",
    severity: Severity::Error,
    name: "bad-redaction",
    doc: r#"
### What it does
Reports what a `redact` rule cannot mask: a path that does not start with `args` (an
argument, kept out of the audit log in clear) or `result` (a result field name, masked at
any depth), a `result` path with more than one field, or `result` alone without
`matching`. In YAML, also a `redact` rule with neither `fields` nor `patterns`, and `fields`
or `patterns` on another effect.

### Example
```
redact stripe.* principal.id;
redact github.* result.user.email;
```
Use instead: `redact github.* result.email;` masks every `email` field of the result,
however deep.
"#,
};

pub const CODES: &[Code] = &[
    E0301, E0302, E0303, E0304, W0305, E0306, W0307, E0308, E0309,
];

/// One path of a `redact` rule, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedactField {
    /// `args...`: an argument path (empty: all arguments).
    Arg(Vec<ir::PathSeg>),
    /// `result.NAME`: a field name masked at any depth.
    Result(String),
}

/// Resolves one `redact` path, or explains why it cannot be masked (E0309).
pub fn redact_field(
    path: &ast::Path,
    span: Span,
    file: FileId,
) -> Result<RedactField, Box<Diagnostic>> {
    match path.root.node.as_str() {
        "args" => match super::names::resolve_path(path, file)? {
            ir::Var::Args(segs) => Ok(RedactField::Arg(segs)),
            _ => Err(Box::new(E0309.at("not an argument path", file, span))),
        },
        "result" => match path.segments.as_slice() {
            [one] => match &one.node {
                ast::Segment::Field(name) => Ok(RedactField::Result(name.clone())),
                ast::Segment::Index(_) => Err(Box::new(
                    E0309
                        .at("a result field is masked by name, not by index", file, one.span)
                        .with_help("write `result.NAME`"),
                )),
            },
            [] => Err(Box::new(
                E0309
                    .at("`result` alone names no field", file, span)
                    .with_help(
                        "name a field (`result.email`) or mask patterns: `result matching \"regex\"`",
                    ),
            )),
            [_, second, ..] => {
                let last = path.segments.last().map_or(second.span, |s| s.span);
                Err(Box::new(
                    E0309
                        .at(
                            "a result field is masked by its name alone, at any depth",
                            file,
                            second.span.join(last),
                        )
                        .with_help(format!(
                            "write `result.{}`: it masks that field wherever it appears",
                            match &path.segments.last().map(|s| &s.node) {
                                Some(ast::Segment::Field(f)) => f.as_str(),
                                _ => "NAME",
                            }
                        )),
                ))
            }
        },
        other => {
            let help = crate::diag::did_you_mean(other, ["args", "result"])
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    "redact argument paths (`args.card_number`) or result fields (`result.email`)"
                        .into()
                });
            Err(Box::new(
                E0309
                    .at(
                        format!("cannot redact `{other}`: only `args` and `result` paths"),
                        file,
                        path.root.span,
                    )
                    .with_help(help),
            ))
        }
    }
}

/// Compiles the patterns of a `redact` rule (E0204 for those that do not compile).
fn check_redact_patterns(rule: &ast::Rule, file: FileId, out: &mut Vec<Diagnostic>) {
    let Some(r) = &rule.redact else { return };
    for p in &r.patterns {
        if let Err(err) = super::types::compile_regex(&p.node) {
            out.push(
                super::types::E0204
                    .at(
                        format!(
                            "invalid regular expression: {}",
                            super::types::regex_reason(&err)
                        ),
                        file,
                        p.span,
                    )
                    .with_label_message("this pattern does not compile")
                    .with_help(
                        "patterns use the Rust `regex` syntax: https://docs.rs/regex/#syntax",
                    ),
            );
        }
    }
}

/// Most calls per second a limit may allow before it is reported as absurd.
const ABSURD_PER_SECOND: u64 = 1_000_000;

/// Server names are `[a-z0-9_-]+`; in a pattern, `*` is allowed too.
fn valid_server_pattern(p: &Pattern) -> bool {
    !p.text.is_empty()
        && !p.quoted
        && p.text.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*')
        })
}

/// Per-rule checks of targets and clauses.
pub fn check_rule(rule: &ast::Rule, file: FileId, out: &mut Vec<Diagnostic>) {
    if rule.targets.is_empty() {
        out.push(
            E0302
                .at(
                    format!("`{}` rule without targets", rule.effect.node),
                    file,
                    rule.effect.span,
                )
                .with_help("name at least one target, e.g. `server.tool` or `server.*`"),
        );
    }
    for t in &rule.targets {
        check_target(t, file, out);
    }
    check_redact_patterns(rule, file, out);
    match (rule.effect.node, rule.by.first()) {
        (Effect::Approve, None) => out.push(
            E0304
                .at("`approve` rule without approvers", file, rule.effect.span)
                .with_help("add `by \"group\"` naming who may approve"),
        ),
        (Effect::Approve, Some(_)) => {}
        (effect, Some(by)) => out.push(
            W0305
                .at(
                    format!("`by` has no effect on `{effect}` rules"),
                    file,
                    by.span,
                )
                .with_help("remove `by`, or make the rule `approve`"),
        ),
        (_, None) => {}
    }
    if let Some(limit) = &rule.limit {
        let count = limit.count.node;
        let secs = limit.window.node.seconds();
        if count == 0 {
            out.push(
                E0306
                    .at(
                        "a limit of zero calls refuses every call",
                        file,
                        limit.count.span,
                    )
                    .with_help("use `deny` or `hide` to refuse every call"),
            );
        } else if count / secs > ABSURD_PER_SECOND {
            out.push(
                W0307
                    .at(
                        format!(
                            "`{count} per {}` is more than a million calls per second",
                            limit.window.node.keyword()
                        ),
                        file,
                        limit.count.span,
                    )
                    .with_help("check the number and the window"),
            );
        }
    }
}

fn check_target(t: &Spanned<Target>, file: FileId, out: &mut Vec<Diagnostic>) {
    let (server, name, what) = match &t.node {
        Target::Tool { server, tool } => (server, tool, "tool"),
        Target::Prompt { server, name } => (server, name, "prompt"),
        Target::Resource { server, uri } => (server, uri, "resource"),
    };
    if !valid_server_pattern(&server.node) {
        out.push(
            E0302
                .at(
                    format!("invalid server name `{}`", server.node.text),
                    file,
                    server.span,
                )
                .with_help("server names are lowercase letters, digits, `_` and `-` (`*` globs)"),
        );
    }
    if name.node.text.is_empty() {
        let what = if what == "resource" {
            "resource URI".to_owned()
        } else {
            format!("{what} name")
        };
        out.push(E0302.at(format!("empty {what}"), file, name.span));
    }
}

/// One rule's id and where it was written.
pub struct IdSite {
    pub id: String,
    pub file: FileId,
    pub span: Span,
}

/// Reports ids used more than once (and the reserved `default`).
pub fn check_duplicate_ids(sites: &[IdSite], out: &mut Vec<Diagnostic>) {
    let mut first: HashMap<&str, &IdSite> = HashMap::new();
    for site in sites {
        if site.id == "default" {
            out.push(
                E0301
                    .at(
                        "rule id `default` is reserved for the built-in rule",
                        site.file,
                        site.span,
                    )
                    .with_help("choose another id"),
            );
            continue;
        }
        match first.get(site.id.as_str()) {
            Some(prev) => out.push(
                E0301
                    .at(
                        format!("duplicate rule id `{}`", site.id),
                        site.file,
                        site.span,
                    )
                    .with_label_message("used again here")
                    .with_secondary(prev.file, prev.span, "first used here")
                    .with_help("rule ids must be unique across the repository"),
            ),
            None => {
                first.insert(&site.id, site);
            }
        }
    }
}
