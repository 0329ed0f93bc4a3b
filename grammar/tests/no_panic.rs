//! The parser never panics and always points inside its input, whatever it is given:
//! arbitrary strings, and valid policies with random edits.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcpgate_grammar::{SyntaxError, TargetKind, parse_expr, parse_file, parse_target};
use proptest::prelude::*;

const VALID: &str = r#"# header
allow github.get_*, github.list_*;
allow github.create_pull_request when "engineering" in principal.groups;

@id("cap-refunds")
deny stripe.create_refund when args.amount > 50_000 because "Refund exceeds the policy limit";

approve github.merge_pull_request when args.base == "main" by "maintainers", "release-leads";
hide github.delete_repository; # trailing
limit stripe.* 100 per hour per principal;
allow prompt github.*;
allow resource fs "file:///srv/docs/**";
redact stripe.* args.card_number, args.customer["ssn"], result.email, result matching "sk_live_[a-z]+", /\d{3}/ when tool != "x";
deny github."odd name", fs.2fa-check when !(args.items[0].x == -1.5 || len(args["k"]) >= 2) && args.s matches /^a\/b$/;
"#;

fn check_spans(src: &str, errors: &[SyntaxError]) {
    for e in errors {
        let (start, end) = (e.span.start as usize, e.span.end as usize);
        assert!(
            start <= end && end <= src.len(),
            "span {start}..{end} out of {src:?}"
        );
        assert!(src.is_char_boundary(start) && src.is_char_boundary(end));
        assert!(!e.message.is_empty());
    }
}

fn check_all(src: &str) {
    let (_, errors) = parse_file(src);
    check_spans(src, &errors);
    if let Err(errors) = parse_expr(src) {
        assert!(!errors.is_empty());
        check_spans(src, &errors);
    }
    for kind in [TargetKind::Tool, TargetKind::Prompt] {
        if let Err(errors) = parse_target(src, kind) {
            assert!(!errors.is_empty());
            check_spans(src, &errors);
        }
    }
}

/// One edit of a source: delete, insert or replace a short piece at a character boundary.
#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, usize, String),
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            ";",
            ",",
            ".",
            "*",
            "\"",
            "/",
            "#",
            "@",
            "(",
            ")",
            "[",
            "]",
            "-",
            "=",
            "==",
            "!",
            "&&",
            "||",
            "\n",
            " ",
            "when",
            "because",
            "by",
            "per",
            "limit",
            "allow",
            "prompt",
            "resource",
            "0",
            "1_0",
            "9999999999999999999999",
            "\\",
            "\\u{",
            "é",
            "\u{0}",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,6}",
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..8).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), piece()).prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), 0usize..4, piece()).prop_map(|(at, n, s)| Edit::Replace(at, n, s)),
    ]
}

fn boundary(src: &str, at: usize) -> usize {
    let mut at = at % (src.len() + 1);
    while !src.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(src: &str, edits: &[Edit]) -> String {
    let mut s = src.to_string();
    for e in edits {
        match e {
            Edit::Delete(at, n) | Edit::Replace(at, n, _) => {
                let start = boundary(&s, *at);
                let end = boundary(&s, start + n);
                let end = end.max(start);
                let with = match e {
                    Edit::Replace(_, _, w) => w.as_str(),
                    _ => "",
                };
                s.replace_range(start..end, with);
            }
            Edit::Insert(at, with) => {
                let at = boundary(&s, *at);
                s.insert_str(at, with);
            }
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings(src in "\\PC{0,80}") {
        check_all(&src);
    }

    #[test]
    fn arbitrary_policy_alphabet(src in "[a-z_.*\"; ,()\\[\\]!=<>&|@#0-9\n-]{0,120}") {
        check_all(&src);
    }

    #[test]
    fn mutated_valid_policies(edits in prop::collection::vec(edit(), 1..6)) {
        let src = apply(VALID, &edits);
        check_all(&src);
    }
}

#[test]
fn the_valid_source_is_valid() {
    let (file, errors) = parse_file(VALID);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(file.rules.len(), 10);
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    for src in [
        format!(
            "deny a.b when {}x{};",
            "(".repeat(100_000),
            ")".repeat(100_000)
        ),
        format!("deny a.b when {}x;", "!".repeat(100_000)),
        format!("deny a.b when x{};", " && x".repeat(100_000)),
    ] {
        let (file, errors) = parse_file(&src);
        assert!(file.rules.is_empty());
        assert_eq!(errors.len(), 1, "{:?}", errors.first());
        assert_eq!(errors[0].message, "this rule is too complex");
        assert!(parse_expr(&src[14..src.len() - 1]).is_err());
    }
    // A long but reasonable condition still parses.
    let src = format!("deny a.b when x{};", " && x".repeat(300));
    assert!(parse_file(&src).1.is_empty());
}
