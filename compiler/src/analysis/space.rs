//! One question about one target: the variables the applicable rules test, their classes,
//! each program's rules as formulas over condition atoms, and the search that splits the
//! request space until every program's verdict is fixed.
//!
//! An atom is a condition part that is not `&&`, `||` or `!`. An atom over one variable
//! gets a truth value per class of that variable ([`super::domain`]); `"g" in
//! principal.groups` is its own yes/no variable (with the members `principals.yaml`
//! declares); an atom the classes cannot decide (`matches`, `len` on a string, list or
//! object; an atom relating two variables) becomes an opaque yes/no variable, and reports
//! say which. The rules a target reaches are read from the compiled program's dispatch.

use super::domain::{self, Bucket, Class, Domain, Tv};
use super::env::Env;
use super::text;
use crate::Program;
use crate::ir::{self, Expr, StrOp, Var};
use crate::reference;
use crate::request::{Principal, Request, Verdict};
use crate::vm::RuleIdx;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// Most regions one search produces before it stops (and says so).
pub const MAX_REGIONS: usize = 20_000;

/// What a variable of the search stands for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VarKey {
    /// A request value.
    Value(Var),
    /// Whether the credential carries a group (`principals.yaml` adds its own members).
    Group(String),
    /// The truth of an atom the classes cannot decide (index into [`Space::atoms`]).
    Opaque(usize),
}

#[derive(Clone, Debug)]
pub struct VarDom {
    pub key: VarKey,
    pub classes: Vec<Class>,
    /// Signature atoms (indices into [`Space::atoms`]), in the order of `Class::sig`.
    pub atoms: Vec<usize>,
    /// Atoms over the variable that are opaque on some buckets.
    pub opaque_atoms: Vec<usize>,
    /// Numeric literals of the atoms: where number classes begin and end.
    pub points: Vec<f64>,
    /// Every value lies in some class. When not, the classes together are not the whole
    /// domain: a set of all of them still constrains the variable.
    pub complete: bool,
}

#[derive(Clone, Debug)]
pub enum AtomKind {
    /// No free variable: its truth is known.
    Const(Tv),
    /// Over one variable: a truth per class, `None` where the atom is opaque (then the
    /// opaque variable decides).
    Single {
        var: usize,
        opaque: Option<usize>,
        cells: Vec<Option<Tv>>,
    },
    /// `"g" in principal.groups`.
    Group { group: String, token: usize },
    /// Relates several variables: an opaque variable with classes true, false, undecided.
    Relational { var: usize },
}

#[derive(Clone, Debug)]
pub struct Atom {
    pub expr: Expr,
    pub kind: AtomKind,
}

/// A condition as a formula over atoms.
#[derive(Clone, Debug)]
pub enum Formula {
    Const(Tv),
    Atom(usize),
    Not(Box<Formula>),
    All(Vec<Formula>),
    Any(Vec<Formula>),
}

/// The rules of one program that apply to the target.
#[derive(Clone, Debug, Default)]
pub struct SideRules {
    /// Hide, deny, approve, allow: (rule, condition) in evaluation order.
    pub effects: [Vec<(RuleIdx, Formula)>; 4],
    pub limits: Vec<(RuleIdx, Formula)>,
    /// Group to the principal ids `principals.yaml` puts in it.
    pub declared: HashMap<String, BTreeSet<String>>,
}

/// A program's decision in a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Outcome {
    pub verdict: Verdict,
    pub rule: RuleIdx,
    /// The deciding rule's condition cannot be decided there (it applies, failing closed).
    pub undecided: bool,
}

/// A set of requests on which every program decides one way: for each variable it
/// constrains, the classes allowed (a variable not listed is free).
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    pub cells: Vec<(usize, Vec<u16>)>,
    pub outcomes: Vec<Outcome>,
}

/// Which parts of a request are given rather than searched.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fixed {
    pub principal: bool,
    pub annotations: bool,
}

