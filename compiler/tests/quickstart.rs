//! The quickstart example is a complete policy repository that checks clean.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_compiler::diag::Format;
use mcpgate_compiler::ir::Effect;
use mcpgate_compiler::{Program, repo, testing};
use std::path::Path;

#[test]
fn quickstart_checks_clean_and_its_tests_cover_every_rule() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    let mut checked = repo::check_files(repo::read_dir(&dir).unwrap());
    assert_eq!(checked.errors + checked.warnings, 0, "{}", checked.rendered);
    let config = checked.config.as_ref().expect("mcpgate.yaml");
    assert_eq!(config.servers["demo"].command.as_deref(), Some("mcpgate"));
    let effects: Vec<Effect> = checked.policy.rules.iter().map(|r| r.effect).collect();
    for e in [Effect::Allow, Effect::Deny, Effect::Hide] {
        assert!(effects.contains(&e), "no {e} rule");
    }
    // Rules from both front ends, in file order: the DSL file sorts before the YAML one.
    assert_eq!(checked.policy.rules[0].id, "policies/demo.mcpg#1");
    assert_eq!(
        checked.policy.rules.last().map(|r| r.id.as_str()),
        Some("small-payments")
    );
    let program = Program::compile(&checked.policy, None);
    let report = testing::run_tests(&program, &checked.tests);
    checked.add_test_report(&report);
    assert_eq!(
        checked.errors + checked.warnings,
        0,
        "{}",
        checked.render(Format::Human)
    );
    assert_eq!(report.failed(), 0);
    assert!(report.passed() >= 7);
}
