//! The policy command line end to end: `check`, `fmt`, `schema`, `test`, `explain`, as a
//! policy author and CI run them (exit codes and output formats from LANGUAGE.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::cli::mcpgate;
use mcpgate_tests::paths;
use mcpgate_tests::{PolicyRepo, process::Finished};
use serde_json::{Value, json};

fn config() -> Value {
    json!({"servers": {"demo": {"command": "mcpgate", "args": ["demo-server"]}}})
}

/// True if `text` holds `file:line:col` with this file and line and any column.
fn has_location(text: &str, file: &str, line: u32) -> bool {
    let needle = format!("{file}:{line}:");
    text.match_indices(&needle).any(|(at, _)| {
        text[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

fn output(done: &Finished) -> String {
    format!("{}\n{}", done.stdout, done.stderr)
}

#[test]
fn check_passes_on_the_quickstart() {
    let done = mcpgate(&paths::workspace_root(), ["check", "examples/quickstart"]);
    assert_eq!(done.code(), 0, "{done}");
}

const TYPE_ERROR: &str = "allow demo.echo;\n\n\
    allow demo.add when principal.kind == 3;\n";

#[test]
fn a_type_error_exits_1_with_its_location() {
    let repo = PolicyRepo::with(&config(), TYPE_ERROR);
    let done = mcpgate(repo.path(), ["check", "."]);
    assert_eq!(done.code(), 1, "{done}");
    assert!(has_location(&output(&done), "main.mcpg", 3), "{done}");
}

#[test]
fn github_format_prints_annotations() {
    let repo = PolicyRepo::with(&config(), TYPE_ERROR);
    let done = mcpgate(repo.path(), ["check", ".", "--format", "github"]);
    assert_eq!(done.code(), 1, "{done}");
    let line = done
        .stdout
        .lines()
        .chain(done.stderr.lines())
        .find(|l| l.starts_with("::error file="))
        .unwrap_or_else(|| panic!("no `::error file=` line: {done}"));
    assert!(line.contains("main.mcpg"), "{line}");
    assert!(line.contains("line=3"), "{line}");
}

#[test]
fn a_bad_expression_in_yaml_points_at_the_yaml_line() {
    let yaml = "rules:\n  - effect: allow\n    tools: demo.echo\n    when: args.count >= >= 3\n";
    let repo = PolicyRepo::new()
        .config(&config())
        .file("policies/rules.yaml", yaml);
    let done = mcpgate(repo.path(), ["check", "."]);
    assert_eq!(done.code(), 1, "{done}");
    assert!(has_location(&output(&done), "rules.yaml", 4), "{done}");
}

#[test]
fn a_missing_folder_is_a_usage_error() {
    let repo = PolicyRepo::new();
    let done = mcpgate(repo.path(), ["check", "does-not-exist"]);
    assert_eq!(done.code(), 2, "{done}");
}

#[test]
fn fmt_check_reports_then_fmt_fixes() {
    let repo = PolicyRepo::with(
        &config(),
        "allow    demo.echo ,demo.add;\nhide demo.delete_note ;\n",
    );
    let before = std::fs::read_to_string(repo.join("policies/main.mcpg")).unwrap();
    let done = mcpgate(repo.path(), ["fmt", "--check", "policies/main.mcpg"]);
    assert_eq!(done.code(), 1, "{done}");
    assert_eq!(
        std::fs::read_to_string(repo.join("policies/main.mcpg")).unwrap(),
        before,
        "--check changed the file"
    );

    let done = mcpgate(repo.path(), ["fmt", "policies/main.mcpg"]);
    assert_eq!(done.code(), 0, "{done}");
    let after = std::fs::read_to_string(repo.join("policies/main.mcpg")).unwrap();
    assert_ne!(after, before);
    assert!(after.contains("demo.echo, demo.add"), "{after}");
    let done = mcpgate(repo.path(), ["fmt", "--check", "policies/main.mcpg"]);
    assert_eq!(
        done.code(),
        0,
        "formatted output is not stable: {done}\n{after}"
    );
}

#[test]
fn schema_prints_a_json_schema() {
    let done = mcpgate(&paths::workspace_root(), ["schema"]);
    assert_eq!(done.code(), 0, "{done}");
    let schema: Value = serde_json::from_str(&done.stdout)
        .unwrap_or_else(|e| panic!("`mcpgate schema` is not JSON ({e}): {done}"));
    let text = schema.to_string();
    assert!(text.contains("json-schema.org"), "no $schema: {text:.200}");
    assert!(text.contains("servers"), "mcpgate.yaml is not described");
    assert!(text.contains("rules"), "policy YAML is not described");
}

const TESTED_POLICY: &str = r#"allow demo.echo;
@id("cap")
deny demo.send_payment when args.amount > 100 because "too much";
allow demo.send_payment;
hide demo.delete_note;
"#;

#[test]
fn test_runs_the_policy_tests() {
    let tests = r#"tests:
  - name: echo is allowed
    principal: { id: ada, kind: human }
    call: demo.echo
    expect: allow
  - name: big payments are refused
    principal: { id: ada, kind: human }
    call: demo.send_payment
    args: { amount: 500 }
    expect: deny
    rule: cap
  - name: delete is invisible
    principal: { id: bot, kind: agent }
    call: demo.delete_note
    expect: hide
"#;
    let repo = PolicyRepo::with(&config(), TESTED_POLICY).file("tests/demo.yaml", tests);
    let done = mcpgate(repo.path(), ["test", "."]);
    assert_eq!(done.code(), 0, "{done}");
    assert!(output(&done).contains("3 passed, 0 failed"), "{done}");

    let failing = "tests:\n  - name: wrong\n    principal: { id: ada, kind: human }\n    \
                   call: demo.send_payment\n    args: { amount: 500 }\n    expect: allow\n";
    let repo = PolicyRepo::with(&config(), TESTED_POLICY).file("tests/demo.yaml", failing);
    let done = mcpgate(repo.path(), ["test", "."]);
    assert_eq!(done.code(), 1, "{done}");
    assert!(output(&done).contains("0 passed, 1 failed"), "{done}");
    let done = mcpgate(repo.path(), ["check", "."]);
    assert_eq!(done.code(), 1, "check runs the tests too: {done}");
}

const EXPLAINED_POLICY: &str = r#"allow demo.echo;
@id("cap")
deny demo.send_payment when args.amount > 100 because "too much";
allow demo.send_payment;
@id("gone")
hide demo.delete_note;
@id("review-writes")
approve demo.write_note by "editors";
"#;

fn explain(repo: &PolicyRepo, call: &str, args: &str) -> Value {
    let done = mcpgate(
        repo.path(),
        [
            "explain",
            ".",
            "--call",
            call,
            "--args",
            args,
            "--principal",
            r#"{"id": "ada", "kind": "human", "groups": ["staff"]}"#,
            "--format",
            "json",
        ],
    );
    assert_eq!(done.code(), 0, "{done}");
    serde_json::from_str(&done.stdout)
        .unwrap_or_else(|e| panic!("explain printed no JSON ({e}): {done}"))
}

#[test]
fn explain_gives_verdict_rule_and_source() {
    let repo = PolicyRepo::with(&config(), EXPLAINED_POLICY);
    let cases = [
        ("demo.echo", "{}", "allow", None, 1),
        (
            "demo.send_payment",
            r#"{"amount": 500}"#,
            "deny",
            Some("cap"),
            2,
        ),
        ("demo.send_payment", r#"{"amount": 5}"#, "allow", None, 4),
        ("demo.delete_note", "{}", "hide", Some("gone"), 5),
        ("demo.write_note", "{}", "approve", Some("review-writes"), 7),
    ];
    // A rule's source is where it starts: its `@id` attribute when it has one.
    for (call, args, verdict, rule, line) in cases {
        let out = explain(&repo, call, args);
        assert_eq!(out["verdict"], verdict, "{call} {args}: {out}");
        if let Some(rule) = rule {
            assert_eq!(out["rule"], rule, "{call} {args}: {out}");
        }
        let source = out["source"].as_str().unwrap_or_default();
        assert!(has_location(source, "main.mcpg", line), "{call}: {out}");
    }
    let out = explain(&repo, "demo.unknown_tool", "{}");
    assert_eq!(out["verdict"], "deny", "{out}");
    assert_eq!(out["rule"], "default", "{out}");
    let out = explain(&repo, "demo.send_payment", r#"{"amount": 500}"#);
    assert!(
        out["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("too much"),
        "{out}"
    );
}