#[derive(Clone, Debug)]
pub struct Space {
    pub env: Env,
    fixed: Fixed,
    pub vars: Vec<VarDom>,
    pub atoms: Vec<Atom>,
    pub sides: Vec<SideRules>,
    /// Only requests for which this holds are searched (`--args-constraint`).
    filter: Option<Formula>,
    atom_ix: HashMap<String, usize>,
    var_ix: HashMap<VarKey, usize>,
    id_var: Option<usize>,
    /// Where the classes may miss values (a region list that may not cover everything).
    pub incomplete: BTreeSet<String>,
    /// Opaque atoms, as written: regions may list combinations no request has.
    pub opaque: BTreeSet<String>,
    /// Argument or attribute paths of which one is a prefix of another: regions may
    /// list combinations no request has.
    pub overlapping: BTreeSet<String>,
}

enum Eval {
    V(Tv),
    Split(usize),
}

fn vars_of<'e>(e: &'e Expr, out: &mut Vec<&'e Var>) {
    match e {
        Expr::Var(v) | Expr::Exists(v) => {
            if !out.contains(&v) {
                out.push(v);
            }
        }
        Expr::Const(_) => {}
        Expr::List(items) => items.iter().for_each(|i| vars_of(i, out)),
        Expr::Not(a) | Expr::Matches(a, _) | Expr::Len(a) => vars_of(a, out),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) | Expr::In(a, b) => {
            vars_of(a, out);
            vars_of(b, out);
        }
        Expr::Str(_, a, b) => {
            vars_of(a, out);
            vars_of(b, out);
        }
    }
}

/// Whether an atom looks inside values of `bucket` in a way classes do not capture:
/// `matches` inside strings, `len` inside strings, lists and objects.
fn looks_inside(e: &Expr, bucket: Bucket) -> bool {
    let inside = |e| looks_inside(e, bucket);
    match e {
        Expr::Matches(a, _) => bucket == Bucket::String || inside(a),
        Expr::Len(a) => bucket.has_content() || inside(a),
        Expr::Const(_) | Expr::Var(_) | Expr::Exists(_) => false,
        Expr::List(items) => items.iter().any(inside),
        Expr::Not(a) => inside(a),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) | Expr::In(a, b) => {
            inside(a) || inside(b)
        }
        Expr::Str(_, a, b) => inside(a) || inside(b),
    }
}

/// The group of `"g" in principal.groups` or `principal.groups contains "g"`.
fn group_test(e: &Expr) -> Option<&str> {
    match e {
        Expr::In(x, y) | Expr::Str(StrOp::Contains, y, x) => match (x.as_ref(), y.as_ref()) {
            (Expr::Const(Value::String(g)), Expr::Var(Var::PrincipalGroups)) => Some(g),
            _ => None,
        },
        _ => None,
    }
}

impl Space {
    /// The space of requests for `env.call` under the programs of `sides` (each a checked
    /// policy and the program compiled from it). `env` holds the fixed parts; with a
    /// `filter`, only the requests for which it is true are searched.
    pub fn new(
        env: Env,
        fixed: Fixed,
        sides: &[(&ir::Policy, &Program)],
        filter: Option<&Expr>,
    ) -> Space {
        let mut s = Space {
            env,
            fixed,
            vars: Vec::new(),
            atoms: Vec::new(),
            sides: Vec::new(),
            filter: None,
            atom_ix: HashMap::new(),
            var_ix: HashMap::new(),
            id_var: None,
            incomplete: BTreeSet::new(),
            opaque: BTreeSet::new(),
            overlapping: BTreeSet::new(),
        };
        let target = s.env.call.clone();
        for (policy, program) in sides {
            let applicable = program.applicable(target.target());
            let mut side = SideRules::default();
            for (k, list) in applicable.iter().enumerate() {
                for &rule in list {
                    let cond = policy
                        .rules
                        .get(rule.0 as usize)
                        .and_then(|r| r.condition.as_ref());
                    let f = cond.map_or(Formula::Const(Tv::T), |c| s.formula(c));
                    match side.effects.get_mut(k) {
                        Some(slot) => slot.push((rule, f)),
                        None => side.limits.push((rule, f)),
                    }
                }
            }
            for (id, groups) in program.memberships() {
                for g in groups {
                    side.declared
                        .entry(g.clone())
                        .or_default()
                        .insert(id.clone());
                }
            }
            s.sides.push(side);
        }
        s.filter = filter.map(|f| s.formula(f));
        s.declared_ids();
        s.build_classes();
        s.find_overlaps();
        s
    }

