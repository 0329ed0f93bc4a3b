//! Probe requests: for each target a policy names, each principal its conditions
//! distinguish, and argument values at the boundaries of its conditions' literals.
//!
//! Bounds: at most [`MAX_PRINCIPALS`] principals, [`MAX_ARG_SETS`] argument objects per
//! target and [`MAX_PROBES`] probes in all. With few argument paths the argument objects are
//! every combination of the values drawn; with more, each path is varied alone around a
//! baseline (every path at its first literal).

use crate::ir::{self, Expr, NamePattern, PathSeg, StrOp, Target, Var};
use crate::request::{Principal, PrincipalKind};
use crate::testing::Call;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Most principals probed.
pub const MAX_PRINCIPALS: usize = 24;
/// Most argument objects per target.
pub const MAX_ARG_SETS: usize = 64;
/// Most probes in all.
pub const MAX_PROBES: usize = 50_000;

/// One generated request.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub call: Call,
    pub principal: Principal,
    /// How the principal is shown: `anonymous`, `human`, `human@finance`, `agent`, `id:bob`.
    pub label: String,
    pub args: Value,
}

/// Probes for the targets and conditions of every policy given, and for the principals
/// named in `declared` (ids whose `principals.yaml` groups changed: each program adds the
/// groups it declares); the flag says the bound cut the list short.
pub fn generate(policies: &[&ir::Policy], declared: &[&str]) -> (Vec<Probe>, bool) {
    let rules: Vec<&ir::Rule> = policies.iter().flat_map(|p| &p.rules).collect();
    let principals = principals(&rules, declared);
    let mut calls: BTreeSet<String> = BTreeSet::new();
    let mut list: Vec<Call> = Vec::new();
    for r in &rules {
        for t in &r.targets {
            let call = sample_call(t);
            if calls.insert(format!("{:?}", call)) {
                list.push(call);
            }
        }
    }
    let mut out = Vec::new();
    for call in list {
        let target = call.target();
        let applicable: Vec<&Expr> = rules
            .iter()
            .filter(|r| r.targets.iter().any(|t| target_matches(t, &target)))
            .filter_map(|r| r.condition.as_ref())
            .collect();
        let args = arg_sets(&applicable);
        for (principal, label) in &principals {
            for a in &args {
                if out.len() >= MAX_PROBES {
                    return (out, true);
                }
                out.push(Probe {
                    call: call.clone(),
                    principal: principal.clone(),
                    label: label.clone(),
                    args: a.clone(),
                });
            }
        }
    }
    (out, false)
}

fn target_matches(t: &Target, req: &crate::request::Target<'_>) -> bool {
    use crate::request::Target as R;
    match (t, req) {
        (Target::Tool { server, tool }, R::Tool { server: s, tool: n })
        | (Target::Prompt { server, name: tool }, R::Prompt { server: s, name: n }) => {
            server.matches(s) && tool.matches(n)
        }
        (Target::Resource { server, uri }, R::Resource { server: s, uri: u }) => {
            server.matches(s) && uri.matches(u)
        }
        _ => false,
    }
}

/// A concrete name: the name itself, or a glob with each `*` replaced by `sample`.
fn sample(p: &NamePattern) -> String {
    match p {
        NamePattern::Exact(s) => s.clone(),
        NamePattern::Glob(g) => g.replace('*', "sample"),
    }
}

fn sample_call(t: &Target) -> Call {
    match t {
        Target::Tool { server, tool } => Call::Tool {
            server: sample(server),
            tool: sample(tool),
        },
        Target::Prompt { server, name } => Call::Prompt {
            server: sample(server),
            name: sample(name),
        },
        Target::Resource { server, uri } => Call::Resource {
            server: sample(server),
            uri: uri.0.replace("**", "sample/path").replace('*', "sample"),
        },
    }
}

