//! `redact` rules from source to program: the DSL and YAML forms mean the same, the program
//! finds the rules that apply to a request, and a redaction never changes a verdict.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_compiler::ir::{Effect, PathSeg, value_at_mut};
use mcpgate_compiler::repo::{self, SourceFile};
use mcpgate_compiler::{Principal, Program, Request, Target, ToolAnnotations, Verdict, evaluate};
use serde_json::{Value, json};

const DSL: &str = r#"
allow stripe.*, github.*;
@id("cards") redact stripe.* args.card_number, args.customer["ssn"];
@id("people") redact github.*, slack.* result.email, result.phone when principal.kind == "agent";
@id("keys") redact *.* result matching "sk_live_[A-Za-z0-9]{8,}", "\\b\\d{3}-\\d{2}-\\d{4}\\b";
@id("odd") redact stripe.refund args.items[0].card when args.amount > 10;
"#;

const YAML: &str = r#"
rules:
  - effect: allow
    tools: [stripe.*, github.*]
  - id: cards
    effect: redact
    tools: stripe.*
    fields: [args.card_number, 'args.customer["ssn"]']
  - id: people
    effect: redact
    tools: [github.*, slack.*]
    fields: [result.email, result.phone]
    when: principal.kind == "agent"
  - id: keys
    effect: redact
    tools: "*.*"
    patterns: ["sk_live_[A-Za-z0-9]{8,}", '\b\d{3}-\d{2}-\d{4}\b']
  - id: odd
    effect: redact
    tools: stripe.refund
    fields: "args.items[0].card"
    when: args.amount > 10
"#;

fn compile(path: &str, text: &str) -> (Program, mcpgate_compiler::ir::Policy) {
    let checked = repo::check_files(vec![SourceFile {
        path: path.into(),
        text: text.into(),
    }]);
    assert_eq!(checked.errors, 0, "{}", checked.rendered);
    let program = Program::compile(&checked.policy, None);
    (program, checked.policy)
}

fn request<'a>(p: &'a Principal, server: &'a str, tool: &'a str, args: &'a Value) -> Request<'a> {
    Request {
        principal: p,
        agent: None,
        client_name: None,
        client_version: None,
        target: Target::Tool { server, tool },
        args,
        annotations: ToolAnnotations::default(),
    }
}

fn ids(program: &Program, r: &Request<'_>) -> Vec<String> {
    program.redactions(r).map(|x| x.id.to_owned()).collect()
}

#[test]
fn dsl_and_yaml_mean_the_same() {
    let (_, dsl) = compile("policies/a.mcpg", DSL);
    let (_, yaml) = compile("policies/a.yaml", YAML);
    let strip = |p: mcpgate_compiler::ir::Policy| {
        p.rules
            .into_iter()
            .map(|r| (r.effect, r.targets, r.condition, r.redact))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(dsl), strip(yaml));
}

