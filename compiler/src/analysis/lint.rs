//! The policy lint: findings that need the exact regions of each target, reported by
//! `mcpgate check` as warnings after the tests ran.
//!
//! - W0801: a rule that never decides a call: its condition never holds, or stronger or
//!   earlier rules decide every call it matches (beyond the plain cover W0401 reports).
//! - W0802: an `allow` that tests exercise, but that lets through calls no test makes: on a
//!   target the tests call, a region of its reach (callers, arguments) holds no test call.
//! - W0803: a tool every principal can call unconditionally while `mcpgate.lock` pins it
//!   as destructive (`destructiveHint: true`).
//!
//! A finding is reported only where the analysis is exact for every target involved (no
//! opaque atom, no region bound reached): a lint never guesses. Policies of more than
//! [`MAX_TARGETS`] targets are not linted.

use super::{Model, TargetAnalysis, reach, targets};
use crate::check::Code;
use crate::diag::{Diagnostic, Severity};
use crate::ir::{Effect, SourceLoc};
use crate::repo::Checked;
use crate::request::{Request, Verdict};
use crate::source::SourceMap;
use crate::testing::{self, Call};
use mcpgate_grammar::Span;
use std::collections::{BTreeMap, BTreeSet};

/// A rule that never decides.
pub const W0801: Code = Code {
    code: "W0801",
    severity: Severity::Warning,
    name: "unreachable-rule",
    doc: r#"
### What it does
Warns about a rule that decides no call at all, found from the compiled program's exact
regions: either its condition can never hold (`args.n > 5 && args.n < 3`), or, for every
call it matches, a rule of stronger effect (or an earlier rule of the same effect) decides
first. The plain case, an unconditional `deny` or `hide` covering the rule's targets, is
W0401. Reported only where every target of the rule is analysed exactly (no `matches`,
no lengths or comparisons between values).

### Why is this bad?
The rule is dead code: the policy does not do what it reads as doing.

### Example
```
allow demo.echo when args.n > 5 && args.n < 3;   # never true
deny demo.add when args.a > 10;
deny demo.add when args.a > 100;                  # the rule above decides first
```
"#,
};

/// An allow rule that lets through more than its tests exercise.
pub const W0802: Code = Code {
    code: "W0802",
    severity: Severity::Warning,
    name: "allow-wider-than-tests",
    doc: r#"
### What it does
Warns about an `allow` rule that some test exercises, but that lets through, on a tool the
tests call, calls of a kind no test makes: a class of callers or of arguments (as the
exact analysis cuts them) in which no test call falls. The warning shows one such region;
`mcpgate who-can` shows them all. Rules no test exercises at all are W0505; tools no test
calls are not reported.

### Why is this bad?
What the tests do not show can be widened by accident, and a reviewer reading the tests
does not see everything the rule grants.

### Example
```
allow demo.add when args.a < 100 || principal.kind == "human";
# the tests call demo.add as an agent with small amounts only: a human with any
# amount is let through, and no test shows it
```
Add a test for each kind of call the rule lets through, or narrow the rule.
"#,
};

/// A destructive tool open to everyone.
pub const W0803: Code = Code {
    code: "W0803",
    severity: Severity::Warning,
    name: "destructive-tool-open",
    doc: r#"
### What it does
Warns about a tool that every principal can call, with any arguments, while its server
annotates it destructive (`destructiveHint: true`, as pinned in `mcpgate.lock`).

### Why is this bad?
Every agent and person can run an operation the server says destroys data, without an
approval or a condition.

### Example
```
allow github.*;          # github.delete_repository is pinned destructive
```
Use instead: `approve github.delete_repository by "admins";`, or a `when` on who may.
"#,
};

pub const CODES: &[Code] = &[W0801, W0802, W0803];

/// Above this many targets (names the rules write, pins, test calls) the lint is skipped:
/// on the generated 10 000-rule program (about 7 000 targets) the regions of every target
/// take over a minute, against about 0.2 s at 1 000 rules (docs/PERFORMANCE.md).
pub const MAX_TARGETS: usize = 2_000;

