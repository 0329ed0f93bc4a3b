//! The analyses against brute force over the VM, on generated policies: every request of
//! a grid (every principal class, argument values at and around the literals, values of
//! the wrong type) lies in exactly one region, and the region's verdict and deciding rule
//! are the VM's; every region of an exact analysis holds a request the VM decides as the
//! region says. For `who-can` (principal free), `can` (principal fixed) and the comparison
//! of two programs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_compiler::analysis::{Env, Model, TargetAnalysis, targets};
use mcpgate_compiler::ir::Policy;
use mcpgate_compiler::repo::{SourceFile, check_files};
use mcpgate_compiler::request::{Principal, PrincipalKind, ToolAnnotations, Verdict};
use mcpgate_compiler::testing::Call;
use mcpgate_compiler::vm::{Memberships, Program, evaluate};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Condition atoms: comparisons, membership, string tests, principal fields, presence,
/// wrong-type traps, and the atoms the analysis treats as opaque (regex, `len`, relations).
const ATOMS: &[&str] = &[
    "args.n > 10",
    "args.n <= 2.5",
    "args.n == 10",
    "args.n in [0, 10, -3]",
    "args.n != 0",
    "args.s == \"ab\"",
    "args.s starts_with \"ab\"",
    "args.s ends_with \"b\"",
    "args.s contains \"x\"",
    "args.s in [\"a\", \"ab\"]",
    "args.s < \"m\"",
    "\"g1\" in principal.groups",
    "principal.groups contains \"g2\"",
    "principal.kind == \"agent\"",
    "principal.kind != \"human\"",
    "principal.id == \"alice\"",
    "principal.id starts_with \"bot-\"",
    "principal.attrs.level >= 3",
    "exists(principal.attrs.level)",
    "exists(args.s)",
    "args.flag == true",
    "args.flag != false",
    "args.tags contains \"x\"",
    "\"k\" in args.obj",
    "args.tags == [\"x\"]",
    "agent.name == \"claude\"",
    "client.name starts_with \"cur\"",
    "tool.destructive == true",
    "args.q matches \"^a+$\"",
    "len(args.s) > 2",
    "args.n == args.m",
    "args.obj.k == 1",
];

const TARGETS: &[&str] = &["s.t0", "s.t1", "s.t*", "*.t1", "u.t0", "s.*0"];

fn condition() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(ATOMS).prop_map(str::to_owned);
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

fn rule() -> impl Strategy<Value = String> {
    (
        prop::sample::select(
            &[
                "allow", "allow", "allow", "deny", "hide", "approve", "limit",
            ][..],
        ),
        prop::sample::subsequence(TARGETS, 1..3),
        prop::option::weighted(0.8, condition()),
    )
        .prop_map(|(effect, targets, cond)| {
            let targets = targets.join(", ");
            let when = cond.map_or(String::new(), |c| format!(" when {c}"));
            match effect {
                "limit" => format!("limit {targets} 5 per hour{when};"),
                "approve" => format!("approve {targets}{when} by \"g1\";"),
                e => format!("{e} {targets}{when};"),
            }
        })
}

fn policy_text() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(rule(), 1..7)
}

fn memberships() -> impl Strategy<Value = Memberships> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(a, b, c)| {
        let mut m = Memberships::new();
        if a {
            m.insert("alice".into(), vec!["g1".into()]);
        }
        if b {
            m.insert("bob".into(), vec!["g2".into(), "g1".into()]);
        }
        if c {
            m.insert("bot-7".into(), vec!["g2".into()]);
        }
        m
    })
}

fn compile(rules: &[String]) -> Policy {
    let checked = check_files(vec![SourceFile {
        path: "policies/gen.mcpg".into(),
        text: rules.join("\n"),
    }]);
    assert!(
        !checked.has_errors(),
        "{}\n{}",
        rules.join("\n"),
        checked.rendered
    );
    checked.policy
}

/// A small deterministic generator for grid sampling.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

