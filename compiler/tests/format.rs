//! The formatter: canonical layout on examples, comments kept, and over generated policies
//! idempotence and `parse(format(x)) == parse(x)`.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcpgate_compiler::format::{MAX_WIDTH, format_source};
use mcpgate_grammar::parse_file;
use proptest::prelude::*;

fn fmt(src: &str) -> String {
    match format_source(src) {
        Ok(s) => s,
        Err(e) => panic!("syntax errors in {src:?}: {e:?}"),
    }
}

#[test]
fn language_example_is_already_canonical() {
    let src = r#"# A comment runs to the end of the line.
allow github.get_*, github.list_*;
allow github.create_pull_request when "engineering" in principal.groups;

@id("cap-refunds")
deny stripe.create_refund when args.amount > 50_000 because "Refund exceeds the policy limit";

approve github.merge_pull_request when args.base == "main" by "maintainers", "release-leads";
hide github.delete_repository;
limit stripe.* 100 per hour per principal;

allow prompt github.*;
allow resource fs "file:///srv/docs/**";
"#;
    assert_eq!(fmt(src), src);
}

#[test]
fn spacing_is_canonical() {
    assert_eq!(
        fmt("  allow   github.a ,github.b;deny x.y when(args.a==1)&&!args.b because\"r\" ;"),
        "allow github.a, github.b;\ndeny x.y when args.a == 1 && !args.b because \"r\";\n"
    );
    assert_eq!(
        fmt("limit  a.*  5_000  per  day  per  tool  when tool.read_only ;"),
        "limit a.* 5_000 per day per tool when tool.read_only;\n"
    );
    assert_eq!(
        fmt("deny a.b when args.x in [1,2 ,3,] || args[\"odd key\"][0] matches /a\\/b/;"),
        "deny a.b when args.x in [1, 2, 3] || args[\"odd key\"][0] matches /a\\/b/;\n"
    );
}

#[test]
fn literals_are_kept_as_written() {
    let src = "deny a.b when args.n > 1_000_000 && args.f < 2.50 && args.s == \"\\u{41}\\t\" && args.m > - 5;\n";
    assert_eq!(
        fmt(src),
        "deny a.b when args.n > 1_000_000 && args.f < 2.50 && args.s == \"\\u{41}\\t\" && args.m > -5;\n"
    );
}

#[test]
fn clauses_take_the_canonical_order_and_id_its_own_line() {
    assert_eq!(
        fmt("@id(\"x\") approve a.b by ops because \"r\" when x;"),
        "@id(\"x\")\napprove a.b when x because \"r\" by ops;\n"
    );
}

#[test]
fn parentheses_follow_the_tree() {
    assert_eq!(
        fmt("deny a.b when ((a || b)) && (c || d) || !(e == f) || !!g || a && b;"),
        "deny a.b when ((a || b) && (c || d)) || !(e == f) || !!g || (a && b);\n"
    );
    assert_eq!(
        fmt("deny a.b when a || (b || c);"),
        "deny a.b when a || (b || c);\n"
    );
    assert_eq!(
        fmt("deny a.b when (!a) == b;"),
        "deny a.b when (!a) == b;\n"
    );
}

#[test]
fn long_rules_break_clauses_onto_indented_lines() {
    let src = "deny stripe.create_refund when args.amount > 50_000 && args.currency == \"usd\" because \"Refund exceeds the policy limit\";";
    assert_eq!(
        fmt(src),
        "deny stripe.create_refund\n    when args.amount > 50_000 && args.currency == \"usd\"\n    because \"Refund exceeds the policy limit\";\n"
    );
}

#[test]
fn long_conditions_put_one_operand_per_line() {
    let src = "deny stripe.create_refund when args.amount > 50_000 && args.currency == \"usd\" && principal.kind == \"agent\" && !exists(args.ticket) || tool.destructive because \"r\";";
    assert_eq!(
        fmt(src),
        "deny stripe.create_refund\n    when (args.amount > 50_000 && args.currency == \"usd\" && principal.kind == \"agent\" && !exists(args.ticket))\n        || tool.destructive\n    because \"r\";\n"
    );
    let src = "deny stripe.create_refund when args.amount > 50_000 && args.currency == \"usd\" && principal.kind == \"agent\" && !exists(args.ticket);";
    assert_eq!(
        fmt(src),
        "deny stripe.create_refund\n    when args.amount > 50_000\n        && args.currency == \"usd\"\n        && principal.kind == \"agent\"\n        && !exists(args.ticket);\n"
    );
}

