//! The stable binary encoding of a program: `MCPGPROG`, a little-endian `u32` format
//! version, then every table in order (see `docs/bytecode.md`). Decoding checks every index
//! so that a decoded program can be evaluated without further checks, and never panics.

use super::RuleInfo;
use super::code::{Code, Dispatch, EFFECTS, Entry, Guard, Leaf, Load, MAX_DEPTH, Node, Seg};
use super::glob::GlobMode;
use crate::ir::{
    Annotation, CmpOp, Effect, Limit, LimitKey, PathSeg, Redaction, SourceLoc, StrOp, Window,
};
use serde_json::Value;

/// The first bytes of every encoded program.
pub const MAGIC: &[u8; 8] = b"MCPGPROG";

/// The encoding's format version; bumped on any change to the layout or to the meaning of
/// a program.
pub const FORMAT_VERSION: u32 = 2;

/// Why bytes could not be read as a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a compiled mcpgate program (bad magic)")]
    BadMagic,
    #[error("unsupported program format version {0} (this build reads version {FORMAT_VERSION})")]
    Version(u32),
    #[error("truncated program")]
    Truncated,
    #[error("invalid program: {0}")]
    Invalid(&'static str),
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    fn u32s(&mut self, v: &[u32]) {
        self.len(v.len());
        v.iter().for_each(|&x| self.u32(x));
    }
}

fn effect_tag(e: Effect) -> u8 {
    match e {
        Effect::Allow => 0,
        Effect::Deny => 1,
        Effect::Hide => 2,
        Effect::Approve => 3,
        Effect::Limit => 4,
        Effect::Redact => 5,
    }
}

fn load_enc(w: &mut W, l: Load) {
    let (tag, arg) = match l {
        Load::Args(p) => (0, p),
        Load::PrincipalId => (1, 0),
        Load::PrincipalKind => (2, 0),
        Load::PrincipalGroups => (3, 0),
        Load::PrincipalAttr(p) => (4, p),
        Load::AgentName => (5, 0),
        Load::ClientName => (6, 0),
        Load::ClientVersion => (7, 0),
        Load::Server => (8, 0),
        Load::Tool => (9, 0),
        Load::Annotation(a) => (
            10,
            match a {
                Annotation::ReadOnly => 0,
                Annotation::Destructive => 1,
                Annotation::Idempotent => 2,
                Annotation::OpenWorld => 3,
            },
        ),
    };
    w.u8(tag);
    w.u32(arg);
}

fn cmp_tag(op: CmpOp) -> u8 {
    match op {
        CmpOp::Eq => 0,
        CmpOp::Ne => 1,
        CmpOp::Lt => 2,
        CmpOp::Le => 3,
        CmpOp::Gt => 4,
        CmpOp::Ge => 5,
    }
}

fn str_tag(op: StrOp) -> u8 {
    match op {
        StrOp::Contains => 0,
        StrOp::StartsWith => 1,
        StrOp::EndsWith => 2,
    }
}

