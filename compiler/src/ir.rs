//! The typed intermediate representation: what a policy means, independent of whether it
//! was written in the DSL or in YAML. The checker works on it, the reference interpreter
//! evaluates it, and the bytecode compiler lowers it into a [`crate::Program`].

use serde_json::Value;
use std::fmt;

pub use mcpgate_grammar::ast::{Effect, LimitKey, Window};

/// Every rule of a policy repository, in a stable order (by file path, then position).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

/// One rule. `id` is unique across the repository.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// `@id("...")`/`id:` or, failing that, `policies/file.mcpg#N` (1-based ordinal in file).
    pub id: String,
    pub effect: Effect,
    /// Never empty after a successful check.
    pub targets: Vec<Target>,
    /// `None` = unconditional.
    pub condition: Option<Expr>,
    /// `because "..."`.
    pub reason: Option<String>,
    /// `by "group", ...` (approve rules).
    pub approvers: Vec<String>,
    /// Present exactly when `effect == Effect::Limit`.
    pub limit: Option<Limit>,
    /// Present exactly when `effect == Effect::Redact`.
    pub redact: Option<Redaction>,
    pub source: SourceLoc,
}

/// What a `redact` rule masks. A redaction never changes a verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Redaction {
    /// Argument paths (`args.card_number` is `[Key("card_number")]`; an empty path is the
    /// whole arguments object): the audit log stores their values as salted hashes.
    pub args: Vec<Vec<PathSeg>>,
    /// Result field names (`result.email` is `email`): masked at any depth of a result.
    pub fields: Vec<String>,
    /// Regexes (`result matching "..."`): every match in a result's text is masked.
    pub patterns: Vec<String>,
}

/// A quota: `count` calls per `window`, counted separately for each value of `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limit {
    pub count: u64,
    pub window: Window,
    pub key: LimitKey,
}

/// Where something was written: a repo-relative path and a 1-based line and column
/// (columns count characters, as editors do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceLoc {
    pub file: String,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// What a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Tool {
        server: NamePattern,
        tool: NamePattern,
    },
    Prompt {
        server: NamePattern,
        name: NamePattern,
    },
    Resource {
        server: NamePattern,
        uri: UriPattern,
    },
}

/// A server, tool or prompt name pattern. In a glob, `*` matches any run of characters,
/// dots included (`github.get_*` matches `get_file.contents`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NamePattern {
    Exact(String),
    Glob(String),
}

impl NamePattern {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(s) => s == name,
            NamePattern::Glob(g) => glob_match(g.as_bytes(), name.as_bytes(), false),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            NamePattern::Exact(s) | NamePattern::Glob(s) => s,
        }
    }
}

/// A resource URI glob: `*` matches within one `/`-separated segment, `**` across segments.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UriPattern(pub String);

impl UriPattern {
    pub fn matches(&self, uri: &str) -> bool {
        glob_match(self.0.as_bytes(), uri.as_bytes(), true)
    }
}

/// The glob matcher: iterative, no allocation, O(pattern × text) in the worst case whatever
/// the number of stars. With `segments`, a single `*` stops at `/` and `**` crosses it.
///
/// Two backtrack points suffice. A `**` matches any run, so once one is reached, the
/// earliest place the text before it matched is as good as any later one: what came before
/// is never revisited, and on a mismatch the latest `**` takes one more byte. Between
/// `**`s, a single `*` is backtracked as in a plain wildcard match, one byte at a time and
/// never across `/` (an earlier `*` of the same stretch could not cross it either).
pub fn glob_match(pat: &[u8], text: &[u8], segments: bool) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the latest `*` / `**`: (pattern after it, text it starts at).
    let mut star: Option<(usize, usize)> = None;
    let mut globstar: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(b'*') if segments && pat.get(p + 1) == Some(&b'*') => {
                p += 2;
                globstar = Some((p, t));
                star = None;
            }
            Some(b'*') => {
                p += 1;
                star = Some((p, t));
            }
            Some(&c) if Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match (star, globstar) {
                (Some((sp, st)), _) if !(segments && text.get(st) == Some(&b'/')) => {
                    p = sp;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                (_, Some((gp, gt))) => {
                    p = gp;
                    t = gt + 1;
                    globstar = Some((gp, gt + 1));
                    star = None;
                }
                _ => return false,
            },
        }
    }
    pat.get(p..).unwrap_or_default().iter().all(|&c| c == b'*')
}

/// A typed condition expression. Evaluation is three-valued and never fails: see
/// LANGUAGE.md ("Evaluation never errors at run time, and it fails closed").
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A literal: string, number, bool, null or a list of literals.
    Const(Value),
    /// A list whose items are not all constant (`[args.a, "x"]`).
    List(Vec<Expr>),
    /// A value from the request.
    Var(Var),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// `x in list` (list membership by `==`), or `key in object`.
    In(Box<Expr>, Box<Expr>),
    /// `contains` (substring, or list element), `starts_with`, `ends_with`.
    Str(StrOp, Box<Expr>, Box<Expr>),
    /// `x matches "re"`: the pattern is validated by the checker and compiled once.
    Matches(Box<Expr>, String),
    /// `len(x)`: characters of a string, items of a list, keys of an object.
    Len(Box<Expr>),
    /// `exists(path)`: true when the path is present (even if `null`).
    Exists(Var),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrOp {
    Contains,
    StartsWith,
    EndsWith,
}

/// A value the request provides.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Var {
    /// `args` followed by a JSON path (empty = the whole arguments object).
    Args(Vec<PathSeg>),
    PrincipalId,
    /// `"human" | "agent" | "service" | "anonymous"`.
    PrincipalKind,
    /// A list of strings.
    PrincipalGroups,
    /// `principal.attrs.NAME...`: the first segment is the attribute name.
    PrincipalAttr(Vec<PathSeg>),
    AgentName,
    ClientName,
    ClientVersion,
    Server,
    /// The tool (or prompt) name; the resource URI for resources.
    Tool,
    ToolAnnotation(Annotation),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(u64),
}

/// The value at `path` inside `value`, for rewriting it (redacting an argument before it is
/// recorded); `None` when a step is absent.
pub fn value_at_mut<'v>(value: &'v mut Value, path: &[PathSeg]) -> Option<&'v mut Value> {
    let mut v = value;
    for s in path {
        v = match (s, v) {
            (PathSeg::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (PathSeg::Index(i), Value::Array(a)) => a.get_mut(usize::try_from(*i).ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// MCP tool annotations (claims by the server, pinned in `mcpgate.lock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Annotation {
    ReadOnly,
    Destructive,
    Idempotent,
    OpenWorld,
}
