//! What a policy change does: the rules added, removed, changed and moved (by id), and the
//! verdicts that flip for every policy test of both sides and for generated probe requests.
//! Both sides are compiled and evaluated by the VM, so a flip is exactly what the gateway
//! would do differently. Pure: the caller reads the two sides (from git and from disk).

mod probes;
mod render;

use crate::Program;
use crate::analysis::{self, ExactDiff, Model};
use crate::ir::{self, Effect, SourceLoc};
use crate::request::{Principal, Request, ToolAnnotations, Verdict};
use crate::testing::{self, PolicyTest};
use crate::vm::Memberships;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

pub use probes::{MAX_ARG_SETS, MAX_PRINCIPALS, MAX_PROBES, Probe, generate as probes};
pub use render::markdown;

/// One side of a comparison: a checked policy, its tests and its group memberships
/// (`principals.yaml`).
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    pub policy: &'a ir::Policy,
    pub tests: &'a [PolicyTest],
    pub memberships: &'a Memberships,
}

/// The effect of a policy change. Serialized as the `--format json` output of `mcpgate diff`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PolicyDiff {
    pub rules: RuleChanges,
    /// Every verdict that differs, ordered by target, then origin.
    pub flips: Vec<Flip>,
    /// How many requests were evaluated on both sides (tests and probes).
    pub evaluated: usize,
    /// The probe generator stopped at [`MAX_PROBES`].
    pub probes_truncated: bool,
    /// The exact comparison of the two programs: the regions of (principal, arguments)
    /// space whose verdict changes, per target.
    pub exact: ExactDiff,
}

/// Rules compared by id.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RuleChanges {
    pub added: Vec<RuleRef>,
    pub removed: Vec<RuleRef>,
    pub changed: Vec<RuleChange>,
    /// Same id and meaning, written in another file.
    pub moved: Vec<RuleMove>,
    /// Principals whose declared groups (`principals.yaml`) changed, by id.
    pub memberships: Vec<MembershipChange>,
}

/// A principal whose declared groups changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MembershipChange {
    pub id: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// A rule named by id, with its effect and where it is written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleRef {
    pub id: String,
    pub effect: &'static str,
    pub source: String,
}

/// A rule whose meaning changed: which parts, and where it is written now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleChange {
    pub id: String,
    /// Some of `effect`, `targets`, `condition`, `reason`, `approvers`, `limit`.
    pub fields: Vec<&'static str>,
    pub before: String,
    pub after: String,
}

/// A rule that moved to another file unchanged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleMove {
    pub id: String,
    pub from: String,
    pub to: String,
}

/// A request whose verdict differs between the two sides.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Flip {
    /// `server.tool`, `prompt:server.name` or `resource:server:URI`.
    pub target: String,
    /// The principal, as `kind@group`, `kind`, or the test's principal id.
    pub principal: String,
    /// The call's arguments (`null` when none).
    pub args: Value,
    /// `test` or `probe`.
    pub origin: &'static str,
    /// The test's name, for a test.
    pub test: Option<String>,
    pub before: Verdict,
    pub after: Verdict,
    /// The deciding rule's id before and after (`default` for the built-in rule).
    pub before_rule: String,
    pub after_rule: String,
    /// The change grants more access (see [`widens`]).
    pub widens: bool,
}

impl Flip {
    /// `human@finance: stripe.create_refund {"amount":60000}: allow -> deny`.
    pub fn line(&self) -> String {
        let args = match &self.args {
            Value::Null => String::new(),
            a => format!(" {a}"),
        };
        format!(
            "{}: {}{args}: {} -> {}",
            self.principal, self.target, self.before, self.after
        )
    }
}

/// Access order for review: `hide < deny < approve < allow`. A change widens when its new
/// verdict grants a call (`approve` or `allow`) and ranks above the old one; `hide -> deny`
/// reveals that a tool exists but grants nothing, so it does not widen.
pub fn widens(before: Verdict, after: Verdict) -> bool {
    matches!(after, Verdict::Approve | Verdict::Allow) && rank(after) > rank(before)
}

/// The position in `hide < deny < approve < allow`.
pub fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Hide => 0,
        Verdict::Deny => 1,
        Verdict::Approve => 2,
        Verdict::Allow => 3,
    }
}

impl PolicyDiff {
    /// Some verdict moves toward more access (a tested or probed request, or a region of
    /// the exact comparison).
    pub fn widens(&self) -> bool {
        self.flips.iter().any(|f| f.widens) || self.exact.flips.iter().any(|f| f.widens)
    }