pub(crate) fn encode(c: &Code) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(1024));
    w.0.extend_from_slice(MAGIC);
    w.u32(FORMAT_VERSION);
    w.opt_str(c.commit.as_deref());
    w.len(c.rules.len());
    for r in &c.rules {
        w.str(&r.id);
        w.u8(effect_tag(r.effect));
        w.opt_str(r.reason.as_deref());
        w.len(r.approvers.len());
        r.approvers.iter().for_each(|a| w.str(a));
        match r.limit {
            None => w.u8(0),
            Some(l) => {
                w.u8(1);
                w.u64(l.count);
                w.u8(match l.window {
                    Window::Second => 0,
                    Window::Minute => 1,
                    Window::Hour => 2,
                    Window::Day => 3,
                });
                w.u8(match l.key {
                    LimitKey::Principal => 0,
                    LimitKey::Agent => 1,
                    LimitKey::Server => 2,
                    LimitKey::Tool => 3,
                });
            }
        }
        match &r.redact {
            None => w.u8(0),
            Some(x) => {
                w.u8(1);
                w.len(x.args.len());
                for p in &x.args {
                    w.len(p.len());
                    for s in p {
                        match s {
                            PathSeg::Key(k) => {
                                w.u8(0);
                                w.str(k);
                            }
                            PathSeg::Index(i) => {
                                w.u8(1);
                                w.u64(*i);
                            }
                        }
                    }
                }
                w.len(x.fields.len());
                x.fields.iter().for_each(|f| w.str(f));
                w.len(x.patterns.len());
                x.patterns.iter().for_each(|p| w.str(p));
            }
        }
        w.str(&r.source.file);
        w.u32(r.source.line);
        w.u32(r.source.col);
    }
    w.len(c.strings.len());
    c.strings.iter().for_each(|s| w.str(s));
    w.len(c.consts.len());
    c.consts.iter().for_each(|v| w.str(&v.to_string()));
    w.len(c.paths.len());
    for p in &c.paths {
        w.len(p.len());
        for s in p {
            match s {
                Seg::Key(k) => {
                    w.u8(0);
                    w.u32(*k);
                }
                Seg::Index(i) => {
                    w.u8(1);
                    w.u64(*i);
                }
            }
        }
    }
    w.len(c.regexes.len());
    c.regexes.iter().for_each(|r| w.str(r));
    w.len(c.globs.len());
    for (p, m) in &c.globs {
        w.str(p);
        w.u8(match m {
            GlobMode::Exact => 0,
            GlobMode::Name => 1,
            GlobMode::Uri => 2,
        });
    }
    w.len(c.nodes.len());
    for n in &c.nodes {
        match *n {
            Node::Const(i) => {
                w.u8(0);
                w.u32(i);
            }
            Node::Load(l) => {
                w.u8(1);
                load_enc(&mut w, l);
            }
            Node::List { start, len } | Node::And { start, len } | Node::Or { start, len } => {
                w.u8(match n {
                    Node::List { .. } => 2,
                    Node::And { .. } => 3,
                    _ => 4,
                });
                w.u32(start);
                w.u32(len);
            }
            Node::Not(a) => {
                w.u8(5);
                w.u32(a);
            }
            Node::Cmp(op, a, b) => {
                w.u8(6);
                w.u8(cmp_tag(op));
                w.u32(a);
                w.u32(b);
            }
            Node::In(a, b) => {
                w.u8(7);
                w.u32(a);
                w.u32(b);
            }
            Node::Str(op, a, b) => {
                w.u8(8);
                w.u8(str_tag(op));
                w.u32(a);
                w.u32(b);
            }
            Node::Matches(a, r) => {
                w.u8(9);
                w.u32(a);
                w.u32(r);
            }
            Node::Len(a) => {
                w.u8(10);
                w.u32(a);
            }
            Node::Exists(l) => {
                w.u8(11);
                load_enc(&mut w, l);
            }
            Node::Undecidable => w.u8(12),
        }
    }
    w.u32s(&c.kids);
    w.len(c.leaves.len());
    for l in &c.leaves {
        w.u32s(&l.tests);
        for list in &l.effects {
            w.len(list.len());
            for e in list {
                w.u32(e.rule);
                w.len(e.guards.len());
                for g in &e.guards {
                    match g.server {
                        None => w.u8(0),
                        Some(s) => {
                            w.u8(1);
                            w.u32(s);
                        }
                    }
                    w.u32(g.name);
                }
                w.u32s(&e.conj);
            }
        }
    }
    for d in &c.dispatch {
        w.len(d.exact.len());
        for &(s, n, l) in &d.exact {
            w.u32(s);
            w.u32(n);
            w.u32(l);
        }
        w.len(d.servers.len());
        for &(s, l) in &d.servers {
            w.u32(s);
            w.u32(l);
        }
        w.u32(d.fallback);
    }
    // An optional trailing section, so a program without memberships encodes (and hashes)
    // exactly as before it existed.
    if !c.memberships.is_empty() {
        w.len(c.memberships.len());
        for (id, groups) in &c.memberships {
            w.str(id);
            w.len(groups.len());
            groups.iter().for_each(|g| w.str(g));
        }
    }
    w.0
}

