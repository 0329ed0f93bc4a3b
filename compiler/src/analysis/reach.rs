//! `who-can` and `can`: the regions of a target in which a call goes through (allowed, or
//! held for approval), who is in them and under which argument conditions, the rule that
//! decides each, and the quotas that apply. Serialized as the `--format json` output.

use super::describe;
use super::space::{Outcome, Region, Space};
use super::{Model, Named, TargetAnalysis};
use crate::ir::Expr;
use crate::request::{Principal, Verdict};
use crate::vm::RuleIdx;
use serde::Serialize;
use std::collections::BTreeSet;

/// One constrained value: `args.amount` is `a number > 50000`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Condition {
    pub on: String,
    pub is: String,
}

/// A quota on calls of a region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LimitRef {
    pub rule: String,
    pub source: String,
    /// `100 per hour per principal`.
    pub quota: String,
    /// The limit applies to every call of the region; otherwise only when its condition
    /// (`when`) holds.
    pub always: bool,
    pub when: Option<String>,
}

/// A set of requests that get through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Access {
    /// `allow` or `approve`.
    pub verdict: Verdict,
    /// Conditions on the caller (empty: every caller).
    pub who: Vec<Condition>,
    /// Conditions on the arguments, agent, client and annotations (empty: any call).
    pub when: Vec<Condition>,
    /// The deciding rule, where it is written, and its condition as written.
    pub rule: String,
    pub source: String,
    pub condition: Option<String>,
    /// Who approves, for `approve`.
    pub approvers: Vec<String>,
    pub limits: Vec<LimitRef>,
    /// The deciding rule's condition cannot be decided for these requests (a value of the
    /// wrong type): an `approve` rule then applies, failing closed.
    pub undecided: bool,
}

/// A rule that refuses some requests of the target (or `default`, nothing matched).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub verdict: Verdict,
    pub rule: String,
}

/// Everything about one target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reach {
    pub target: String,
    /// `target` is a pattern, answered for a name only it matches.
    pub pattern: bool,
    pub access: Vec<Access>,
    /// The rules that refuse the other requests (deny, hide, or `default`).
    pub refused_by: Vec<Refusal>,
    /// The regions are exactly the requests they describe (no opaque atom).
    pub exact: bool,
    /// Every request is in one of the listed regions (or refused).
    pub complete: bool,
    /// Atoms the analysis could not decide by value classes (regexes, lengths, relations
    /// between values): regions split on their truth may hold no request.
    pub opaque: Vec<String>,
    /// Values whose classes may miss some values.
    pub incomplete: Vec<String>,
    /// Paths of which one lies inside another: regions may combine values no request has.
    pub overlapping: Vec<String>,
}

fn reaches(v: Verdict) -> bool {
    matches!(v, Verdict::Allow | Verdict::Approve)
}

pub(crate) fn conditions(space: &Space, region: &Region) -> (Vec<Condition>, Vec<Condition>) {
    let (mut who, mut when) = (Vec::new(), Vec::new());
    for (v, set) in &region.cells {
        let c = Condition {
            on: describe::subject(space, *v),
            is: describe::classes(space, *v, set),
        };
        if describe::about_principal(space, *v) {
            who.push(c);
        } else {
            when.push(c);
        }
    }
    (who, when)
}

fn access(model: &Model<'_>, space: &Space, region: &Region, o: Outcome) -> Access {
    let (who, when) = conditions(space, region);
    let info = model.program.rule(o.rule);
    let written = model.policy.rules.get(o.rule.0 as usize);
    let limits = space
        .sides
        .first()
        .map(|s| {
            s.limits
                .iter()
                .filter_map(|(rule, f)| match space.limit_applies(0, f, region) {
                    Some(false) => None,
                    Some(true) => limit_ref(model, *rule, true),
                    None => limit_ref(model, *rule, false),
                })
                .collect()
        })
        .unwrap_or_default();
    Access {
        verdict: o.verdict,
        who,
        when,
        rule: model.program.rule_id(o.rule).to_owned(),
        source: info.map_or_else(String::new, |r| r.source.to_string()),
        condition: written
            .and_then(|r| r.condition.as_ref())
            .map(super::text::expr),
        approvers: info.map_or_else(Vec::new, |r| r.approvers.clone()),
        limits,
        undecided: o.undecided,
    }
}

fn limit_ref(model: &Model<'_>, rule: RuleIdx, always: bool) -> Option<LimitRef> {
    let info = model.program.rule(rule)?;
    let l = info.limit?;
    let cond = model
        .policy
        .rules
        .get(rule.0 as usize)
        .and_then(|r| r.condition.as_ref());
    Some(LimitRef {
        rule: info.id.clone(),
        source: info.source.to_string(),
        quota: format!(
            "{} per {} per {}",
            l.count,
            l.window.keyword(),
            l.key.keyword()
        ),
        always,
        when: (!always).then(|| cond.map(super::text::expr)).flatten(),
    })
}

fn reach(model: &Model<'_>, named: &Named, a: &TargetAnalysis) -> Reach {
    let mut access_list = Vec::new();
    let mut refused: BTreeSet<(u8, String)> = BTreeSet::new();
    for r in &a.regions {
        let Some(&o) = r.outcomes.first() else {
            continue;
        };
        if reaches(o.verdict) {
            access_list.push(access(model, &a.space, r, o));
        } else {
            refused.insert((
                crate::diff::rank(o.verdict),
                model.program.rule_id(o.rule).to_owned(),
            ));
        }
    }
    // Allow before approve; then by rule, so one rule's regions stay together.
    access_list.sort_by(|x, y| {
        (x.verdict != Verdict::Allow, &x.rule, &x.who).cmp(&(
            y.verdict != Verdict::Allow,
            &y.rule,
            &y.who,
        ))
    });
    Reach {
        target: named.label.clone(),
        pattern: named.pattern,
        access: access_list,
        refused_by: refused
            .into_iter()
            .map(|(rank, rule)| Refusal {
                verdict: if rank == 0 {
                    Verdict::Hide
                } else {
                    Verdict::Deny
                },
                rule,
            })
            .collect(),
        exact: a.exact(),
        complete: a.covers(),
        opaque: a.space.opaque.iter().cloned().collect(),
        incomplete: a.space.incomplete.iter().cloned().collect(),
        overlapping: a.space.overlapping.iter().cloned().collect(),
    }
}

/// Who can reach `named`, under which conditions, decided by which rules. With `filter`,
/// only the requests for which it is true (`--args-constraint`).
pub fn who_can(model: &Model<'_>, named: &Named, filter: Option<&Expr>) -> Reach {
    let a = TargetAnalysis::new(&[model], &named.call, None, filter);
    reach(model, named, &a)
}

/// What `principal` (with the groups `principals.yaml` adds) can reach among `targets`:
/// the targets with some access, each with its argument conditions.
pub fn can(model: &Model<'_>, principal: &Principal, targets: &[Named]) -> Vec<Reach> {
    targets
        .iter()
        .map(|t| {
            let a = TargetAnalysis::new(&[model], &t.call, Some(principal), None);
            reach(model, t, &a)
        })
        .filter(|r| !r.access.is_empty())
        .collect()
}
