//! `explain`: the decision for one request with every rule considered for its target, each
//! matched, not matched or undecided, and why. Allocates freely; never on the hot path.

use super::code::{ALLOW, APPROVE, Code, DENY, HIDE, LIMIT, Load, Node, REDACT, Seg};
use super::eval::{Cx, dispatch};
use super::value::{Tri, Val};
use super::{Decision, Program, RuleIdx, evaluate};
use crate::ir::{Annotation, CmpOp, StrOp};
use crate::request::{Request, Verdict};
use serde::Serialize;
use serde_json::Value;

/// Whether a rule's condition held for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    #[serde(rename = "matched")]
    Matched,
    #[serde(rename = "not matched")]
    NotMatched,
    /// The condition could not be decided (a type mismatch).
    #[serde(rename = "undecided")]
    Undecided,
}

/// One rule considered for the request's target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Considered {
    pub rule: String,
    pub effect: &'static str,
    pub source: String,
    pub outcome: Outcome,
    /// This rule made the decision.
    pub decided: bool,
    pub why: String,
}

/// The decision for one request and how it was reached; serializes to the JSON of
/// `mcpgate explain --format json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub verdict: Verdict,
    /// The deciding rule's id (`default` for the built-in rule).
    pub rule: String,
    pub reason: Option<String>,
    /// `file:line:col` of the deciding rule; `None` for the built-in rule.
    pub source: Option<String>,
    pub undecided: bool,
    /// The program's hash (hex).
    pub program: String,
    /// The request's target, as `--call` writes it.
    pub target: String,
    /// Every rule written for this target, by effect in precedence order, then rule order.
    pub considered: Vec<Considered>,
    /// `limit` rules that match (their quotas apply if the call is allowed).
    pub limits: Vec<String>,
    /// `redact` rules that match (arguments hashed in the audit log, results masked).
    pub redactions: Vec<String>,
    #[serde(skip)]
    pub decision: Decision,
}

/// Explains the decision [`evaluate`] makes for `request`.
pub fn explain(p: &Program, request: &Request<'_>) -> Explanation {
    let decision = evaluate(p, request);
    let info = p.rule(decision.rule);
    let mut considered = Vec::new();
    if let Some(leaf) = p.code.leaves.get(dispatch(p, request.target) as usize) {
        let mut cx = Cx::new(p, request.principal, request.target, Some(*request));
        for e in [HIDE, DENY, APPROVE, ALLOW, LIMIT, REDACT] {
            for entry in leaf.effects.get(e).map_or(&[][..], Vec::as_slice) {
                let Some(t) = cx.rule(leaf, entry) else {
                    continue;
                };
                let Some(r) = p.rules().get(entry.rule as usize) else {
                    continue;
                };
                let outcome = match t {
                    Tri::T => Outcome::Matched,
                    Tri::F => Outcome::NotMatched,
                    _ => Outcome::Undecided,
                };
                let tests: Vec<u32> = entry
                    .conj
                    .iter()
                    .filter_map(|&s| leaf.tests.get(s as usize).copied())
                    .collect();
                let why = why(&p.code, &mut cx, &tests, t);
                considered.push(Considered {
                    rule: r.id.clone(),
                    effect: r.effect.keyword(),
                    source: r.source.to_string(),
                    outcome,
                    decided: decision.rule == RuleIdx(entry.rule),
                    why,
                });
            }
        }
    }
    Explanation {
        verdict: decision.verdict,
        rule: p.rule_id(decision.rule).to_owned(),
        reason: info.and_then(|r| r.reason.clone()),
        source: info.map(|r| r.source.to_string()),
        undecided: decision.undecided,
        program: p.hash_hex(),
        target: request.target.to_string(),
        considered,
        limits: p
            .limits(&decision, request)
            .map(|r| p.rule_id(r).to_owned())
            .collect(),
        redactions: p.redactions(request).map(|r| r.id.to_owned()).collect(),
        decision,
    }
}

fn why(code: &Code, cx: &mut Cx<'_>, tests: &[u32], t: Tri) -> String {
    if tests.is_empty() {
        return "no condition".into();
    }
    let whole = || {
        tests
            .iter()
            .map(|&n| render(code, n, tests.len() > 1))
            .collect::<Vec<_>>()
            .join(" && ")
    };
    match t {
        Tri::T => format!("`{}` is true", whole()),
        Tri::F | Tri::U | Tri::A => {
            let want = if t == Tri::F { Tri::F } else { Tri::U };
            for &n in tests {
                if cx.eval(n).truth() == want {
                    let what = if want == Tri::F {
                        "is false"
                    } else {
                        "cannot be decided"
                    };
                    let detail = operands(code, cx, n);
                    return format!("`{}` {what}{detail}", render(code, n, false));
                }
            }
            format!("`{}` cannot be decided", whole())
        }
    }
}

