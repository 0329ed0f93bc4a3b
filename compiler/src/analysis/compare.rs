//! The exact comparison of two programs: for every target either names, the regions of
//! (principal, arguments) space in which the verdicts differ. With no such region on a
//! target analysed exactly, the two programs decide every request to it alike.

use super::reach::{Condition, conditions};
use super::{Model, TargetAnalysis, targets};
use crate::diff::widens;
use crate::ir::Expr;
use crate::request::Verdict;
use crate::testing::Call;
use crate::vm::RuleIdx;
use serde::Serialize;
use std::collections::BTreeSet;

/// One region whose verdict changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionFlip {
    /// `server.tool`, `prompt:server.name`, `resource:server:URI`, or a pattern.
    pub target: String,
    /// Conditions on the caller (empty: every caller).
    pub who: Vec<Condition>,
    /// Conditions on the arguments, agent, client and annotations (empty: any call).
    pub when: Vec<Condition>,
    pub before: Verdict,
    pub after: Verdict,
    pub before_rule: String,
    pub after_rule: String,
    pub widens: bool,
    /// The region is exactly the requests described (no opaque atom on the target).
    pub exact: bool,
}

/// The exact comparison, added to `mcpgate diff --format json` as `exact`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExactDiff {
    /// Targets compared: every name a rule of either side writes or the lock pins, and one
    /// stand-in name per pattern.
    pub targets: usize,
    /// Regions whose verdict changes, by target.
    pub flips: Vec<RegionFlip>,
    /// Every target was analysed exactly: the regions are precisely the requests they
    /// describe, so "no flips" is a proof for the targets compared.
    pub exact: bool,
    /// Targets searched with opaque atoms (regexes, lengths, relations between values):
    /// their flips may describe regions no request falls in. A target whose rules keep
    /// their conditions on both sides is not searched, so never listed here.
    pub opaque_targets: Vec<String>,
    /// Targets whose value classes may miss values: a flip there may go unseen.
    pub incomplete_targets: Vec<String>,
    /// The search stopped at its bound on some target.
    pub truncated: bool,
}

/// Compares the two models on every target either names.
pub fn compare(base: &Model<'_>, head: &Model<'_>) -> ExactDiff {
    let lock = head.lock.or(base.lock);
    let named = targets(&[base.policy, head.policy], lock);
    let mut out = ExactDiff {
        targets: named.len(),
        exact: true,
        ..ExactDiff::default()
    };
    let mut opaque = BTreeSet::new();
    let mut incomplete = BTreeSet::new();
    for t in &named {
        if same_conditions(base, head, &t.call) {
            continue;
        }
        let a = TargetAnalysis::new(&[base, head], &t.call, None, None);
        if !a.space.exact() {
            out.exact = false;
            if !a.space.opaque.is_empty() || !a.space.overlapping.is_empty() {
                opaque.insert(t.label.clone());
            }
        }
        if !a.covers() {
            incomplete.insert(t.label.clone());
            out.exact = false;
        }
        out.truncated |= a.truncated;
        for r in &a.regions {
            let (Some(b), Some(h)) = (r.outcomes.first(), r.outcomes.get(1)) else {
                continue;
            };
            if b.verdict == h.verdict {
                continue;
            }
            let (who, when) = conditions(&a.space, r);
            out.flips.push(RegionFlip {
                target: t.label.clone(),
                who,
                when,
                before: b.verdict,
                after: h.verdict,
                before_rule: base.program.rule_id(b.rule).to_owned(),
                after_rule: head.program.rule_id(h.rule).to_owned(),
                widens: widens(b.verdict, h.verdict),
                exact: a.space.exact(),
            });
        }
    }
    out.opaque_targets = opaque.into_iter().collect();
    out.incomplete_targets = incomplete.into_iter().collect();
    out
}

/// Whether the two programs dispatch `call` to rules with the same conditions, effect by
/// effect and in the same order, under the same group membership: then they decide every
/// request to it alike (the deciding rule's id may differ, its verdict cannot), whatever
/// the conditions are, opaque ones included. Limits do not change a verdict.
fn same_conditions(base: &Model<'_>, head: &Model<'_>, call: &Call) -> bool {
    if base.program.memberships() != head.program.memberships() {
        return false;
    }
    let (b, h) = (
        base.program.applicable(call.target()),
        head.program.applicable(call.target()),
    );
    // Hide, deny, approve, allow: the effects that decide.
    b.iter().zip(&h).take(4).all(|(x, y)| {
        let cx = rule_conditions(base, x);
        cx.is_some() && cx == rule_conditions(head, y)
    })
}

/// The conditions of `rules` (`None` for a rule the policy does not have).
fn rule_conditions<'m>(m: &'m Model<'_>, rules: &[RuleIdx]) -> Option<Vec<Option<&'m Expr>>> {
    rules
        .iter()
        .map(|r| {
            m.policy
                .rules
                .get(r.0 as usize)
                .map(|rule| rule.condition.as_ref())
        })
        .collect()
}