struct R<'a> {
    b: &'a [u8],
}

type Res<T> = Result<T, DecodeError>;

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        if n > self.b.len() {
            return Err(DecodeError::Truncated);
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }
    fn u32(&mut self) -> Res<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Res<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    /// A count of items each at least `min` bytes long: bounded by what is left, so a bad
    /// count cannot make us allocate much.
    fn count(&mut self, min: usize) -> Res<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min) > self.b.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
    fn str(&mut self) -> Res<String> {
        let n = self.count(1)?;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| DecodeError::Invalid("string is not UTF-8"))
    }
    fn opt_str(&mut self) -> Res<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            _ => Err(DecodeError::Invalid("bad option tag")),
        }
    }
    fn u32s(&mut self) -> Res<Vec<u32>> {
        let n = self.count(4)?;
        (0..n).map(|_| self.u32()).collect()
    }
    fn vec<T>(&mut self, min: usize, mut f: impl FnMut(&mut Self) -> Res<T>) -> Res<Vec<T>> {
        let n = self.count(min)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(f(self)?);
        }
        Ok(v)
    }
    fn load(&mut self) -> Res<Load> {
        let tag = self.u8()?;
        let arg = self.u32()?;
        Ok(match tag {
            0 => Load::Args(arg),
            1 => Load::PrincipalId,
            2 => Load::PrincipalKind,
            3 => Load::PrincipalGroups,
            4 => Load::PrincipalAttr(arg),
            5 => Load::AgentName,
            6 => Load::ClientName,
            7 => Load::ClientVersion,
            8 => Load::Server,
            9 => Load::Tool,
            10 => Load::Annotation(match arg {
                0 => Annotation::ReadOnly,
                1 => Annotation::Destructive,
                2 => Annotation::Idempotent,
                3 => Annotation::OpenWorld,
                _ => return Err(DecodeError::Invalid("bad annotation")),
            }),
            _ => return Err(DecodeError::Invalid("bad load tag")),
        })
    }
}

fn bad(what: &'static str) -> DecodeError {
    DecodeError::Invalid(what)
}

fn rule(r: &mut R<'_>) -> Res<RuleInfo> {
    let id = r.str()?;
    let effect = match r.u8()? {
        0 => Effect::Allow,
        1 => Effect::Deny,
        2 => Effect::Hide,
        3 => Effect::Approve,
        4 => Effect::Limit,
        5 => Effect::Redact,
        _ => return Err(bad("bad effect")),
    };
    let reason = r.opt_str()?;
    let approvers = r.vec(4, R::str)?;
    let limit = match r.u8()? {
        0 => None,
        1 => Some(Limit {
            count: r.u64()?,
            window: match r.u8()? {
                0 => Window::Second,
                1 => Window::Minute,
                2 => Window::Hour,
                3 => Window::Day,
                _ => return Err(bad("bad window")),
            },
            key: match r.u8()? {
                0 => LimitKey::Principal,
                1 => LimitKey::Agent,
                2 => LimitKey::Server,
                3 => LimitKey::Tool,
                _ => return Err(bad("bad limit key")),
            },
        }),
        _ => return Err(bad("bad option tag")),
    };
    let redact = match r.u8()? {
        0 => None,
        1 => Some(Redaction {
            args: r.vec(4, |r| {
                r.vec(5, |r| match r.u8()? {
                    0 => Ok(PathSeg::Key(r.str()?)),
                    1 => Ok(PathSeg::Index(r.u64()?)),
                    _ => Err(bad("bad path segment")),
                })
            })?,
            fields: r.vec(4, R::str)?,
            patterns: r.vec(4, R::str)?,
        }),
        _ => return Err(bad("bad option tag")),
    };
    let source = SourceLoc {
        file: r.str()?,
        line: r.u32()?,
        col: r.u32()?,
    };
    Ok(RuleInfo {
        id,
        effect,
        reason,
        approvers,
        limit,
        redact,
        source,
    })
}