/// Anonymous, a human in no group, one human per group named, one principal per other kind
/// and per id named in a condition or in `declared`.
fn principals(rules: &[&ir::Rule], declared: &[&str]) -> Vec<(Principal, String)> {
    let mut groups = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut ids: BTreeSet<String> = declared.iter().map(|id| (*id).to_owned()).collect();
    for r in rules {
        if let Some(c) = &r.condition {
            principal_literals(c, &mut groups, &mut kinds, &mut ids);
        }
    }
    let mut out = vec![
        (Principal::anonymous(), "anonymous".to_owned()),
        (
            person("human", PrincipalKind::Human, None),
            "human".to_owned(),
        ),
    ];
    for g in &groups {
        out.push((
            person(&format!("member-of-{g}"), PrincipalKind::Human, Some(g)),
            format!("human@{g}"),
        ));
    }
    for k in &kinds {
        let kind = match k.as_str() {
            "agent" => PrincipalKind::Agent,
            "service" => PrincipalKind::Service,
            _ => continue,
        };
        out.push((person(k, kind, None), k.clone()));
        for g in &groups {
            out.push((
                person(&format!("{k}-in-{g}"), kind, Some(g)),
                format!("{k}@{g}"),
            ));
        }
    }
    for id in &ids {
        out.push((person(id, PrincipalKind::Human, None), format!("id:{id}")));
    }
    out.truncate(MAX_PRINCIPALS);
    out
}

fn person(id: &str, kind: PrincipalKind, group: Option<&String>) -> Principal {
    Principal {
        id: id.to_owned(),
        kind,
        groups: group.into_iter().cloned().collect(),
        attrs: Map::new(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

fn principal_literals(
    e: &Expr,
    groups: &mut BTreeSet<String>,
    kinds: &mut BTreeSet<String>,
    ids: &mut BTreeSet<String>,
) {
    let mut add = |var: &Var, v: &Value| {
        let set = match var {
            Var::PrincipalGroups => &mut *groups,
            Var::PrincipalKind => &mut *kinds,
            Var::PrincipalId => &mut *ids,
            _ => return,
        };
        set.extend(strings(v));
    };
    match e {
        Expr::In(x, y) => {
            if let (Expr::Const(v), Expr::Var(var)) | (Expr::Var(var), Expr::Const(v)) =
                (x.as_ref(), y.as_ref())
            {
                add(var, v);
            }
        }
        Expr::Cmp(_, x, y) | Expr::Str(_, x, y) => {
            if let (Expr::Const(v), Expr::Var(var)) | (Expr::Var(var), Expr::Const(v)) =
                (x.as_ref(), y.as_ref())
            {
                add(var, v);
            }
        }
        _ => {}
    }
    for c in children(e) {
        principal_literals(c, groups, kinds, ids);
    }
}

fn children(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Const(_) | Expr::Var(_) | Expr::Exists(_) => Vec::new(),
        Expr::List(items) => items.iter().collect(),
        Expr::Not(x) | Expr::Matches(x, _) | Expr::Len(x) => vec![x],
        Expr::And(x, y) | Expr::Or(x, y) | Expr::Cmp(_, x, y) | Expr::In(x, y) => vec![x, y],
        Expr::Str(_, x, y) => vec![x, y],
    }
}

/// Values to try for each argument path, in first-seen order.
type PathValues = Vec<(Vec<PathSeg>, Vec<Value>)>;

fn push_values(out: &mut PathValues, path: &[PathSeg], vals: Vec<Value>) {
    let entry = match out.iter().position(|(p, _)| p == path) {
        Some(i) => &mut out[i].1,
        None => {
            out.push((path.to_vec(), Vec::new()));
            let last = out.len() - 1;
            &mut out[last].1
        }
    };
    for v in vals {
        if !entry.contains(&v) {
            entry.push(v);
        }
    }
}

fn number_values(n: &serde_json::Number) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(i) = n.as_i64() {
        out.push(Value::from(i.saturating_sub(1)));
        out.push(Value::from(i));
        out.push(Value::from(i.saturating_add(1)));
    } else if let Some(f) = n.as_f64() {
        out.extend([f - 1.0, f, f + 1.0].map(Value::from));
    }
    // The wrong type: the number as a string.
    out.push(Value::String(n.to_string()));
    out
}

fn string_values(s: &str, op: Option<StrOp>) -> Vec<Value> {
    let matching = match op {
        None => s.to_owned(),
        Some(StrOp::StartsWith) => format!("{s}-sample"),
        Some(StrOp::EndsWith) => format!("sample-{s}"),
        Some(StrOp::Contains) => format!("sample-{s}-sample"),
    };
    vec![
        Value::String(matching),
        Value::String(if s == "other" { "another" } else { "other" }.to_owned()),
        // The wrong type.
        Value::from(0),
    ]
}

fn literal_values(v: &Value, op: Option<StrOp>) -> Vec<Value> {
    match v {
        Value::Number(n) => number_values(n),
        Value::String(s) => string_values(s, op),
        Value::Array(items) => items.iter().flat_map(|i| literal_values(i, op)).collect(),
        Value::Bool(b) => vec![Value::Bool(*b), Value::Bool(!*b), Value::from("true")],
        Value::Null => vec![Value::Null, Value::from(0)],
        Value::Object(_) => vec![v.clone()],
    }
}

/// Strings that a `matches` pattern might accept and reject: the pattern's literal text
/// (anchors, classes and repetition stripped) and a word it does not start with.
fn regex_values(re: &str) -> Vec<Value> {
    let mut lit = String::new();
    let mut chars = re.trim_start_matches("(?i)").chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                match chars.next() {
                    Some('s') => lit.push(' '),
                    Some(c) if !c.is_ascii_alphanumeric() => lit.push(c),
                    _ => {}
                };
            }
            '^' | '$' | '(' | ')' | '[' | ']' | '?' | '*' | '+' | '{' | '}' | '.' => {}
            '|' => break,
            c => lit.push(c),
        }
    }
    vec![
        Value::String(lit.trim().to_owned()),
        Value::String("~other".to_owned()),
        Value::from(0),
    ]
}

