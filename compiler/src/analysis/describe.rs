//! Regions in words: what each constrained variable must be, in the policy's own terms
//! (the literals and tests the rules wrote).

use super::domain::{Bucket, Class, Domain, Tv};
use super::space::{AtomKind, Space, VarDom, VarKey};
use super::text;
use crate::ir::{CmpOp, Expr};
use serde_json::Value;

/// What a constraint is on: `args.amount`, `principal.groups`, or an opaque atom.
pub fn subject(space: &Space, var: usize) -> String {
    match space.vars.get(var).map(|d| &d.key) {
        Some(VarKey::Value(v)) => text::var(v),
        Some(VarKey::Group(_)) => "principal.groups".into(),
        Some(VarKey::Opaque(a)) => space
            .atoms
            .get(*a)
            .map_or_else(String::new, |a| text::expr(&a.expr)),
        None => String::new(),
    }
}

/// Whether a constraint is on the caller (principal id, kind, groups, attributes).
pub fn about_principal(space: &Space, var: usize) -> bool {
    use crate::ir::Var;
    let on_principal = |v: &Var| {
        matches!(
            v,
            Var::PrincipalId | Var::PrincipalKind | Var::PrincipalGroups | Var::PrincipalAttr(_)
        )
    };
    match space.vars.get(var).map(|d| &d.key) {
        Some(VarKey::Value(v)) => on_principal(v),
        Some(VarKey::Group(_)) => true,
        Some(VarKey::Opaque(a)) => {
            let mut vars = Vec::new();
            if let Some(atom) = space.atoms.get(*a) {
                collect(&atom.expr, &mut vars);
            }
            !vars.is_empty() && vars.iter().all(|v| on_principal(v))
        }
        None => false,
    }
}

fn collect<'e>(e: &'e Expr, out: &mut Vec<&'e crate::ir::Var>) {
    match e {
        Expr::Var(v) | Expr::Exists(v) => out.push(v),
        Expr::Const(_) => {}
        Expr::List(items) => items.iter().for_each(|i| collect(i, out)),
        Expr::Not(a) | Expr::Matches(a, _) | Expr::Len(a) => collect(a, out),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) | Expr::In(a, b) => {
            collect(a, out);
            collect(b, out);
        }
        Expr::Str(_, a, b) => {
            collect(a, out);
            collect(b, out);
        }
    }
}

/// What the variable must be: the classes of `set`, in words.
pub fn classes(space: &Space, var: usize, set: &[u16]) -> String {
    let Some(d) = space.vars.get(var) else {
        return String::new();
    };
    match &d.key {
        VarKey::Group(g) => {
            let g = text::literal(&Value::String(g.clone()));
            match set {
                [0] => format!("has {g}"),
                [1] => format!("lacks {g}"),
                _ => "any".into(),
            }
        }
        VarKey::Opaque(a) => {
            let words: Vec<&str> = set
                .iter()
                .map(|&k| match k {
                    0 => "true",
                    1 => "false",
                    _ => "undecidable",
                })
                .collect();
            let what = match space.atoms.get(*a).map(|a| &a.kind) {
                Some(AtomKind::Relational { .. }) => "relates several values",
                _ => "opaque to the analysis",
            };
            format!("{} ({what})", words.join(" or "))
        }
        VarKey::Value(v) => {
            // The complement reads better when it is the smaller side.
            let rest: Vec<u16> = (0..d.classes.len())
                .filter_map(|c| u16::try_from(c).ok())
                .filter(|c| !set.contains(c))
                .collect();
            // Only over complete classes: "anything but" would take in values no class holds.
            if d.complete
                && !rest.is_empty()
                && rest.len() * 2 < set.len()
                && Domain::of(v) == Domain::Json
            {
                return format!("anything but {}", values(space, d, v, &rest));
            }
            values(space, d, v, set)
        }
    }
}

fn values(space: &Space, d: &VarDom, v: &crate::ir::Var, set: &[u16]) -> String {
    {
        {
            let picked: Vec<&Class> = set
                .iter()
                .filter_map(|&c| d.classes.get(c as usize))
                .collect();
            if Domain::of(v) == Domain::Kind {
                let mut kinds: Vec<String> = picked
                    .iter()
                    .flat_map(|c| &c.members)
                    .flatten()
                    .map(text::literal)
                    .collect();
                kinds.sort();
                return kinds.join(" or ");
            }
            let mut parts = Vec::new();
            // With classes that may miss values, a bucket's classes are not "any" of it.
            let full = |b: Bucket| {
                if !d.complete && b.has_content() {
                    return false;
                }
                let all = d.classes.iter().filter(|c| c.bucket == b).count();
                all > 0 && picked.iter().filter(|c| c.bucket == b).count() == all
            };
            // The type-confused values together: everything but strings.
            let non_strings = [
                Bucket::Null,
                Bucket::False,
                Bucket::True,
                Bucket::Number,
                Bucket::Array,
                Bucket::Object,
            ];
            let others = non_strings.iter().all(|&b| full(b));
            for bucket in [
                Bucket::Missing,
                Bucket::Null,
                Bucket::False,
                Bucket::True,
                Bucket::Number,
                Bucket::String,
                Bucket::Array,
                Bucket::Object,
            ] {
                let mine: Vec<&Class> = picked
                    .iter()
                    .copied()
                    .filter(|c| c.bucket == bucket)
                    .collect();
                if mine.is_empty() || (others && non_strings.contains(&bucket)) {
                    continue;
                }
                match bucket {
                    Bucket::Missing => parts.push("missing".into()),
                    Bucket::Null => parts.push("null".into()),
                    Bucket::False => parts.push("false".into()),
                    Bucket::True => parts.push("true".into()),
                    Bucket::Number => parts.push(numbers(d, &mine)),
                    _ if full(bucket) => parts.push(format!("any {}", noun(bucket))),
                    _ => parts.extend(mine.iter().map(|c| content(space, d, c))),
                }
            }
            if others {
                parts.push("any value but a string".into());
            }
            parts.join(" or ")
        }
    }
}

