//! Policy tests: well-formed cases, and their results.

use super::Code;
use crate::diag::{Diagnostic, Severity, did_you_mean};
use crate::source::SourceMap;
use crate::testing::{PolicyTest, TestReport};
use crate::yaml::tests::TestCase;
use mcpgate_grammar::Span;

/// A test whose `call:` does not parse.
pub const E0501: Code = Code {
    code: "E0501",
    severity: Severity::Error,
    name: "invalid-call",
    doc: r#"
### What it does
Reports a test whose `call` is not `server.tool`, `prompt:server.name` or
`resource:server:URI` (server names are `[a-z0-9_-]+`).

### Example
```yaml
tests:
  - name: echo
    call: Demo/echo
    expect: allow
```
"#,
};

/// A test whose `rule:` names no rule.
pub const E0502: Code = Code {
    code: "E0502",
    severity: Severity::Error,
    name: "unknown-rule",
    doc: r#"
### What it does
Reports a test whose `rule` is neither the id of a rule in the repository nor `default`,
with the closest id.

### Example
```yaml
tests:
  - name: big payments are refused
    call: demo.send_payment
    args: { to: bob, amount: 500 }
    expect: deny
    rule: payment-cap      # the rule is `payments-cap`
```
"#,
};

/// A test whose principal kind is unknown.
pub const E0503: Code = Code {
    code: "E0503",
    severity: Severity::Error,
    name: "unknown-principal-kind",
    doc: r#"
### What it does
Reports a test principal whose `kind` is not `human`, `agent`, `service` or `anonymous`.

### Example
```yaml
principal: { id: bot-7, kind: robot }
```
"#,
};

/// A test that failed.
pub const E0504: Code = Code {
    code: "E0504",
    severity: Severity::Error,
    name: "test-failed",
    doc: r#"
### What it does
Reported by `mcpgate check` and `mcpgate test` when the policy gives another verdict, or
another deciding rule, than the test expects.
"#,
};

/// A rule that no test exercises.
pub const W0505: Code = Code {
    code: "W0505",
    severity: Severity::Warning,
    name: "uncovered-rule",
    doc: r#"
### What it does
Reported by `mcpgate check` for each rule that decides no test (for a `limit` rule: that
no test reaches).

### Why is this bad?
A rule without a test can be broken by a later change without anyone noticing.
"#,
};

pub const CODES: &[Code] = &[E0501, E0502, E0503, E0504, W0505];

/// Reports tests whose `rule:` names no rule; returns the tests that can run.
pub fn check_rule_refs(
    cases: Vec<TestCase>,
    rule_ids: &[&str],
    out: &mut Vec<Diagnostic>,
) -> Vec<PolicyTest> {
    let mut tests = Vec::with_capacity(cases.len());
    for case in cases {
        if let Some(rule) = &case.test.rule
            && rule != "default"
            && !rule_ids.contains(&rule.as_str())
        {
            let help = did_you_mean(rule, rule_ids.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| "name a rule id, or `default` for the built-in rule".into());
            out.push(
                E0502
                    .at(
                        format!(
                            "test `{}` names rule `{rule}`, which does not exist",
                            case.test.name
                        ),
                        case.file,
                        case.rule_span.unwrap_or_default(),
                    )
                    .with_help(help),
            );
            continue;
        }
        tests.push(case.test);
    }
    tests
}

/// The span of the rest of the line at `line:col` of a file.
fn line_span(sources: &SourceMap, file: crate::source::FileId, line: u32, col: u32) -> Span {
    let text = sources.text(file);
    let start = crate::source::offset_of(text, line, col);
    let end = text
        .get(start..)
        .and_then(|r| r.find('\n'))
        .map_or(text.len(), |i| start + i);
    Span::new(start, end.max(start))
}

/// Diagnostics for failed tests and uncovered rules.
pub fn report_diagnostics(report: &TestReport, sources: &SourceMap) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for o in report.outcomes.iter().filter(|o| !o.passed) {
        let Some(file) = sources.find(&o.source.file) else {
            continue;
        };
        let span = line_span(sources, file, o.source.line, o.source.col);
        let msg = match &o.expected_rule {
            Some(r) if o.expected == o.actual && r != &o.rule => format!(
                "test `{}` failed: expected rule `{r}` to decide, but `{}` did",
                o.name, o.rule
            ),
            _ => format!(
                "test `{}` failed: expected `{}`, got `{}` (rule `{}`)",
                o.name, o.expected, o.actual, o.rule
            ),
        };
        out.push(E0504.at(msg, file, span));
    }
    for (id, loc) in &report.uncovered {
        let Some(file) = sources.find(&loc.file) else {
            continue;
        };
        let span = line_span(sources, file, loc.line, loc.col);
        out.push(
            W0505
                .at(
                    format!("rule `{id}` is not exercised by any test"),
                    file,
                    span,
                )
                .with_help("add a test in `tests/` whose call this rule decides"),
        );
    }
    out
}