/// What the analyses found for one target.
struct Analysed {
    call: Call,
    label: String,
    analysis: TargetAnalysis,
    /// The region of each test call of this target.
    tested: BTreeSet<usize>,
}

/// The lint's warnings for a checked repository without errors, in rule order; none for a
/// policy of more than [`MAX_TARGETS`] targets.
pub fn lint(checked: &Checked) -> Vec<Diagnostic> {
    if checked.has_errors() {
        return Vec::new();
    }
    let model = Model::of(checked);
    let rules = &model.policy.rules;
    // Every target the policy names or the lock pins, and every target a test calls.
    let mut named = targets(&[model.policy], model.lock);
    for t in &checked.tests {
        if !named.iter().any(|n| !n.pattern && n.call == t.call) {
            named.push(super::Named {
                call: t.call.clone(),
                label: t.call.target().to_string(),
                pattern: false,
            });
        }
    }
    if named.len() > MAX_TARGETS {
        return Vec::new();
    }
    let mut analysed: Vec<Analysed> = named
        .into_iter()
        .map(|n| Analysed {
            analysis: TargetAnalysis::new(&[&model], &n.call, None, None),
            call: n.call,
            label: n.label,
            tested: BTreeSet::new(),
        })
        .collect();
    for t in &checked.tests {
        let Some(a) = analysed.iter_mut().find(|a| a.call == t.call) else {
            continue;
        };
        let merged = model.program.principal(&t.principal);
        let request = Request {
            principal: &merged,
            ..testing::request(t)
        };
        let located = a.analysis.space.locate(&request, &t.principal);
        if let Some(i) = a.analysis.regions.iter().position(|r| r.contains(&located)) {
            a.tested.insert(i);
        }
    }

    // Per rule: whether it decides some region, whether every target it applies to is
    // exact, and the regions it allows that no test falls in.
    let mut decides = vec![false; rules.len()];
    let mut inexact = vec![false; rules.len()];
    let mut applies = vec![false; rules.len()];
    let mut exercised = vec![false; rules.len()];
    let mut untested: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    for (ai, a) in analysed.iter().enumerate() {
        let exact = a.analysis.exact() && a.analysis.covers();
        for list in model.program.applicable(a.call.target()) {
            for r in list {
                if let Some(i) = index(r) {
                    applies[i] = true;
                    inexact[i] |= !exact;
                }
            }
        }
        for (ri, region) in a.analysis.regions.iter().enumerate() {
            let Some(o) = region.outcomes.first() else {
                continue;
            };
            let Some(i) = index(o.rule) else {
                continue;
            };
            decides[i] = true;
            if o.verdict == Verdict::Allow {
                if a.tested.contains(&ri) {
                    exercised[i] = true;
                } else if exact && !a.tested.is_empty() {
                    untested.entry(i).or_default().push((ai, ri));
                }
            }
        }
    }

    let mut out = Vec::new();
    let shadowed: BTreeSet<SourceLoc> = checked
        .diagnostics
        .iter()
        .filter(|d| d.code == crate::check::shadow::W0401.code)
        .map(|d| checked.sources.loc(d.primary.file, d.primary.span))
        .collect();
    for (i, rule) in rules.iter().enumerate() {
        let dead = applies[i]
            && !decides[i]
            && !inexact[i]
            && matches!(
                rule.effect,
                Effect::Allow | Effect::Approve | Effect::Deny | Effect::Hide
            )
            && !shadowed.contains(&rule.source);
        if !dead {
            continue;
        }
        let why = if never_holds(checked, &model, i, &analysed) {
            "its condition never holds".to_owned()
        } else {
            "for every call it matches, a stronger or earlier rule decides".to_owned()
        };
        if let Some(d) = at(
            &W0801,
            &checked.sources,
            &rule.source,
            format!("rule `{}` never decides a call: {why}", rule.id),
        ) {
            out.push(d.with_help(
                "remove the rule, or fix its condition; `mcpgate who-can` shows who decides its targets",
            ));
        }
    }
    for (&i, regions) in &untested {
        let Some(rule) = rules.get(i) else { continue };
        if !exercised[i] || rule.effect != Effect::Allow {
            continue;
        }
        let Some(&(ai, ri)) = regions.first() else {
            continue;
        };
        let Some((a, region)) = analysed
            .get(ai)
            .and_then(|a| a.analysis.regions.get(ri).map(|r| (a, r)))
        else {
            continue;
        };
        let (who, when) = reach::conditions(&a.analysis.space, region);
        let mut shown = format!("`{}`", a.label);
        for c in who.iter().chain(&when) {
            shown.push_str(&format!(", {} {}", c.on, c.is));
        }
        let more = match regions.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        if let Some(d) = at(
            &W0802,
            &checked.sources,
            &rule.source,
            format!(
                "`allow` rule `{}` lets through calls no test makes: {shown}{more}",
                rule.id
            ),
        ) {
            out.push(d.with_help(format!(
                "add a test for that kind of call, or narrow the rule; `mcpgate who-can {}` lists its reach",
                a.label
            )));
        }
    }
    for a in &analysed {
        let Some(annotations) = model.annotations(&a.call) else {
            continue;
        };
        if annotations.destructive != Some(true) || !a.analysis.exact() || !a.analysis.covers() {
            continue;
        }
        let outcomes: Vec<_> = a
            .analysis
            .regions
            .iter()
            .filter_map(|r| r.outcomes.first())
            .collect();
        let open = !outcomes.is_empty()
            && outcomes
                .iter()
                .all(|o| o.verdict == Verdict::Allow && !o.undecided);
        let Some(rule) = outcomes
            .first()
            .and_then(|o| index(o.rule))
            .and_then(|i| rules.get(i))
        else {
            continue;
        };
        if !open {
            continue;
        }
        if let Some(d) = at(
            &W0803,
            &checked.sources,
            &rule.source,
            format!(
                "every principal can call `{}` with any arguments (rule `{}`), and `mcpgate.lock` pins it as destructive",
                a.label, rule.id
            ),
        ) {
            out.push(d.with_help(format!(
                "require an approval (`approve {} by \"GROUP\";`) or restrict who may call it with a `when`",
                a.label
            )));
        }
    }
    out
}