fn noun(b: Bucket) -> &'static str {
    match b {
        Bucket::String => "string",
        Bucket::Array => "array",
        Bucket::Object => "object",
        _ => "value",
    }
}

/// A literal `c` the atom compares the variable with for equality (`== c`, `!= c`), and
/// whether equality makes the atom true.
fn equality(e: &Expr) -> Option<(&Value, bool)> {
    match e {
        Expr::Cmp(op @ (CmpOp::Eq | CmpOp::Ne), x, y) => {
            let c = match (x.as_ref(), y.as_ref()) {
                (Expr::Const(c), _) | (_, Expr::Const(c)) => c,
                _ => return None,
            };
            Some((c, *op == CmpOp::Eq))
        }
        _ => None,
    }
}

/// A string, list or object class: the literal it equals, or the tests it passes.
fn content(space: &Space, d: &VarDom, c: &Class) -> String {
    let mut other_than: Vec<String> = Vec::new();
    let mut tests: Vec<String> = Vec::new();
    for (&a, &t) in d.atoms.iter().zip(&c.sig) {
        let Some(atom) = space.atoms.get(a) else {
            continue;
        };
        // Presence is what the bucket already says.
        if matches!(atom.expr, Expr::Exists(_)) {
            continue;
        }
        match (equality(&atom.expr), t) {
            (Some((lit, eq)), Tv::T | Tv::F) if (t == Tv::T) == eq => return text::literal(lit),
            (Some((lit, _)), Tv::T | Tv::F) => {
                let lit = text::literal(lit);
                if !other_than.contains(&lit) {
                    other_than.push(lit);
                }
            }
            (_, Tv::T) => tests.push(text::expr(&atom.expr)),
            (_, Tv::F) => tests.push(format!("not {}", text::expr(&atom.expr))),
            (_, Tv::U) => tests.push(format!("{} undecidable", text::expr(&atom.expr))),
        }
    }
    let mut s = format!(
        "a{} {}",
        if c.bucket == Bucket::Array { "n" } else { "" },
        noun(c.bucket)
    );
    if c.bucket == Bucket::Object {
        s = "an object".into();
    }
    if !other_than.is_empty() {
        s.push_str(&format!(" other than {}", other_than.join(", ")));
    }
    if !tests.is_empty() {
        s.push_str(&format!(" where {}", tests.join(", ")));
    }
    s
}

/// Number classes as ranges between the literals: `> 50000`, `= 3`, `>= 1 and < 10`.
fn numbers(d: &VarDom, mine: &[&Class]) -> String {
    let mut all: Vec<(f64, bool)> = d
        .classes
        .iter()
        .filter(|c| c.bucket == Bucket::Number)
        .flat_map(|c| {
            let picked = mine.iter().any(|m| std::ptr::eq(*m, c));
            c.members
                .iter()
                .flatten()
                .filter_map(Value::as_f64)
                .map(move |f| (f, picked))
        })
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    if all.iter().all(|(_, p)| *p) {
        return "any number".into();
    }
    let is_point = |f: f64| d.points.contains(&f);
    let show = |f: f64| {
        if f.fract() == 0.0 && f.abs() < 1e15 {
            format!("{}", f as i64)
        } else {
            format!("{f}")
        }
    };
    let mut runs = Vec::new();
    let mut i = 0;
    while i < all.len() {
        if !all.get(i).is_some_and(|x| x.1) {
            i += 1;
            continue;
        }
        let mut j = i;
        while all.get(j + 1).is_some_and(|x| x.1) {
            j += 1;
        }
        let (Some(&(lo, _)), Some(&(hi, _))) = (all.get(i), all.get(j)) else {
            break;
        };
        let lower = if i == 0 {
            None
        } else if is_point(lo) {
            Some(format!(">= {}", show(lo)))
        } else {
            all.get(i - 1).map(|p| format!("> {}", show(p.0)))
        };
        let upper = if j + 1 == all.len() {
            None
        } else if is_point(hi) {
            Some(format!("<= {}", show(hi)))
        } else {
            all.get(j + 1).map(|p| format!("< {}", show(p.0)))
        };
        runs.push(match (lower, upper) {
            _ if i == j && is_point(lo) => show(lo),
            (Some(l), Some(u)) => format!("a number {l} and {u}"),
            (Some(b), None) | (None, Some(b)) => format!("a number {b}"),
            (None, None) => "any number".into(),
        });
        i = j + 1;
    }
    runs.join(" or ")
}
