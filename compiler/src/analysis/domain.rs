//! The values one request variable can take, cut into classes on which every condition
//! atom over that variable has one truth value.
//!
//! A class is a type bucket (missing, null, false, true, number, string, array, object)
//! and the truth of each atom on the variable (its signature). Classes are found by
//! evaluating the atoms on a pool of candidate values built from the atoms' literals. For
//! the atoms the language offers on one value (comparisons with literals, membership,
//! `starts_with`, `ends_with`, `contains`) the pool provably meets every signature any value
//! has, so the classes cover the whole domain; where the construction cannot promise that
//! (string order mixed with substring tests, more than [`MAX_SUBSET_LITERALS`] literals in
//! a subset construction) the pool is marked incomplete and reports say so.

use super::env::{Env, KINDS};
use crate::ir::{CmpOp, Expr, StrOp, Var};
use crate::reference;
use serde::Serialize;
use serde_json::{Map, Number, Value};
use std::collections::{BTreeSet, HashMap};

/// Literals of one role beyond which subsets are no longer enumerated.
pub const MAX_SUBSET_LITERALS: usize = 8;

/// Most candidate strings built for one variable.
const MAX_STRINGS: usize = 4096;

/// Three-valued truth: `U` is "cannot be decided" (a type mismatch; restrictive rules apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tv {
    F,
    T,
    U,
}

impl Tv {
    pub fn of(t: Option<bool>) -> Tv {
        match t {
            Some(true) => Tv::T,
            Some(false) => Tv::F,
            None => Tv::U,
        }
    }

    pub fn not(self) -> Tv {
        match self {
            Tv::F => Tv::T,
            Tv::T => Tv::F,
            Tv::U => Tv::U,
        }
    }
}

/// The JSON type of a value, with `missing` and the two booleans apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    Missing,
    Null,
    False,
    True,
    Number,
    String,
    Array,
    Object,
}

impl Bucket {
    pub fn of(v: Option<&Value>) -> Bucket {
        match v {
            None => Bucket::Missing,
            Some(Value::Null) => Bucket::Null,
            Some(Value::Bool(false)) => Bucket::False,
            Some(Value::Bool(true)) => Bucket::True,
            Some(Value::Number(_)) => Bucket::Number,
            Some(Value::String(_)) => Bucket::String,
            Some(Value::Array(_)) => Bucket::Array,
            Some(Value::Object(_)) => Bucket::Object,
        }
    }

    /// Whether an atom that looks inside the value (`matches`, `len`) can tell two values
    /// of this bucket apart: such atoms are opaque on these buckets.
    pub fn has_content(self) -> bool {
        matches!(self, Bucket::String | Bucket::Array | Bucket::Object)
    }
}

/// Which values a variable can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Arguments and principal attributes: any JSON value, or missing.
    Json,
    /// `principal.id`: a string.
    Text,
    /// `principal.kind`: one of four strings.
    Kind,
    /// `agent.name`, `client.*`: a string or missing.
    OptText,
    /// Tool annotations: a boolean or missing.
    OptBool,
}

impl Domain {
    pub fn of(v: &Var) -> Domain {
        match v {
            Var::Args(_) | Var::PrincipalAttr(_) | Var::PrincipalGroups => Domain::Json,
            Var::PrincipalId | Var::Server | Var::Tool => Domain::Text,
            Var::PrincipalKind => Domain::Kind,
            Var::AgentName | Var::ClientName | Var::ClientVersion => Domain::OptText,
            Var::ToolAnnotation(_) => Domain::OptBool,
        }
    }
}

/// One class of a variable's values.
#[derive(Clone, Debug, PartialEq)]
pub struct Class {
    pub bucket: Bucket,
    /// The truth of each signature atom of the variable, in order.
    pub sig: Vec<Tv>,
    /// A value of the class (`None`: missing).
    pub rep: Option<Value>,
    /// Every pool value in the class (for describing numbers and finite domains).
    pub members: Vec<Option<Value>>,
}

/// Candidate values; `complete` when every signature of the domain is met by one.
#[derive(Clone, Debug, Default)]
pub struct Pool {
    pub values: Vec<Option<Value>>,
    pub complete: bool,
    /// The numeric literals, by value: the bounds of number classes.
    pub points: Vec<f64>,
}

