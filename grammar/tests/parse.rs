//! One test per construct of the language: what each piece of syntax parses to.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcpgate_grammar::ast::{
    BinOp, Effect, ExprKind, LimitKey, Literal, Pattern, Rule, Segment, Span, Spanned, Target,
    UnOp, Window,
};
use mcpgate_grammar::{TargetKind, parse_expr, parse_file, parse_target};

fn rules(src: &str) -> Vec<Rule> {
    let (file, errors) = parse_file(src);
    assert!(
        errors.is_empty(),
        "unexpected errors for {src:?}: {errors:?}"
    );
    file.rules
}

fn one(src: &str) -> Rule {
    let mut r = rules(src);
    assert_eq!(r.len(), 1, "{src}");
    r.remove(0)
}

fn sp<T>(node: T) -> Spanned<T> {
    Spanned::new(node, Span::default())
}

fn pat(text: &str, quoted: bool) -> Spanned<Pattern> {
    sp(Pattern {
        text: text.into(),
        quoted,
    })
}

fn tool(server: &str, name: &str) -> Target {
    Target::Tool {
        server: pat(server, false),
        tool: pat(name, false),
    }
}

fn targets(rule: &Rule) -> Vec<Target> {
    rule.targets.iter().map(|t| t.node.clone()).collect()
}

fn expr(src: &str) -> ExprKind {
    match parse_expr(src) {
        Ok(e) => e.node,
        Err(errors) => panic!("unexpected errors for {src:?}: {errors:?}"),
    }
}

#[test]
fn every_effect() {
    for (kw, effect) in [
        ("allow", Effect::Allow),
        ("deny", Effect::Deny),
        ("hide", Effect::Hide),
        ("approve", Effect::Approve),
    ] {
        let rule = one(&format!("{kw} github.x;"));
        assert_eq!(rule.effect.node, effect);
        assert!(rule.limit.is_none());
    }
}

#[test]
fn target_lists_and_globs() {
    let rule = one("allow github.get_*, github.list_*, *.delete_*;");
    assert_eq!(
        targets(&rule),
        vec![
            tool("github", "get_*"),
            tool("github", "list_*"),
            tool("*", "delete_*")
        ]
    );
    assert!(rule.targets[0].node != tool("github", "get"));
}

#[test]
fn tool_names_with_dots_dashes_digits_and_keywords() {
    let rule =
        one("allow github.get_file.contents, fs.2fa-check, github.limit, x.when, gh-2.v1.5;");
    assert_eq!(
        targets(&rule),
        vec![
            tool("github", "get_file.contents"),
            tool("fs", "2fa-check"),
            tool("github", "limit"),
            tool("x", "when"),
            tool("gh-2", "v1.5"),
        ]
    );
}

