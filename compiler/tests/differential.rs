//! The VM against the reference interpreter on random policies and random requests: the
//! verdict, the deciding rule, the undecided flag and the matching limits agree every time,
//! also after an encode/decode round trip; and a tool the VM does not list is never
//! allowed or held for approval.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_compiler::ir::{
    Annotation, CmpOp, Effect, Expr, Limit, LimitKey, NamePattern, PathSeg, Policy, Redaction,
    Rule, SourceLoc, StrOp, Target, UriPattern, Var, Window,
};
use mcpgate_compiler::reference;
use mcpgate_compiler::request::{
    self, Principal, PrincipalKind, Request, ToolAnnotations, Verdict,
};
use mcpgate_compiler::vm::{Program, RuleIdx, evaluate, visible};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const SERVERS: [&str; 3] = ["gh", "fs", "pay-2"];
const NAMES: [&str; 8] = [
    "get_file",
    "get_1",
    "list.x",
    "x",
    "é_ünï",
    "a*b",
    "delete_repo",
    "",
];
const URIS: [&str; 5] = [
    "file:///srv/docs/a.md",
    "file:///srv/docs/sub/b.md",
    "file:///srv/x",
    "mem://k",
    "file:///srv/",
];
const KEYS: [&str; 6] = ["a", "b", "n", "s", "l", "odd key"];

fn name_pat() -> impl Strategy<Value = NamePattern> {
    prop_oneof![
        prop::sample::select(&NAMES[..]).prop_map(|s| NamePattern::Exact(s.into())),
        prop::sample::select(
            &[
                "*", "get_*", "*_1", "g*1", "*e*", "list.*", "x", "a*b", "**"
            ][..]
        )
        .prop_map(|s| NamePattern::Glob(s.into())),
    ]
}

fn server_pat() -> impl Strategy<Value = NamePattern> {
    prop_oneof![
        3 => prop::sample::select(&SERVERS[..]).prop_map(|s| NamePattern::Exact(s.into())),
        1 => prop::sample::select(&["*", "g*", "*-2"][..]).prop_map(|s| NamePattern::Glob(s.into())),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        8 => (server_pat(), name_pat()).prop_map(|(server, tool)| Target::Tool { server, tool }),
        1 => (server_pat(), name_pat()).prop_map(|(server, name)| Target::Prompt { server, name }),
        1 => (
            server_pat(),
            prop::sample::select(&["file:///srv/**", "file:///srv/*", "file:///srv/docs/*.md", "**", "mem://k"][..])
        )
            .prop_map(|(server, u)| Target::Resource { server, uri: UriPattern(u.into()) }),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(Value::from),
        prop::sample::select(&[0.5f64, 1.0, -2.0, 3.0, 1e20][..]).prop_map(Value::from),
        Just(json!(u64::MAX)),
        prop::sample::select(
            &[
                "",
                "1",
                "x",
                "é",
                "main",
                "release/1",
                "a.b",
                "2024-01-31",
                "ünï"
            ][..]
        )
        .prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(&KEYS[..]), inner), 0..3).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn path() -> impl Strategy<Value = Vec<PathSeg>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(&KEYS[..]).prop_map(|k| PathSeg::Key(k.into())),
            1 => (0u64..3).prop_map(PathSeg::Index),
        ],
        0..3,
    )
}

fn var() -> impl Strategy<Value = Var> {
    prop_oneof![
        4 => path().prop_map(Var::Args),
        1 => Just(Var::PrincipalId),
        1 => Just(Var::PrincipalKind),
        1 => Just(Var::PrincipalGroups),
        2 => path().prop_map(|mut p| {
            p.insert(0, PathSeg::Key("level".into()));
            Var::PrincipalAttr(p)
        }),
        1 => Just(Var::AgentName),
        1 => Just(Var::ClientName),
        1 => Just(Var::ClientVersion),
        1 => Just(Var::Server),
        1 => Just(Var::Tool),
        1 => prop::sample::select(&[Annotation::ReadOnly, Annotation::Destructive][..]).prop_map(Var::ToolAnnotation),
    ]
}

