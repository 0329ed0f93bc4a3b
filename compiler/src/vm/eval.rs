//! The evaluator: dispatch to a leaf, then the leaf's rules in precedence order, each
//! condition a conjunction of memoized tests over hash-consed nodes. Nothing here allocates:
//! values borrow from the program and the request, and the memo is three `u128` words.

use super::code::{
    ALLOW, APPROVE, Code, DENY, Entry, HIDE, LIMIT, Leaf, Load, MEMO_SLOTS, Node, REDACT, Seg,
};
use super::code::{PROMPT, RESOURCE, TOOL};
use super::value::{Fold, Num, Tri, Val, json_eq};
use super::{Decision, Program, RuleIdx};
use crate::ir::{Annotation, CmpOp, StrOp};
use crate::request::{Principal, Request, Target, Verdict};
use serde_json::Value;
use std::cmp::Ordering;

/// The kind index, server and name (tool, prompt name or URI) of a target.
#[inline]
pub(crate) fn split(t: Target<'_>) -> (usize, &str, &str) {
    match t {
        Target::Tool { server, tool } => (TOOL, server, tool),
        Target::Prompt { server, name } => (PROMPT, server, name),
        Target::Resource { server, uri } => (RESOURCE, server, uri),
    }
}

/// The leaf a target dispatches to.
#[inline]
pub(crate) fn dispatch(p: &Program, target: Target<'_>) -> u32 {
    let (kind, server, name) = split(target);
    let (Some(exact), Some(servers), Some(d)) = (
        p.link.exact.get(kind),
        p.link.servers.get(kind),
        p.code.dispatch.get(kind),
    ) else {
        return u32::MAX;
    };
    exact
        .get(server, name)
        .or_else(|| servers.get(server, ""))
        .unwrap_or(d.fallback)
}

/// Evaluation state for one request against one leaf.
pub(crate) struct Cx<'a> {
    code: &'a Code,
    link: &'a super::code::Linked,
    principal: &'a Principal,
    server: &'a str,
    name: &'a str,
    /// `None` while listing: only the principal and the target are known.
    req: Option<Request<'a>>,
    done: u128,
    lo: u128,
    hi: u128,
}