fn node(r: &mut R<'_>) -> Res<Node> {
    Ok(match r.u8()? {
        0 => Node::Const(r.u32()?),
        1 => Node::Load(r.load()?),
        t @ 2..=4 => {
            let (start, len) = (r.u32()?, r.u32()?);
            match t {
                2 => Node::List { start, len },
                3 => Node::And { start, len },
                _ => Node::Or { start, len },
            }
        }
        5 => Node::Not(r.u32()?),
        6 => {
            let op = match r.u8()? {
                0 => CmpOp::Eq,
                1 => CmpOp::Ne,
                2 => CmpOp::Lt,
                3 => CmpOp::Le,
                4 => CmpOp::Gt,
                5 => CmpOp::Ge,
                _ => return Err(bad("bad comparison")),
            };
            Node::Cmp(op, r.u32()?, r.u32()?)
        }
        7 => Node::In(r.u32()?, r.u32()?),
        8 => {
            let op = match r.u8()? {
                0 => StrOp::Contains,
                1 => StrOp::StartsWith,
                2 => StrOp::EndsWith,
                _ => return Err(bad("bad string operator")),
            };
            Node::Str(op, r.u32()?, r.u32()?)
        }
        9 => Node::Matches(r.u32()?, r.u32()?),
        10 => Node::Len(r.u32()?),
        11 => Node::Exists(r.load()?),
        12 => Node::Undecidable,
        _ => return Err(bad("bad node tag")),
    })
}

fn leaf(r: &mut R<'_>) -> Res<Leaf> {
    let tests = r.u32s()?;
    let mut effects: [Vec<Entry>; EFFECTS] = Default::default();
    for list in &mut effects {
        *list = r.vec(12, |r| {
            Ok(Entry {
                rule: r.u32()?,
                guards: r.vec(5, |r| {
                    let server = match r.u8()? {
                        0 => None,
                        1 => Some(r.u32()?),
                        _ => return Err(bad("bad option tag")),
                    };
                    Ok(Guard {
                        server,
                        name: r.u32()?,
                    })
                })?,
                conj: r.u32s()?,
            })
        })?;
    }
    Ok(Leaf { tests, effects })
}

pub(crate) fn decode(bytes: &[u8]) -> Res<Code> {
    let mut r = R { b: bytes };
    if r.take(8).map_err(|_| DecodeError::BadMagic)? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = r.u32()?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::Version(version));
    }
    let commit = r.opt_str()?;
    let rules = r.vec(23, rule)?;
    let strings = r.vec(4, R::str)?;
    let consts = r.vec(4, |r| {
        serde_json::from_str::<Value>(&r.str()?).map_err(|_| bad("bad constant"))
    })?;
    let paths = r.vec(4, |r| {
        r.vec(5, |r| match r.u8()? {
            0 => Ok(Seg::Key(r.u32()?)),
            1 => Ok(Seg::Index(r.u64()?)),
            _ => Err(bad("bad path segment")),
        })
    })?;
    let regexes = r.vec(4, R::str)?;
    let globs = r.vec(5, |r| {
        let p = r.str()?;
        let m = match r.u8()? {
            0 => GlobMode::Exact,
            1 => GlobMode::Name,
            2 => GlobMode::Uri,
            _ => return Err(bad("bad glob mode")),
        };
        Ok((p, m))
    })?;
    let nodes = r.vec(1, node)?;
    let kids = r.u32s()?;
    let leaves = r.vec(24, leaf)?;
    let mut dispatch: [Dispatch; 3] = Default::default();
    for d in &mut dispatch {
        d.exact = r.vec(12, |r| Ok((r.u32()?, r.u32()?, r.u32()?)))?;
        d.servers = r.vec(8, |r| Ok((r.u32()?, r.u32()?)))?;
        d.fallback = r.u32()?;
    }
    let memberships = if r.b.is_empty() {
        Vec::new()
    } else {
        // Written only when there is some membership, each with some group: anything else
        // after the dispatch tables is not a program this build wrote.
        let m = r
            .vec(8, |r| Ok((r.str()?, r.vec(4, R::str)?)))
            .map_err(|_| bad("trailing bytes"))?;
        if m.is_empty() || m.iter().any(|(_, g)| g.is_empty()) {
            return Err(bad("trailing bytes"));
        }
        m
    };
    if !r.b.is_empty() {
        return Err(bad("trailing bytes"));
    }
    if memberships.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(bad("memberships out of order"));
    }
    let code = Code {
        memberships,
        commit,
        rules,
        strings,
        consts,
        paths,
        regexes,
        globs,
        nodes,
        kids,
        leaves,
        dispatch,
    };
    validate(&code)?;
    Ok(code)
}

