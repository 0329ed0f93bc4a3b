//! Lowering a checked [`ir::Policy`] into [`Code`]: interning, hash-consing of condition
//! nodes, and the dispatch of every target to a leaf.

use super::RuleInfo;
use super::code::{
    ALLOW, APPROVE, Code, DENY, Dispatch, Entry, Guard, HIDE, LIMIT, Leaf, Load, MAX_DEPTH, Node,
    PROMPT, REDACT, RESOURCE, Seg, TOOL,
};
use super::glob::{Glob, GlobMode};
use crate::ir::{self, Effect, Expr, NamePattern, PathSeg, Var};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Builds [`Code`] with every table interned.
#[derive(Default)]
struct Builder {
    code: Code,
    strings: HashMap<String, u32>,
    consts: HashMap<String, u32>,
    paths: HashMap<Vec<Seg>, u32>,
    regexes: HashMap<String, u32>,
    globs: HashMap<(String, GlobMode), u32>,
    compiled_globs: Vec<Glob>,
    nodes: HashMap<Node, u32>,
    lists: HashMap<(u8, Vec<u32>), u32>,
    depth: Vec<u32>,
}

fn idx(n: usize) -> u32 {
    // Tables are bounded by the policy size, far below 4 billion entries.
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Builder {
    fn string(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = idx(self.code.strings.len());
        self.code.strings.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    fn path(&mut self, segs: &[PathSeg]) -> u32 {
        let segs: Vec<Seg> = segs
            .iter()
            .map(|s| match s {
                PathSeg::Key(k) => Seg::Key(self.string(k)),
                PathSeg::Index(i) => Seg::Index(*i),
            })
            .collect();
        if let Some(&i) = self.paths.get(&segs) {
            return i;
        }
        let i = idx(self.code.paths.len());
        self.code.paths.push(segs.clone());
        self.paths.insert(segs, i);
        i
    }

    fn glob(&mut self, pattern: &str, mode: GlobMode) -> u32 {
        let key = (pattern.to_owned(), mode);
        if let Some(&i) = self.globs.get(&key) {
            return i;
        }
        let i = idx(self.code.globs.len());
        self.code.globs.push(key.clone());
        self.compiled_globs.push(Glob::new(pattern, mode));
        self.globs.insert(key, i);
        i
    }

    fn matches(&self, glob: u32, text: &str) -> bool {
        self.compiled_globs
            .get(glob as usize)
            .is_some_and(|g| g.matches(text))
    }

    fn node(&mut self, n: Node, depth: u32) -> u32 {
        if let Some(&i) = self.nodes.get(&n) {
            return i;
        }
        let i = idx(self.code.nodes.len());
        self.code.nodes.push(n);
        self.depth.push(depth);
        self.nodes.insert(n, i);
        i
    }

    fn depth_of(&self, n: u32) -> u32 {
        self.depth.get(n as usize).copied().unwrap_or(0)
    }

    /// An n-ary node (tag 0 list, 1 and, 2 or), hash-consed on its operands.
    fn nary(&mut self, tag: u8, kids: Vec<u32>) -> u32 {
        if let Some(&i) = self.lists.get(&(tag, kids.clone())) {
            return i;
        }
        let depth = 1 + kids.iter().map(|&k| self.depth_of(k)).max().unwrap_or(0);
        let (start, len) = (idx(self.code.kids.len()), idx(kids.len()));
        self.code.kids.extend_from_slice(&kids);
        let n = match tag {
            0 => Node::List { start, len },
            1 => Node::And { start, len },
            _ => Node::Or { start, len },
        };
        let i = idx(self.code.nodes.len());
        self.code.nodes.push(n);
        self.depth.push(depth);
        self.lists.insert((tag, kids), i);
        i
    }

    fn load(&mut self, v: &Var) -> Load {
        match v {
            Var::Args(p) => Load::Args(self.path(p)),
            Var::PrincipalId => Load::PrincipalId,
            Var::PrincipalKind => Load::PrincipalKind,
            Var::PrincipalGroups => Load::PrincipalGroups,
            Var::PrincipalAttr(p) => Load::PrincipalAttr(self.path(p)),
            Var::AgentName => Load::AgentName,
            Var::ClientName => Load::ClientName,
            Var::ClientVersion => Load::ClientVersion,
            Var::Server => Load::Server,
            Var::Tool => Load::Tool,
            Var::ToolAnnotation(a) => Load::Annotation(*a),
        }
    }

    /// Collects the operands of nested `&&` (or `||`) into one list.
    fn flatten<'e>(e: &'e Expr, and: bool, out: &mut Vec<&'e Expr>) {
        match (e, and) {
            (Expr::And(a, b), true) | (Expr::Or(a, b), false) => {
                Builder::flatten(a, and, out);
                Builder::flatten(b, and, out);
            }
            _ => out.push(e),
        }
    }

    fn expr(&mut self, e: &Expr) -> u32 {
        let unary = |b: &mut Builder, n: Node, a: u32| {
            let d = b.depth_of(a) + 1;
            b.node(n, d)
        };
        let binary = |b: &mut Builder, n: Node, x: u32, y: u32| {
            let d = b.depth_of(x).max(b.depth_of(y)) + 1;
            b.node(n, d)
        };
        match e {
            Expr::Const(v) => {
                let key = v.to_string();
                let c = match self.consts.get(&key) {
                    Some(&c) => c,
                    None => {
                        let c = idx(self.code.consts.len());
                        self.code.consts.push(v.clone());
                        self.consts.insert(key, c);
                        c
                    }
                };
                self.node(Node::Const(c), 1)
            }
            Expr::List(items) => {
                let kids = items.iter().map(|i| self.expr(i)).collect();
                self.nary(0, kids)
            }
            Expr::Var(v) => {
                let l = self.load(v);
                self.node(Node::Load(l), 1)
            }
            Expr::Not(a) => {
                let a = self.expr(a);
                unary(self, Node::Not(a), a)
            }
            Expr::And(..) | Expr::Or(..) => {
                let and = matches!(e, Expr::And(..));
                let mut ops = Vec::new();
                Builder::flatten(e, and, &mut ops);
                let kids = ops.into_iter().map(|o| self.expr(o)).collect();
                self.nary(if and { 1 } else { 2 }, kids)
            }
            Expr::Cmp(op, a, b) => {
                let (x, y) = (self.expr(a), self.expr(b));
                binary(self, Node::Cmp(*op, x, y), x, y)
            }
            Expr::In(a, b) => {
                let (x, y) = (self.expr(a), self.expr(b));
                binary(self, Node::In(x, y), x, y)
            }
            Expr::Str(op, a, b) => {
                let (x, y) = (self.expr(a), self.expr(b));
                binary(self, Node::Str(*op, x, y), x, y)
            }
            Expr::Matches(a, re) => {
                let x = self.expr(a);
                if regex::Regex::new(re).is_err() {
                    return self.node(Node::Undecidable, 1);
                }
                let r = match self.regexes.get(re) {
                    Some(&r) => r,
                    None => {
                        let r = idx(self.code.regexes.len());
                        self.code.regexes.push(re.clone());
                        self.regexes.insert(re.clone(), r);
                        r
                    }
                };
                unary(self, Node::Matches(x, r), x)
            }
            Expr::Len(a) => {
                let a = self.expr(a);
                unary(self, Node::Len(a), a)
            }
            Expr::Exists(v) => {
                let l = self.load(v);
                self.node(Node::Exists(l), 1)
            }
        }
    }

    /// A condition as a conjunction of tests (node indices); a condition nested deeper
    /// than the VM allows becomes one undecidable test.
    fn condition(&mut self, e: &Expr) -> Vec<u32> {
        let root = self.expr(e);
        if self.depth_of(root) > MAX_DEPTH {
            return vec![self.node(Node::Undecidable, 1)];
        }
        match self.code.nodes.get(root as usize) {
            Some(&Node::And { start, len }) => self
                .code
                .kids
                .get(start as usize..(start + len) as usize)
                .map(<[u32]>::to_vec)
                .unwrap_or_default(),
            _ => vec![root],
        }
    }
}

/// One target of one rule, normalized: patterns interned as globs.
#[derive(Clone, Copy)]
struct Pat {
    rule: u32,
    server: u32,
    server_lit: Option<u32>,
    name: u32,
    name_lit: Option<u32>,
}

/// A leaf before layout: (rule, guards) in rule order.
type LeafKey = Vec<(u32, Vec<Guard>)>;

pub(crate) fn compile(policy: &ir::Policy, commit: Option<&str>) -> Code {
    let mut b = Builder::default();
    b.code.commit = commit.map(str::to_owned);

    b.code.rules = policy
        .rules
        .iter()
        .map(|r| RuleInfo {
            id: r.id.clone(),
            effect: r.effect,
            reason: r.reason.clone(),
            approvers: r.approvers.clone(),
            limit: r.limit,
            redact: r.redact.clone(),
            source: r.source.clone(),
        })
        .collect();
    let conds: Vec<Vec<u32>> = policy
        .rules
        .iter()
        .map(|r| {
            r.condition
                .as_ref()
                .map_or_else(Vec::new, |c| b.condition(c))
        })
        .collect();

    let mut pats: [Vec<Pat>; 3] = Default::default();
    for (i, r) in policy.rules.iter().enumerate() {
        for t in &r.targets {
            let (kind, server, name, mode) = match t {
                ir::Target::Tool { server, tool } => (TOOL, server, tool.as_str(), name_mode(tool)),
                ir::Target::Prompt { server, name } => {
                    (PROMPT, server, name.as_str(), name_mode(name))
                }
                ir::Target::Resource { server, uri } => {
                    (RESOURCE, server, uri.0.as_str(), GlobMode::Uri)
                }
            };
            let smode = name_mode(server);
            let lit = |b: &mut Builder, s: &str, m: GlobMode| {
                (m == GlobMode::Exact || !s.contains('*')).then(|| b.string(s))
            };
            let pat = Pat {
                rule: idx(i),
                server: b.glob(server.as_str(), smode),
                server_lit: lit(&mut b, server.as_str(), smode),
                name: b.glob(name, mode),
                name_lit: lit(&mut b, name, mode),
            };
            if let Some(list) = pats.get_mut(kind) {
                list.push(pat);
            }
        }
    }

    let mut leaves: HashMap<LeafKey, u32> = HashMap::new();
    let mut dispatch: [Dispatch; 3] = Default::default();
    for (kind, pats) in pats.iter().enumerate() {
        let d = build_dispatch(&mut b, pats, &conds, &mut leaves);
        if let Some(slot) = dispatch.get_mut(kind) {
            *slot = d;
        }
    }
    b.code.dispatch = dispatch;
    b.code
}

fn name_mode(p: &NamePattern) -> GlobMode {
    match p {
        NamePattern::Exact(_) => GlobMode::Exact,
        NamePattern::Glob(_) => GlobMode::Name,
    }
}

fn build_dispatch(
    b: &mut Builder,
    pats: &[Pat],
    conds: &[Vec<u32>],
    leaves: &mut HashMap<LeafKey, u32>,
) -> Dispatch {
    // Targets by literal server; targets with a glob server apply to any server.
    let mut by_server: BTreeMap<u32, Vec<Pat>> = BTreeMap::new();
    let mut glob_server: Vec<Pat> = Vec::new();
    for p in pats {
        match p.server_lit {
            Some(s) => by_server.entry(s).or_default().push(*p),
            None => glob_server.push(*p),
        }
    }
    // Per exact server: the glob-server targets that match it (computed once).
    let mut matching: BTreeMap<u32, Vec<Pat>> = BTreeMap::new();
    for &s in by_server.keys() {
        let server = b.code.strings.get(s as usize).cloned().unwrap_or_default();
        let m = glob_server
            .iter()
            .filter(|p| b.matches(p.server, &server))
            .copied()
            .collect();
        matching.insert(s, m);
    }
    // Every (server, name) pair where the server is named exactly somewhere and the name is
    // named exactly by a target whose server pattern matches it: such requests never need a
    // name guard at run time.
    let mut exact_keys: BTreeMap<(u32, u32), BTreeSet<u32>> = BTreeMap::new();
    for (&s, own) in &by_server {
        let others = matching.get(&s).map_or(&[][..], Vec::as_slice);
        for p in own.iter().chain(others) {
            if let Some(n) = p.name_lit {
                exact_keys.entry((s, n)).or_default();
            }
        }
    }
    let text = |b: &Builder, i: u32| b.code.strings.get(i as usize).cloned().unwrap_or_default();

    let mut d = Dispatch::default();
    for (&(s, n), rules) in &mut exact_keys {
        let name = text(b, n);
        let own = by_server.get(&s).map_or(&[][..], Vec::as_slice);
        let others = matching.get(&s).map_or(&[][..], Vec::as_slice);
        for p in own.iter().chain(others) {
            let hit = match p.name_lit {
                Some(lit) => lit == n,
                None => b.matches(p.name, &name),
            };
            if hit {
                rules.insert(p.rule);
            }
        }
        let key = rules.iter().map(|&r| (r, Vec::new())).collect();
        d.exact.push((s, n, leaf(b, key, conds, leaves)));
    }
    for (&s, own) in &by_server {
        let mut guards: BTreeMap<u32, Vec<Guard>> = BTreeMap::new();
        // A target with an exact name is reached through the exact table.
        let others = matching.get(&s).map_or(&[][..], Vec::as_slice);
        for p in own.iter().chain(others).filter(|p| p.name_lit.is_none()) {
            guards.entry(p.rule).or_default().push(Guard {
                server: None,
                name: p.name,
            });
        }
        let key = guards.into_iter().map(|(r, mut g)| {
            g.dedup();
            (r, g)
        });
        d.servers.push((s, leaf(b, key.collect(), conds, leaves)));
    }
    let mut guards: BTreeMap<u32, Vec<Guard>> = BTreeMap::new();
    for p in &glob_server {
        guards.entry(p.rule).or_default().push(Guard {
            server: Some(p.server),
            name: p.name,
        });
    }
    d.fallback = leaf(b, guards.into_iter().collect(), conds, leaves);
    d
}

/// Lays out a leaf (or reuses an identical one): rules by effect, conditions as memo slots,
/// tests shared by several rules first so that they get a memo slot.
fn leaf(
    b: &mut Builder,
    key: LeafKey,
    conds: &[Vec<u32>],
    leaves: &mut HashMap<LeafKey, u32>,
) -> u32 {
    if let Some(&i) = leaves.get(&key) {
        return i;
    }
    let cond = |r: u32| conds.get(r as usize).map_or(&[][..], Vec::as_slice);
    let mut uses: HashMap<u32, u32> = HashMap::new();
    let mut order: Vec<u32> = Vec::new();
    for (r, _) in &key {
        for &t in cond(*r) {
            let n = uses.entry(t).or_insert(0);
            if *n == 0 {
                order.push(t);
            }
            *n += 1;
        }
    }
    let shared = |t: &u32| uses.get(t).is_some_and(|&n| n > 1);
    let mut tests: Vec<u32> = order.iter().copied().filter(shared).collect();
    tests.extend(order.iter().copied().filter(|t| !shared(t)));
    let slot: HashMap<u32, u32> = tests
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, idx(i)))
        .collect();

    let mut l = Leaf {
        tests,
        effects: Default::default(),
    };
    for (r, guards) in &key {
        let e = match b.code.rules.get(*r as usize).map(|r| r.effect) {
            Some(Effect::Hide) => HIDE,
            Some(Effect::Deny) => DENY,
            Some(Effect::Approve) => APPROVE,
            Some(Effect::Allow) => ALLOW,
            Some(Effect::Redact) => REDACT,
            Some(Effect::Limit) | None => LIMIT,
        };
        let entry = Entry {
            rule: *r,
            guards: guards.clone(),
            conj: cond(*r)
                .iter()
                .filter_map(|t| slot.get(t).copied())
                .collect(),
        };
        if let Some(list) = l.effects.get_mut(e) {
            list.push(entry);
        }
    }
    let i = idx(b.code.leaves.len());
    b.code.leaves.push(l);
    leaves.insert(key, i);
    i
}