    fn free(&self, v: &Var) -> bool {
        match v {
            Var::Server | Var::Tool => false,
            Var::PrincipalId
            | Var::PrincipalKind
            | Var::PrincipalGroups
            | Var::PrincipalAttr(_) => !self.fixed.principal,
            Var::ToolAnnotation(_) => !self.fixed.annotations,
            _ => true,
        }
    }

    fn var(&mut self, key: VarKey) -> usize {
        if let Some(&i) = self.var_ix.get(&key) {
            return i;
        }
        let i = self.vars.len();
        self.vars.push(VarDom {
            key: key.clone(),
            classes: Vec::new(),
            atoms: Vec::new(),
            opaque_atoms: Vec::new(),
            points: Vec::new(),
            complete: true,
        });
        self.var_ix.insert(key, i);
        i
    }

    fn formula(&mut self, e: &Expr) -> Formula {
        match e {
            Expr::And(a, b) => Formula::All(vec![self.formula(a), self.formula(b)]),
            Expr::Or(a, b) => Formula::Any(vec![self.formula(a), self.formula(b)]),
            Expr::Not(a) => Formula::Not(Box::new(self.formula(a))),
            _ => Formula::Atom(self.atom(e)),
        }
    }

    fn atom(&mut self, e: &Expr) -> usize {
        let key = format!("{e:?}");
        if let Some(&i) = self.atom_ix.get(&key) {
            return i;
        }
        let i = self.atoms.len();
        let mut vars = Vec::new();
        vars_of(e, &mut vars);
        let free: Vec<Var> = vars.into_iter().filter(|v| self.free(v)).cloned().collect();
        let kind = match (group_test(e), free.as_slice()) {
            (Some(g), [Var::PrincipalGroups]) => AtomKind::Group {
                group: g.to_owned(),
                token: self.var(VarKey::Group(g.to_owned())),
            },
            (_, []) => AtomKind::Const(Tv::of(reference::truth_of(e, &self.env.request()))),
            (_, [v]) if *v != Var::PrincipalGroups => {
                let var = self.var(VarKey::Value(v.clone()));
                let opaque = looks_inside(e, Bucket::String).then(|| self.var(VarKey::Opaque(i)));
                if let Some(d) = self.vars.get_mut(var) {
                    if opaque.is_some() {
                        d.opaque_atoms.push(i);
                    } else {
                        d.atoms.push(i);
                    }
                }
                if opaque.is_some() {
                    self.opaque.insert(text::expr(e));
                }
                AtomKind::Single {
                    var,
                    opaque,
                    cells: Vec::new(),
                }
            }
            _ => {
                self.opaque.insert(text::expr(e));
                AtomKind::Relational {
                    var: self.var(VarKey::Opaque(i)),
                }
            }
        };
        self.atoms.push(Atom {
            expr: e.clone(),
            kind,
        });
        self.atom_ix.insert(key, i);
        i
    }

    /// Declared members of the groups the rules test become classes of `principal.id`,
    /// so that a region can say "alice, whom principals.yaml puts in the group".
    fn declared_ids(&mut self) {
        let groups: BTreeSet<String> = self
            .atoms
            .iter()
            .filter_map(|a| match &a.kind {
                AtomKind::Group { group, .. } => Some(group.clone()),
                _ => None,
            })
            .collect();
        let ids: BTreeSet<String> = self
            .sides
            .iter()
            .flat_map(|s| groups.iter().filter_map(|g| s.declared.get(g)).flatten())
            .cloned()
            .collect();
        if ids.is_empty() {
            return;
        }
        for id in ids {
            let e = Expr::Cmp(
                ir::CmpOp::Eq,
                Box::new(Expr::Var(Var::PrincipalId)),
                Box::new(Expr::Const(Value::String(id))),
            );
            self.atom(&e);
        }
        self.id_var = self.var_ix.get(&VarKey::Value(Var::PrincipalId)).copied();
    }

