//! The data of a compiled program (what is encoded) and what is derived from it when a
//! program is built or decoded (hash indexes, compiled regexes and globs).

use super::RuleInfo;
use super::dispatch::Table;
use super::glob::{Glob, GlobMode};
use crate::ir::{Annotation, CmpOp, StrOp};
use regex::Regex;
use serde_json::Value;

/// Deepest condition nesting a program may hold: evaluation recurses once per level.
pub(crate) const MAX_DEPTH: u32 = 512;

/// Memo slots per leaf: shared tests beyond this many are evaluated without a memo.
pub(crate) const MEMO_SLOTS: usize = 128;

/// Effects in precedence order; the index into [`Leaf::effects`].
pub(crate) const HIDE: usize = 0;
pub(crate) const DENY: usize = 1;
pub(crate) const APPROVE: usize = 2;
pub(crate) const ALLOW: usize = 3;
pub(crate) const LIMIT: usize = 4;
pub(crate) const REDACT: usize = 5;
/// Number of effect lists per leaf.
pub(crate) const EFFECTS: usize = 6;

/// Target kinds; the index into [`Code::dispatch`].
pub(crate) const TOOL: usize = 0;
pub(crate) const PROMPT: usize = 1;
pub(crate) const RESOURCE: usize = 2;

/// The encoded program.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Code {
    pub commit: Option<String>,
    pub rules: Vec<RuleInfo>,
    /// Interned strings: path keys, names in dispatch tables.
    pub strings: Vec<String>,
    /// Constants (literals) of conditions.
    pub consts: Vec<Value>,
    /// Interned JSON paths.
    pub paths: Vec<Vec<Seg>>,
    /// Regex sources; compiled in [`Linked`].
    pub regexes: Vec<String>,
    /// Name and URI patterns checked at run time; compiled in [`Linked`].
    pub globs: Vec<(String, GlobMode)>,
    /// Hash-consed condition nodes; a node's operands always precede it.
    pub nodes: Vec<Node>,
    /// Operand lists of n-ary nodes (`and`, `or`, lists).
    pub kids: Vec<u32>,
    pub leaves: Vec<Leaf>,
    /// Tool, prompt and resource dispatch.
    pub dispatch: [Dispatch; 3],
    /// Declared group membership: (principal id, its groups), sorted by id.
    pub memberships: Vec<(String, Vec<String>)>,
}

/// A path segment: an interned key or an array index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    Key(u32),
    Index(u64),
}

/// A value loaded from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Load {
    Args(u32),
    PrincipalId,
    PrincipalKind,
    PrincipalGroups,
    PrincipalAttr(u32),
    AgentName,
    ClientName,
    ClientVersion,
    Server,
    Tool,
    Annotation(Annotation),
}

impl Load {
    /// Whether the value is known when only the principal and the target are (for lists).
    pub fn known_for_listing(self) -> bool {
        matches!(
            self,
            Load::PrincipalId
                | Load::PrincipalKind
                | Load::PrincipalGroups
                | Load::PrincipalAttr(_)
                | Load::Server
                | Load::Tool
        )
    }
}

/// One condition node. Operands are node indices; ranges index [`Code::kids`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    Const(u32),
    Load(Load),
    List {
        start: u32,
        len: u32,
    },
    Not(u32),
    And {
        start: u32,
        len: u32,
    },
    Or {
        start: u32,
        len: u32,
    },
    Cmp(CmpOp, u32, u32),
    In(u32, u32),
    Str(StrOp, u32, u32),
    Matches(u32, u32),
    Len(u32),
    Exists(Load),
    /// A test that can never be decided (an invalid regex): fails closed.
    Undecidable,
}

/// A rule as it appears in one leaf.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub rule: u32,
    /// Target patterns checked at run time (empty: the dispatch already matched). The rule
    /// applies when any guard matches.
    pub guards: Vec<Guard>,
    /// The condition as a conjunction of leaf tests (indices into [`Leaf::tests`]); empty
    /// for an unconditional rule.
    pub conj: Vec<u32>,
}

/// A target pattern left to check at run time: glob indices into [`Code::globs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Guard {
    pub server: Option<u32>,
    pub name: u32,
}

/// What applies to one dispatch outcome.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Leaf {
    /// Distinct top-level conjuncts of the leaf's conditions (node indices). A test used by
    /// several rules is evaluated once per request: its index is its memo slot.
    pub tests: Vec<u32>,
    /// Hide, deny, approve, allow, limit and redact rules, each in rule order.
    pub effects: [Vec<Entry>; EFFECTS],
}

/// Dispatch for one target kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Dispatch {
    /// (server, name) pairs named exactly by some rule: (server string, name string, leaf).
    pub exact: Vec<(u32, u32, u32)>,
    /// Servers named exactly by some rule: (server string, leaf); rules carry name guards.
    pub servers: Vec<(u32, u32)>,
    /// Every other request: rules with a glob server, carrying server and name guards.
    pub fallback: u32,
}

/// What is derived from [`Code`] when a program is built or decoded.
#[derive(Debug)]
pub(crate) struct Linked {
    pub regexes: Vec<Option<Regex>>,
    /// Per rule, the compiled `result matching` patterns of a `redact` rule (else empty).
    pub redact_patterns: Vec<Vec<Regex>>,
    pub globs: Vec<Glob>,
    pub exact: [Table; 3],
    pub servers: [Table; 3],
}

impl Linked {
    pub fn new(code: &Code) -> Linked {
        let s = |i: u32| code.strings.get(i as usize).map_or("", String::as_str);
        let exact = std::array::from_fn(|k| {
            Table::new(
                code.dispatch[k]
                    .exact
                    .iter()
                    .map(|&(a, b, leaf)| (s(a), s(b), leaf)),
            )
        });
        let servers = std::array::from_fn(|k| {
            Table::new(
                code.dispatch[k]
                    .servers
                    .iter()
                    .map(|&(a, leaf)| (s(a), "", leaf)),
            )
        });
        let redact_patterns = code
            .rules
            .iter()
            .map(|r| {
                r.redact.as_ref().map_or_else(Vec::new, |x| {
                    x.patterns
                        .iter()
                        .filter_map(|p| crate::check::types::compile_regex(p).ok())
                        .collect()
                })
            })
            .collect();
        Linked {
            redact_patterns,
            regexes: code
                .regexes
                .iter()
                .map(|r| regex::Regex::new(r).ok())
                .collect(),
            globs: code
                .globs
                .iter()
                .map(|(p, mode)| Glob::new(p, *mode))
                .collect(),
            exact,
            servers,
        }
    }
}
