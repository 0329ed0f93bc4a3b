//! The reference interpreter: a deliberately plain evaluator over the IR with the
//! semantics of LANGUAGE.md, no compilation and no cleverness. It allocates freely. The VM
//! is tested against it (`tests/differential.rs`) and benchmarked against it.

use crate::ir::{self, CmpOp, Effect, Expr, PathSeg, StrOp, Var};
use crate::request::{Request, Target, Verdict};
use crate::vm::RuleIdx;
use serde_json::Value;
use std::cmp::Ordering;

/// What the reference interpreter decides: the same fields as [`crate::Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub rule: RuleIdx,
    pub undecided: bool,
}

/// A value: missing, undecidable, a JSON value, or a list expression's items.
#[derive(Debug, Clone)]
enum V {
    Missing,
    Unknown,
    Json(Value),
    List(Vec<V>),
}

/// Three-valued truth: `None` is "cannot be decided".
type T3 = Option<bool>;

fn and3(a: T3, b: T3) -> T3 {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: T3, b: T3) -> T3 {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn truth(v: &V) -> T3 {
    match v {
        V::Json(Value::Bool(b)) => Some(*b),
        V::Missing => Some(false),
        _ => None,
    }
}

fn boolean(t: T3) -> V {
    t.map_or(V::Unknown, |b| V::Json(Value::Bool(b)))
}

fn num_cmp(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    let int = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// The items of a list-like value.
fn items(v: &V) -> Option<Vec<V>> {
    match v {
        V::Json(Value::Array(a)) => Some(a.iter().cloned().map(V::Json).collect()),
        V::List(l) => Some(l.clone()),
        _ => None,
    }
}

// Three-valued folds: `None` must not short-circuit, so `try_fold` would be wrong.
#[allow(clippy::manual_try_fold)]
fn eq(a: &V, b: &V) -> T3 {
    match (a, b) {
        (V::Missing, _) | (_, V::Missing) => Some(false),
        (V::Unknown, _) | (_, V::Unknown) => None,
        (V::Json(Value::Number(x)), V::Json(Value::Number(y))) => {
            Some(num_cmp(x, y) == Some(Ordering::Equal))
        }
        (V::Json(Value::Object(x)), V::Json(Value::Object(y))) => Some(
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.get(k)
                        .is_some_and(|w| eq(&V::Json(v.clone()), &V::Json(w.clone())) == Some(true))
                }),
        ),
        _ => match (items(a), items(b)) {
            (Some(x), Some(y)) if x.len() == y.len() => x
                .iter()
                .zip(&y)
                .fold(Some(true), |acc, (p, q)| and3(acc, eq(p, q))),
            (Some(_), _) | (_, Some(_)) => Some(false),
            _ => match (a, b) {
                (V::Json(x), V::Json(y)) => Some(x == y),
                _ => Some(false),
            },
        },
    }
}

#[allow(clippy::manual_try_fold)]
fn member(x: &V, list: &[V]) -> T3 {
    list.iter().fold(Some(false), |acc, y| or3(acc, eq(x, y)))
}

fn walk(mut v: &Value, path: &[PathSeg]) -> Option<Value> {
    for s in path {
        v = match (s, v) {
            (PathSeg::Key(k), Value::Object(m)) => m.get(k)?,
            (PathSeg::Index(i), Value::Array(a)) => a.get(usize::try_from(*i).ok()?)?,
            _ => return None,
        };
    }
    Some(v.clone())
}

