//! The policy lint (W0801 unreachable rule, W0802 allow wider than its tests, W0803
//! destructive tool open to everyone): each warning where it must be, at the rule's line,
//! and none where the rule is fine or the analysis is not exact.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_compiler::analysis::lint;
use mcpgate_compiler::repo::{SourceFile, check_files};

fn lock_text() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/bad/lock_schema/mcpgate.lock"
    );
    std::fs::read_to_string(path).unwrap()
}

/// The lint's findings as (code, line, message), and the checker's own codes.
fn lints(policy: &str, tests: &str, with_lock: bool) -> (Vec<(String, u32, String)>, Vec<String>) {
    let mut files = vec![SourceFile {
        path: "policies/a.mcpg".into(),
        text: policy.into(),
    }];
    if !tests.is_empty() {
        files.push(SourceFile {
            path: "tests/t.yaml".into(),
            text: tests.into(),
        });
    }
    if with_lock {
        files.push(SourceFile {
            path: "mcpgate.lock".into(),
            text: lock_text(),
        });
    }
    let checked = check_files(files);
    assert!(!checked.has_errors(), "{}", checked.rendered);
    let found = lint::lint(&checked)
        .into_iter()
        .map(|d| {
            let loc = checked.sources.loc(d.primary.file, d.primary.span);
            (d.code.to_owned(), loc.line, d.message)
        })
        .collect();
    let codes = checked
        .diagnostics
        .iter()
        .map(|d| d.code.to_owned())
        .collect();
    (found, codes)
}

fn codes(found: &[(String, u32, String)]) -> Vec<(&str, u32)> {
    found.iter().map(|(c, l, _)| (c.as_str(), *l)).collect()
}

#[test]
fn a_contradictory_condition_never_decides() {
    let (found, _) = lints(
        "allow demo.echo;\nallow demo.add when args.n > 5 && args.n < 3;\n",
        "",
        false,
    );
    assert_eq!(codes(&found), [("W0801", 2)], "{found:?}");
    assert!(
        found[0].2.contains("its condition never holds"),
        "{found:?}"
    );
    assert!(found[0].2.contains("`policies/a.mcpg#2`"), "{found:?}");

    // Satisfiable: no finding.
    let (found, _) = lints("allow demo.add when args.n > 5 && args.n < 9;\n", "", false);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_rule_every_call_of_which_another_decides_first_never_decides() {
    let (found, _) = lints(
        "deny demo.add when args.a > 10 because \"big\";\n\
         deny demo.add when args.a > 100 because \"huge\";\n\
         allow demo.add;\n",
        "",
        false,
    );
    assert_eq!(codes(&found), [("W0801", 2)], "{found:?}");
    assert!(
        found[0].2.contains("a stronger or earlier rule"),
        "{found:?}"
    );

    // Shadowed by a condition of a stronger rule, not an unconditional cover.
    let (found, _) = lints(
        "hide demo.add when args.a > 0;\ndeny demo.add when args.a > 5;\nallow demo.add;\n",
        "",
        false,
    );
    assert_eq!(codes(&found), [("W0801", 2)], "{found:?}");
}

#[test]
fn an_unconditional_cover_stays_w0401_alone() {
    let (found, checker) = lints("deny demo.*;\nallow demo.echo;\n", "", false);
    assert!(checker.contains(&"W0401".to_owned()), "{checker:?}");
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn an_opaque_condition_is_not_guessed_about() {
    // Never true, but a regex is opaque to the analysis: no claim either way.
    let (found, _) = lints(
        "allow demo.echo when args.s matches \"^a$\" && !(args.s matches \"^a$\");\n",
        "",
        false,
    );
    assert!(found.is_empty(), "{found:?}");
}

const AGENT_SMALL: &str = "tests:
  - name: a small sum by an agent
    principal: {id: bot, kind: agent}
    call: demo.add
    args: {a: 5}
    expect: allow
";

#[test]
fn an_allow_wider_than_its_tests_is_reported_with_the_untested_calls() {
    let (found, _) = lints(
        "allow demo.add when args.a < 100 || principal.kind == \"human\";\n",
        AGENT_SMALL,
        false,
    );
    assert_eq!(codes(&found), [("W0802", 1)], "{found:?}");
    let message = &found[0].2;
    assert!(
        message.contains("`demo.add`") && message.contains("principal.kind"),
        "{message}"
    );

    // The tests reach every region the rule allows: nothing to report.
    let (found, _) = lints("allow demo.add when args.a < 100;\n", AGENT_SMALL, false);
    assert!(found.is_empty(), "{found:?}");

    // A rule no test exercises is W0505's business, not this lint's.
    let (found, _) = lints(
        "allow demo.add when args.a < 100;\nallow demo.echo when principal.kind == \"human\" || args.x == 1;\n",
        AGENT_SMALL,
        false,
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_destructive_tool_open_to_everyone_is_reported() {
    let (found, _) = lints("allow bank.*;\n", "", true);
    let destructive: Vec<_> = found.iter().filter(|f| f.0 == "W0803").collect();
    assert_eq!(destructive.len(), 1, "{found:?}");
    assert_eq!(destructive[0].1, 1);
    assert!(destructive[0].2.contains("`bank.transfer`"), "{found:?}");

    // Held for approval, or restricted to some: not open.
    for policy in [
        "allow bank.*;\napprove bank.transfer by \"ops\";\n",
        "allow bank.get_balance, bank.run_query;\nallow bank.transfer when principal.kind == \"human\";\n",
        "allow bank.get_balance, bank.run_query;\nallow bank.transfer when args.amount < 100;\n",
    ] {
        let (found, _) = lints(policy, "", true);
        assert!(!found.iter().any(|f| f.0 == "W0803"), "{policy}: {found:?}");
    }
    // Without the lock, nothing says the tool is destructive.
    let (found, _) = lints("allow bank.*;\n", "", false);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_policy_of_more_targets_than_the_bound_is_not_linted() {
    let dead = "allow demo.add when args.n > 5 && args.n < 3;\n";
    let small: String = (0..10).map(|i| format!("allow demo.t{i};\n")).collect();
    let (found, _) = lints(&format!("{small}{dead}"), "", false);
    assert_eq!(codes(&found), [("W0801", 11)], "{found:?}");
    let big: String = (0..lint::MAX_TARGETS)
        .map(|i| format!("allow demo.t{i};\n"))
        .collect();
    let (found, _) = lints(&format!("{big}{dead}"), "", false);
    assert!(found.is_empty(), "{found:?}");
}
