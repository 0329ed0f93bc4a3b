//! The VM's semantics on hand-written policies (LANGUAGE.md), each also checked against
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! the reference interpreter.

mod vm_common;

use mcpgate_compiler::ir::{CmpOp, Effect, Expr, Policy, StrOp, Var};
use mcpgate_compiler::vm::{Program, RuleIdx, evaluate, explain, visible, withheld_by};
use mcpgate_compiler::{
    Principal, PrincipalKind, Request, Target, ToolAnnotations, Verdict, reference,
};
use serde_json::{Value, json};
use vm_common::*;

fn alice() -> Principal {
    Principal {
        id: "alice@example.com".into(),
        kind: PrincipalKind::Human,
        groups: vec!["engineering".into(), "finance".into()],
        attrs: json!({"level": 2, "team": {"name": "core"}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

fn req<'a>(p: &'a Principal, target: Target<'a>, args: &'a Value) -> Request<'a> {
    Request {
        principal: p,
        agent: Some("claude"),
        client_name: Some("cursor"),
        client_version: Some("1.2.3"),
        target,
        args,
        annotations: ToolAnnotations::default(),
    }
}

fn call<'a>(server: &'a str, tool: &'a str) -> Target<'a> {
    Target::Tool { server, tool }
}

/// Decides with the VM and the reference, asserts they agree, returns (verdict, rule id,
/// undecided).
fn decide(policy: &Policy, r: &Request<'_>) -> (Verdict, String, bool) {
    let p = Program::compile(policy, None);
    let d = evaluate(&p, r);
    let o = reference::evaluate(policy, r);
    assert_eq!(
        (d.verdict, d.rule, d.undecided),
        (o.verdict, o.rule, o.undecided),
        "{r:?}"
    );
    (d.verdict, p.rule_id(d.rule).to_owned(), d.undecided)
}

fn one(effect: Effect, target: &str, cond: Option<Expr>) -> Policy {
    Policy {
        rules: vec![rule("r", effect, vec![tool(target)], cond)],
    }
}

#[test]
fn precedence_is_hide_deny_approve_allow_then_default() {
    let p = alice();
    let a = json!({});
    let all = |effects: &[Effect]| Policy {
        rules: effects
            .iter()
            .map(|e| rule(e.keyword(), *e, vec![tool("gh.merge")], None))
            .collect(),
    };
    let r = req(&p, call("gh", "merge"), &a);
    use Effect::*;
    assert_eq!(
        decide(&all(&[Allow, Approve, Deny, Hide]), &r).0,
        Verdict::Hide
    );
    assert_eq!(decide(&all(&[Allow, Approve, Deny]), &r).0, Verdict::Deny);
    assert_eq!(decide(&all(&[Allow, Approve]), &r).0, Verdict::Approve);
    assert_eq!(decide(&all(&[Allow]), &r).0, Verdict::Allow);
    assert_eq!(
        decide(&all(&[Limit]), &r),
        (Verdict::Deny, "default".into(), false)
    );
    let other = req(&p, call("gh", "other"), &a);
    assert_eq!(decide(&all(&[Allow]), &other).1, "default");
}

#[test]
fn the_first_matching_rule_of_the_winning_effect_decides() {
    let policy = Policy {
        rules: vec![
            rule(
                "a",
                Effect::Allow,
                vec![tool("gh.get_*")],
                Some(in_group("nobody")),
            ),
            rule("b", Effect::Allow, vec![tool("gh.get_file")], None),
            rule("c", Effect::Allow, vec![tool("*.get_*")], None),
        ],
    };
    let (p, a) = (alice(), json!({}));
    assert_eq!(decide(&policy, &req(&p, call("gh", "get_file"), &a)).1, "b");
    assert_eq!(decide(&policy, &req(&p, call("gh", "get_x"), &a)).1, "c");
    assert_eq!(decide(&policy, &req(&p, call("gl", "get_x"), &a)).1, "c");
}

#[test]
fn type_confusion_makes_restrictive_rules_apply_and_allow_not() {
    let big = || Some(cmp(CmpOp::Gt, args("amount"), c(json!(50_000))));
    let (p, s) = (alice(), json!({"amount": "60000"}));
    let r = req(&p, call("stripe", "refund"), &s);
    for (e, v) in [
        (Effect::Deny, Verdict::Deny),
        (Effect::Hide, Verdict::Hide),
        (Effect::Approve, Verdict::Approve),
    ] {
        assert_eq!(
            decide(&one(e, "stripe.refund", big()), &r),
            (v, "r".into(), true)
        );
    }
    assert_eq!(
        decide(&one(Effect::Allow, "stripe.refund", big()), &r).1,
        "default"
    );
    let n = json!({"amount": 60001.5});
    let r = req(&p, call("stripe", "refund"), &n);
    assert_eq!(
        decide(&one(Effect::Deny, "stripe.refund", big()), &r),
        (Verdict::Deny, "r".into(), false)
    );
}

#[test]
fn missing_paths_compare_false_and_numbers_compare_by_value() {
    let (p, a) = (
        alice(),
        json!({"n": 1, "s": "1", "f": 1.0, "list": [1, "x"], "nul": null}),
    );
    let r = req(&p, call("s", "t"), &a);
    let allowed = |e: Expr| decide(&one(Effect::Allow, "s.t", Some(e)), &r).0 == Verdict::Allow;
    assert!(!allowed(cmp(CmpOp::Eq, args("missing"), c(json!(1)))));
    assert!(!allowed(cmp(CmpOp::Ne, args("missing"), c(json!(1)))));
    assert!(!allowed(cmp(
        CmpOp::Lt,
        args("missing.deeper"),
        c(json!(1))
    )));
    assert!(allowed(cmp(CmpOp::Eq, args("n"), c(json!(1.0)))));
    assert!(allowed(cmp(CmpOp::Eq, args("f"), args("n"))));
    assert!(allowed(cmp(CmpOp::Ne, args("s"), c(json!(1)))));
    assert!(allowed(cmp(CmpOp::Lt, args("n"), c(json!(1.5)))));
    assert!(allowed(cmp(
        CmpOp::Lt,
        c(json!("2024-01-31")),
        c(json!("2024-02-01"))
    )));
    assert!(allowed(Expr::Exists(Var::Args(segs("nul")))));
    assert!(!allowed(Expr::Exists(Var::Args(segs("nope")))));
    assert!(allowed(is_in(c(json!("x")), args("list"))));
    assert!(allowed(is_in(c(json!(1.0)), args("list"))));
    assert!(allowed(is_in(c(json!("n")), args(""))));
    assert!(allowed(cmp(
        CmpOp::Eq,
        Expr::Len(Box::new(args("list"))),
        c(json!(2))
    )));
    assert!(allowed(cmp(
        CmpOp::Eq,
        Expr::Len(Box::new(c(json!("héllo")))),
        c(json!(5))
    )));
    assert!(allowed(str_op(
        StrOp::Contains,
        args("list"),
        c(json!("x"))
    )));
    assert!(allowed(cmp(CmpOp::Eq, attr("team.name"), c(json!("core")))));
    assert!(allowed(cmp(CmpOp::Eq, var(Var::Tool), c(json!("t")))));
    assert!(allowed(cmp(
        CmpOp::Eq,
        var(Var::AgentName),
        c(json!("claude"))
    )));
    assert!(allowed(not(cmp(
        CmpOp::Eq,
        var(Var::PrincipalKind),
        c(json!("agent"))
    ))));
    assert!(allowed(is_in(
        args("s"),
        Expr::List(vec![args("missing"), c(json!("1"))])
    )));
    assert!(!allowed(Expr::Var(Var::ToolAnnotation(
        mcpgate_compiler::ir::Annotation::ReadOnly
    ))));
    assert!(allowed(matches(args("s"), "^[0-9]+$")));
    // An invalid regex can never be decided: restrictive rules apply.
    let bad = one(Effect::Deny, "s.t", Some(matches(args("s"), "(")));
    assert_eq!(decide(&bad, &r), (Verdict::Deny, "r".into(), true));
}

#[test]
fn globs_dispatch_and_fallbacks() {
    let policy = Policy {
        rules: vec![
            rule("exact", Effect::Allow, vec![tool("gh.get_file")], None),
            rule(
                "verbs",
                Effect::Allow,
                vec![tool("gh.list_*"), tool("gl.list_*")],
                None,
            ),
            rule(
                "any-server",
                Effect::Deny,
                vec![tool("*.delete_repo")],
                None,
            ),
            rule("dots", Effect::Allow, vec![tool("gh.a*b")], None),
            rule("prompt", Effect::Allow, vec![prompt("gh.*")], None),
            rule(
                "docs",
                Effect::Allow,
                vec![resource("fs", "file:///srv/docs/**")],
                None,
            ),
            rule(
                "one",
                Effect::Allow,
                vec![resource("fs", "file:///srv/*.md")],
                None,
            ),
        ],
    };
    let (p, a) = (alice(), json!({}));
    let d = |t: Target<'_>| decide(&policy, &req(&p, t, &a)).1;
    assert_eq!(d(call("gh", "get_file")), "exact");
    assert_eq!(d(call("gh", "list_prs")), "verbs");
    assert_eq!(d(call("gl", "list_x.y")), "verbs");
    assert_eq!(d(call("zz", "delete_repo")), "any-server");
    assert_eq!(d(call("gh", "delete_repo")), "any-server");
    assert_eq!(d(call("gh", "a.x.b")), "dots");
    assert_eq!(d(call("gh", "nothing")), "default");
    assert_eq!(
        d(Target::Prompt {
            server: "gh",
            name: "review"
        }),
        "prompt"
    );
    assert_eq!(
        d(Target::Tool {
            server: "gh",
            tool: "review"
        }),
        "default"
    );
    assert_eq!(
        d(Target::Resource {
            server: "fs",
            uri: "file:///srv/docs/a/b.md"
        }),
        "docs"
    );
    assert_eq!(
        d(Target::Resource {
            server: "fs",
            uri: "file:///srv/a.md"
        }),
        "one"
    );
    assert_eq!(
        d(Target::Resource {
            server: "fs",
            uri: "file:///srv/x/a.md"
        }),
        "default"
    );
}

#[test]
fn visibility_depends_on_the_principal_only() {
    let policy = Policy {
        rules: vec![
            rule(
                "eng",
                Effect::Allow,
                vec![tool("gh.create_pr")],
                Some(in_group("engineering")),
            ),
            rule(
                "args",
                Effect::Allow,
                vec![tool("gh.merge")],
                Some(cmp(CmpOp::Eq, args("base"), c(json!("main")))),
            ),
            rule("hide", Effect::Hide, vec![tool("gh.delete_*")], None),
            rule("all", Effect::Allow, vec![tool("gh.*")], None),
            rule(
                "deny-interns",
                Effect::Deny,
                vec![tool("gh.create_pr")],
                Some(in_group("interns")),
            ),
            rule(
                "deny-big",
                Effect::Deny,
                vec![tool("gh.merge")],
                Some(cmp(CmpOp::Gt, args("n"), c(json!(3)))),
            ),
            rule(
                "appr",
                Effect::Approve,
                vec![tool("pay.send")],
                Some(cmp(CmpOp::Gt, attr("level"), c(json!("x")))),
            ),
        ],
    };
    let prog = Program::compile(&policy, None);
    let alice = alice();
    let intern = Principal {
        groups: vec!["interns".into()],
        ..Principal::anonymous()
    };
    assert!(visible(&prog, &alice, call("gh", "create_pr")));
    assert!(!visible(&prog, &intern, call("gh", "create_pr")));
    assert!(visible(&prog, &intern, call("gh", "merge")));
    assert!(!visible(&prog, &alice, call("gh", "delete_repo")));
    assert!(!visible(&prog, &alice, call("other", "x")));
    // An approve rule whose condition cannot be decided applies, so the tool is listed.
    assert!(visible(&prog, &alice, call("pay", "send")));
}

#[test]
fn withheld_names_the_deny_that_keeps_a_target_off_the_list() {
    let policy = Policy {
        rules: vec![
            rule("all", Effect::Allow, vec![tool("gh.*")], None),
            rule(
                "deny-interns",
                Effect::Deny,
                vec![tool("gh.create_pr")],
                Some(in_group("interns")),
            ),
            rule(
                "deny-big",
                Effect::Deny,
                vec![tool("gh.merge")],
                Some(cmp(CmpOp::Gt, args("n"), c(json!(3)))),
            ),
            rule("hide", Effect::Hide, vec![tool("gh.delete_*")], None),
            rule("deny-delete", Effect::Deny, vec![tool("gh.delete_*")], None),
            rule("deny-wiki", Effect::Deny, vec![tool("gh.wiki")], None),
        ],
    };
    let prog = Program::compile(&policy, None);
    let alice = alice();
    let intern = Principal {
        groups: vec!["interns".into()],
        ..Principal::anonymous()
    };
    // Unconditional for this principal: named, and the target is unlisted.
    assert_eq!(
        withheld_by(&prog, &intern, call("gh", "create_pr")),
        Some(RuleIdx(1))
    );
    assert!(!visible(&prog, &intern, call("gh", "create_pr")));
    assert_eq!(
        withheld_by(&prog, &alice, call("gh", "wiki")),
        Some(RuleIdx(5))
    );
    // Not for alice; a deny on the arguments keeps nothing off the list.
    assert_eq!(withheld_by(&prog, &alice, call("gh", "create_pr")), None);
    assert_eq!(withheld_by(&prog, &alice, call("gh", "merge")), None);
    // Hidden: `hide` conceals, whatever denies too. Nothing allows: no deny to name.
    assert_eq!(withheld_by(&prog, &alice, call("gh", "delete_repo")), None);
    assert_eq!(withheld_by(&prog, &alice, call("other", "x")), None);
}

#[test]
fn limits_are_reported_for_the_dispatched_leaf() {
    let policy = Policy {
        rules: vec![
            rule("allow", Effect::Allow, vec![tool("stripe.*")], None),
            rule("l1", Effect::Limit, vec![tool("stripe.*")], None),
            rule(
                "l2",
                Effect::Limit,
                vec![tool("stripe.refund")],
                Some(cmp(CmpOp::Gt, args("amount"), c(json!(10)))),
            ),
            rule("l3", Effect::Limit, vec![tool("other.*")], None),
        ],
    };
    let prog = Program::compile(&policy, None);
    let p = alice();
    let ids = |a: &Value, t: &str| {
        let r = req(&p, call("stripe", t), a);
        let d = evaluate(&prog, &r);
        assert_eq!(d.verdict, Verdict::Allow);
        let got: Vec<RuleIdx> = prog.limits(&d, &r).collect();
        assert_eq!(got, reference::limits(&policy, &r));
        got.iter()
            .map(|&i| prog.rule_id(i).to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&json!({"amount": 50}), "refund"), ["l1", "l2"]);
    assert_eq!(ids(&json!({"amount": 5}), "refund"), ["l1"]);
    assert_eq!(ids(&json!({"amount": "x"}), "refund"), ["l1", "l2"]);
    assert_eq!(ids(&json!({}), "charge"), ["l1"]);
}

#[test]
fn explain_lists_every_rule_for_the_target() {
    let policy = Policy {
        rules: vec![
            rule(
                "cap",
                Effect::Deny,
                vec![tool("stripe.refund")],
                Some(and(
                    in_group("finance"),
                    cmp(CmpOp::Gt, args("amount"), c(json!(50_000))),
                )),
            ),
            rule(
                "fin",
                Effect::Allow,
                vec![tool("stripe.*")],
                Some(in_group("finance")),
            ),
            rule("else", Effect::Allow, vec![tool("gh.*")], None),
        ],
    };
    let prog = Program::compile(&policy, Some("abc123"));
    let (p, a) = (alice(), json!({"amount": "60000"}));
    let e = explain(&prog, &req(&p, call("stripe", "refund"), &a));
    let j = serde_json::to_value(&e).unwrap();
    assert_eq!(j["verdict"], "deny");
    assert_eq!(j["rule"], "cap");
    assert_eq!(j["reason"], "reason of cap");
    assert_eq!(j["source"], "policies/test.mcpg:1:1");
    assert_eq!(j["undecided"], true);
    assert_eq!(j["program"], prog.hash_hex());
    let considered = j["considered"].as_array().unwrap();
    assert_eq!(considered.len(), 2);
    assert_eq!(considered[0]["outcome"], "undecided");
    assert_eq!(considered[0]["decided"], true);
    let why = considered[0]["why"].as_str().unwrap();
    assert!(
        why.contains("args.amount > 50000") && why.contains("the string \"60000\""),
        "{why}"
    );
    assert_eq!(considered[1]["outcome"], "matched");
    let none = explain(&prog, &req(&p, call("zz", "x"), &a));
    let j = serde_json::to_value(&none).unwrap();
    assert_eq!(
        (j["rule"].as_str(), j["source"].is_null()),
        (Some("default"), true)
    );
}
