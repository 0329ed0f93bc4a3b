//! The comparison behind `mcpgate diff`, on in-memory repositories (no git).

use mcpgate_compiler::diff::{self, PolicyDiff, Side};
use mcpgate_compiler::repo::{SourceFile, check_files};

fn diff_of(before: &str, after: &str) -> PolicyDiff {
    let side = |text: &str| {
        let checked = check_files(vec![SourceFile {
            path: "policies/p.mcpg".into(),
            text: text.into(),
        }]);
        assert!(!checked.has_errors(), "{}", checked.rendered);
        checked
    };
    let (a, b) = (side(before), side(after));
    diff::diff(
        Side {
            policy: &a.policy,
            tests: &a.tests,
        },
        Side {
            policy: &b.policy,
            tests: &b.tests,
        },
    )
}

#[test]
fn each_part_of_a_rule_is_compared() {
    let d = diff_of(
        r#"@id("m") approve gh.merge when args.base == "main" because "x" by "a";
@id("l") limit gh.* 10 per hour;
@id("gone") allow gh.read;
"#,
        r#"@id("m") approve gh.merge when args.base == "main" because "y" by "b";
@id("l") limit gh.* 20 per hour;
@id("new") allow gh.read;
"#,
    );
    let changed: Vec<(String, Vec<&str>)> = d
        .rules
        .changed
        .iter()
        .map(|c| (c.id.clone(), c.fields.clone()))
        .collect();
    assert_eq!(
        changed,
        [
            ("l".to_owned(), vec!["limit"]),
            ("m".to_owned(), vec!["reason", "approvers"]),
        ]
    );
    assert_eq!(d.rules.added[0].id, "new");
    assert_eq!(d.rules.removed[0].id, "gone");
    // Renaming the read rule changes no verdict.
    assert!(d.flips.is_empty(), "{:?}", d.flips);
    assert!(
        d.summary()
            .starts_with("1 rule added, 1 removed, 2 changed; no verdict flips")
    );
}

#[test]
fn revealing_a_hidden_tool_as_denied_is_not_widening() {
    let d = diff_of(
        "hide gh.delete;\nallow gh.read;\n",
        "deny gh.delete;\nallow gh.read;\n",
    );
    let lines: Vec<String> = d.flips.iter().map(|f| f.line()).collect();
    assert!(
        lines.contains(&"anonymous: gh.delete: hide -> deny".to_owned()),
        "{lines:?}"
    );
    assert!(!d.widens());
    let d = diff_of(
        "deny gh.delete;\n",
        "allow gh.delete when \"ops\" in principal.groups;\n",
    );
    let widening: Vec<String> = d
        .flips
        .iter()
        .filter(|f| f.widens)
        .map(|f| f.line())
        .collect();
    assert_eq!(widening, ["human@ops: gh.delete: deny -> allow"]);
    assert_eq!(d.flips[0].after_rule, "policies/p.mcpg#1");
}