impl<'a> Cx<'a> {
    pub fn new(
        p: &'a Program,
        principal: &'a Principal,
        target: Target<'a>,
        req: Option<Request<'a>>,
    ) -> Cx<'a> {
        let (_, server, name) = split(target);
        Cx {
            code: &p.code,
            link: &p.link,
            principal,
            server,
            name,
            req,
            done: 0,
            lo: 0,
            hi: 0,
        }
    }

    #[inline]
    fn string(&self, i: u32) -> &'a str {
        let code: &'a Code = self.code;
        code.strings.get(i as usize).map_or("", String::as_str)
    }

    #[inline]
    fn kids(&self, start: u32, len: u32) -> &'a [u32] {
        let code: &'a Code = self.code;
        let (s, l) = (start as usize, len as usize);
        code.kids.get(s..s.saturating_add(l)).unwrap_or_default()
    }

    #[inline]
    fn path(&self, i: u32) -> &'a [Seg] {
        let code: &'a Code = self.code;
        code.paths.get(i as usize).map_or(&[], Vec::as_slice)
    }

    /// Follows a path; `None` when a step is absent.
    fn walk(&self, mut v: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
        for s in segs {
            v = match (s, v) {
                (Seg::Key(k), Value::Object(m)) => m.get(self.string(*k))?,
                (Seg::Index(i), Value::Array(a)) => a.get(usize::try_from(*i).ok()?)?,
                _ => return None,
            };
        }
        Some(v)
    }

    fn attr(&self, path: u32) -> Option<&'a Value> {
        let principal: &'a Principal = self.principal;
        match self.path(path).split_first()? {
            (Seg::Key(k), rest) => self.walk(principal.attrs.get(self.string(*k))?, rest),
            _ => None,
        }
    }

    fn load(&self, l: Load) -> Val<'a> {
        let principal: &'a Principal = self.principal;
        match l {
            Load::PrincipalId => return Val::Str(&principal.id),
            Load::PrincipalKind => return Val::Str(principal.kind.as_str()),
            Load::PrincipalGroups => return Val::Groups(&principal.groups),
            Load::PrincipalAttr(p) => return self.attr(p).map_or(Val::Missing, Val::of),
            Load::Server => return Val::Str(self.server),
            Load::Tool => return Val::Str(self.name),
            _ => {}
        }
        let Some(r) = self.req else {
            return Val::Any;
        };
        let opt = |s: Option<&'a str>| s.map_or(Val::Missing, Val::Str);
        let ann = |b: Option<bool>| b.map_or(Val::Missing, Val::Bool);
        match l {
            Load::Args(p) => self
                .walk(r.args, self.path(p))
                .map_or(Val::Missing, Val::of),
            Load::AgentName => opt(r.agent),
            Load::ClientName => opt(r.client_name),
            Load::ClientVersion => opt(r.client_version),
            Load::Annotation(a) => ann(match a {
                Annotation::ReadOnly => r.annotations.read_only,
                Annotation::Destructive => r.annotations.destructive,
                Annotation::Idempotent => r.annotations.idempotent,
                Annotation::OpenWorld => r.annotations.open_world,
            }),
            _ => Val::Unknown,
        }
    }

    fn exists(&self, l: Load) -> Tri {
        if self.req.is_none() && !l.known_for_listing() {
            return Tri::A;
        }
        match l {
            Load::Args(p) => Tri::of(
                self.req
                    .is_some_and(|r| self.walk(r.args, self.path(p)).is_some()),
            ),
            Load::PrincipalAttr(p) => Tri::of(self.attr(p).is_some()),
            _ => Tri::of(!matches!(self.load(l), Val::Missing)),
        }
    }

    /// Evaluates a node. Recursion is bounded by the program's checked depth.
    pub fn eval(&mut self, n: u32) -> Val<'a> {
        let code: &'a Code = self.code;
        let Some(node) = code.nodes.get(n as usize) else {
            return Val::Unknown;
        };
        match *node {
            Node::Const(c) => code.consts.get(c as usize).map_or(Val::Unknown, Val::of),
            Node::Load(l) => self.load(l),
            Node::List { start, len } => Val::List(self.kids(start, len)),
            Node::Not(a) => Val::from_tri(self.eval(a).truth().not()),
            Node::And { start, len } => {
                let mut f = Fold::new();
                for &k in self.kids(start, len) {
                    let t = self.eval(k).truth();
                    if t == Tri::F {
                        return Val::Bool(false);
                    }
                    f.add(t);
                }
                Val::from_tri(f.finish(Tri::T))
            }
            Node::Or { start, len } => {
                let mut f = Fold::new();
                for &k in self.kids(start, len) {
                    let t = self.eval(k).truth();
                    if t == Tri::T {
                        return Val::Bool(true);
                    }
                    f.add(t);
                }
                Val::from_tri(f.finish(Tri::F))
            }
            Node::Cmp(op, a, b) => {
                let (x, y) = (self.eval(a), self.eval(b));
                Val::from_tri(self.cmp(op, x, y))
            }
            Node::In(a, b) => {
                let (x, y) = (self.eval(a), self.eval(b));
                Val::from_tri(self.is_in(x, y))
            }
            Node::Str(op, a, b) => {
                let (x, y) = (self.eval(a), self.eval(b));
                Val::from_tri(self.str_op(op, x, y))
            }
            Node::Matches(a, re) => {
                let x = self.eval(a);
                Val::from_tri(match pre(x, Val::Null) {
                    Some(t) => t,
                    None => match (x, self.link.regexes.get(re as usize)) {
                        (Val::Str(s), Some(Some(re))) => Tri::of(re.is_match(s)),
                        _ => Tri::U,
                    },
                })
            }
            Node::Len(a) => match self.eval(a) {
                v @ (Val::Missing | Val::Any | Val::Unknown) => v,
                Val::Str(s) => len_val(s.chars().count()),
                Val::Json(Value::Object(m)) => len_val(m.len()),
                v => v.list_len().map_or(Val::Unknown, len_val),
            },
            Node::Exists(l) => Val::from_tri(self.exists(l)),
            Node::Undecidable => Val::Unknown,
        }
    }

    fn item(&mut self, v: Val<'a>, i: usize) -> Val<'a> {
        match v {
            Val::Json(Value::Array(a)) => a.get(i).map_or(Val::Missing, Val::of),
            Val::Groups(g) => g.get(i).map_or(Val::Missing, |s| Val::Str(s)),
            Val::List(k) => k.get(i).map_or(Val::Missing, |&n| self.eval(n)),
            _ => Val::Missing,
        }
    }

    /// `==` on two values; lists item by item.
    fn eq(&mut self, a: Val<'a>, b: Val<'a>) -> Tri {
        if let Some(t) = pre(a, b) {
            return t;
        }
        match (a, b) {
            (Val::Null, Val::Null) => Tri::T,
            (Val::Bool(x), Val::Bool(y)) => Tri::of(x == y),
            (Val::Num(x), Val::Num(y)) => Tri::of(x.cmp(y) == Some(Ordering::Equal)),
            (Val::Str(x), Val::Str(y)) => Tri::of(x == y),
            (Val::Json(x @ Value::Object(_)), Val::Json(y @ Value::Object(_))) => {
                Tri::of(json_eq(x, y))
            }
            _ => match (a.list_len(), b.list_len()) {
                (Some(n), Some(m)) if n == m => {
                    let mut f = Fold::new();
                    for i in 0..n {
                        let (x, y) = (self.item(a, i), self.item(b, i));
                        let t = self.eq(x, y);
                        if t == Tri::F {
                            return Tri::F;
                        }
                        f.add(t);
                    }
                    f.finish(Tri::T)
                }
                _ => Tri::F,
            },
        }
    }

    /// Whether `x` equals an item of the list `list`.
    fn member(&mut self, x: Val<'a>, list: Val<'a>, n: usize) -> Tri {
        let mut f = Fold::new();
        for i in 0..n {
            let y = self.item(list, i);
            let t = self.eq(x, y);
            if t == Tri::T {
                return Tri::T;
            }
            f.add(t);
        }
        f.finish(Tri::F)
    }

    fn cmp(&mut self, op: CmpOp, x: Val<'a>, y: Val<'a>) -> Tri {
        match op {
            CmpOp::Eq => return self.eq(x, y),
            CmpOp::Ne if missing(x, y) => return Tri::F,
            CmpOp::Ne => return self.eq(x, y).not(),
            _ => {}
        }
        if let Some(t) = pre(x, y) {
            return t;
        }
        let ord = match (x, y) {
            (Val::Num(a), Val::Num(b)) => a.cmp(b),
            (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
            _ => None,
        };
        let Some(ord) = ord else { return Tri::U };
        Tri::of(match op {
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            _ => ord != Ordering::Less,
        })
    }

    fn is_in(&mut self, x: Val<'a>, c: Val<'a>) -> Tri {
        if let Some(t) = pre(x, c) {
            return t;
        }
        match (x, c) {
            (Val::Str(k), Val::Json(Value::Object(m))) => Tri::of(m.contains_key(k)),
            _ => match c.list_len() {
                Some(n) => self.member(x, c, n),
                None => Tri::U,
            },
        }
    }

    fn str_op(&mut self, op: StrOp, x: Val<'a>, y: Val<'a>) -> Tri {
        if let Some(t) = pre(x, y) {
            return t;
        }
        match (op, x, y) {
            (StrOp::Contains, Val::Str(a), Val::Str(b)) => Tri::of(a.contains(b)),
            (StrOp::StartsWith, Val::Str(a), Val::Str(b)) => Tri::of(a.starts_with(b)),
            (StrOp::EndsWith, Val::Str(a), Val::Str(b)) => Tri::of(a.ends_with(b)),
            (StrOp::Contains, _, _) => match x.list_len() {
                Some(n) => self.member(y, x, n),
                None => Tri::U,
            },
            _ => Tri::U,
        }
    }

    /// One leaf test, memoized in the first [`MEMO_SLOTS`] slots.
    #[inline]
    fn test(&mut self, leaf: &Leaf, slot: u32) -> Tri {
        let s = slot as usize;
        let bit = if s < MEMO_SLOTS { 1u128 << s } else { 0 };
        if self.done & bit != 0 {
            return Tri::from_bits(
                u8::from(self.lo & bit != 0) | (u8::from(self.hi & bit != 0) << 1),
            );
        }
        let t = match leaf.tests.get(s) {
            Some(&n) => self.eval(n).truth(),
            None => Tri::U,
        };
        self.done |= bit;
        let b = t as u8;
        if b & 1 != 0 {
            self.lo |= bit;
        }
        if b & 2 != 0 {
            self.hi |= bit;
        }
        t
    }

    /// Whether a rule of the leaf applies to the target (its guards), and the truth of its
    /// condition.
    #[inline]
    pub fn rule(&mut self, leaf: &Leaf, e: &Entry) -> Option<Tri> {
        if !self.guards(e) {
            return None;
        }
        let mut f = Fold::new();
        for &slot in &e.conj {
            let t = self.test(leaf, slot);
            if t == Tri::F {
                return Some(Tri::F);
            }
            f.add(t);
        }
        Some(f.finish(Tri::T))
    }

    #[inline]
    fn guards(&self, e: &Entry) -> bool {
        if e.guards.is_empty() {
            return true;
        }
        let glob = |i: u32, s: &str| {
            self.link
                .globs
                .get(i as usize)
                .is_some_and(|g| g.matches(s))
        };
        e.guards
            .iter()
            .any(|g| g.server.is_none_or(|s| glob(s, self.server)) && glob(g.name, self.name))
    }
}

/// The result shared by every operator when an operand is missing (false), not known while
/// listing, or undecidable; `None` when both are values.
#[inline]
fn pre(a: Val<'_>, b: Val<'_>) -> Option<Tri> {
    match (a, b) {
        (Val::Missing, _) | (_, Val::Missing) => Some(Tri::F),
        (Val::Any, _) | (_, Val::Any) => Some(Tri::A),
        (Val::Unknown, _) | (_, Val::Unknown) => Some(Tri::U),
        _ => None,
    }
}

fn missing(a: Val<'_>, b: Val<'_>) -> bool {
    matches!(a, Val::Missing) || matches!(b, Val::Missing)
}

fn len_val<'a>(n: usize) -> Val<'a> {
    Val::Num(Num::Int(i128::try_from(n).unwrap_or(i128::MAX)))
}

const ORDER: [(usize, Verdict); 4] = [
    (HIDE, Verdict::Hide),
    (DENY, Verdict::Deny),
    (APPROVE, Verdict::Approve),
    (ALLOW, Verdict::Allow),
];

pub(crate) fn evaluate(p: &Program, r: &Request<'_>) -> Decision {
    let leaf_idx = dispatch(p, r.target);
    let Some(leaf) = p.code.leaves.get(leaf_idx as usize) else {
        return Decision::default_deny(leaf_idx);
    };
    let mut cx = Cx::new(p, r.principal, r.target, Some(*r));
    for (e, verdict) in ORDER {
        for entry in leaf.effects.get(e).map_or(&[][..], Vec::as_slice) {
            let undecided = match cx.rule(leaf, entry) {
                Some(Tri::T) => false,
                Some(Tri::U | Tri::A) if e != ALLOW => true,
                _ => continue,
            };
            return Decision {
                verdict,
                rule: RuleIdx(entry.rule),
                undecided,
                leaf: leaf_idx,
            };
        }
    }
    Decision::default_deny(leaf_idx)
}

pub(crate) fn visible(p: &Program, principal: &Principal, target: Target<'_>) -> bool {
    let Some(leaf) = p.code.leaves.get(dispatch(p, target) as usize) else {
        return false;
    };
    let mut cx = Cx::new(p, principal, target, None);
    let effect = |e: usize| leaf.effects.get(e).map_or(&[][..], Vec::as_slice);
    for e in [HIDE, DENY] {
        for entry in effect(e) {
            if matches!(cx.rule(leaf, entry), Some(Tri::T | Tri::U)) {
                return false;
            }
        }
    }
    for entry in effect(APPROVE) {
        if matches!(cx.rule(leaf, entry), Some(Tri::T | Tri::U | Tri::A)) {
            return true;
        }
    }
    for entry in effect(ALLOW) {
        if matches!(cx.rule(leaf, entry), Some(Tri::T | Tri::A)) {
            return true;
        }
    }
    false
}

/// The `deny` rule that keeps `target` off `principal`'s lists whatever the arguments,
/// when no `hide` rule surely applies; see [`super::withheld_by`].
pub(crate) fn withheld_by(p: &Program, principal: &Principal, target: Target<'_>) -> Option<u32> {
    let leaf = p.code.leaves.get(dispatch(p, target) as usize)?;
    let mut cx = Cx::new(p, principal, target, None);
    let effect = |e: usize| leaf.effects.get(e).map_or(&[][..], Vec::as_slice);
    for entry in effect(HIDE) {
        if matches!(cx.rule(leaf, entry), Some(Tri::T | Tri::U)) {
            return None;
        }
    }
    effect(DENY)
        .iter()
        .find(|entry| matches!(cx.rule(leaf, entry), Some(Tri::T | Tri::U)))
        .map(|entry| entry.rule)
}

/// The `limit` rules that match a request, in rule order; see [`Program::limits`].
pub struct LimitMatches<'a> {
    cx: Cx<'a>,
    leaf: Option<&'a Leaf>,
    next: usize,
}