/// A comparison of one argument with a constant from the same small pool as the
/// arguments, so that equal and ordered pairs are frequent.
fn atom() -> impl Strategy<Value = Expr> {
    (
        prop::sample::select(
            &[
                CmpOp::Eq,
                CmpOp::Ne,
                CmpOp::Lt,
                CmpOp::Le,
                CmpOp::Gt,
                CmpOp::Ge,
            ][..],
        ),
        prop::sample::select(&KEYS[..]),
        scalar(),
        any::<bool>(),
    )
        .prop_map(|(op, k, v, flip)| {
            let a = Box::new(Expr::Var(Var::Args(vec![PathSeg::Key(k.into())])));
            let c = Box::new(Expr::Const(v));
            if flip {
                Expr::Cmp(op, c, a)
            } else {
                Expr::Cmp(op, a, c)
            }
        })
}

/// A value expression: constants, request values, lengths and lists of them.
fn value() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        2 => json_value().prop_map(Expr::Const),
        3 => var().prop_map(Expr::Var),
    ];
    leaf.prop_recursive(2, 6, 3, |e| {
        prop_oneof![
            e.clone().prop_map(|x| Expr::Len(Box::new(x))),
            prop::collection::vec(e, 0..3).prop_map(Expr::List),
        ]
    })
}

/// A condition: mostly tests, combined with `!`, `&&` and `||`; sometimes a bare value.
fn expr() -> impl Strategy<Value = Expr> {
    let b = |x: Expr| Box::new(x);
    let test = prop_oneof![
        6 => atom(),
        3 => (
            prop::sample::select(&[CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge][..]),
            value(),
            value()
        )
            .prop_map(move |(op, x, y)| Expr::Cmp(op, b(x), b(y))),
        2 => (value(), value()).prop_map(move |(x, y)| Expr::In(b(x), b(y))),
        2 => (
            prop::sample::select(&[StrOp::Contains, StrOp::StartsWith, StrOp::EndsWith][..]),
            value(),
            value()
        )
            .prop_map(move |(op, x, y)| Expr::Str(op, b(x), b(y))),
        1 => (value(), prop::sample::select(&["^x", "é", "^[0-9]+$", "(", ""][..]))
            .prop_map(move |(x, re)| Expr::Matches(b(x), re.into())),
        1 => var().prop_map(Expr::Exists),
        1 => value(),
    ];
    test.prop_recursive(3, 12, 2, move |e| {
        prop_oneof![
            e.clone().prop_map(move |x| Expr::Not(b(x))),
            (e.clone(), e.clone()).prop_map(move |(x, y)| Expr::And(b(x), b(y))),
            (e.clone(), e).prop_map(move |(x, y)| Expr::Or(b(x), b(y))),
        ]
    })
}

fn rule() -> impl Strategy<Value = (Effect, Vec<Target>, Option<Expr>)> {
    (
        prop::sample::select(
            &[
                Effect::Allow,
                Effect::Allow,
                Effect::Deny,
                Effect::Hide,
                Effect::Approve,
                Effect::Limit,
                Effect::Redact,
            ][..],
        ),
        prop::collection::vec(target(), 1..3),
        prop::option::weighted(0.7, expr()),
    )
}

fn policy() -> impl Strategy<Value = Policy> {
    prop::collection::vec(rule(), 0..16).prop_map(|rules| Policy {
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(i, (effect, targets, condition))| Rule {
                id: format!("r{i}"),
                effect,
                targets,
                condition,
                reason: None,
                approvers: Vec::new(),
                limit: (effect == Effect::Limit).then_some(Limit {
                    count: 1,
                    window: Window::Minute,
                    key: LimitKey::Principal,
                }),
                redact: (effect == Effect::Redact).then(|| Redaction {
                    args: vec![vec![PathSeg::Key("a".into())]],
                    fields: vec!["email".into()],
                    patterns: vec![format!("secret{i}")],
                }),
                source: SourceLoc::default(),
            })
            .collect(),
    })
}

#[derive(Debug, Clone)]
struct Req {
    principal: Principal,
    agent: Option<String>,
    client: Option<String>,
    target: (u8, String, String),
    args: Value,
    annotations: ToolAnnotations,
}