    /// The flips grouped by target, in target order.
    pub fn by_target(&self) -> BTreeMap<&str, Vec<&Flip>> {
        let mut out: BTreeMap<&str, Vec<&Flip>> = BTreeMap::new();
        for f in &self.flips {
            out.entry(f.target.as_str()).or_default().push(f);
        }
        out
    }

    /// `1 rule added, 2 changed, 0 removed; 3 verdicts flip (1 widens) on 2 targets`.
    pub fn summary(&self) -> String {
        let r = &self.rules;
        let mut s = format!(
            "{} added, {} removed, {} changed",
            plural(r.added.len(), "rule"),
            r.removed.len(),
            r.changed.len()
        );
        if !r.moved.is_empty() {
            s.push_str(&format!(", {} moved", r.moved.len()));
        }
        if !r.memberships.is_empty() {
            s.push_str(&format!(
                ", {} changed",
                plural(r.memberships.len(), "membership")
            ));
        }
        let widen = self.flips.iter().filter(|f| f.widens).count();
        if self.flips.is_empty() {
            s.push_str("; no verdict flips");
        } else {
            s.push_str(&format!(
                "; {} ({} widen{}) on {}",
                plural_verb(self.flips.len(), "verdict flips", "verdicts flip"),
                widen,
                if widen == 1 { "s" } else { "" },
                plural(self.by_target().len(), "target"),
            ));
        }
        let e = &self.exact;
        if e.flips.is_empty() {
            s.push_str(if e.exact {
                "; exact comparison: no verdict changes"
            } else {
                "; exact comparison: no verdict changes found (some parts opaque)"
            });
        } else {
            let targets: HashSet<&str> = e.flips.iter().map(|f| f.target.as_str()).collect();
            s.push_str(&format!(
                "; exact comparison: {} on {}",
                plural_verb(e.flips.len(), "region flips", "regions flip"),
                plural(targets.len(), "target")
            ));
        }
        s
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn plural_verb(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Compares two sides: rules by id, then the verdicts of every test of both sides and of
/// the generated probes.
pub fn diff(base: Side<'_>, head: Side<'_>) -> PolicyDiff {
    let before = Program::compile(base.policy, None).with_memberships(base.memberships);
    let after = Program::compile(head.policy, None).with_memberships(head.memberships);
    let mut rules = compare_rules(base.policy, head.policy);
    rules.memberships = compare_memberships(base.memberships, head.memberships);
    let mut out = PolicyDiff {
        rules,
        ..PolicyDiff::default()
    };
    let mut seen = HashSet::new();
    for test in base.tests.iter().chain(head.tests) {
        let key = format!(
            "{}|{:?}|{}|{:?}",
            test.call.target(),
            test.principal,
            test.args,
            test.agent
        );
        if !seen.insert(key) {
            continue;
        }
        out.evaluated += 1;
        let req = testing::request(test);
        if let Some(mut flip) = compare(&before, &after, &req) {
            flip.origin = "test";
            flip.test = Some(test.name.clone());
            flip.principal = test_principal(&test.principal);
            out.flips.push(flip);
        }
    }
    // Whose groups changed is probed by id: the groups alone are probed anyway.
    let moved: Vec<String> = out.rules.memberships.iter().map(|m| m.id.clone()).collect();
    let moved: Vec<&str> = moved.iter().map(String::as_str).collect();
    let (probes, truncated) = probes::generate(&[base.policy, head.policy], &moved);
    out.probes_truncated = truncated;
    for p in &probes {
        out.evaluated += 1;
        let req = Request {
            principal: &p.principal,
            agent: None,
            client_name: None,
            client_version: None,
            target: p.call.target(),
            args: &p.args,
            annotations: ToolAnnotations::default(),
        };
        if let Some(mut flip) = compare(&before, &after, &req) {
            flip.principal = p.label.clone();
            // A test already reports the same request.
            if !out.flips.iter().any(|f| {
                f.target == flip.target && f.args == flip.args && f.principal == flip.principal
            }) {
                out.flips.push(flip);
            }
        }
    }
    out.exact = analysis::compare(
        &Model {
            policy: base.policy,
            program: before,
            lock: None,
        },
        &Model {
            policy: head.policy,
            program: after,
            lock: None,
        },
    );
    // By target; tests first, then probes by principal and arguments.
    out.flips.sort_by_cached_key(|f| {
        (
            f.target.clone(),
            f.origin != "test",
            f.principal.clone(),
            f.args.to_string(),
        )
    });
    out
}

fn test_principal(p: &Principal) -> String {
    if p.id.is_empty() {
        p.kind.as_str().to_owned()
    } else {
        p.id.clone()
    }
}

/// Each side decides with the groups its own `principals.yaml` declares, as the gateway
/// running that side would.
fn compare(before: &Program, after: &Program, req: &Request<'_>) -> Option<Flip> {
    let on = |program: &Program| {
        let principal = program.principal(req.principal);
        crate::evaluate(
            program,
            &Request {
                principal: &principal,
                ..*req
            },
        )
    };
    let b = on(before);
    let a = on(after);
    (a.verdict != b.verdict).then(|| Flip {
        target: req.target.to_string(),
        principal: String::new(),
        args: req.args.clone(),
        origin: "probe",
        test: None,
        before: b.verdict,
        after: a.verdict,
        before_rule: before.rule_id(b.rule).to_owned(),
        after_rule: after.rule_id(a.rule).to_owned(),
        widens: widens(b.verdict, a.verdict),
    })
}

fn effect_name(e: Effect) -> &'static str {
    match e {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
        Effect::Hide => "hide",
        Effect::Approve => "approve",
        Effect::Limit => "limit",
        Effect::Redact => "redact",
    }
}

fn rule_ref(r: &ir::Rule) -> RuleRef {
    RuleRef {
        id: r.id.clone(),
        effect: effect_name(r.effect),
        source: r.source.to_string(),
    }
}

/// Principals whose declared groups differ, by id.
pub fn compare_memberships(base: &Memberships, head: &Memberships) -> Vec<MembershipChange> {
    let ids: std::collections::BTreeSet<&String> = base.keys().chain(head.keys()).collect();
    let none = Vec::new();
    ids.into_iter()
        .filter_map(|id| {
            let old = base.get(id).unwrap_or(&none);
            let new = head.get(id).unwrap_or(&none);
            let added: Vec<String> = new.iter().filter(|g| !old.contains(g)).cloned().collect();
            let removed: Vec<String> = old.iter().filter(|g| !new.contains(g)).cloned().collect();
            (!added.is_empty() || !removed.is_empty()).then(|| MembershipChange {
                id: id.clone(),
                added,
                removed,
            })
        })
        .collect()
}

/// Rules by id: added, removed, changed in meaning, or moved to another file.
pub fn compare_rules(base: &ir::Policy, head: &ir::Policy) -> RuleChanges {
    let old: BTreeMap<&str, &ir::Rule> = base.rules.iter().map(|r| (r.id.as_str(), r)).collect();
    let new: BTreeMap<&str, &ir::Rule> = head.rules.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut out = RuleChanges::default();
    for (id, r) in &new {
        match old.get(id) {
            None => out.added.push(rule_ref(r)),
            Some(o) => {
                let fields = changed_fields(o, r);
                if !fields.is_empty() {
                    out.changed.push(RuleChange {
                        id: (*id).to_owned(),
                        fields,
                        before: o.source.to_string(),
                        after: r.source.to_string(),
                    });
                } else if o.source.file != r.source.file {
                    out.moved.push(RuleMove {
                        id: (*id).to_owned(),
                        from: loc(&o.source),
                        to: loc(&r.source),
                    });
                }
            }
        }
    }
    out.removed = old
        .iter()
        .filter(|(id, _)| !new.contains_key(*id))
        .map(|(_, r)| rule_ref(r))
        .collect();
    out
}

fn loc(s: &SourceLoc) -> String {
    format!("{}:{}", s.file, s.line)
}

fn changed_fields(a: &ir::Rule, b: &ir::Rule) -> Vec<&'static str> {
    let mut out = Vec::new();
    if a.effect != b.effect {
        out.push("effect");
    }
    let ta: HashSet<&ir::Target> = a.targets.iter().collect();
    let tb: HashSet<&ir::Target> = b.targets.iter().collect();
    if ta != tb {
        out.push("targets");
    }
    if a.condition != b.condition {
        out.push("condition");
    }
    if a.reason != b.reason {
        out.push("reason");
    }
    let (mut aa, mut ab) = (a.approvers.clone(), b.approvers.clone());
    aa.sort();
    ab.sort();
    if aa != ab {
        out.push("approvers");
    }
    if a.limit != b.limit {
        out.push("limit");
    }
    if a.redact != b.redact {
        out.push("redaction");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_follows_the_access_order() {
        use Verdict::*;
        assert!(widens(Deny, Allow));
        assert!(widens(Hide, Approve));
        assert!(widens(Approve, Allow));
        assert!(!widens(Hide, Deny));
        assert!(!widens(Allow, Deny));
        assert!(!widens(Allow, Approve));
        assert!(!widens(Deny, Hide));
    }
}
