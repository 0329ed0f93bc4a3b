//! Builders for IR policies in tests and benchmarks, and a generator of realistic
//! programs (exact and glob targets, argument conditions, groups, regexes, prompts,
//! resources, limits).
#![allow(dead_code)]

use mcpgate_compiler::ir::{
    CmpOp, Effect, Expr, Limit, LimitKey, NamePattern, PathSeg, Policy, Redaction, Rule, SourceLoc,
    StrOp, Target, UriPattern, Var, Window,
};
use serde_json::{Value, json};
use std::time::Duration;

/// Runs `f` `iters` times and reports the CPU time the thread spent (for the benchmarks):
/// on a machine shared with other work, wall time also counts the time other processes
/// held the core.
pub fn cpu_timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = cpu_time::ThreadTime::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed()
}

/// A name pattern: a glob when it contains `*`.
pub fn pat(s: &str) -> NamePattern {
    if s.contains('*') {
        NamePattern::Glob(s.into())
    } else {
        NamePattern::Exact(s.into())
    }
}

/// `server.tool` as a target.
pub fn tool(target: &str) -> Target {
    let (s, t) = target.split_once('.').unwrap_or((target, "*"));
    Target::Tool {
        server: pat(s),
        tool: pat(t),
    }
}

pub fn prompt(target: &str) -> Target {
    let (s, t) = target.split_once('.').unwrap_or((target, "*"));
    Target::Prompt {
        server: pat(s),
        name: pat(t),
    }
}

pub fn resource(server: &str, uri: &str) -> Target {
    Target::Resource {
        server: pat(server),
        uri: UriPattern(uri.into()),
    }
}

pub fn rule(id: &str, effect: Effect, targets: Vec<Target>, cond: Option<Expr>) -> Rule {
    Rule {
        id: id.into(),
        effect,
        targets,
        condition: cond,
        reason: (effect == Effect::Deny).then(|| format!("reason of {id}")),
        approvers: if effect == Effect::Approve {
            vec!["maintainers".into()]
        } else {
            Vec::new()
        },
        limit: (effect == Effect::Limit).then_some(Limit {
            count: 100,
            window: Window::Hour,
            key: LimitKey::Principal,
        }),
        redact: (effect == Effect::Redact).then(|| Redaction {
            args: vec![vec![PathSeg::Key("card".into())]],
            fields: vec!["email".into()],
            patterns: vec!["sk_[a-z]+".into()],
        }),
        source: SourceLoc {
            file: "policies/test.mcpg".into(),
            line: 1,
            col: 1,
        },
    }
}

pub fn c(v: Value) -> Expr {
    Expr::Const(v)
}

/// `args.a.b` (numeric segments are indexes).
pub fn args(path: &str) -> Expr {
    Expr::Var(Var::Args(segs(path)))
}

pub fn segs(path: &str) -> Vec<PathSeg> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse::<u64>() {
            Ok(i) => PathSeg::Index(i),
            Err(_) => PathSeg::Key(s.into()),
        })
        .collect()
}

pub fn attr(path: &str) -> Expr {
    Expr::Var(Var::PrincipalAttr(segs(path)))
}

pub fn var(v: Var) -> Expr {
    Expr::Var(v)
}

pub fn cmp(op: CmpOp, a: Expr, b: Expr) -> Expr {
    Expr::Cmp(op, Box::new(a), Box::new(b))
}

pub fn and(a: Expr, b: Expr) -> Expr {
    Expr::And(Box::new(a), Box::new(b))
}

pub fn or(a: Expr, b: Expr) -> Expr {
    Expr::Or(Box::new(a), Box::new(b))
}

pub fn not(a: Expr) -> Expr {
    Expr::Not(Box::new(a))
}

pub fn is_in(a: Expr, b: Expr) -> Expr {
    Expr::In(Box::new(a), Box::new(b))
}

pub fn str_op(op: StrOp, a: Expr, b: Expr) -> Expr {
    Expr::Str(op, Box::new(a), Box::new(b))
}

pub fn matches(a: Expr, re: &str) -> Expr {
    Expr::Matches(Box::new(a), re.into())
}

/// `"group" in principal.groups`.
pub fn in_group(g: &str) -> Expr {
    is_in(c(json!(g)), var(Var::PrincipalGroups))
}

/// A small deterministic generator (xorshift), so programs are the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

pub const SERVERS: usize = 20;
pub const VERBS: [&str; 6] = ["get", "list", "create", "update", "delete", "search"];
pub const GROUPS: [&str; 6] = [
    "engineering",
    "finance",
    "support",
    "admins",
    "interns",
    "sre",
];

pub fn server_name(i: u64) -> String {
    format!("srv{i}")
}

pub fn tool_name(verb: &str, i: u64) -> String {
    format!("{verb}_thing{i}")
}

/// A realistic policy of about `n` rules over 20 servers: mostly exact tools with argument
/// and group conditions, some verb globs (`get_*`), server-wide rules, regexes, prompts,
/// resources and limits.
pub fn realistic(n: usize, seed: u64) -> Policy {
    let mut r = Rng(seed | 1);
    let tools_per_server = (n as u64 / SERVERS as u64).max(4);
    let mut rules = Vec::with_capacity(n);
    for i in 0..n {
        let s = server_name(r.below(SERVERS as u64));
        let verb = *r.pick(&VERBS);
        let id = format!("policies/gen.mcpg#{}", i + 1);
        let kind = r.below(100);
        let (effect, target) = match kind {
            0..=49 => {
                let t = tool_name(verb, r.below(tools_per_server));
                (Effect::Allow, tool(&format!("{s}.{t}")))
            }
            50..=59 => (Effect::Allow, tool(&format!("{s}.{verb}_*"))),
            60..=74 => {
                let t = tool_name(verb, r.below(tools_per_server));
                (Effect::Deny, tool(&format!("{s}.{t}")))
            }
            75..=79 => (Effect::Hide, tool(&format!("{s}.delete_*"))),
            80..=86 => {
                let t = tool_name(verb, r.below(tools_per_server));
                (Effect::Approve, tool(&format!("{s}.{t}")))
            }
            87..=89 => (Effect::Limit, tool(&format!("{s}.*"))),
            90..=93 => (Effect::Allow, prompt(&format!("{s}.*"))),
            94..=96 => (
                Effect::Allow,
                resource(&s, &format!("file:///srv/{}/**", r.below(10))),
            ),
            _ => (Effect::Deny, tool(&format!("*.{verb}_thing{}", r.below(4)))),
        };
        let g = *r.pick(&GROUPS);
        let cond = match r.below(10) {
            0 | 1 => None,
            2 | 3 => Some(in_group(g)),
            4 => Some(cmp(CmpOp::Gt, args("amount"), c(json!(r.below(100_000))))),
            5 => Some(and(
                in_group(g),
                cmp(CmpOp::Eq, args("repo.owner"), c(json!("acme"))),
            )),
            6 => Some(matches(args("path"), "^/srv/(docs|public)/[a-z0-9_/]+$")),
            7 => Some(or(
                cmp(CmpOp::Eq, var(Var::PrincipalKind), c(json!("human"))),
                is_in(args("env"), c(json!(["dev", "staging"]))),
            )),
            8 => Some(str_op(
                StrOp::StartsWith,
                args("branch"),
                c(json!("release/")),
            )),
            _ => Some(cmp(CmpOp::Le, attr("level"), c(json!(3)))),
        };
        rules.push(rule(&id, effect, vec![target], cond));
    }
    Policy { rules }
}