fn var(r: &Request<'_>, v: &Var) -> Option<Value> {
    let s = |s: &str| Some(Value::String(s.to_owned()));
    match v {
        Var::Args(p) => walk(r.args, p),
        Var::PrincipalId => s(&r.principal.id),
        Var::PrincipalKind => s(r.principal.kind.as_str()),
        Var::PrincipalGroups => Some(Value::Array(
            r.principal
                .groups
                .iter()
                .map(|g| Value::String(g.clone()))
                .collect(),
        )),
        Var::PrincipalAttr(p) => match p.split_first()? {
            (PathSeg::Key(k), rest) => walk(r.principal.attrs.get(k)?, rest),
            _ => None,
        },
        Var::AgentName => r.agent.and_then(s),
        Var::ClientName => r.client_name.and_then(s),
        Var::ClientVersion => r.client_version.and_then(s),
        Var::Server => s(r.target.server()),
        Var::Tool => s(r.target.name()),
        Var::ToolAnnotation(a) => {
            let n = &r.annotations;
            let b = match a {
                ir::Annotation::ReadOnly => n.read_only,
                ir::Annotation::Destructive => n.destructive,
                ir::Annotation::Idempotent => n.idempotent,
                ir::Annotation::OpenWorld => n.open_world,
            };
            b.map(Value::Bool)
        }
    }
}

fn eval(r: &Request<'_>, e: &Expr) -> V {
    match e {
        Expr::Const(v) => V::Json(v.clone()),
        Expr::List(items) => V::List(items.iter().map(|i| eval(r, i)).collect()),
        Expr::Var(v) => var(r, v).map_or(V::Missing, V::Json),
        Expr::Not(a) => boolean(truth(&eval(r, a)).map(|b| !b)),
        Expr::And(a, b) => {
            let x = truth(&eval(r, a));
            if x == Some(false) {
                return boolean(x);
            }
            boolean(and3(x, truth(&eval(r, b))))
        }
        Expr::Or(a, b) => {
            let x = truth(&eval(r, a));
            if x == Some(true) {
                return boolean(x);
            }
            boolean(or3(x, truth(&eval(r, b))))
        }
        Expr::Cmp(op, a, b) => boolean(compare(*op, &eval(r, a), &eval(r, b))),
        Expr::In(a, b) => {
            let (x, c) = (eval(r, a), eval(r, b));
            boolean(match (&x, &c) {
                (V::Missing, _) | (_, V::Missing) => Some(false),
                (V::Unknown, _) | (_, V::Unknown) => None,
                (V::Json(Value::String(k)), V::Json(Value::Object(m))) => Some(m.contains_key(k)),
                _ => items(&c).and_then(|l| member(&x, &l)),
            })
        }
        Expr::Str(op, a, b) => {
            let (x, y) = (eval(r, a), eval(r, b));
            boolean(match (op, &x, &y) {
                (_, V::Missing, _) | (_, _, V::Missing) => Some(false),
                (_, V::Unknown, _) | (_, _, V::Unknown) => None,
                (_, V::Json(Value::String(s)), V::Json(Value::String(t))) => Some(match op {
                    StrOp::Contains => s.contains(t.as_str()),
                    StrOp::StartsWith => s.starts_with(t.as_str()),
                    StrOp::EndsWith => s.ends_with(t.as_str()),
                }),
                (StrOp::Contains, _, _) => items(&x).and_then(|l| member(&y, &l)),
                _ => None,
            })
        }
        Expr::Matches(a, re) => {
            // An invalid pattern cannot be decided, whatever the operand.
            let Ok(re) = regex::Regex::new(re) else {
                return V::Unknown;
            };
            boolean(match eval(r, a) {
                V::Missing => Some(false),
                V::Json(Value::String(s)) => Some(re.is_match(&s)),
                _ => None,
            })
        }
        Expr::Len(a) => match eval(r, a) {
            V::Missing => V::Missing,
            V::Json(Value::String(s)) => V::Json(Value::from(s.chars().count())),
            V::Json(Value::Array(l)) => V::Json(Value::from(l.len())),
            V::Json(Value::Object(m)) => V::Json(Value::from(m.len())),
            V::List(l) => V::Json(Value::from(l.len())),
            _ => V::Unknown,
        },
        Expr::Exists(v) => boolean(Some(var(r, v).is_some())),
    }
}