fn principals() -> Vec<Principal> {
    let kinds = [
        PrincipalKind::Human,
        PrincipalKind::Agent,
        PrincipalKind::Service,
        PrincipalKind::Anonymous,
    ];
    let groups: [&[&str]; 5] = [&[], &["g1"], &["g2"], &["g1", "g2"], &["g9"]];
    let ids = ["alice", "bob", "bot-7", "carol", "anonymous"];
    let attrs = [
        json!({}),
        json!({"level": 3}),
        json!({"level": 2}),
        json!({"level": "3"}),
    ];
    let mut out = Vec::new();
    for k in kinds {
        for g in groups {
            for id in ids {
                for a in &attrs {
                    out.push(Principal {
                        id: id.into(),
                        kind: k,
                        groups: g.iter().map(|s| (*s).to_owned()).collect(),
                        attrs: a.as_object().cloned().unwrap_or_default(),
                    });
                }
            }
        }
    }
    out
}

/// An argument object with each key drawn from values at, around and off its literals.
fn args(rng: &mut Rng) -> Value {
    let choices: [(&str, Vec<Option<Value>>); 7] = [
        (
            "n",
            vec![
                None,
                Some(json!(-10)),
                Some(json!(-3)),
                Some(json!(-3.5)),
                Some(json!(0)),
                Some(json!(0.5)),
                Some(json!(2)),
                Some(json!(5)),
                Some(json!(100)),
                Some(json!(1)),
                Some(json!(2.5)),
                Some(json!(10)),
                Some(json!(10.0)),
                Some(json!(10.5)),
                Some(json!(11)),
                Some(json!("10")),
                Some(json!(null)),
                Some(json!(true)),
                Some(json!([10])),
            ],
        ),
        (
            "m",
            vec![None, Some(json!(10)), Some(json!(11)), Some(json!("x"))],
        ),
        (
            "s",
            vec![
                None,
                Some(json!("")),
                Some(json!("a")),
                Some(json!("ab")),
                Some(json!("abx")),
                Some(json!("xb")),
                Some(json!("b")),
                Some(json!("m")),
                Some(json!("zz")),
                Some(json!("aaa")),
                Some(json!("zab")),
                Some(json!("abb")),
                Some(json!("xab")),
                Some(json!("A")),
                Some(json!(5)),
                Some(json!(null)),
                Some(json!(["ab"])),
            ],
        ),
        (
            "flag",
            vec![
                None,
                Some(json!(true)),
                Some(json!(false)),
                Some(json!("true")),
            ],
        ),
        (
            "tags",
            vec![
                None,
                Some(json!(["x"])),
                Some(json!(["y"])),
                Some(json!(["x", "y"])),
                Some(json!("x")),
                Some(json!([])),
            ],
        ),
        (
            "obj",
            vec![
                None,
                Some(json!({"k": 1})),
                Some(json!({"k": 2})),
                Some(json!({"j": 1})),
                Some(json!({})),
                Some(json!("k")),
            ],
        ),
        (
            "q",
            vec![None, Some(json!("aaa")), Some(json!("ab")), Some(json!(3))],
        ),
    ];
    if rng.below(20) == 0 {
        return Value::Null;
    }
    let mut m = Map::new();
    for (k, vals) in &choices {
        if let Some(v) = rng.pick(vals) {
            m.insert((*k).to_owned(), v);
        }
    }
    Value::Object(m)
}

fn request_env(call: &Call, principal: &Principal, rng: &mut Rng) -> Env {
    let mut env = Env::new(call.clone());
    env.principal = principal.clone();
    env.args = args(rng);
    env.agent = rng.pick(&[None, Some("claude".to_owned()), Some("x".to_owned())]);
    env.client_name = rng.pick(&[None, Some("cursor".to_owned()), Some("x".to_owned())]);
    env.annotations = ToolAnnotations {
        destructive: rng.pick(&[None, Some(true), Some(false)]),
        ..ToolAnnotations::default()
    };
    env
}

fn calls(policies: &[&Policy]) -> Vec<Call> {
    let mut out: Vec<Call> = targets(policies, None)
        .into_iter()
        .map(|t| t.call)
        .collect();
    out.push(Call::Tool {
        server: "s".into(),
        tool: "never_named".into(),
    });
    out
}