fn collect_args(e: &Expr, out: &mut PathValues) {
    match e {
        Expr::Cmp(_, x, y) => {
            if let (Expr::Var(Var::Args(p)), Expr::Const(v))
            | (Expr::Const(v), Expr::Var(Var::Args(p))) = (x.as_ref(), y.as_ref())
            {
                push_values(out, p, literal_values(v, None));
            }
            if let (Expr::Len(inner), Expr::Const(Value::Number(n)))
            | (Expr::Const(Value::Number(n)), Expr::Len(inner)) = (x.as_ref(), y.as_ref())
                && let Expr::Var(Var::Args(p)) = inner.as_ref()
            {
                let n = n.as_u64().unwrap_or(0).min(4096) as usize;
                let vals = [n.saturating_sub(1), n, n + 1]
                    .map(|k| Value::String("a".repeat(k)))
                    .to_vec();
                push_values(out, p, vals);
            }
        }
        Expr::In(x, y) => {
            if let (Expr::Var(Var::Args(p)), Expr::Const(v)) = (x.as_ref(), y.as_ref()) {
                push_values(out, p, literal_values(v, None));
            }
        }
        Expr::Str(op, x, y) => {
            if let (Expr::Var(Var::Args(p)), Expr::Const(v)) = (x.as_ref(), y.as_ref()) {
                push_values(out, p, literal_values(v, Some(*op)));
            }
        }
        Expr::Matches(x, re) => {
            if let Expr::Var(Var::Args(p)) = x.as_ref() {
                push_values(out, p, regex_values(re));
            }
        }
        Expr::Exists(Var::Args(p)) => push_values(out, p, vec![Value::Bool(true)]),
        _ => {}
    }
    for c in children(e) {
        collect_args(c, out);
    }
}