#[test]
fn a_trailing_comment_stays_with_the_last_rule_of_its_line() {
    assert_eq!(
        fmt("allow a.b; allow c.d; # c\n"),
        "allow a.b;\nallow c.d;  # c\n"
    );
}

#[test]
fn long_target_lists_wrap() {
    let targets: Vec<String> = (0..12)
        .map(|i| format!("github.some_long_tool_{i}"))
        .collect();
    let out = fmt(&format!("allow {};", targets.join(", ")));
    assert!(out.lines().count() > 1, "{out}");
    for line in out.lines() {
        assert!(line.chars().count() <= MAX_WIDTH, "{line}");
    }
    assert!(
        out.lines().skip(1).all(|l| l.starts_with("    github.")),
        "{out}"
    );
    assert_eq!(
        parse_file(&out).0.rules,
        parse_file(&format!("allow {};", targets.join(", ")))
            .0
            .rules
    );
}

#[test]
fn comments_are_kept_in_place() {
    let src = "# header\n\n\n\n# about a\nallow a.b;   # why\n# between\n\ndeny c.d # head note\n  when x  # cond note\n  because \"r\";\n# end\n";
    assert_eq!(
        fmt(src),
        "# header\n\n# about a\nallow a.b;  # why\n# between\n\ndeny c.d  # head note\n    when x  # cond note\n    because \"r\";\n# end\n"
    );
}

#[test]
fn a_comment_in_the_last_clause_moves_after_the_semicolon() {
    let src = "deny c.d when x # note\n  ;\n";
    assert_eq!(fmt(src), "deny c.d when x;  # note\n");
}

#[test]
fn empty_and_comment_only_files() {
    assert_eq!(fmt(""), "");
    assert_eq!(fmt("\n\n"), "");
    assert_eq!(fmt("# only\n\n\n"), "# only\n");
}

#[test]
fn syntax_errors_are_returned_not_formatted() {
    let errors = format_source("alow a.b;\n").unwrap_err();
    assert_eq!(errors[0].message, "unknown effect `alow`");
}

// ---- generated policies ----

fn sep() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        6 => Just(" "),
        2 => Just("  \n    "),
        1 => Just(" # note\n  "),
    ]
}

fn leaf() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "args.a.b",
        "args[\"k x\"]",
        "args.items[0].x",
        "50_000",
        "- 5",
        "2.5",
        "\"s\\\"q\"",
        "true",
        "null",
        "principal.groups",
        "[1, \"a\",]",
        "len(args.x)",
        "exists(args.p)",
        "/re\\/x/",
        "tool",
        "tool.read_only",
        "principal.attrs.team",
    ])
    .prop_map(str::to_string)
}

fn expr() -> impl Strategy<Value = String> {
    leaf().prop_recursive(4, 24, 2, |inner| {
        let op = prop::sample::select(vec![
            "||",
            "&&",
            "==",
            "!=",
            "<",
            ">=",
            "in",
            "contains",
            "starts_with",
            "matches",
        ]);
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.clone().prop_map(|a| format!("(!{a})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a} && {b})")),
        ]
    })
}

/// A condition: parentheses only where needed at the top, for the precedence rules.
fn condition() -> impl Strategy<Value = String> {
    prop_oneof![
        expr(),
        (expr(), expr(), expr()).prop_map(|(a, b, c)| format!("{a} || {b} && !{c}")),
        (expr(), expr()).prop_map(|(a, b)| format!("!{a} == {b}")),
    ]
}

fn target() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "github.get_*",
        "fs.2fa-check",
        "github.\"odd name\"",
        "prompt github.review",
        "resource fs \"file:///a/**\"",
        "*.delete_*",
        "github.limit",
        "github.get_file.contents",
    ])
    .prop_map(str::to_string)
}