/// Describes the operands of a failing test: which path is missing, which type is wrong.
fn operands(code: &Code, cx: &mut Cx<'_>, n: u32) -> String {
    let ops: Vec<u32> = match code.nodes.get(n as usize) {
        Some(Node::Cmp(_, a, b) | Node::In(a, b) | Node::Str(_, a, b)) => vec![*a, *b],
        Some(Node::Matches(a, _) | Node::Not(a) | Node::Len(a)) => vec![*a],
        _ => Vec::new(),
    };
    let parts: Vec<String> = ops
        .into_iter()
        .filter(|&o| !matches!(code.nodes.get(o as usize), Some(Node::Const(_))))
        .map(|o| format!("`{}` is {}", render(code, o, false), kind(cx.eval(o))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn kind(v: Val<'_>) -> String {
    match v {
        Val::Missing => "missing".into(),
        Val::Unknown => "undecidable".into(),
        Val::Any => "unknown".into(),
        Val::Null => "null".into(),
        Val::Bool(b) => format!("the boolean {b}"),
        Val::Num(_) => "a number".into(),
        Val::Str(s) => format!("the string {}", Value::String(s.to_owned())),
        Val::Json(Value::Object(_)) => "an object".into(),
        Val::Json(_) | Val::Groups(_) | Val::List(_) => "a list".into(),
    }
}

/// Renders a condition node in the DSL's syntax.
pub(crate) fn render(code: &Code, n: u32, paren: bool) -> String {
    let r = |k: u32| render(code, k, true);
    let kids = |start: u32, len: u32| {
        code.kids
            .get(start as usize..(start as usize + len as usize))
            .unwrap_or_default()
    };
    let s = match code.nodes.get(n as usize) {
        None => return "?".into(),
        Some(Node::Const(c)) => {
            return code
                .consts
                .get(*c as usize)
                .map_or("?".into(), Value::to_string);
        }
        Some(Node::Load(l)) => return load(code, *l),
        Some(Node::List { start, len }) => {
            let items: Vec<String> = kids(*start, *len)
                .iter()
                .map(|&k| render(code, k, false))
                .collect();
            return format!("[{}]", items.join(", "));
        }
        Some(Node::Len(a)) => return format!("len({})", render(code, *a, false)),
        Some(Node::Exists(l)) => return format!("exists({})", load(code, *l)),
        Some(Node::Undecidable) => return "<invalid>".into(),
        Some(Node::Not(a)) => return format!("!{}", r(*a)),
        Some(Node::And { start, len }) => kids(*start, *len)
            .iter()
            .map(|&k| r(k))
            .collect::<Vec<_>>()
            .join(" && "),
        Some(Node::Or { start, len }) => kids(*start, *len)
            .iter()
            .map(|&k| r(k))
            .collect::<Vec<_>>()
            .join(" || "),
        Some(Node::Cmp(op, a, b)) => {
            let op = match op {
                CmpOp::Eq => "==",
                CmpOp::Ne => "!=",
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
            };
            format!("{} {op} {}", r(*a), r(*b))
        }
        Some(Node::In(a, b)) => format!("{} in {}", r(*a), r(*b)),
        Some(Node::Str(op, a, b)) => {
            let op = match op {
                StrOp::Contains => "contains",
                StrOp::StartsWith => "starts_with",
                StrOp::EndsWith => "ends_with",
            };
            format!("{} {op} {}", r(*a), r(*b))
        }
        Some(Node::Matches(a, re)) => {
            let re = code.regexes.get(*re as usize).cloned().unwrap_or_default();
            format!("{} matches {}", r(*a), Value::String(re))
        }
    };
    if paren { format!("({s})") } else { s }
}

fn load(code: &Code, l: Load) -> String {
    let path = |base: &str, p: u32| {
        let mut s = base.to_owned();
        for seg in code.paths.get(p as usize).map_or(&[][..], Vec::as_slice) {
            match seg {
                Seg::Key(k) => {
                    let k = code.strings.get(*k as usize).map_or("", String::as_str);
                    let ident = !k.is_empty()
                        && !k.starts_with(|c: char| c.is_ascii_digit())
                        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if ident {
                        s.push('.');
                        s.push_str(k);
                    } else {
                        s.push_str(&format!("[{}]", Value::String(k.to_owned())));
                    }
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    };
    match l {
        Load::Args(p) => path("args", p),
        Load::PrincipalAttr(p) => path("principal.attrs", p),
        Load::PrincipalId => "principal.id".into(),
        Load::PrincipalKind => "principal.kind".into(),
        Load::PrincipalGroups => "principal.groups".into(),
        Load::AgentName => "agent.name".into(),
        Load::ClientName => "client.name".into(),
        Load::ClientVersion => "client.version".into(),
        Load::Server => "server".into(),
        Load::Tool => "tool".into(),
        Load::Annotation(a) => match a {
            Annotation::ReadOnly => "tool.read_only".into(),
            Annotation::Destructive => "tool.destructive".into(),
            Annotation::Idempotent => "tool.idempotent".into(),
            Annotation::OpenWorld => "tool.open_world".into(),
        },
    }
}
