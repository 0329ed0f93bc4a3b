//! The comparison behind `mcpgate diff`, on in-memory repositories (no git).

use mcpgate_compiler::diff::{self, PolicyDiff, Side};
use mcpgate_compiler::repo::{SourceFile, check_files};

fn diff_of(before: &str, after: &str) -> PolicyDiff {
    diff_with_principals((before, None), (after, None))
}

/// Each side: the policy file and, if any, its `principals.yaml`.
fn diff_with_principals(before: (&str, Option<&str>), after: (&str, Option<&str>)) -> PolicyDiff {
    let side = |(text, principals): (&str, Option<&str>)| {
        let mut files = vec![SourceFile {
            path: "policies/p.mcpg".into(),
            text: text.into(),
        }];
        if let Some(p) = principals {
            files.push(SourceFile {
                path: "principals.yaml".into(),
                text: p.into(),
            });
        }
        let checked = check_files(files);
        assert!(!checked.has_errors(), "{}", checked.rendered);
        checked
    };
    let (a, b) = (side(before), side(after));
    diff::diff(
        Side {
            policy: &a.policy,
            tests: &a.tests,
            memberships: &a.memberships,
        },
        Side {
            policy: &b.policy,
            tests: &b.tests,
            memberships: &b.memberships,
        },
    )
}

#[test]
fn a_membership_change_in_principals_yaml_flips_that_principal() {
    let policy = r#"@id("refunds") allow stripe.create_refund when "finance" in principal.groups;"#;
    let d = diff_with_principals(
        (policy, Some("groups:\n  finance: [alice@example.com]\n")),
        (
            policy,
            Some("groups:\n  finance: [alice@example.com, bob@example.com]\n"),
        ),
    );
    assert_eq!(d.rules.memberships.len(), 1, "{:?}", d.rules);
    assert_eq!(d.rules.memberships[0].id, "bob@example.com");
    assert_eq!(d.rules.memberships[0].added, ["finance"]);
    assert!(d.rules.memberships[0].removed.is_empty());
    let bob: Vec<_> = d
        .flips
        .iter()
        .filter(|f| f.principal == "id:bob@example.com")
        .collect();
    assert!(!bob.is_empty(), "{:?}", d.flips);
    assert!(
        bob.iter()
            .all(|f| f.widens && f.target == "stripe.create_refund")
    );
    // Alice kept her groups: nothing flips for her, and the rule did not change.
    assert!(d.flips.iter().all(|f| !f.principal.contains("alice")));
    assert!(d.rules.changed.is_empty());
    assert!(
        d.summary().contains("1 membership changed"),
        "{}",
        d.summary()
    );
    let md = diff::markdown(&d, "main");
    assert!(
        md.contains("principal `bob@example.com` | groups +finance"),
        "{md}"
    );
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