fn compare(op: CmpOp, a: &V, b: &V) -> T3 {
    match op {
        CmpOp::Eq => return eq(a, b),
        CmpOp::Ne => {
            if matches!(a, V::Missing) || matches!(b, V::Missing) {
                return Some(false);
            }
            return eq(a, b).map(|x| !x);
        }
        _ => {}
    }
    let ord = match (a, b) {
        (V::Missing, _) | (_, V::Missing) => return Some(false),
        (V::Json(Value::Number(x)), V::Json(Value::Number(y))) => num_cmp(x, y)?,
        (V::Json(Value::String(x)), V::Json(Value::String(y))) => x.cmp(y),
        _ => return None,
    };
    Some(match op {
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    })
}

/// Whether one of the rule's targets names the request's target.
pub fn targets(rule: &ir::Rule, target: Target<'_>) -> bool {
    rule.targets.iter().any(|t| match (t, target) {
        (ir::Target::Tool { server, tool }, Target::Tool { server: s, tool: n })
        | (ir::Target::Prompt { server, name: tool }, Target::Prompt { server: s, name: n }) => {
            server.matches(s) && tool.matches(n)
        }
        (ir::Target::Resource { server, uri }, Target::Resource { server: s, uri: u }) => {
            server.matches(s) && uri.matches(u)
        }
        _ => false,
    })
}

/// The truth of a rule's condition for a request (`None`: cannot be decided).
pub fn condition(rule: &ir::Rule, r: &Request<'_>) -> Option<bool> {
    rule.condition
        .as_ref()
        .map_or(Some(true), |c| truth(&eval(r, c)))
}

/// The value of a request variable (`None`: missing).
pub fn value_of(r: &Request<'_>, v: &Var) -> Option<Value> {
    var(r, v)
}

/// The truth of one expression for a request (`None`: cannot be decided).
pub fn truth_of(e: &Expr, r: &Request<'_>) -> Option<bool> {
    truth(&eval(r, e))
}

/// Decides a request by reading every rule.
pub fn evaluate(policy: &ir::Policy, r: &Request<'_>) -> Outcome {
    let order = [
        (Effect::Hide, Verdict::Hide),
        (Effect::Deny, Verdict::Deny),
        (Effect::Approve, Verdict::Approve),
        (Effect::Allow, Verdict::Allow),
    ];
    for (effect, verdict) in order {
        for (i, rule) in policy.rules.iter().enumerate() {
            if rule.effect != effect || !targets(rule, r.target) {
                continue;
            }
            let undecided = match condition(rule, r) {
                Some(true) => false,
                None if effect != Effect::Allow => true,
                _ => continue,
            };
            return Outcome {
                verdict,
                rule: RuleIdx(u32::try_from(i).unwrap_or(u32::MAX)),
                undecided,
            };
        }
    }
    Outcome {
        verdict: Verdict::Deny,
        rule: RuleIdx::DEFAULT,
        undecided: false,
    }
}

/// The `redact` rules that match a request (an undecidable condition matches), in order,
/// whatever the verdict.
pub fn redactions(policy: &ir::Policy, r: &Request<'_>) -> Vec<RuleIdx> {
    policy
        .rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.effect == Effect::Redact && targets(rule, r.target))
        .filter(|(_, rule)| condition(rule, r) != Some(false))
        .map(|(i, _)| RuleIdx(u32::try_from(i).unwrap_or(u32::MAX)))
        .collect()
}

/// The `limit` rules that match a request (an undecidable condition matches), in order.
pub fn limits(policy: &ir::Policy, r: &Request<'_>) -> Vec<RuleIdx> {
    policy
        .rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.effect == Effect::Limit && targets(rule, r.target))
        .filter(|(_, rule)| condition(rule, r) != Some(false))
        .map(|(i, _)| RuleIdx(u32::try_from(i).unwrap_or(u32::MAX)))
        .collect()
}