impl<'a> LimitMatches<'a> {
    pub(crate) fn new(p: &'a Program, leaf: u32, r: Request<'a>) -> LimitMatches<'a> {
        LimitMatches {
            cx: Cx::new(p, r.principal, r.target, Some(r)),
            leaf: p.code.leaves.get(leaf as usize),
            next: 0,
        }
    }
}

impl Iterator for LimitMatches<'_> {
    type Item = RuleIdx;

    fn next(&mut self) -> Option<RuleIdx> {
        let leaf = self.leaf?;
        let limits = leaf.effects.get(LIMIT)?;
        while let Some(entry) = limits.get(self.next) {
            self.next += 1;
            if matches!(self.cx.rule(leaf, entry), Some(Tri::T | Tri::U)) {
                return Some(RuleIdx(entry.rule));
            }
        }
        None
    }
}

/// The `redact` rules that match a request, in rule order; see [`Program::redactions`].
pub struct Redactions<'a> {
    cx: Cx<'a>,
    program: &'a Program,
    leaf: Option<&'a Leaf>,
    next: usize,
}

impl<'a> Redactions<'a> {
    pub(crate) fn new(p: &'a Program, leaf: u32, r: Request<'a>) -> Redactions<'a> {
        Redactions {
            cx: Cx::new(p, r.principal, r.target, Some(r)),
            program: p,
            leaf: p.code.leaves.get(leaf as usize),
            next: 0,
        }
    }
}