/// Each request of the grid in exactly one region, with every model's VM outcome.
fn check_grid(models: &[&Model<'_>], call: &Call, fixed: Option<&Principal>, seed: u64) {
    let a = TargetAnalysis::new(models, call, fixed, None);
    let all = principals();
    let mut rng = Rng(seed | 1);
    for _ in 0..400 {
        let token = fixed.cloned().unwrap_or_else(|| rng.pick(&all));
        let env = request_env(call, &token, &mut rng);
        let first = models[0].program.principal(&token).into_owned();
        let req = mcpgate_compiler::Request {
            principal: &first,
            ..env.request()
        };
        let found = a.outcomes_at(&req, &token);
        if !a.covers() && found.is_empty() {
            continue;
        }
        assert_eq!(
            found.len(),
            1,
            "{call:?} {token:?} {}: in {} regions",
            env.args,
            found.len()
        );
        for (m, o) in models.iter().zip(&found[0]) {
            let p = m.program.principal(&token);
            let d = evaluate(
                &m.program,
                &mcpgate_compiler::Request {
                    principal: &p,
                    ..env.request()
                },
            );
            assert_eq!(
                (d.verdict, d.rule, d.undecided),
                (o.verdict, o.rule, o.undecided),
                "{call:?} {token:?} args {} agent {:?}",
                env.args,
                env.agent
            );
        }
    }
    if let Some(ws) = a.witnesses() {
        for w in ws {
            for (m, o) in models.iter().zip(&w.outcomes) {
                let p = m.program.principal(&w.env.principal);
                let d = evaluate(
                    &m.program,
                    &mcpgate_compiler::Request {
                        principal: &p,
                        ..w.env.request()
                    },
                );
                assert_eq!((d.verdict, d.rule), (o.verdict, o.rule), "witness {w:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn who_can_regions_agree_with_the_vm(rules in policy_text(), m in memberships(), seed in any::<u64>()) {
        let policy = compile(&rules);
        let model = Model::new(&policy, &m, None);
        for call in calls(&[&policy]) {
            check_grid(&[&model], &call, None, seed);
        }
    }

    #[test]
    fn can_regions_agree_with_the_vm(rules in policy_text(), m in memberships(), seed in any::<u64>()) {
        let policy = compile(&rules);
        let model = Model::new(&policy, &m, None);
        let all = principals();
        let mut rng = Rng(seed | 1);
        for _ in 0..4 {
            let p = rng.pick(&all);
            for call in calls(&[&policy]) {
                check_grid(&[&model], &call, Some(&p), seed);
            }
        }
    }

    #[test]
    fn comparison_regions_agree_with_both_vms(
        base in policy_text(),
        extra in policy_text(),
        drop in any::<prop::sample::Index>(),
        mb in memberships(),
        mh in memberships(),
        seed in any::<u64>(),
    ) {
        // The head: the base with one rule dropped and some added.
        let mut head = base.clone();
        head.remove(drop.index(head.len()));
        head.extend(extra);
        let (pb, ph) = (compile(&base), compile(&head));
        let (b, h) = (Model::new(&pb, &mb, None), Model::new(&ph, &mh, None));
        for call in calls(&[&pb, &ph]) {
            check_grid(&[&b, &h], &call, None, seed);
        }
    }
}

#[test]
fn the_programs_are_the_ones_the_gateway_runs() {
    // Guard against analysing something else than `Program::compile` produces.
    let policy = compile(&["allow s.t0 when args.n > 10;".to_owned()]);
    let model = Model::new(&policy, &Memberships::new(), None);
    assert_eq!(
        model.program.hash(),
        Program::compile(&policy, None)
            .with_memberships(&Memberships::new())
            .hash()
    );
}

/// Hand-written policies whose classes need every part of the construction: values
/// between two literals, prefix and suffix and substring combinations, list membership,
/// object keys, declared members, undecidable comparisons.
#[test]
fn crafted_policies_agree_with_the_vm() {
    let cases: &[&[&str]] = &[
        &[
            "allow s.t0 when args.n <= 2.5 || args.n > 10;",
            "deny s.t0 when args.n == 10 || args.n == 0;",
        ],
        &["allow s.t0 when !(args.n <= 2.5) && !(args.n > 10) && args.n != 10;"],
        &[
            "allow s.t0 when args.s starts_with \"ab\" && args.s ends_with \"b\";",
            "deny s.t0 when args.s contains \"x\" && !(args.s == \"abx\");",
            "approve s.t0 when args.s in [\"a\", \"ab\"] by \"g1\";",
        ],
        &[
            "allow s.t0 when args.tags contains \"x\" && !(args.tags == [\"x\"]);",
            "allow s.t1 when \"k\" in args.obj;",
        ],
        &[
            "allow s.t0 when \"g1\" in principal.groups && principal.kind != \"human\";",
            "deny s.t0 when \"g2\" in principal.groups && !(principal.id == \"alice\");",
        ],
        &["deny s.t0 when args.n > 10;", "allow s.t0;"],
        &["allow s.t0 when principal.attrs.level >= 3 || !exists(principal.attrs.level);"],
        &[
            "allow s.t0 when args.s < \"m\";",
            "deny s.t0 when args.s == \"ab\";",
        ],
    ];
    let mut m = Memberships::new();
    m.insert("alice".into(), vec!["g2".into()]);
    m.insert("bob".into(), vec!["g1".into()]);
    for (i, rules) in cases.iter().enumerate() {
        let rules: Vec<String> = rules.iter().map(|r| (*r).to_owned()).collect();
        let policy = compile(&rules);
        let model = Model::new(&policy, &m, None);
        for call in calls(&[&policy]) {
            let a = TargetAnalysis::new(&[&model], &call, None, None);
            assert!(a.exact(), "case {i} should be analysed exactly");
            for seed in 1..6 {
                check_grid(&[&model], &call, None, seed * 7919 + i as u64);
            }
        }
    }
}

fn side<'a>(policy: &'a Policy, memberships: &'a Memberships) -> mcpgate_compiler::diff::Side<'a> {
    mcpgate_compiler::diff::Side {
        policy,
        tests: &[],
        memberships,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// On every request the probes try, the exact comparison gives both programs' VM
    /// verdicts; so every probe flip lies in a flipping region, and every region-free
    /// target has no probe flip.
    #[test]
    fn exact_comparison_agrees_with_the_probes(
        base in policy_text(),
        extra in policy_text(),
        drop in any::<prop::sample::Index>(),
        mb in memberships(),
        mh in memberships(),
    ) {
        let mut head = base.clone();
        head.remove(drop.index(head.len()));
        head.extend(extra);
        let (pb, ph) = (compile(&base), compile(&head));
        let (b, h) = (Model::new(&pb, &mb, None), Model::new(&ph, &mh, None));
        let d = mcpgate_compiler::diff::diff(side(&pb, &mb), side(&ph, &mh));
        let moved: Vec<&str> = d.rules.memberships.iter().map(|m| m.id.as_str()).collect();
        let (probes, _) = mcpgate_compiler::diff::probes(&[&pb, &ph], &moved);
        let mut analyses: std::collections::HashMap<String, TargetAnalysis> = Default::default();
        for p in &probes {
            let a = analyses
                .entry(format!("{:?}", p.call))
                .or_insert_with(|| TargetAnalysis::new(&[&b, &h], &p.call, None, None));
            let mut env = Env::new(p.call.clone());
            env.args = p.args.clone();
            let first = b.program.principal(&p.principal).into_owned();
            let req = mcpgate_compiler::Request { principal: &first, ..env.request() };
            let found = a.outcomes_at(&req, &p.principal);
            if !a.covers() && found.is_empty() {
                continue;
            }
            prop_assert_eq!(found.len(), 1);
            let mut verdicts = Vec::new();
            for (m, o) in [&b, &h].iter().zip(&found[0]) {
                let pr = m.program.principal(&p.principal);
                let dec = evaluate(&m.program, &mcpgate_compiler::Request { principal: &pr, ..env.request() });
                prop_assert_eq!((dec.verdict, dec.rule), (o.verdict, o.rule));
                verdicts.push(dec.verdict);
            }
            if verdicts[0] != verdicts[1] {
                // A probe flip on a target both name is a region flip of the comparison.
                let label = p.call.target().to_string();
                let named = d.exact.flips.iter().any(|f| f.target == label);
                let by_pattern = d.exact.flips.iter().any(|f| f.target.contains('*'));
                prop_assert!(named || by_pattern, "probe flip on {} not in the exact comparison", label);
            }
        }
        if d.exact.exact && d.exact.flips.is_empty() {
            prop_assert!(d.flips.is_empty(), "a proof of no change, yet probes flip");
        }
    }
}

/// A change the probes cannot see: two arguments must both leave their literal for the
/// verdict to change, and with many argument paths the probes vary one at a time.
#[test]
fn the_exact_comparison_finds_a_flip_the_probes_miss() {
    let base = compile(&[
        "allow s.t0 when args.c == \"1\" || args.d == \"2\" || args.a == \"x\" || args.b == \"y\";"
            .to_owned(),
    ]);
    let head = compile(&[
        "allow s.t0 when args.c == \"1\" || args.d == \"2\" || args.a == \"x\" || args.b == \"y\";"
            .to_owned(),
        "deny s.t0 when args.a != \"x\" && args.b != \"y\" && args.c == \"1\";".to_owned(),
    ]);
    let none = Memberships::new();
    let d = mcpgate_compiler::diff::diff(side(&base, &none), side(&head, &none));
    assert!(
        d.flips.is_empty(),
        "the probes were expected to miss it: {:?}",
        d.flips
    );
    assert!(d.exact.exact);
    assert!(!d.exact.flips.is_empty(), "{:?}", d.exact);
    let f = &d.exact.flips[0];
    assert_eq!((f.before, f.after), (Verdict::Allow, Verdict::Deny));
    // The region names the three arguments that must hold together.
    let on: Vec<&str> = f.when.iter().map(|c| c.on.as_str()).collect();
    assert!(
        on.contains(&"args.a") && on.contains(&"args.b") && on.contains(&"args.c"),
        "{f:?}"
    );
    // And a request of that region does flip in the VM.
    let b = Model::new(&base, &none, None);
    let h = Model::new(&head, &none, None);
    let a = TargetAnalysis::new(
        &[&b, &h],
        &Call::Tool {
            server: "s".into(),
            tool: "t0".into(),
        },
        None,
        None,
    );
    let flipping = a
        .witnesses()
        .unwrap()
        .into_iter()
        .filter(|w| w.outcomes[0].verdict != w.outcomes[1].verdict)
        .collect::<Vec<_>>();
    assert!(!flipping.is_empty());
    for w in flipping {
        let r = w.env.request();
        assert_eq!(
            evaluate(&b.program, &r).verdict,
            Verdict::Allow,
            "{:?}",
            w.env.args
        );
        assert_eq!(
            evaluate(&h.program, &r).verdict,
            Verdict::Deny,
            "{:?}",
            w.env.args
        );
    }
}

#[test]
fn equal_programs_are_proved_equal() {
    let p = compile(&[
        "allow s.t0 when args.n > 10 && \"g1\" in principal.groups;".to_owned(),
        "deny s.t0 when args.s starts_with \"ab\";".to_owned(),
    ]);
    // The same meaning, written differently.
    let q = compile(&[
        "allow s.t0 when args.n >= 10 && args.n != 10 && principal.groups contains \"g1\";"
            .to_owned(),
        "deny s.t0 when args.s starts_with \"ab\";".to_owned(),
    ]);
    let none = Memberships::new();
    let d = mcpgate_compiler::diff::diff(side(&p, &none), side(&q, &none));
    assert!(d.exact.exact && d.exact.flips.is_empty(), "{:?}", d.exact);
    assert!(
        d.summary()
            .ends_with("exact comparison: no verdict changes"),
        "{}",
        d.summary()
    );

    // Not the same: a missing amount makes `args.n <= 10` false, so its negation true.
    let r = compile(&[
        "allow s.t0 when !(args.n <= 10) && \"g1\" in principal.groups;".to_owned(),
        "deny s.t0 when args.s starts_with \"ab\";".to_owned(),
    ]);
    let d = mcpgate_compiler::diff::diff(side(&p, &none), side(&r, &none));
    assert_eq!(d.exact.flips.len(), 1, "{:?}", d.exact);
    let n = d.exact.flips[0]
        .when
        .iter()
        .find(|c| c.on == "args.n")
        .unwrap();
    assert_eq!(n.is, "missing");
}

#[test]
fn targets_whose_rules_keep_their_conditions_are_alike_without_a_search() {
    let p = compile(&[
        "allow s.t0 when args.s matches \"^a\";".to_owned(),
        "allow s.t1 when args.n < 10;".to_owned(),
    ]);
    let q = compile(&[
        "allow s.t0 when args.s matches \"^a\";".to_owned(),
        "allow s.t1 when args.n < 20;".to_owned(),
    ]);
    let none = Memberships::new();
    let d = mcpgate_compiler::diff::diff(side(&p, &none), side(&q, &none));
    // The regex of the untouched target makes nothing opaque: its rules are the same.
    assert!(d.exact.exact, "{:?}", d.exact);
    assert!(d.exact.opaque_targets.is_empty(), "{:?}", d.exact);
    assert_eq!(d.exact.flips.len(), 1, "{:?}", d.exact);
    assert_eq!(d.exact.flips[0].target, "s.t1");

    // The same rules under other group membership are searched: a flip by membership.
    let p = compile(&["allow s.t0 when \"g1\" in principal.groups;".to_owned()]);
    let mut m = Memberships::new();
    m.insert("alice".into(), vec!["g1".into()]);
    let d = mcpgate_compiler::diff::diff(side(&p, &none), side(&p, &m));
    assert!(!d.exact.flips.is_empty(), "{:?}", d.exact);
    assert!(
        d.exact.flips.iter().all(|f| f.target == "s.t0"),
        "{:?}",
        d.exact
    );
}

/// Every membership combination the generated cases draw from.
fn all_memberships() -> Vec<Memberships> {
    (0..8u8)
        .map(|bits| {
            let mut m = Memberships::new();
            if bits & 1 != 0 {
                m.insert("alice".into(), vec!["g1".into()]);
            }
            if bits & 2 != 0 {
                m.insert("bob".into(), vec!["g2".into(), "g1".into()]);
            }
            if bits & 4 != 0 {
                m.insert("bot-7".into(), vec!["g2".into()]);
            }
            m
        })
        .collect()
}

fn strings(rules: &[&str]) -> Vec<String> {
    rules.iter().map(|r| (*r).to_owned()).collect()
}

/// `who-can` and `can` on one policy, over every membership and many grid seeds.
fn check_policy(rules: &[&str]) {
    let policy = compile(&strings(rules));
    let all = principals();
    for m in all_memberships() {
        let model = Model::new(&policy, &m, None);
        for call in calls(&[&policy]) {
            for seed in 1..16u64 {
                check_grid(&[&model], &call, None, seed * 7919);
            }
            for p in all.iter().step_by(13) {
                check_grid(&[&model], &call, Some(p), 31);
            }
        }
    }
}

/// The comparison of `base` with `base` minus its rule `drop` plus `extra`, over pairs of
/// memberships and many grid seeds.
fn check_comparison(base: &[&str], extra: &[&str], drop: usize) {
    let base = strings(base);
    let mut head = base.clone();
    head.remove(drop);
    head.extend(strings(extra));
    let (pb, ph) = (compile(&base), compile(&head));
    let all = all_memberships();
    // Each membership on both sides, and against its complement.
    for (mb, mh) in all.iter().zip(&all).chain(all.iter().zip(all.iter().rev())) {
        let (b, h) = (Model::new(&pb, mb, None), Model::new(&ph, mh, None));
        for call in calls(&[&pb, &ph]) {
            for seed in 1..12u64 {
                check_grid(&[&b, &h], &call, None, seed * 7919);
            }
        }
    }
}

#[test]
fn a_substring_and_an_order_bound_under_a_group_branch_agree_with_the_vm() {
    let base = [
        "allow s.*0 when ((args.s contains \"x\" && args.s < \"m\") || \"g1\" in principal.groups);",
    ];
    check_policy(&base);
    check_comparison(&base, &["allow s.*0;"], 0);
}

#[test]
fn a_repeated_order_bound_beside_a_substring_agrees_with_the_vm() {
    check_policy(&[
        "allow s.*0 when ((principal.id starts_with \"bot-\" && args.s < \"m\") && (args.s contains \"x\" && args.s < \"m\"));",
    ]);
}

/// Where the classes of `args.s` may miss values, the group branch is still answered for
/// every value of it, and nothing claims every string.
#[test]
fn a_branch_decided_without_an_incomplete_value_holds_for_all_of_it() {
    let policy = compile(&strings(&[
        "allow s.*0 when ((args.s contains \"x\" && args.s < \"m\") || \"g1\" in principal.groups);",
    ]));
    let model = Model::new(&policy, &Memberships::new(), None);
    let named = targets(&[&policy], None);
    let reach = mcpgate_compiler::analysis::who_can(&model, &named[0], None);
    assert!(
        !reach.complete && reach.incomplete == ["args.s"],
        "{reach:?}"
    );
    let group = reach
        .access
        .iter()
        .find(|a| a.who.iter().any(|c| c.is == "has \"g1\""))
        .expect("the group's access");
    assert!(group.when.is_empty(), "{group:?}");
    assert!(
        reach
            .access
            .iter()
            .flat_map(|a| &a.when)
            .all(|c| !c.is.contains("any string")),
        "{reach:?}"
    );
}
