//! Compiled programs and the VM that evaluates them.
//!
//! PLACEHOLDER API: the shapes below are the contract the gateway builds against; the
//! bytecode compiler and VM replace the bodies.

use crate::ir::{self, Effect, Limit, SourceLoc};
use crate::request::{Principal, Request, Target, Verdict};

/// Index of a rule in [`Program::rules`]; [`RuleIdx::DEFAULT`] is the built-in `default` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleIdx(pub u32);

impl RuleIdx {
    pub const DEFAULT: RuleIdx = RuleIdx(u32::MAX);
}

/// The outcome of one evaluation: small and `Copy`, so deciding allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The rule that decided (`RuleIdx::DEFAULT` when none did).
    pub rule: RuleIdx,
    /// The deciding rule's condition could not be decided (a type mismatch in the request):
    /// a restrictive rule applied because it fails closed.
    pub undecided: bool,
}

/// What the rule table keeps of each rule, for messages, audit and explain.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleInfo {
    pub id: String,
    pub effect: Effect,
    pub reason: Option<String>,
    pub approvers: Vec<String>,
    pub limit: Option<Limit>,
    pub source: SourceLoc,
}

/// A compiled policy.
#[derive(Debug)]
pub struct Program {
    policy: ir::Policy,
    rules: Vec<RuleInfo>,
    commit: Option<String>,
}

impl Program {
    pub fn compile(policy: &ir::Policy, commit: Option<&str>) -> Program {
        let rules = policy
            .rules
            .iter()
            .map(|r| RuleInfo {
                id: r.id.clone(),
                effect: r.effect,
                reason: r.reason.clone(),
                approvers: r.approvers.clone(),
                limit: r.limit,
                source: r.source.clone(),
            })
            .collect();
        Program {
            policy: policy.clone(),
            rules,
            commit: commit.map(str::to_owned),
        }
    }

    pub fn rules(&self) -> &[RuleInfo] {
        &self.rules
    }

    pub fn rule(&self, idx: RuleIdx) -> Option<&RuleInfo> {
        self.rules.get(idx.0 as usize)
    }

    /// The deciding rule's id, `default` for the built-in rule.
    pub fn rule_id(&self, idx: RuleIdx) -> &str {
        self.rule(idx).map_or("default", |r| r.id.as_str())
    }

    pub fn commit(&self) -> Option<&str> {
        self.commit.as_deref()
    }

    /// SHA-256 of the program's binary encoding, hex.
    pub fn hash_hex(&self) -> String {
        String::new()
    }

    #[doc(hidden)]
    pub fn policy(&self) -> &ir::Policy {
        &self.policy
    }
}

/// Decide one request.
pub fn evaluate(_program: &Program, _request: &Request<'_>) -> Decision {
    Decision {
        verdict: Verdict::Deny,
        rule: RuleIdx::DEFAULT,
        undecided: false,
    }
}

/// Whether a tool, prompt or resource may appear in a list shown to `principal`.
pub fn visible(_program: &Program, _principal: &Principal, _target: Target<'_>) -> bool {
    false
}