    fn build_classes(&mut self) {
        for vi in 0..self.vars.len() {
            let Some(d) = self.vars.get(vi) else { continue };
            let mut points = Vec::new();
            let mut complete = true;
            let classes = match &d.key {
                VarKey::Group(_) => vec![flag(true), flag(false)],
                VarKey::Opaque(a) => {
                    let relational = matches!(
                        self.atoms.get(*a).map(|a| &a.kind),
                        Some(AtomKind::Relational { .. })
                    );
                    let mut c = vec![truth(Tv::T), truth(Tv::F)];
                    if relational {
                        c.push(truth(Tv::U));
                    }
                    c
                }
                VarKey::Value(v) => {
                    let exprs = |ix: &[usize]| -> Vec<&Expr> {
                        ix.iter()
                            .filter_map(|&a| self.atoms.get(a).map(|a| &a.expr))
                            .collect()
                    };
                    let sig = exprs(&d.atoms);
                    let all: Vec<&Expr> = exprs(&d.atoms)
                        .into_iter()
                        .chain(exprs(&d.opaque_atoms))
                        .collect();
                    let pool = domain::pool(Domain::of(v), &all);
                    if !pool.complete {
                        self.incomplete.insert(text::var(v));
                        complete = false;
                    }
                    points = pool.points.clone();
                    domain::classes(v, &self.env, &pool.values, &sig)
                }
            };
            if let Some(d) = self.vars.get_mut(vi) {
                d.classes = classes;
                d.points = points;
                d.complete = complete;
            }
        }
        // Truth of each single-variable atom per class.
        for ai in 0..self.atoms.len() {
            let Some(Atom {
                expr,
                kind: AtomKind::Single { var, opaque, .. },
            }) = self.atoms.get(ai)
            else {
                continue;
            };
            let Some(d) = self.vars.get(*var) else {
                continue;
            };
            let VarKey::Value(v) = &d.key else { continue };
            let cells: Vec<Option<Tv>> = d
                .classes
                .iter()
                .map(|c| {
                    if opaque.is_some() && looks_inside(expr, c.bucket) {
                        return None;
                    }
                    let mut e = self.env.clone();
                    e.set(v, c.rep.as_ref());
                    Some(Tv::of(reference::truth_of(expr, &e.request())))
                })
                .collect();
            if let Some(Atom {
                kind: AtomKind::Single { cells: slot, .. },
                ..
            }) = self.atoms.get_mut(ai)
            {
                *slot = cells;
            }
        }
    }

    fn find_overlaps(&mut self) {
        let paths: Vec<(bool, &Vec<ir::PathSeg>, String)> = self
            .vars
            .iter()
            .filter_map(|d| match &d.key {
                VarKey::Value(v @ Var::Args(p)) => Some((true, p, text::var(v))),
                VarKey::Value(v @ Var::PrincipalAttr(p)) => Some((false, p, text::var(v))),
                _ => None,
            })
            .collect();
        let mut found = BTreeSet::new();
        for (ka, a, ta) in &paths {
            for (kb, b, _) in &paths {
                if ka == kb && a.len() < b.len() && b.starts_with(a) {
                    found.insert(ta.clone());
                }
            }
        }
        self.overlapping = found;
    }

    /// Whether every region the search lists is a set of real requests and together they
    /// cover every request: no opaque atom, no overlapping paths, complete classes.
    pub fn exact(&self) -> bool {
        self.incomplete.is_empty() && self.opaque.is_empty() && self.overlapping.is_empty()
    }

    /// Whether the regions cover every request (each request lies in one region, with
    /// that region's verdicts); opaque atoms and overlaps only add empty regions.
    pub fn covers(&self) -> bool {
        self.incomplete.is_empty()
    }

    fn complete(&self, v: usize) -> bool {
        self.vars.get(v).is_some_and(|d| d.complete)
    }

