//! The syntax tree of a policy file. Every node carries the byte span it came from so that
//! any later stage (checker, compiler, test runner) can point back at the source.

use std::fmt;

/// A half-open byte range `[start, end)` in one source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        // Sources are capped well below 4 GiB by the loaders; saturate rather than wrap.
        let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Span {
            start: clamp(start),
            end: clamp(end),
        }
    }

    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// Shifts the span by `offset` bytes: used when an expression embedded in a YAML string
    /// is parsed on its own and must point into the YAML file.
    pub fn offset(self, offset: u32) -> Span {
        Span {
            start: self.start.saturating_add(offset),
            end: self.end.saturating_add(offset),
        }
    }
}

/// A value with the span it was written at. Equality and hashing ignore the span, so two
/// trees parsed from differently laid out sources compare equal.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.node == other.node
    }
}

impl<T: Eq> Eq for Spanned<T> {}

impl<T: std::hash::Hash> std::hash::Hash for Spanned<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.node.hash(state)
    }
}

/// One parsed `.mcpg` file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct File {
    pub rules: Vec<Rule>,
    /// Every `# ...` comment, in source order, kept for the formatter.
    pub comments: Vec<Comment>,
}

/// A `# ...` comment; `text` excludes the newline and includes the `#`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    pub text: String,
    pub span: Span,
}

/// `[@id("...")] EFFECT TARGETS [when EXPR] [because STRING] [by GROUPS] ;`,
/// `limit TARGETS N per WINDOW [per KEY] [when EXPR] [because STRING] ;`
/// and `redact TARGETS FIELDS [result matching PATTERNS] [when EXPR] ;`
///
/// Equality ignores spans, like [`Spanned`]: two rules are equal when they mean the same.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: Option<Spanned<String>>,
    pub effect: Spanned<Effect>,
    pub targets: Vec<Spanned<Target>>,
    /// Present exactly when `effect` is `Limit`.
    pub limit: Option<Limit>,
    /// Present exactly when `effect` is `Redact`.
    pub redact: Option<Redact>,
    pub when: Option<Expr>,
    pub because: Option<Spanned<String>>,
    /// Approver groups (`by "a", "b"`); meaningful for `approve`.
    pub by: Vec<Spanned<String>>,
    /// From the first token (the `@id` or the effect) to the `;`.
    pub span: Span,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.effect == other.effect
            && self.targets == other.targets
            && self.limit == other.limit
            && self.redact == other.redact
            && self.when == other.when
            && self.because == other.because
            && self.by == other.by
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Effect {
    Allow,
    Deny,
    Hide,
    Approve,
    Limit,
    Redact,
}

impl Effect {
    pub fn keyword(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::Hide => "hide",
            Effect::Approve => "approve",
            Effect::Limit => "limit",
            Effect::Redact => "redact",
        }
    }

    pub fn from_keyword(s: &str) -> Option<Effect> {
        Some(match s {
            "allow" => Effect::Allow,
            "deny" => Effect::Deny,
            "hide" => Effect::Hide,
            "approve" => Effect::Approve,
            "limit" => Effect::Limit,
            "redact" => Effect::Redact,
            _ => return None,
        })
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// `N per WINDOW [per KEY]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub count: Spanned<u64>,
    pub window: Spanned<Window>,
    /// `None` means the default key, `principal`.
    pub key: Option<Spanned<LimitKey>>,
}

/// What a `redact` rule masks: `args.a.b, result.email [, result matching "re", ...]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Redact {
    /// Paths as written (`args.card`, `result.email`); the checker validates their roots.
    pub fields: Vec<Spanned<Path>>,
    /// The patterns of `result matching "re", ...` (empty when absent).
    pub patterns: Vec<Spanned<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    Second,
    Minute,
    Hour,
    Day,
}

impl Window {
    pub fn keyword(self) -> &'static str {
        match self {
            Window::Second => "second",
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }

    pub fn from_keyword(s: &str) -> Option<Window> {
        Some(match s {
            "second" => Window::Second,
            "minute" => Window::Minute,
            "hour" => Window::Hour,
            "day" => Window::Day,
            _ => return None,
        })
    }

    pub fn seconds(self) -> u64 {
        match self {
            Window::Second => 1,
            Window::Minute => 60,
            Window::Hour => 3600,
            Window::Day => 86_400,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitKey {
    Principal,
    Agent,
    Server,
    Tool,
}

impl LimitKey {
    pub fn keyword(self) -> &'static str {
        match self {
            LimitKey::Principal => "principal",
            LimitKey::Agent => "agent",
            LimitKey::Server => "server",
            LimitKey::Tool => "tool",
        }
    }

    pub fn from_keyword(s: &str) -> Option<LimitKey> {
        Some(match s {
            "principal" => LimitKey::Principal,
            "agent" => LimitKey::Agent,
            "server" => LimitKey::Server,
            "tool" => LimitKey::Tool,
            _ => return None,
        })
    }
}

/// A name pattern: a server name, a tool or prompt name, or a resource URI.
/// Unquoted names may contain `*` globs; a quoted tool or prompt name is matched exactly.
/// Resource URIs are always quoted and always globs (`*` within a segment, `**` across `/`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    pub text: String,
    pub quoted: bool,
}

impl Pattern {
    pub fn is_glob(&self) -> bool {
        !self.quoted && self.text.contains('*')
    }
}

/// What a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `server.tool`
    Tool {
        server: Spanned<Pattern>,
        tool: Spanned<Pattern>,
    },
    /// `prompt server.name`
    Prompt {
        server: Spanned<Pattern>,
        name: Spanned<Pattern>,
    },
    /// `resource server "uri-glob"`
    Resource {
        server: Spanned<Pattern>,
        uri: Spanned<Pattern>,
    },
}

/// An expression with its span.
pub type Expr = Spanned<ExprKind>;

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Lit(Literal),
    /// `[a, b, ...]`
    List(Vec<Expr>),
    /// `args.a.b[0]`, `principal.groups`, `server`, `tool.read_only`, ...
    Path(Path),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `len(x)`, `exists(path)`; the name is checked later so unknown functions get a
    /// diagnostic with a span rather than a parse error.
    Call(Spanned<String>, Vec<Expr>),
    /// A placeholder left by error recovery; never reaches the checker's output.
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

/// A dotted/indexed path: `root(.field | [index] | ["key"])*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Path {
    /// `args`, `principal`, `agent`, `client`, `server`, `tool` (validated by the checker).
    pub root: Spanned<String>,
    pub segments: Vec<Spanned<Segment>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// `.name` or `["name"]`
    Field(String),
    /// `[3]`
    Index(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::Contains => "contains",
            BinOp::StartsWith => "starts_with",
            BinOp::EndsWith => "ends_with",
            BinOp::Matches => "matches",
        }
    }
}