/// The argument objects for a target whose applicable conditions are `conds`. `None`
/// stands for a missing argument; the first object is always `null` (no arguments).
fn arg_sets(conds: &[&Expr]) -> Vec<Value> {
    let mut paths = PathValues::new();
    for c in conds {
        collect_args(c, &mut paths);
    }
    paths.retain(|(p, _)| !p.is_empty());
    let mut out = vec![Value::Null];
    if paths.is_empty() {
        return out;
    }
    // Each path: its values, then missing.
    let options: Vec<Vec<Option<&Value>>> = paths
        .iter()
        .map(|(_, vals)| vals.iter().map(Some).chain([None]).collect())
        .collect();
    let product: usize = options
        .iter()
        .map(Vec::len)
        .try_fold(1usize, |acc, n| acc.checked_mul(n))
        .unwrap_or(usize::MAX);
    if product < MAX_ARG_SETS {
        let mut idx = vec![0usize; options.len()];
        loop {
            out.push(build(&paths, &options, &idx));
            // Odometer increment.
            let mut i = 0;
            loop {
                let Some(slot) = idx.get_mut(i) else {
                    return out;
                };
                *slot += 1;
                if *slot < options.get(i).map_or(0, Vec::len) {
                    break;
                }
                *slot = 0;
                i += 1;
            }
        }
    }
    let base = vec![0usize; options.len()];
    for (i, opts) in options.iter().enumerate() {
        for k in 0..opts.len() {
            if out.len() >= MAX_ARG_SETS {
                return out;
            }
            let mut idx = base.clone();
            if let Some(slot) = idx.get_mut(i) {
                *slot = k;
            }
            let v = build(&paths, &options, &idx);
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

fn build(paths: &PathValues, options: &[Vec<Option<&Value>>], idx: &[usize]) -> Value {
    let mut obj = Value::Object(Map::new());
    for ((path, _), (opts, &i)) in paths.iter().zip(options.iter().zip(idx)) {
        if let Some(Some(v)) = opts.get(i) {
            set_path(&mut obj, path, (*v).clone());
        }
    }
    obj
}

/// Sets `path` in `root`, creating objects and arrays on the way; a conflicting shape (a
/// path through a value set by another path) is left alone.
fn set_path(root: &mut Value, path: &[PathSeg], v: Value) {
    let Some((first, rest)) = path.split_first() else {
        *root = v;
        return;
    };
    match first {
        PathSeg::Key(k) => {
            if root.is_null() {
                *root = Value::Object(Map::new());
            }
            if let Value::Object(m) = root {
                let slot = m.entry(k.clone()).or_insert(Value::Null);
                set_path(slot, rest, v);
            }
        }
        PathSeg::Index(i) => {
            let i = (*i).min(64) as usize;
            if root.is_null() {
                *root = Value::Array(Vec::new());
            }
            if let Value::Array(a) = root {
                while a.len() <= i {
                    a.push(Value::Null);
                }
                if let Some(slot) = a.get_mut(i) {
                    set_path(slot, rest, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ir::CmpOp;

    #[test]
    fn numbers_are_probed_at_their_boundaries() {
        let cond = Expr::Cmp(
            CmpOp::Gt,
            Box::new(Expr::Var(Var::Args(vec![PathSeg::Key("amount".into())]))),
            Box::new(Expr::Const(Value::from(50_000))),
        );
        let sets = arg_sets(&[&cond]);
        let amounts: Vec<String> = sets.iter().map(|v| v["amount"].to_string()).collect();
        assert_eq!(
            amounts,
            ["null", "49999", "50000", "50001", "\"50000\"", "null"]
        );
        assert_eq!(sets[0], Value::Null);
        assert_eq!(sets[5], serde_json::json!({}));
    }

    #[test]
    fn regex_literal_text_is_a_sample() {
        assert_eq!(regex_values(r"(?i)^\s*select\b")[0], Value::from("select"));
    }
}