#[test]
fn quoted_tool_names_are_exact() {
    let rule = one(r#"deny github."odd name", github."star*";"#);
    assert_eq!(
        targets(&rule),
        vec![
            Target::Tool {
                server: pat("github", false),
                tool: pat("odd name", true)
            },
            Target::Tool {
                server: pat("github", false),
                tool: pat("star*", true)
            },
        ]
    );
    if let Target::Tool { tool, .. } = &rule.targets[1].node {
        assert!(!tool.node.is_glob());
    }
}

#[test]
fn prompt_and_resource_targets() {
    let rule = one(r#"allow prompt github.*, resource fs "file:///srv/docs/**";"#);
    assert_eq!(
        targets(&rule),
        vec![
            Target::Prompt {
                server: pat("github", false),
                name: pat("*", false)
            },
            Target::Resource {
                server: pat("fs", false),
                uri: pat("file:///srv/docs/**", true)
            },
        ]
    );
}

#[test]
fn rule_id_and_clauses() {
    let src = "@id(\"cap-refunds\")\ndeny stripe.create_refund when args.amount > 50_000 because \"too much\";";
    let rule = one(src);
    assert_eq!(
        rule.id.as_ref().map(|i| i.node.as_str()),
        Some("cap-refunds")
    );
    assert_eq!(
        rule.because.as_ref().map(|b| b.node.as_str()),
        Some("too much")
    );
    let Some(when) = &rule.when else {
        panic!("no condition")
    };
    let ExprKind::Binary(BinOp::Gt, _, rhs) = &when.node else {
        panic!("not a comparison: {when:?}")
    };
    assert_eq!(rhs.node, ExprKind::Lit(Literal::Int(50_000)));
    assert_eq!(rule.span, Span::new(0, src.len()));
    assert_eq!(&src[rule.effect.span.range()], "deny");
}

#[test]
fn approvers_quoted_or_bare() {
    let rule = one(
        r#"approve github.merge when args.base == "main" by "maintainers", release-leads, ops;"#,
    );
    let groups: Vec<&str> = rule.by.iter().map(|g| g.node.as_str()).collect();
    assert_eq!(groups, ["maintainers", "release-leads", "ops"]);
}

#[test]
fn clauses_in_any_order() {
    let a = one(r#"approve a.b when x by "g" because "r";"#);
    let b = one(r#"approve a.b by "g" because "r" when x;"#);
    assert_eq!(a, b);
    assert!(a.when.is_some() && a.because.is_some() && a.by.len() == 1);
}

#[test]
fn limits() {
    let rule = one("limit stripe.* 100 per hour per principal;");
    assert_eq!(rule.effect.node, Effect::Limit);
    let limit = rule.limit.expect("a limit");
    assert_eq!(limit.count.node, 100);
    assert_eq!(limit.window.node, Window::Hour);
    assert_eq!(limit.key.map(|k| k.node), Some(LimitKey::Principal));

    let rule = one("limit a.b 5_000 per day when tool.read_only;");
    let limit = rule.limit.expect("a limit");
    assert_eq!(limit.count.node, 5000);
    assert_eq!(limit.window.node, Window::Day);
    assert!(limit.key.is_none());
    assert!(rule.when.is_some());

    for (kw, key) in [
        ("agent", LimitKey::Agent),
        ("server", LimitKey::Server),
        ("tool", LimitKey::Tool),
    ] {
        let rule = one(&format!("limit a.b 1 per second per {kw};"));
        assert_eq!(rule.limit.and_then(|l| l.key).map(|k| k.node), Some(key));
    }
}

#[test]
fn several_rules_and_comments() {
    let src = "# header\nallow a.b; # trailing\n\n# about c\ndeny c.d;\n";
    let (file, errors) = parse_file(src);
    assert!(errors.is_empty());
    assert_eq!(file.rules.len(), 2);
    let texts: Vec<&str> = file.comments.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["# header", "# trailing", "# about c"]);
    assert_eq!(&src[file.comments[1].span.range()], "# trailing");
}

#[test]
fn empty_file() {
    let (file, errors) = parse_file("  # only a comment\n");
    assert!(errors.is_empty());
    assert!(file.rules.is_empty());
    assert_eq!(file.comments.len(), 1);
}

#[test]
fn literals() {
    assert_eq!(
        expr(r#""a\"b\n""#),
        ExprKind::Lit(Literal::Str("a\"b\n".into()))
    );
    assert_eq!(expr("42"), ExprKind::Lit(Literal::Int(42)));
    assert_eq!(expr("1_000"), ExprKind::Lit(Literal::Int(1000)));
    assert_eq!(expr("-7"), ExprKind::Lit(Literal::Int(-7)));
    assert_eq!(expr("2.5"), ExprKind::Lit(Literal::Float(2.5)));
    assert_eq!(expr("true"), ExprKind::Lit(Literal::Bool(true)));
    assert_eq!(expr("false"), ExprKind::Lit(Literal::Bool(false)));
    assert_eq!(expr("null"), ExprKind::Lit(Literal::Null));
    assert_eq!(
        expr(r#"["a", 1,]"#),
        ExprKind::List(vec![
            sp(ExprKind::Lit(Literal::Str("a".into()))),
            sp(ExprKind::Lit(Literal::Int(1)))
        ])
    );
    assert_eq!(expr("[]"), ExprKind::List(vec![]));
    assert_eq!(
        expr(r#""\u{1F600}""#),
        ExprKind::Lit(Literal::Str("😀".into()))
    );
}

fn path(src: &str) -> (String, Vec<Segment>) {
    match expr(src) {
        ExprKind::Path(p) => (
            p.root.node,
            p.segments.into_iter().map(|s| s.node).collect(),
        ),
        other => panic!("not a path: {other:?}"),
    }
}

#[test]
fn paths() {
    let f = |s: &str| Segment::Field(s.into());
    assert_eq!(path("args.a.b"), ("args".into(), vec![f("a"), f("b")]));
    assert_eq!(
        path("args.items[0].name"),
        (
            "args".into(),
            vec![f("items"), Segment::Index(0), f("name")]
        )
    );
    assert_eq!(
        path(r#"args["odd key"]"#),
        ("args".into(), vec![f("odd key")])
    );
    assert_eq!(
        path("principal.attrs.team"),
        ("principal".into(), vec![f("attrs"), f("team")])
    );
    assert_eq!(path("server"), ("server".into(), vec![]));
    assert_eq!(path("tool"), ("tool".into(), vec![]));
    assert_eq!(
        path("tool.read_only"),
        ("tool".into(), vec![f("read_only")])
    );
    assert_eq!(
        path("args.when.in"),
        ("args".into(), vec![f("when"), f("in")])
    );
}

#[test]
fn path_spans_point_at_segments() {
    let src = "args.items[0]";
    let Ok(e) = parse_expr(src) else {
        panic!("parse failed")
    };
    let ExprKind::Path(p) = e.node else {
        panic!("not a path")
    };
    assert_eq!(&src[p.root.span.range()], "args");
    assert_eq!(&src[p.segments[0].span.range()], "items");
    assert_eq!(&src[p.segments[1].span.range()], "[0]");
}

#[test]
fn calls() {
    let ExprKind::Call(name, args) = expr("len(args.x)") else {
        panic!("not a call")
    };
    assert_eq!(name.node, "len");
    assert_eq!(args.len(), 1);
    let ExprKind::Call(name, _) = expr("exists(args.path)") else {
        panic!("not a call")
    };
    assert_eq!(name.node, "exists");
}

fn op(e: &ExprKind) -> Option<BinOp> {
    match e {
        ExprKind::Binary(op, _, _) => Some(*op),
        _ => None,
    }
}

#[test]
fn string_and_membership_operators() {
    for (src, want) in [
        ("a == 1", BinOp::Eq),
        ("a != 1", BinOp::Ne),
        ("a < 1", BinOp::Lt),
        ("a <= 1", BinOp::Le),
        ("a > 1", BinOp::Gt),
        ("a >= 1", BinOp::Ge),
        (r#""g" in principal.groups"#, BinOp::In),
        (r#"args.s contains "x""#, BinOp::Contains),
        (r#"args.s starts_with "x""#, BinOp::StartsWith),
        (r#"args.s ends_with "x""#, BinOp::EndsWith),
        (r#"args.s matches "^a.*""#, BinOp::Matches),
    ] {
        assert_eq!(op(&expr(src)), Some(want), "{src}");
    }
}

#[test]
fn regex_literal_form() {
    let ExprKind::Binary(BinOp::Matches, _, re) = expr(r"args.s matches /^a\/b\d+$/") else {
        panic!("not matches")
    };
    assert_eq!(re.node, ExprKind::Lit(Literal::Str(r"^a/b\d+$".into())));
}

#[test]
fn precedence() {
    // `||` < `&&` < `!` < comparisons.
    let e = expr("a || b && c");
    let ExprKind::Binary(BinOp::Or, _, rhs) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(op(&rhs.node), Some(BinOp::And));

    let e = expr("!a == b");
    let ExprKind::Unary(UnOp::Not, inner) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(op(&inner.node), Some(BinOp::Eq));

    let e = expr("(a || b) && !c");
    let ExprKind::Binary(BinOp::And, lhs, rhs) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(op(&lhs.node), Some(BinOp::Or));
    assert!(matches!(rhs.node, ExprKind::Unary(UnOp::Not, _)));

    // Left associative.
    let e = expr("a && b && c");
    let ExprKind::Binary(BinOp::And, lhs, _) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(op(&lhs.node), Some(BinOp::And));
}

#[test]
fn comparisons_do_not_chain() {
    let errors = parse_expr("a == b == c").expect_err("chained comparison");
    assert_eq!(
        errors[0].message,
        "comparisons do not chain: unexpected `==`"
    );
    assert_eq!(errors[0].span, Span::new(7, 9));
}

#[test]
fn expression_spans_are_relative_to_the_input() {
    let src = "args.amount > 50_000";
    let Ok(e) = parse_expr(src) else {
        panic!("parse failed")
    };
    assert_eq!(e.span, Span::new(0, src.len()));
    let ExprKind::Binary(_, _, rhs) = e.node else {
        panic!("not binary")
    };
    assert_eq!(&src[rhs.span.range()], "50_000");
}

#[test]
fn parse_expr_reports_trailing_input() {
    let Err(errors) = parse_expr("a == 1 b") else {
        panic!("accepted trailing input")
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(&"a == 1 b"[errors[0].span.range()], "b");
}

#[test]
fn targets_from_yaml_strings() {
    let t = parse_target("stripe.create_refund", TargetKind::Tool).expect("a target");
    assert_eq!(t.node, tool("stripe", "create_refund"));
    assert_eq!(t.span, Span::new(0, 20));
    let t = parse_target("github.get_*", TargetKind::Tool).expect("a target");
    assert_eq!(t.node, tool("github", "get_*"));
    let t = parse_target(r#"github."odd name""#, TargetKind::Tool).expect("a target");
    assert_eq!(
        t.node,
        Target::Tool {
            server: pat("github", false),
            tool: pat("odd name", true)
        }
    );
    let t = parse_target("github.review", TargetKind::Prompt).expect("a target");
    assert_eq!(
        t.node,
        Target::Prompt {
            server: pat("github", false),
            name: pat("review", false)
        }
    );
    let Target::Tool { tool: name, .. } = parse_target(" fs.2fa-check ", TargetKind::Tool)
        .expect("a target")
        .node
    else {
        panic!("not a tool")
    };
    assert_eq!(name.span, Span::new(4, 13));
}

#[test]
fn bad_targets_from_yaml_strings() {
    for src in [
        "github",
        "github.",
        "Git.x",
        "a.b c",
        "",
        "a.b,c.d",
        "github.get_ *",
    ] {
        let errors = parse_target(src, TargetKind::Tool).expect_err(src);
        assert!(!errors.is_empty(), "{src}");
        for e in &errors {
            assert!(e.span.end as usize <= src.len(), "{src}: {e:?}");
        }
    }
}

#[test]
fn keeps_good_rules_around_bad_ones() {
    let src = "allow a.b;\nalow c.d;\ndeny e.f when ;\nhide g.h;\nallow x when y;\nallow i.j;\n";
    let (file, errors) = parse_file(src);
    assert_eq!(errors.len(), 3, "{errors:?}");
    let kept: Vec<Target> = file.rules.iter().flat_map(targets).collect();
    assert_eq!(kept, vec![tool("a", "b"), tool("g", "h"), tool("i", "j")]);
}

#[test]
fn missing_semicolon_keeps_both_rules() {
    let src = "allow a.b\ndeny c.d;\n";
    let (file, errors) = parse_file(src);
    assert_eq!(file.rules.len(), 2);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "expected `;` after the rule");
    assert_eq!(errors[0].span, Span::new(9, 9));
}

#[test]
fn unknown_effect_has_its_own_error() {
    let (_, errors) = parse_file("alow github.x;");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "unknown effect `alow`");
    assert_eq!(errors[0].help.as_deref(), Some("did you mean `allow`?"));
    assert_eq!(errors[0].span, Span::new(0, 4));
}

#[test]
fn byte_order_mark_and_crlf_are_whitespace() {
    let src = "\u{feff}allow a.b; # c\r\ndeny c.d;\r\n";
    let (file, errors) = parse_file(src);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(file.rules.len(), 2);
    assert_eq!(file.comments[0].text, "# c");
}

#[test]
fn redact_rules() {
    let rule = one("redact stripe.* args.card_number, args.customer.ssn;");
    assert_eq!(rule.effect.node, Effect::Redact);
    let r = rule.redact.expect("a redaction");
    let paths: Vec<String> = r
        .fields
        .iter()
        .map(|f| {
            let segs: Vec<String> = f
                .node
                .segments
                .iter()
                .map(|s| match &s.node {
                    Segment::Field(f) => f.clone(),
                    Segment::Index(i) => i.to_string(),
                })
                .collect();
            format!("{}.{}", f.node.root.node, segs.join("."))
        })
        .collect();
    assert_eq!(paths, ["args.card_number", "args.customer.ssn"]);
    assert!(r.patterns.is_empty());

    let rule = one(
        r#"redact github.*, slack.* result.email, result.phone when principal.kind == "agent";"#,
    );
    assert_eq!(rule.targets.len(), 2);
    let r = rule.redact.expect("a redaction");
    assert_eq!(r.fields.len(), 2);
    assert!(rule.when.is_some());

    let rule =
        one(r#"redact *.* args.token, result matching "sk_live_[A-Za-z0-9]{8,}", /\d{3}-\d{2}/;"#);
    let r = rule.redact.expect("a redaction");
    assert_eq!(r.fields.len(), 1);
    let pats: Vec<&str> = r.patterns.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(pats, ["sk_live_[A-Za-z0-9]{8,}", r"\d{3}-\d{2}"]);
}

#[test]
fn redact_mistakes() {
    for (src, needle) in [
        ("redact a.b;", "expected what to redact"),
        ("allow a.b args.x;", "only allowed on `redact` rules"),
        (
            r#"redact a.b args.x matching "x";"#,
            "`matching` applies to `result`",
        ),
        (r#"redact a.b result matchin "x";"#, "unexpected `matchin`"),
    ] {
        let (_, errors) = mcpgate_grammar::parse_file(src);
        assert!(
            errors.iter().any(|e| e.message.contains(needle)),
            "{src}: {errors:?}"
        );
    }
}
