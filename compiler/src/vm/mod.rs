//! Compiled programs and the VM that evaluates them.
//!
//! A [`Program`] is an immutable, content-hashed compilation of an [`ir::Policy`]: interned
//! strings and JSON paths, hash-consed condition nodes, regexes and globs compiled once, and a
//! dispatch table from a target (server and tool, prompt or resource) to a leaf that lists
//! the applicable rules by effect in precedence order. [`evaluate`] borrows the program and
//! the request and allocates nothing; see `docs/bytecode.md` for the layout and encoding.

mod code;
mod compile;
mod dispatch;
mod encode;
mod eval;
mod explain;
mod glob;
mod value;

use crate::ir::{self, Effect, Limit, SourceLoc};
use crate::request::{Principal, Request, Target, Verdict};
use sha2::{Digest, Sha256};

pub use encode::{DecodeError, FORMAT_VERSION};
pub use eval::{LimitMatches, Redaction, Redactions};
pub use explain::{Considered, Explanation, Outcome, explain};

/// Declared group membership: principal id to the groups it belongs to.
pub type Memberships = std::collections::BTreeMap<String, Vec<String>>;

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
    /// The leaf the request was dispatched to: lets [`Program::limits`] find the `limit`
    /// rules of the same target without dispatching again.
    pub leaf: u32,
}

/// What the rule table keeps of each rule, for messages, audit and explain.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleInfo {
    pub id: String,
    pub effect: Effect,
    pub reason: Option<String>,
    pub approvers: Vec<String>,
    pub limit: Option<Limit>,
    /// What a `redact` rule masks.
    pub redact: Option<ir::Redaction>,
    pub source: SourceLoc,
}

/// A compiled policy: immutable, shareable across threads, evaluated by [`evaluate`].
#[derive(Debug)]
pub struct Program {
    code: code::Code,
    link: code::Linked,
    hash: [u8; 32],
}

impl Program {
    /// Compiles a checked policy. Never fails: a regex that does not compile (the checker
    /// reports it) becomes a test that cannot be decided, so it fails closed.
    pub fn compile(policy: &ir::Policy, commit: Option<&str>) -> Program {
        Program::from_code(compile::compile(policy, commit))
    }

    /// The program with the group membership a repository declares (`principals.yaml`):
    /// principal id to groups. Part of the encoding and the hash, so it swaps, is saved and
    /// is audited with the rules.
    #[must_use]
    pub fn with_memberships(self, memberships: &Memberships) -> Program {
        let mut code = self.code;
        code.memberships = memberships
            .iter()
            .filter(|(_, g)| !g.is_empty())
            .map(|(id, g)| {
                let mut g = g.clone();
                g.sort();
                g.dedup();
                (id.clone(), g)
            })
            .collect();
        Program::from_code(code)
    }

    fn from_code(code: code::Code) -> Program {
        let link = code::Linked::new(&code);
        let hash = Sha256::digest(encode::encode(&code)).into();
        Program { code, link, hash }
    }

    /// The stable binary encoding (magic, format version, then the program).
    pub fn encode(&self) -> Vec<u8> {
        encode::encode(&self.code)
    }