/// The literals of a variable's atoms, by the role they play.
#[derive(Default)]
struct Roles {
    numbers: Vec<Number>,
    strings: BTreeSet<String>,
    prefixes: BTreeSet<String>,
    suffixes: BTreeSet<String>,
    contains: BTreeSet<String>,
    bounds: BTreeSet<String>,
    members: Vec<Value>,
    arrays: Vec<Value>,
    keys: BTreeSet<String>,
}

impl Roles {
    fn constant(&mut self, v: &Value) {
        match v {
            Value::Number(n) => self.numbers.push(n.clone()),
            Value::String(s) => {
                self.strings.insert(s.clone());
            }
            Value::Array(items) => {
                if !self.arrays.contains(v) {
                    self.arrays.push(v.clone());
                }
                for i in items {
                    self.constant(i);
                }
            }
            _ => {}
        }
    }

    fn member(&mut self, v: &Value) {
        if !self.members.contains(v) {
            self.members.push(v.clone());
        }
    }

    fn walk(&mut self, e: &Expr) {
        match e {
            Expr::Const(v) => self.constant(v),
            Expr::Str(op, x, y) => {
                if let Expr::Const(c) = y.as_ref() {
                    match (op, c) {
                        (StrOp::StartsWith, Value::String(s)) => {
                            self.prefixes.insert(s.clone());
                        }
                        (StrOp::EndsWith, Value::String(s)) => {
                            self.suffixes.insert(s.clone());
                        }
                        (StrOp::Contains, Value::String(s)) => {
                            self.contains.insert(s.clone());
                            self.member(c);
                        }
                        (StrOp::Contains, _) => self.member(c),
                        _ => {}
                    }
                }
                self.walk(x);
                self.walk(y);
            }
            Expr::In(x, y) => {
                if let Expr::Const(c) = x.as_ref() {
                    self.member(c);
                    if let Value::String(k) = c {
                        self.keys.insert(k.clone());
                    }
                }
                self.walk(x);
                self.walk(y);
            }
            Expr::Cmp(op, x, y) => {
                if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    for side in [x, y] {
                        if let Expr::Const(Value::String(b)) = side.as_ref() {
                            self.bounds.insert(b.clone());
                        }
                    }
                }
                self.walk(x);
                self.walk(y);
            }
            Expr::List(items) => items.iter().for_each(|i| self.walk(i)),
            Expr::Not(a) | Expr::Matches(a, _) | Expr::Len(a) => self.walk(a),
            Expr::And(a, b) | Expr::Or(a, b) => {
                self.walk(a);
                self.walk(b);
            }
            Expr::Var(_) | Expr::Exists(_) => {}
        }
    }

    /// A character no literal contains: glued between literals, it creates no match that
    /// the literals themselves do not.
    fn separator(&self) -> Option<char> {
        let all: Vec<&String> = self
            .strings
            .iter()
            .chain(&self.prefixes)
            .chain(&self.suffixes)
            .chain(&self.contains)
            .chain(&self.bounds)
            .chain(&self.keys)
            .collect();
        ['ǂ', 'ǁ', '⁂', '\u{2063}', '\u{1}']
            .into_iter()
            .find(|c| all.iter().all(|s| !s.contains(*c)))
    }
}

/// Every subset of `items` (all of them up to [`MAX_SUBSET_LITERALS`], else the empty set
/// and the singletons); the flag says whether all were produced.
fn subsets<T: Clone>(items: &[T]) -> (Vec<Vec<T>>, bool) {
    if items.len() > MAX_SUBSET_LITERALS {
        let mut out = vec![Vec::new()];
        out.extend(items.iter().map(|i| vec![i.clone()]));
        return (out, false);
    }
    let mut out = Vec::with_capacity(1 << items.len());
    for mask in 0u32..(1 << items.len()) {
        out.push(
            items
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, x)| x.clone())
                .collect(),
        );
    }
    (out, true)
}