prop_compose! {
    fn rule()(
        id in prop::option::of("[a-z]{1,6}"),
        effect in prop::sample::select(vec!["allow", "deny", "hide", "approve", "limit", "redact"]),
        redact in prop::sample::select(vec![
            "args.card_number",
            "args.customer[\"ssn\"], result.email",
            "result matching \"sk_live_[a-z]+\", /\\d{3}/",
            "args.items[0].card, result.phone, result matching \"x\"",
        ]),
        targets in prop::collection::vec(target(), 1..4),
        key in prop::option::of(prop::sample::select(vec!["principal", "agent", "server", "tool"])),
        when in prop::option::of(condition()),
        because in prop::option::of("[a-zA-Z ]{0,30}"),
        by in prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["\"ops\"", "release-leads", "maintainers"]), 1..3)),
        seps in prop::collection::vec(sep(), 8),
    ) -> String {
        let mut s = String::new();
        if let Some(id) = id {
            s.push_str(&format!("@id(\"{id}\"){}", seps[0]));
        }
        s.push_str(effect);
        s.push(' ');
        s.push_str(&targets.join(&format!(",{}", seps[1])));
        if effect == "limit" {
            s.push_str(&format!("{}1_000 per hour", seps[2]));
            if let Some(key) = key {
                s.push_str(&format!(" per {key}"));
            }
        }
        if effect == "redact" {
            s.push_str(&format!("{}{redact}", seps[2]));
        }
        if let Some(w) = when {
            s.push_str(&format!("{}when {w}", seps[3]));
        }
        if let Some(b) = because {
            s.push_str(&format!("{}because \"{b}\"", seps[4]));
        }
        if let Some(g) = by {
            s.push_str(&format!("{}by {}", seps[5], g.join(", ")));
        }
        s.push_str(seps[6]);
        s.push(';');
        s
    }
}

/// Whitespace, newlines and comments inserted at random places of a valid policy.
fn respaced() -> impl Strategy<Value = String> {
    const BASE: &str = "@id(\"a\") deny stripe.create_refund, github.\"odd name\" when args.amount > 50_000 && !(args.x == -1.5 || len(args[\"k\"]) >= 2) because \"r\" by ops, \"leads\";\nlimit stripe.* 100 per hour per tool when tool.read_only;\nallow prompt github.*, resource fs \"file:///a/**\";\nredact stripe.*, github.* args.card, result.email, result matching \"sk_[a-z]+\" when tool != \"x\";\n";
    let insert = prop::sample::select(vec![" ", "\n", "\n\n", " # c\n", "\t"]);
    prop::collection::vec((any::<prop::sample::Index>(), insert), 0..10).prop_map(|edits| {
        let mut s = BASE.to_string();
        for (at, text) in edits {
            let at = at.index(s.len() + 1);
            if s.is_char_boundary(at) {
                s.insert_str(at, text);
            }
        }
        s
    })
}

fn policy() -> impl Strategy<Value = String> {
    let between = prop::sample::select(vec![
        "\n",
        "\n\n\n",
        " ",
        "  # trailing\n",
        "\n# standalone\n\n",
    ]);
    prop::collection::vec((rule(), between), 0..6).prop_map(|rules| {
        let mut s = String::from("# header\n");
        for (r, b) in rules {
            s.push_str(&r);
            s.push_str(b);
        }
        s
    })
}

fn comment_texts(src: &str) -> Vec<String> {
    let mut texts: Vec<String> = parse_file(src)
        .0
        .comments
        .into_iter()
        .map(|c| c.text.trim_end().to_string())
        .collect();
    texts.sort();
    texts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn respaced_policies_format_to_the_same_rules(src in respaced()) {
        // An insertion may split a token; only sources that still parse are formatted.
        let (before, errors) = parse_file(&src);
        if errors.is_empty() {
            let once = fmt(&src);
            prop_assert_eq!(&fmt(&once), &once, "not idempotent for:\n{}", src);
            prop_assert_eq!(parse_file(&once).0.rules, before.rules, "meaning changed:\n{}", src);
            prop_assert_eq!(comment_texts(&once), comment_texts(&src));
        }
    }

    #[test]
    fn formatting_is_idempotent_and_keeps_meaning_and_comments(src in policy()) {
        let (before, errors) = parse_file(&src);
        prop_assert!(errors.is_empty(), "generated an invalid policy: {:?}\n{}", errors, src);
        let once = fmt(&src);
        let twice = fmt(&once);
        prop_assert_eq!(&twice, &once, "not idempotent for:\n{}", src);
        let (after, errors) = parse_file(&once);
        prop_assert!(errors.is_empty());
        prop_assert_eq!(after.rules, before.rules, "meaning changed:\n{}\n---\n{}", src, once);
        prop_assert_eq!(comment_texts(&once), comment_texts(&src));
        prop_assert!(!once.contains("\n\n\n"));
        prop_assert!(once.is_empty() || once.ends_with('\n'));
    }
}