    /// Reads a program written by [`Program::encode`].
    ///
    /// # Errors
    /// When the bytes are not a valid program of this format version. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Program, DecodeError> {
        let program = Program::from_code(encode::decode(bytes)?);
        if program.link.regexes.iter().any(Option::is_none) {
            return Err(DecodeError::Invalid("regex does not compile"));
        }
        let redact_ok = program
            .code
            .rules
            .iter()
            .zip(&program.link.redact_patterns)
            .all(|(r, compiled)| {
                r.redact.as_ref().map_or(0, |x| x.patterns.len()) == compiled.len()
            });
        if !redact_ok {
            return Err(DecodeError::Invalid("regex does not compile"));
        }
        Ok(program)
    }

    /// SHA-256 of the binary encoding.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// SHA-256 of the binary encoding, hex.
    pub fn hash_hex(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn rules(&self) -> &[RuleInfo] {
        &self.code.rules
    }

    pub fn rule(&self, idx: RuleIdx) -> Option<&RuleInfo> {
        self.code.rules.get(idx.0 as usize)
    }

    /// The deciding rule's id, `default` for the built-in rule.
    pub fn rule_id(&self, idx: RuleIdx) -> &str {
        self.rule(idx).map_or("default", |r| r.id.as_str())
    }

    /// The groups the policy repository declares for `id` (`principals.yaml`).
    pub fn groups_of(&self, id: &str) -> &[String] {
        let m = &self.code.memberships;
        m.binary_search_by(|(k, _)| k.as_str().cmp(id))
            .ok()
            .and_then(|i| m.get(i))
            .map_or(&[], |(_, g)| g.as_slice())
    }

    /// Every declared membership: (principal id, groups), sorted by id.
    pub fn memberships(&self) -> &[(String, Vec<String>)] {
        &self.code.memberships
    }

    /// `p` with the groups the policy repository declares for its id added. Borrowed when
    /// that adds nothing, so a decision for a principal the repository does not name copies
    /// nothing.
    pub fn principal<'a>(&self, p: &'a Principal) -> std::borrow::Cow<'a, Principal> {
        let declared = self.groups_of(&p.id);
        if declared.iter().all(|g| p.groups.contains(g)) {
            return std::borrow::Cow::Borrowed(p);
        }
        let mut merged = p.clone();
        for g in declared {
            if !merged.groups.contains(g) {
                merged.groups.push(g.clone());
            }
        }
        std::borrow::Cow::Owned(merged)
    }

    /// The source commit the program was compiled from, if known.
    pub fn commit(&self) -> Option<&str> {
        self.code.commit.as_deref()
    }

    /// The `limit` rules (in rule order) whose targets and conditions match `request`.
    /// `decision` must come from [`evaluate`] on the same request. A limit whose condition
    /// cannot be decided matches (it fails closed). Allocates nothing.
    pub fn limits<'a>(&'a self, decision: &Decision, request: &Request<'a>) -> LimitMatches<'a> {
        LimitMatches::new(self, decision.leaf, *request)
    }

    /// The `redact` rules (in rule order) whose targets and conditions match `request`,
    /// whatever the verdict: argument redaction applies to the audit record of a refused call
    /// too. A redaction whose condition cannot be decided applies (it fails closed).
    /// Allocates nothing.
    pub fn redactions<'a>(&'a self, request: &Request<'a>) -> Redactions<'a> {
        Redactions::new(self, eval::dispatch(self, request.target), *request)
    }

    /// The redaction of one `redact` rule, by index (`None` for other rules): lets a caller
    /// keep rule indices from [`Program::redactions`] and mask a response later.
    pub fn redaction(&self, idx: RuleIdx) -> Option<Redaction<'_>> {
        eval::redaction_of(self, idx.0)
    }

    /// Whether the program has any `redact` rule: lets the gateway skip result redaction
    /// entirely for policies without one.
    pub fn has_redactions(&self) -> bool {
        self.code.rules.iter().any(|r| r.redact.is_some())
    }

    /// The rules `target` dispatches to (after their target guards), per effect in
    /// precedence order: hide, deny, approve, allow, then limit; each list in rule order.
    /// What the analyses (`who-can`, the exact diff) read instead of matching patterns again.
    pub fn applicable(&self, target: Target<'_>) -> [Vec<RuleIdx>; 5] {
        eval::applicable(self, target).map(|l| l.into_iter().map(RuleIdx).collect())
    }

    /// Number of leaves (distinct dispatch outcomes); for statistics and docs.
    pub fn leaf_count(&self) -> usize {
        self.code.leaves.len()
    }

    /// Per target kind: (exact keys, rules in exact leaves, server leaves, rules and guards
    /// in server leaves, rules in the fallback leaf); for tuning.
    #[doc(hidden)]
    pub fn dispatch_stats(&self) -> Vec<[usize; 6]> {
        let leaf = |l: u32| self.code.leaves.get(l as usize);
        let rules = |l: u32| leaf(l).map_or(0, |l| l.effects[..4].iter().map(Vec::len).sum());
        let guards = |l: u32| {
            leaf(l).map_or(0, |l| {
                l.effects[..4]
                    .iter()
                    .flatten()
                    .map(|e| e.guards.len())
                    .sum()
            })
        };
        self.code
            .dispatch
            .iter()
            .map(|d| {
                [
                    d.exact.len(),
                    d.exact.iter().map(|e| rules(e.2)).sum(),
                    d.servers.len(),
                    d.servers.iter().map(|e| rules(e.1)).sum(),
                    d.servers.iter().map(|e| guards(e.1)).sum(),
                    rules(d.fallback),
                ]
            })
            .collect()
    }
}

/// Decide one request. Allocates nothing.
pub fn evaluate(program: &Program, request: &Request<'_>) -> Decision {
    eval::evaluate(program, request)
}

/// Whether a tool, prompt or resource may appear in a list shown to `principal`: some
/// `allow` or `approve` rule could match for this principal, and no `deny` or `hide` rule
/// surely does. Conditions on principal fields, the server and the name are evaluated; any
/// other condition counts as "could match". Allocates nothing.
pub fn visible(program: &Program, principal: &Principal, target: Target<'_>) -> bool {
    eval::visible(program, principal, target)
}

/// The unconditional `deny` that keeps a target off `principal`'s lists: the first `deny`
/// rule that applies to this principal whatever the arguments (its condition reads only
/// principal fields, or cannot be decided and fails closed), unless a `hide` rule does
/// too. `None` when the target is listed, hidden, or unlisted only because no `allow` or
/// `approve` rule could apply. The gateway answers a call withheld this way with the
/// denial and its reason rather than as an unknown tool. Allocates nothing.
pub fn withheld_by(
    program: &Program,
    principal: &Principal,
    target: Target<'_>,
) -> Option<RuleIdx> {
    eval::withheld_by(program, principal, target).map(RuleIdx)
}

impl Decision {
    /// The decision of the built-in `default` rule.
    pub const fn default_deny(leaf: u32) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            rule: RuleIdx::DEFAULT,
            undecided: false,
            leaf,
        }
    }
}