impl<'a> Iterator for Redactions<'a> {
    type Item = Redaction<'a>;

    fn next(&mut self) -> Option<Redaction<'a>> {
        let leaf = self.leaf?;
        let list = leaf.effects.get(REDACT)?;
        while let Some(entry) = list.get(self.next) {
            self.next += 1;
            if !matches!(self.cx.rule(leaf, entry), Some(Tri::T | Tri::U)) {
                continue;
            }
            let program: &'a Program = self.program;
            if let Some(r) = redaction_of(program, entry.rule) {
                return Some(r);
            }
        }
        None
    }
}

/// The redaction of rule `rule`, if it is a `redact` rule.
pub(crate) fn redaction_of(program: &Program, rule: u32) -> Option<Redaction<'_>> {
    let info = program.code.rules.get(rule as usize)?;
    let spec = info.redact.as_ref()?;
    let patterns = program
        .link
        .redact_patterns
        .get(rule as usize)
        .map_or(&[][..], Vec::as_slice);
    Some(Redaction {
        rule: RuleIdx(rule),
        id: &info.id,
        spec,
        patterns,
    })
}

/// One `redact` rule that applies to a request: what to keep out of the audit log and what
/// to mask in the result. Borrowed from the program; copying it allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Redaction<'a> {
    /// The rule, for audit records and logs.
    pub rule: RuleIdx,
    /// The rule's id.
    pub id: &'a str,
    spec: &'a crate::ir::Redaction,
    patterns: &'a [regex::Regex],
}