    fn eval_atom(&self, side: &SideRules, a: usize, assign: &[Option<u16>]) -> Eval {
        let Some(atom) = self.atoms.get(a) else {
            return Eval::V(Tv::U);
        };
        let class = |v: usize| assign.get(v).copied().flatten();
        match &atom.kind {
            AtomKind::Const(t) => Eval::V(*t),
            AtomKind::Single { var, opaque, cells } => match class(*var) {
                None => Eval::Split(*var),
                Some(c) => match cells.get(c as usize).copied().flatten() {
                    Some(t) => Eval::V(t),
                    None => match opaque {
                        Some(o) => match class(*o) {
                            None => Eval::Split(*o),
                            Some(k) => Eval::V(opaque_truth(k)),
                        },
                        None => Eval::V(Tv::U),
                    },
                },
            },
            AtomKind::Relational { var } => match class(*var) {
                None => Eval::Split(*var),
                Some(k) => Eval::V(opaque_truth(k)),
            },
            AtomKind::Group { group, token } => match class(*token) {
                None => Eval::Split(*token),
                Some(0) => Eval::V(Tv::T),
                Some(_) => {
                    let Some(members) = side.declared.get(group).filter(|m| !m.is_empty()) else {
                        return Eval::V(Tv::F);
                    };
                    let Some(idv) = self.id_var else {
                        return Eval::V(Tv::F);
                    };
                    match class(idv) {
                        None => Eval::Split(idv),
                        Some(c) => {
                            let id = self
                                .vars
                                .get(idv)
                                .and_then(|d| d.classes.get(c as usize))
                                .and_then(|c| c.rep.as_ref())
                                .and_then(Value::as_str);
                            Eval::V(Tv::of(Some(id.is_some_and(|id| members.contains(id)))))
                        }
                    }
                }
            },
        }
    }

    fn eval(&self, side: &SideRules, f: &Formula, assign: &[Option<u16>]) -> Eval {
        match f {
            Formula::Const(t) => Eval::V(*t),
            Formula::Atom(a) => self.eval_atom(side, *a, assign),
            Formula::Not(x) => match self.eval(side, x, assign) {
                Eval::V(t) => Eval::V(t.not()),
                s => s,
            },
            Formula::All(xs) | Formula::Any(xs) => {
                // `&&`: false dominates, then an unknown part, then undecided.
                let (dominant, neutral) = match f {
                    Formula::All(_) => (Tv::F, Tv::T),
                    _ => (Tv::T, Tv::F),
                };
                let mut split = None;
                let mut undecided = false;
                for x in xs {
                    match self.eval(side, x, assign) {
                        Eval::V(t) if t == dominant => return Eval::V(t),
                        Eval::V(Tv::U) => undecided = true,
                        Eval::V(_) => {}
                        // A variable whose classes may miss values is split on last: a
                        // part decided without it holds for every value, so its regions
                        // need not be confined to the classes.
                        Eval::Split(v) => match split {
                            Some(s) if self.complete(s) || !self.complete(v) => {}
                            _ => split = Some(v),
                        },
                    }
                }
                match split {
                    Some(v) => Eval::Split(v),
                    None if undecided => Eval::V(Tv::U),
                    None => Eval::V(neutral),
                }
            }
        }
    }

    /// The program's decision under a partial assignment, or the variable to split on.
    fn decide(&self, side: &SideRules, assign: &[Option<u16>]) -> Result<Outcome, usize> {
        let order = [
            Verdict::Hide,
            Verdict::Deny,
            Verdict::Approve,
            Verdict::Allow,
        ];
        for (list, verdict) in side.effects.iter().zip(order) {
            for (rule, f) in list {
                let undecided = match self.eval(side, f, assign) {
                    Eval::V(Tv::T) => false,
                    Eval::V(Tv::U) if verdict != Verdict::Allow => true,
                    Eval::V(_) => continue,
                    Eval::Split(v) => return Err(v),
                };
                return Ok(Outcome {
                    verdict,
                    rule: *rule,
                    undecided,
                });
            }
        }
        Ok(Outcome {
            verdict: Verdict::Deny,
            rule: RuleIdx::DEFAULT,
            undecided: false,
        })
    }

    /// Splits the space until every program decides each region; the flag says the
    /// search stopped at [`MAX_REGIONS`].
    pub fn regions(&self) -> (Vec<Region>, bool) {
        let mut out = Vec::new();
        let mut assign = vec![None; self.vars.len()];
        let complete = self.search(&mut assign, &mut out);
        (out, !complete)
    }

    /// Splits on `v`, searching each class in turn; false when the bound was reached.
    fn split(&self, v: usize, assign: &mut Vec<Option<u16>>, out: &mut Vec<Region>) -> bool {
        let n = self.vars.get(v).map_or(0, |d| d.classes.len());
        for c in 0..n {
            if out.len() >= MAX_REGIONS {
                return false;
            }
            if let Some(slot) = assign.get_mut(v) {
                *slot = u16::try_from(c).ok();
            }
            if !self.search(assign, out) {
                return false;
            }
        }
        if let Some(slot) = assign.get_mut(v) {
            *slot = None;
        }
        true
    }