/// The index of a written rule (`None` for the built-in `default`).
fn index(r: crate::vm::RuleIdx) -> Option<usize> {
    (r != crate::vm::RuleIdx::DEFAULT).then_some(r.0 as usize)
}

/// Whether rule `i`, alone in a policy, still decides nothing on the targets analysed:
/// then its condition never holds (no other rule takes its calls).
fn never_holds(checked: &Checked, model: &Model<'_>, i: usize, analysed: &[Analysed]) -> bool {
    let Some(rule) = model.policy.rules.get(i) else {
        return false;
    };
    let alone = crate::ir::Policy {
        rules: vec![rule.clone()],
    };
    let single = Model::new(&alone, &checked.memberships, model.lock);
    let idx = crate::vm::RuleIdx(i as u32);
    let applies = |a: &&Analysed| {
        model
            .program
            .applicable(a.call.target())
            .iter()
            .any(|l| l.contains(&idx))
    };
    analysed.iter().filter(applies).all(|a| {
        let t = TargetAnalysis::new(&[&single], &a.call, None, None);
        t.regions
            .iter()
            .filter_map(|r| r.outcomes.first())
            .all(|o| o.rule == crate::vm::RuleIdx::DEFAULT)
    })
}

/// A warning at the line of a rule.
fn at(code: &Code, sources: &SourceMap, loc: &SourceLoc, message: String) -> Option<Diagnostic> {
    let file = sources.find(&loc.file)?;
    let text = sources.text(file);
    let start = crate::source::offset_of(text, loc.line, loc.col);
    let end = text
        .get(start..)
        .and_then(|r| r.find('\n'))
        .map_or(text.len(), |i| start + i);
    Some(code.at(message, file, Span::new(start, end.max(start))))
}