fn req() -> impl Strategy<Value = Req> {
    let principal = (
        prop::sample::select(&["alice", "bot-7", "é"][..]),
        prop::sample::select(
            &[
                PrincipalKind::Human,
                PrincipalKind::Agent,
                PrincipalKind::Anonymous,
            ][..],
        ),
        prop::collection::vec(prop::sample::select(&["eng", "x", "main", "é"][..]), 0..3),
        prop::option::of(json_value()),
    )
        .prop_map(|(id, kind, groups, level)| {
            let mut attrs = Map::new();
            if let Some(l) = level {
                attrs.insert("level".into(), l);
            }
            Principal {
                id: id.into(),
                kind,
                groups: groups.into_iter().map(str::to_owned).collect(),
                attrs,
            }
        });
    let kind = prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)];
    let target = (
        kind,
        prop::sample::select(&["gh", "gh", "fs", "pay-2", "zz"][..]),
        0usize..8,
    )
        .prop_map(|(kind, s, i)| {
            let name = if kind == 2 {
                URIS[i % URIS.len()]
            } else {
                NAMES[i]
            };
            (kind, s.to_owned(), name.to_owned())
        });
    let args = prop_oneof![
        1 => Just(Value::Null),
        6 => prop::collection::vec((prop::sample::select(&KEYS[..]), prop_oneof![3 => scalar(), 1 => json_value()]), 0..8)
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
    ];
    (
        principal,
        prop::option::of(prop::sample::select(&["claude", "x"][..])),
        prop::option::of(prop::sample::select(&["cursor", "1"][..])),
        target,
        args,
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(principal, agent, client, target, args, ro)| Req {
            principal,
            agent: agent.map(str::to_owned),
            client: client.map(str::to_owned),
            target,
            args,
            annotations: ToolAnnotations {
                read_only: ro,
                ..Default::default()
            },
        })
}

impl Req {
    fn target(&self) -> request::Target<'_> {
        let (server, name) = (self.target.1.as_str(), self.target.2.as_str());
        match self.target.0 {
            0 => request::Target::Tool { server, tool: name },
            1 => request::Target::Prompt { server, name },
            _ => request::Target::Resource { server, uri: name },
        }
    }

    fn request(&self) -> Request<'_> {
        Request {
            principal: &self.principal,
            agent: self.agent.as_deref(),
            client_name: self.client.as_deref(),
            client_version: self.client.as_deref(),
            target: self.target(),
            args: &self.args,
            annotations: self.annotations,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn vm_agrees_with_the_reference(policy in policy(), reqs in prop::collection::vec(req(), 1..16)) {
        let program = Program::compile(&policy, None);
        let decoded = Program::decode(&program.encode()).unwrap();
        for q in &reqs {
            let r = q.request();
            let d = evaluate(&program, &r);
            let o = reference::evaluate(&policy, &r);
            prop_assert_eq!((d.verdict, d.rule, d.undecided), (o.verdict, o.rule, o.undecided), "{:?}", q);
            prop_assert_eq!(evaluate(&decoded, &r), d);
            let limits: Vec<RuleIdx> = program.limits(&d, &r).collect();
            prop_assert_eq!(limits, reference::limits(&policy, &r));
            // Redactions do not depend on the verdict, and agree before and after encoding.
            let redactions: Vec<RuleIdx> = program.redactions(&r).map(|x| x.rule).collect();
            prop_assert_eq!(&redactions, &reference::redactions(&policy, &r));
            let after: Vec<RuleIdx> = decoded.redactions(&r).map(|x| x.rule).collect();
            prop_assert_eq!(&after, &redactions);
            for x in program.redactions(&r) {
                let spec = policy.rules[x.rule.0 as usize].redact.as_ref().unwrap();
                prop_assert_eq!(x.patterns().len(), spec.patterns.len());
                prop_assert_eq!(x.args(), &spec.args[..]);
            }
            if !visible(&program, &q.principal, r.target) {
                prop_assert!(matches!(d.verdict, Verdict::Deny | Verdict::Hide), "listed nothing but decided {:?}", d);
            }
        }
    }
}
