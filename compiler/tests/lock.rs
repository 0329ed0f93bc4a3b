//! The lock in the checker and in policy tests: pinned annotations reach conditions on
//! `tool.read_only` and friends, and a policy that agrees with the pinned schemas is clean.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_compiler::Program;
use mcpgate_compiler::repo::{SourceFile, check_files};
use mcpgate_compiler::testing::run_tests;

fn lock_text() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/bad/lock_schema/mcpgate.lock"
    );
    std::fs::read_to_string(path).unwrap()
}

fn files(policy: &str, tests: &str, with_lock: bool) -> Vec<SourceFile> {
    let mut v = vec![
        SourceFile {
            path: "policies/a.mcpg".into(),
            text: policy.into(),
        },
        SourceFile {
            path: "tests/t.yaml".into(),
            text: tests.into(),
        },
    ];
    if with_lock {
        v.push(SourceFile {
            path: "mcpgate.lock".into(),
            text: lock_text(),
        });
    }
    v
}

const TIERS: &str = "allow bank.* when tool.read_only;\n";
const TIER_TESTS: &str = "tests:
  - name: reads are allowed
    call: bank.get_balance
    args: { account: a1 }
    expect: allow
  - name: writes are not
    call: bank.transfer
    args: { account: a1, amount: 5 }
    expect: deny
";

#[test]
fn policy_tests_see_the_pinned_annotations() {
    let checked = check_files(files(TIERS, TIER_TESTS, true));
    let codes: Vec<&str> = checked.diagnostics.iter().map(|d| d.code).collect();
    // Only the stale pins of `old` in the shared lock.
    assert!(codes.iter().all(|c| *c == "W0705"), "{}", checked.rendered);
    let report = run_tests(&Program::compile(&checked.policy, None), &checked.tests);
    assert_eq!((report.passed(), report.failed()), (2, 0), "{report:?}");

    // Without the lock the annotation is a missing path: the read is denied too.
    let checked = check_files(files(TIERS, TIER_TESTS, false));
    let report = run_tests(&Program::compile(&checked.policy, None), &checked.tests);
    assert_eq!(report.failed(), 1, "{report:?}");
}

#[test]
fn a_policy_that_agrees_with_the_schemas_is_clean() {
    let policy = r#"allow bank.get_balance;
deny bank.transfer when args.amount > 50_000 && args.currency == "eur";
deny bank.transfer when args.options.dry_run == true || args.tags[0] == "frozen";
allow bank.transfer when args.memo starts_with "refund" && len(args.tags) < 3;
"#;
    let checked = check_files(files(policy, "tests: []\n", true));
    let codes: Vec<&str> = checked.diagnostics.iter().map(|d| d.code).collect();
    assert!(codes.iter().all(|c| *c == "W0705"), "{}", checked.rendered);
    assert_eq!(checked.errors, 0);
    assert!(checked.lock.is_some());
}