#[test]
fn the_program_finds_the_redactions_of_a_request() {
    let (program, policy) = compile("policies/a.mcpg", DSL);
    assert!(program.has_redactions());
    assert!(
        policy
            .rules
            .iter()
            .filter(|r| r.effect == Effect::Redact)
            .count()
            == 4
    );
    let human = Principal {
        id: "ann".into(),
        kind: mcpgate_compiler::PrincipalKind::Human,
        ..Principal::default()
    };
    let agent = Principal {
        id: "bot".into(),
        kind: mcpgate_compiler::PrincipalKind::Agent,
        ..Principal::default()
    };
    let args = json!({"card_number": "4242", "customer": {"ssn": "123-45-6789"}, "amount": 50});
    let r = request(&human, "stripe", "charge", &args);
    assert_eq!(ids(&program, &r), ["cards", "keys"]);
    let cards = program.redactions(&r).next().unwrap();
    assert_eq!(
        cards.args(),
        [
            vec![PathSeg::Key("card_number".into())],
            vec![PathSeg::Key("customer".into()), PathSeg::Key("ssn".into())],
        ]
    );
    assert!(!cards.masks_results());
    let keys = program.redactions(&r).nth(1).unwrap();
    assert!(keys.masks_results());
    assert!(keys.patterns()[0].is_match("key sk_live_ABCDEFGH12"));
    assert!(keys.patterns()[1].is_match("ssn 123-45-6789"));

    // The condition of `people` depends on the principal.
    let none = Value::Null;
    assert_eq!(
        ids(&program, &request(&human, "github", "get", &none)),
        ["keys"]
    );
    let r = request(&agent, "github", "get", &none);
    assert_eq!(ids(&program, &r), ["people", "keys"]);
    let people = program.redactions(&r).next().unwrap();
    assert_eq!(people.fields(), ["email", "phone"]);

    // A condition that cannot be decided (a string compared with a number) redacts.
    let odd = json!({"amount": "60", "items": [{"card": "4242"}]});
    let r = request(&human, "stripe", "refund", &odd);
    assert_eq!(ids(&program, &r), ["cards", "keys", "odd"]);
    let small = json!({"amount": 5});
    let r = request(&human, "stripe", "refund", &small);
    assert_eq!(ids(&program, &r), ["cards", "keys"]);
}

#[test]
fn a_redaction_never_changes_a_verdict() {
    let (program, mut policy) = compile("policies/a.mcpg", DSL);
    policy.rules.retain(|r| r.effect != Effect::Redact);
    let without = Program::compile(&policy, None);
    let p = Principal::anonymous();
    let args = json!({"card_number": "4242", "amount": "x"});
    for (server, tool) in [
        ("stripe", "refund"),
        ("github", "get"),
        ("slack", "post"),
        ("x", "y"),
    ] {
        let r = request(&p, server, tool, &args);
        let (a, b) = (evaluate(&program, &r), evaluate(&without, &r));
        assert_eq!(
            (a.verdict, program.rule_id(a.rule)),
            (b.verdict, without.rule_id(b.rule))
        );
    }
    // Redactions apply to refused calls too (their audit records).
    let r = request(&p, "slack", "post", &args);
    assert_eq!(evaluate(&program, &r).verdict, Verdict::Deny);
    assert_eq!(ids(&program, &r), ["keys"]);
}

#[test]
fn redactions_survive_encoding() {
    let (program, _) = compile("policies/a.mcpg", DSL);
    let decoded = Program::decode(&program.encode()).unwrap();
    assert_eq!(decoded.hash(), program.hash());
    let p = Principal::anonymous();
    let args = json!({"amount": 20});
    let r = request(&p, "stripe", "refund", &args);
    assert_eq!(ids(&decoded, &r), ids(&program, &r));
    assert_eq!(decoded.rules(), program.rules());
}

#[test]
fn argument_paths_rewrite_values() {
    let mut args = json!({"customer": {"ssn": "123"}, "items": [{"card": "4"}]});
    let ssn = [PathSeg::Key("customer".into()), PathSeg::Key("ssn".into())];
    *value_at_mut(&mut args, &ssn).unwrap() = json!("hashed");
    let card = [
        PathSeg::Key("items".into()),
        PathSeg::Index(0),
        PathSeg::Key("card".into()),
    ];
    *value_at_mut(&mut args, &card).unwrap() = json!("hashed");
    assert_eq!(
        args,
        json!({"customer": {"ssn": "hashed"}, "items": [{"card": "hashed"}]})
    );
    assert!(value_at_mut(&mut args, &[PathSeg::Key("nope".into())]).is_none());
}

#[test]
fn fmt_keeps_redact_rules() {
    let src = "redact  github.*,slack.*   result.email ,result matching \"a+\" ,/b/\n  when principal.kind == \"agent\" ;\n";
    let out = mcpgate_compiler::format::format_source(src).unwrap();
    assert_eq!(
        out,
        "redact github.*, slack.* result.email, result matching \"a+\", /b/ when principal.kind == \"agent\";\n"
    );
}