fn numbers(roles: &Roles) -> Vec<Value> {
    let mut points: Vec<(f64, Number)> = roles
        .numbers
        .iter()
        .filter_map(|n| n.as_f64().map(|f| (f, n.clone())))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points.dedup_by(|a, b| a.0 == b.0);
    let Some(((lo, lo_n), (hi, hi_n))) = points.first().zip(points.last()) else {
        return vec![Value::from(0)];
    };
    let step = |n: &Number, f: f64, d: i64| {
        n.as_i64()
            .and_then(|i| i.checked_add(d))
            .map_or_else(|| Value::from(f + d as f64), Value::from)
    };
    let mut out = vec![step(lo_n, *lo, -1)];
    for w in points.windows(2) {
        if let [(a, an), (b, _)] = w {
            out.push(Value::Number(an.clone()));
            let mid = a / 2.0 + b / 2.0;
            if *a < mid && mid < *b {
                out.push(Value::from(mid));
            }
        }
    }
    out.push(Value::Number(hi_n.clone()));
    out.push(step(hi_n, *hi, 1));
    out
}

/// The candidate strings; the flag says whether they meet every signature.
fn strings(roles: &Roles) -> (Vec<String>, bool) {
    let mut out: Vec<String> = roles.strings.iter().cloned().collect();
    let Some(z) = roles.separator() else {
        return (out, false);
    };
    let z = z.to_string();
    out.push(z.clone());
    let contains: Vec<String> = roles.contains.iter().cloned().collect();
    let (sets, mut complete) = subsets(&contains);
    let prefixes: Vec<&str> = std::iter::once("")
        .chain(roles.prefixes.iter().map(String::as_str))
        .collect();
    let suffixes: Vec<&str> = std::iter::once("")
        .chain(roles.suffixes.iter().map(String::as_str))
        .collect();
    // `p z c1 z c2 .. z q` meets the prefixes of p, the suffixes of q and exactly the
    // substrings of p, q and the c's: any string's signature is met by taking its longest
    // prefix, longest suffix and its contained literals.
    'build: for p in &prefixes {
        for q in &suffixes {
            for s in &sets {
                if out.len() >= MAX_STRINGS {
                    complete = false;
                    break 'build;
                }
                let mut w = format!("{p}{z}");
                for c in s {
                    w.push_str(c);
                    w.push_str(&z);
                }
                w.push_str(&z);
                w.push_str(q);
                out.push(w);
            }
        }
    }
    if !roles.bounds.is_empty() {
        // Around every bound: the least string, the bound's successor, one beyond it.
        out.push(String::new());
        for b in &roles.bounds {
            out.push(format!("{b}\0"));
            out.push(format!("{b}{z}"));
        }
        if !(roles.prefixes.is_empty() && roles.suffixes.is_empty() && contains.is_empty()) {
            complete = false;
        }
    }
    (out, complete)
}

fn arrays(roles: &Roles, z: &str) -> (Vec<Value>, bool) {
    let (sets, complete) = subsets(&roles.members);
    let mut out = roles.arrays.clone();
    for mut s in sets {
        s.push(Value::from(z));
        out.push(Value::Array(s));
    }
    (out, complete)
}

fn objects(roles: &Roles, z: &str) -> (Vec<Value>, bool) {
    let keys: Vec<String> = roles.keys.iter().cloned().collect();
    let (sets, complete) = subsets(&keys);
    let out = sets
        .into_iter()
        .map(|s| {
            let mut m: Map<String, Value> = s.into_iter().map(|k| (k, Value::Null)).collect();
            m.insert(z.to_owned(), Value::Null);
            Value::Object(m)
        })
        .collect();
    (out, complete)
}

/// The candidate values of a variable of `domain` whose atoms are `atoms`.
pub fn pool(domain: Domain, atoms: &[&Expr]) -> Pool {
    let mut roles = Roles::default();
    for a in atoms {
        roles.walk(a);
    }
    let mut values: Vec<Option<Value>> = Vec::new();
    let mut complete = true;
    let mut add_strings = |values: &mut Vec<Option<Value>>| {
        let (s, c) = strings(&roles);
        complete &= c;
        values.extend(s.into_iter().map(|s| Some(Value::String(s))));
    };
    match domain {
        Domain::Kind => {
            values.extend(KINDS.iter().map(|k| Some(Value::from(k.as_str()))));
        }
        Domain::Text => add_strings(&mut values),
        Domain::OptText => {
            values.push(None);
            add_strings(&mut values);
        }
        Domain::OptBool => {
            values.extend([None, Some(Value::Bool(false)), Some(Value::Bool(true))]);
        }
        Domain::Json => {
            values.extend([
                None,
                Some(Value::Null),
                Some(Value::Bool(false)),
                Some(Value::Bool(true)),
            ]);
            values.extend(numbers(&roles).into_iter().map(Some));
            add_strings(&mut values);
            let z = roles.separator().map(String::from);
            complete &= z.is_some();
            let z = z.unwrap_or_else(|| "~".into());
            let (a, ca) = arrays(&roles, &z);
            let (o, co) = objects(&roles, &z);
            complete &= ca && co;
            values.extend(a.into_iter().map(Some));
            values.extend(o.into_iter().map(Some));
        }
    }
    let points = roles.numbers.iter().filter_map(Number::as_f64).collect();
    Pool {
        values,
        complete,
        points,
    }
}

