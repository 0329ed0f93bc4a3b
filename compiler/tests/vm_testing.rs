//! `testing::run_tests`: pass/fail, the deciding rule, and coverage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vm_common;

use mcpgate_compiler::ir::{CmpOp, Effect, Policy, SourceLoc};
use mcpgate_compiler::testing::{Call, PolicyTest, run_tests};
use mcpgate_compiler::{Principal, Program, Verdict};
use serde_json::{Value, json};
use vm_common::*;

fn test(name: &str, call: &str, args: Value, expect: Verdict, rule: Option<&str>) -> PolicyTest {
    PolicyTest {
        name: name.into(),
        principal: Principal {
            groups: vec!["finance".into()],
            ..Principal::anonymous()
        },
        agent: None,
        client_name: None,
        client_version: None,
        call: Call::parse(call).unwrap(),
        args,
        expect,
        rule: rule.map(str::to_owned),
        source: SourceLoc {
            file: "tests/t.yaml".into(),
            line: 2,
            col: 5,
        },
        annotations: Default::default(),
    }
}

#[test]
fn reports_outcomes_and_uncovered_rules() {
    let policy = Policy {
        rules: vec![
            rule(
                "cap",
                Effect::Deny,
                vec![tool("stripe.refund")],
                Some(cmp(CmpOp::Gt, args("amount"), c(json!(100)))),
            ),
            rule(
                "fin",
                Effect::Allow,
                vec![tool("stripe.*")],
                Some(in_group("finance")),
            ),
            rule("never", Effect::Allow, vec![tool("gh.*")], None),
            rule("quota", Effect::Limit, vec![tool("stripe.*")], None),
            rule("quota-gh", Effect::Limit, vec![tool("gh.*")], None),
        ],
    };
    let program = Program::compile(&policy, None);
    let tests = [
        test(
            "big",
            "stripe.refund",
            json!({"amount": 500}),
            Verdict::Deny,
            Some("cap"),
        ),
        test(
            "small",
            "stripe.refund",
            json!({"amount": 5}),
            Verdict::Allow,
            None,
        ),
        test(
            "wrong rule",
            "stripe.refund",
            json!({"amount": 5}),
            Verdict::Allow,
            Some("cap"),
        ),
        test("wrong verdict", "zz.x", Value::Null, Verdict::Allow, None),
    ];
    let report = run_tests(&program, &tests);
    let passed: Vec<bool> = report.outcomes.iter().map(|o| o.passed).collect();
    assert_eq!(passed, [true, true, false, false]);
    assert_eq!((report.passed(), report.failed()), (2, 2));
    assert_eq!(report.outcomes[1].rule, "fin");
    assert_eq!(report.outcomes[3].rule, "default");
    assert_eq!(report.outcomes[3].actual, Verdict::Deny);
    assert_eq!(report.outcomes[3].rule_source, None);
    assert_eq!(
        report.outcomes[0]
            .rule_source
            .as_ref()
            .map(|s| s.file.as_str()),
        Some("policies/test.mcpg")
    );
    let uncovered: Vec<&str> = report.uncovered.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(uncovered, ["never", "quota-gh"]);
}