/// Checks every index, that operands precede their node (so evaluation terminates), and
/// the nesting depth (so it cannot overflow the stack).
fn validate(c: &Code) -> Res<()> {
    let lt = |i: u32, n: usize| (i as usize) < n;
    let check = |ok: bool, what: &'static str| if ok { Ok(()) } else { Err(bad(what)) };
    for p in &c.paths {
        for s in p {
            if let Seg::Key(k) = s {
                check(lt(*k, c.strings.len()), "string index out of range")?;
            }
        }
    }
    let load_ok = |l: Load| match l {
        Load::Args(p) | Load::PrincipalAttr(p) => lt(p, c.paths.len()),
        _ => true,
    };
    let mut depth: Vec<u32> = Vec::with_capacity(c.nodes.len());
    for (i, n) in c.nodes.iter().enumerate() {
        let below = |k: u32| (k as usize) < i;
        let d = |k: u32| depth.get(k as usize).copied().unwrap_or(0);
        let range = |start: u32, len: u32| {
            let (s, e) = (start as usize, start as usize + len as usize);
            c.kids.get(s..e).filter(|ks| ks.iter().all(|&k| below(k)))
        };
        let nd = match *n {
            Node::Const(k) => {
                check(lt(k, c.consts.len()), "constant index out of range")?;
                1
            }
            Node::Load(l) | Node::Exists(l) => {
                check(load_ok(l), "path index out of range")?;
                1
            }
            Node::List { start, len } | Node::And { start, len } | Node::Or { start, len } => {
                let ks = range(start, len).ok_or(bad("operand list out of range"))?;
                1 + ks.iter().map(|&k| d(k)).max().unwrap_or(0)
            }
            Node::Not(a) | Node::Len(a) => {
                check(below(a), "operand out of order")?;
                1 + d(a)
            }
            Node::Matches(a, re) => {
                check(below(a), "operand out of order")?;
                check(lt(re, c.regexes.len()), "regex index out of range")?;
                1 + d(a)
            }
            Node::Cmp(_, a, b) | Node::In(a, b) | Node::Str(_, a, b) => {
                check(below(a) && below(b), "operand out of order")?;
                1 + d(a).max(d(b))
            }
            Node::Undecidable => 1,
        };
        check(nd <= MAX_DEPTH, "condition nested too deeply")?;
        depth.push(nd);
    }
    for l in &c.leaves {
        check(
            l.tests.iter().all(|&t| lt(t, c.nodes.len())),
            "test out of range",
        )?;
        for e in l.effects.iter().flatten() {
            check(lt(e.rule, c.rules.len()), "rule index out of range")?;
            check(
                e.conj.iter().all(|&s| lt(s, l.tests.len())),
                "memo slot out of range",
            )?;
            for g in &e.guards {
                let ok = lt(g.name, c.globs.len()) && g.server.is_none_or(|s| lt(s, c.globs.len()));
                check(ok, "glob index out of range")?;
            }
        }
    }
    for d in &c.dispatch {
        let s = |i: u32| lt(i, c.strings.len());
        let l = |i: u32| lt(i, c.leaves.len());
        check(l(d.fallback), "leaf index out of range")?;
        check(
            d.exact.iter().all(|&(a, b, x)| s(a) && s(b) && l(x)),
            "dispatch out of range",
        )?;
        check(
            d.servers.iter().all(|&(a, x)| s(a) && l(x)),
            "dispatch out of range",
        )?;
    }
    Ok(())
}