    fn search(&self, assign: &mut Vec<Option<u16>>, out: &mut Vec<Region>) -> bool {
        if let (Some(f), Some(side)) = (&self.filter, self.sides.first()) {
            match self.eval(side, f, assign) {
                Eval::V(Tv::T) => {}
                Eval::V(_) => return true,
                Eval::Split(v) => return self.split(v, assign, out),
            }
        }
        let mut outcomes = Vec::with_capacity(self.sides.len());
        for side in &self.sides {
            match self.decide(side, assign) {
                Ok(o) => outcomes.push(o),
                Err(v) => return self.split(v, assign, out),
            }
        }
        out.push(Region {
            cells: assign
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.map(|c| (i, vec![c])))
                .collect(),
            outcomes,
        });
        true
    }

    /// Whether a limit rule applies in a region: `Some(true)` surely (its condition holds
    /// or cannot be decided), `Some(false)` never, `None` depending on what the region
    /// leaves open.
    pub fn limit_applies(&self, side: usize, f: &Formula, region: &Region) -> Option<bool> {
        let Some(s) = self.sides.get(side) else {
            return Some(false);
        };
        let mut assign = vec![None; self.vars.len()];
        for (v, cls) in &region.cells {
            if let ([c], Some(slot)) = (cls.as_slice(), assign.get_mut(*v)) {
                *slot = Some(*c);
            }
        }
        match self.eval(s, f, &assign) {
            Eval::V(Tv::F) => Some(false),
            Eval::V(_) => Some(true),
            Eval::Split(_) => None,
        }
    }

    /// The class of every variable for a concrete request (`None` where no class holds
    /// the value: a gap, possible only where [`Space::covers`] is false). `principal` is
    /// the caller as its credential says, before `principals.yaml` adds groups.
    pub fn locate(&self, req: &Request<'_>, principal: &Principal) -> Vec<Option<u16>> {
        let token = Request { principal, ..*req };
        self.vars
            .iter()
            .map(|d| match &d.key {
                VarKey::Group(g) => Some(if principal.groups.contains(g) { 0 } else { 1 }),
                VarKey::Opaque(a) => {
                    let atom = self.atoms.get(*a)?;
                    match Tv::of(reference::truth_of(&atom.expr, req)) {
                        Tv::T => Some(0),
                        Tv::F => Some(1),
                        Tv::U => Some(2),
                    }
                }
                VarKey::Value(v) => {
                    let value = reference::value_of(&token, v);
                    let bucket = Bucket::of(value.as_ref());
                    let sig: Vec<Tv> = d
                        .atoms
                        .iter()
                        .filter_map(|&a| self.atoms.get(a))
                        .map(|a| Tv::of(reference::truth_of(&a.expr, &token)))
                        .collect();
                    let i = d
                        .classes
                        .iter()
                        .position(|c| c.bucket == bucket && c.sig == sig)?;
                    u16::try_from(i).ok()
                }
            })
            .collect()
    }
}

/// Opaque classes: 0 true, 1 false, 2 undecided.
fn opaque_truth(k: u16) -> Tv {
    match k {
        0 => Tv::T,
        1 => Tv::F,
        _ => Tv::U,
    }
}

fn flag(b: bool) -> Class {
    Class {
        bucket: if b { Bucket::True } else { Bucket::False },
        sig: Vec::new(),
        rep: Some(Value::Bool(b)),
        members: vec![Some(Value::Bool(b))],
    }
}

fn truth(t: Tv) -> Class {
    Class {
        bucket: Bucket::Null,
        sig: vec![t],
        rep: None,
        members: Vec::new(),
    }
}

impl Region {
    /// Whether the region holds a request whose classes are `located`.
    pub fn contains(&self, located: &[Option<u16>]) -> bool {
        self.cells.iter().all(|(v, cls)| {
            located
                .get(*v)
                .copied()
                .flatten()
                .is_some_and(|c| cls.contains(&c))
        })
    }
}