/// Cuts `pool` into classes by bucket and signature. `env` holds the fixed part of the
/// request; each candidate is set as `var` and every atom evaluated on the result.
pub fn classes(var: &Var, env: &Env, pool: &[Option<Value>], atoms: &[&Expr]) -> Vec<Class> {
    let mut out: Vec<Class> = Vec::new();
    let mut index: HashMap<(Bucket, Vec<Tv>), usize> = HashMap::new();
    for v in pool {
        let mut e = env.clone();
        e.set(var, v.as_ref());
        let sig = signature(&e, atoms);
        let bucket = Bucket::of(v.as_ref());
        match index.get(&(bucket, sig.clone())) {
            Some(&i) => {
                if let Some(c) = out.get_mut(i) {
                    c.members.push(v.clone());
                }
            }
            None => {
                index.insert((bucket, sig.clone()), out.len());
                out.push(Class {
                    bucket,
                    sig,
                    rep: v.clone(),
                    members: vec![v.clone()],
                });
            }
        }
    }
    out
}

/// The truth of each atom on a request.
pub fn signature(env: &Env, atoms: &[&Expr]) -> Vec<Tv> {
    let r = env.request();
    atoms
        .iter()
        .map(|a| Tv::of(reference::truth_of(a, &r)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::PathSeg;
    use crate::testing::Call;
    use serde_json::json;

    fn args(k: &str) -> Expr {
        Expr::Var(Var::Args(vec![PathSeg::Key(k.into())]))
    }

    fn c(v: Value) -> Box<Expr> {
        Box::new(Expr::Const(v))
    }

    fn env() -> Env {
        Env::new(Call::Tool {
            server: "s".into(),
            tool: "t".into(),
        })
    }

    #[test]
    fn numbers_split_at_literals_and_between_them() {
        let gt = Expr::Cmp(CmpOp::Gt, Box::new(args("a")), c(json!(10)));
        let eq = Expr::Cmp(CmpOp::Eq, Box::new(args("a")), c(json!(20)));
        let p = pool(Domain::Json, &[&gt, &eq]);
        assert!(p.complete);
        let var = Var::Args(vec![PathSeg::Key("a".into())]);
        let cls = classes(&var, &env(), &p.values, &[&gt, &eq]);
        let numeric: Vec<&Class> = cls.iter().filter(|c| c.bucket == Bucket::Number).collect();
        // <= 10, (10, 20) and > 20 share a signature only where both atoms agree.
        let sigs: BTreeSet<Vec<Tv>> = numeric.iter().map(|c| c.sig.clone()).collect();
        assert_eq!(
            sigs,
            BTreeSet::from([vec![Tv::F, Tv::F], vec![Tv::T, Tv::F], vec![Tv::T, Tv::T]])
        );
        // A string cannot be ordered against a number: undecided.
        assert!(
            cls.iter()
                .any(|c| c.bucket == Bucket::String && c.sig[0] == Tv::U)
        );
    }

    #[test]
    fn substring_tests_meet_every_combination() {
        let sw = Expr::Str(StrOp::StartsWith, Box::new(args("p")), c(json!("/a/")));
        let ct = Expr::Str(StrOp::Contains, Box::new(args("p")), c(json!("..")));
        let ew = Expr::Str(StrOp::EndsWith, Box::new(args("p")), c(json!(".md")));
        let p = pool(Domain::Json, &[&sw, &ct, &ew]);
        assert!(p.complete);
        let var = Var::Args(vec![PathSeg::Key("p".into())]);
        let atoms = [&sw, &ct, &ew];
        let cls = classes(&var, &env(), &p.values, &atoms);
        let strings = cls.iter().filter(|c| c.bucket == Bucket::String).count();
        assert_eq!(strings, 8, "every combination of three independent tests");
    }
}