impl<'a> Redaction<'a> {
    /// Argument paths whose values the audit log stores as salted hashes, never in clear
    /// (an empty path is the whole arguments object). See [`crate::ir::value_at_mut`].
    pub fn args(&self) -> &'a [Vec<crate::ir::PathSeg>] {
        &self.spec.args
    }

    /// Result field names masked at any depth of a result.
    pub fn fields(&self) -> &'a [String] {
        &self.spec.fields
    }

    /// Patterns whose matches are masked in a result's text, compiled once per program.
    pub fn patterns(&self) -> &'a [regex::Regex] {
        self.patterns
    }

    /// Whether the rule masks anything in results.
    pub fn masks_results(&self) -> bool {
        !self.spec.fields.is_empty() || !self.patterns.is_empty()
    }
}

/// The rules a target dispatches to, after their run-time target guards: indices into
/// [`Program::rules`] per effect (hide, deny, approve, allow, limit), each in leaf order.
pub(crate) fn applicable(p: &Program, target: Target<'_>) -> [Vec<u32>; 5] {
    let mut out: [Vec<u32>; 5] = Default::default();
    let Some(leaf) = p.code.leaves.get(dispatch(p, target) as usize) else {
        return out;
    };
    let (_, server, name) = split(target);
    let glob = |i: u32, s: &str| p.link.globs.get(i as usize).is_some_and(|g| g.matches(s));
    for (slot, e) in out.iter_mut().zip([HIDE, DENY, APPROVE, ALLOW, LIMIT]) {
        for entry in leaf.effects.get(e).map_or(&[][..], Vec::as_slice) {
            let hit = entry.guards.is_empty()
                || entry
                    .guards
                    .iter()
                    .any(|g| g.server.is_none_or(|s| glob(s, server)) && glob(g.name, name));
            if hit {
                slot.push(entry.rule);
            }
        }
    }
    out
}
