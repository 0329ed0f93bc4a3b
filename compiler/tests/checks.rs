//! One test per check: a source that triggers it, and a close one that does not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_compiler::repo::{SourceFile, check_files};

fn codes(files: &[(&str, &str)]) -> Vec<&'static str> {
    let files = files
        .iter()
        .map(|(p, t)| SourceFile {
            path: (*p).into(),
            text: (*t).into(),
        })
        .collect();
    check_files(files)
        .diagnostics
        .iter()
        .map(|d| d.code)
        .collect()
}

fn dsl(src: &str) -> Vec<&'static str> {
    codes(&[("policies/a.mcpg", src)])
}

fn yaml(src: &str) -> Vec<&'static str> {
    codes(&[("policies/a.yaml", src)])
}

fn config(src: &str) -> Vec<&'static str> {
    codes(&[("mcpgate.yaml", src)])
}

fn tests(policy: &str, src: &str) -> Vec<&'static str> {
    codes(&[("policies/a.mcpg", policy), ("tests/t.yaml", src)])
}

#[test]
fn syntax() {
    assert_eq!(dsl("allow demo.echo"), ["E0001"]);
    assert_eq!(yaml("rules: [\n"), ["E0002"]);
    assert_eq!(
        yaml("rules:\n  - effect: allow\n    tool: demo.echo\n"),
        ["E0003"]
    );
    assert_eq!(
        yaml("rules:\n  - effect: deny\n    tools: demo.x\n    when: args.a >> 1\n"),
        ["E0004"]
    );
    assert_eq!(
        yaml("rules:\n  - effect: allow\n    tools: demo.echo\n"),
        Vec::<&str>::new()
    );
    // Plain `no`, `true` and `42` are read as text where a string is expected.
    assert_eq!(
        yaml(
            "rules:\n  - id: 42\n    effect: deny\n    tools: demo.x\n    when: true\n    because: no\n"
        ),
        Vec::<&str>::new()
    );
}

#[test]
fn names() {
    assert_eq!(dsl("deny demo.x when arg.a > 1;"), ["E0101"]);
    assert_eq!(dsl("deny demo.x when principal.grops == 1;"), ["E0102"]);
    assert_eq!(
        dsl("deny demo.x when principal.attrs.team == \"a\";"),
        Vec::<&str>::new()
    );
    // A delegated call's person and delegation.
    assert_eq!(
        dsl(
            "deny demo.x when principal.on_behalf_of == \"a\" && delegation.reason starts_with \"N\" && delegation.expires < \"2030\" && exists(delegation.id);"
        ),
        Vec::<&str>::new()
    );
    assert_eq!(dsl("deny demo.x when delegation.why == 1;"), ["E0102"]);
    assert_eq!(dsl("deny demo.x when delegation == 1;"), ["E0102"]);
    assert_eq!(
        dsl("deny demo.x when principal.on_behalf_of.id == 1;"),
        ["E0102"]
    );
    assert_eq!(dsl("deny demo.x when size(args.a) > 1;"), ["E0103"]);
    assert_eq!(dsl("deny demo.x when exists(1);"), ["E0104"]);
    assert_eq!(
        dsl("deny demo.x when exists(args.a) && tool.read_only;"),
        Vec::<&str>::new()
    );
}

#[test]
fn types() {
    assert_eq!(dsl("deny demo.x when principal.groups > 3;"), ["E0201"]);
    assert_eq!(dsl("deny demo.x when [1] < 3;"), ["E0201"]);
    assert_eq!(
        dsl("deny demo.x when args.x > \"a\" || args.x > 5;"),
        Vec::<&str>::new()
    );
    assert_eq!(
        dsl("deny demo.x when len(principal.groups) > 3;"),
        Vec::<&str>::new()
    );
    assert_eq!(dsl("deny demo.x when len(3) > 1;"), ["E0202"]);
    assert_eq!(dsl("deny demo.x when \"a\" in \"abc\";"), ["E0203"]);
    assert_eq!(dsl("deny demo.x when args.a matches \"[\";"), ["E0204"]);
    assert_eq!(
        dsl("deny demo.x when args.a matches \"^[a-z]+$\";"),
        Vec::<&str>::new()
    );
    assert_eq!(dsl("deny demo.x when args.a matches args.b;"), ["E0205"]);
    assert_eq!(
        dsl("deny demo.x when principal.kind == \"bot\";"),
        ["E0207"]
    );
    assert_eq!(
        dsl("deny demo.x when principal.kind != \"agent\";"),
        Vec::<&str>::new()
    );
}

#[test]
fn rules() {
    assert_eq!(
        dsl("@id(\"a\") allow demo.x;\n@id(\"a\") allow demo.y;"),
        ["E0301"]
    );
    assert_eq!(
        codes(&[
            ("policies/a.mcpg", "allow demo.x;"),
            (
                "policies/b.yaml",
                "rules:\n  - id: policies/a.mcpg#1\n    effect: allow\n    tools: demo.y\n"
            ),
        ]),
        ["E0301"]
    );
    assert_eq!(
        yaml("rules:\n  - effect: allow\n    tools: []\n"),
        ["E0302"]
    );
    assert_eq!(
        yaml("rules:\n  - effect: permit\n    tools: demo.x\n"),
        ["E0303"]
    );
    assert_eq!(dsl("approve demo.x;"), ["E0304"]);
    assert_eq!(dsl("approve demo.x by \"ops\";"), Vec::<&str>::new());
    assert_eq!(dsl("deny demo.x by \"ops\";"), ["W0305"]);
    assert_eq!(dsl("limit demo.x 0 per hour;"), ["E0306"]);
    assert_eq!(dsl("limit demo.x 100000000 per second;"), ["W0307"]);
    assert_eq!(dsl("limit demo.x 100 per second;"), Vec::<&str>::new());
    assert_eq!(
        yaml("rules:\n  - effect: deny\n    tools: demo.x\n    rate: 1 per hour\n"),
        ["E0308"]
    );
    assert_eq!(
        yaml("rules:\n  - effect: limit\n    tools: demo.x\n    rate: 1 per hour\n    per: tool\n"),
        Vec::<&str>::new()
    );
}

#[test]
fn shadowing() {
    assert_eq!(dsl("hide demo.*;\ndeny demo.x;"), ["W0401"]);
    assert_eq!(dsl("deny *.*;\napprove demo.x by \"ops\";"), ["W0401"]);
    assert_eq!(
        dsl("deny demo.* when args.a == 1;\nallow demo.x;"),
        Vec::<&str>::new()
    );
    assert_eq!(
        dsl("deny demo.x;\nallow demo.x, demo.y;"),
        Vec::<&str>::new()
    );
    assert_eq!(dsl("deny demo.x;\ndeny demo.*;"), Vec::<&str>::new());
}

#[test]
fn policy_tests() {
    let policy = "@id(\"a\") allow demo.x;";
    let case =
        |extra: &str| format!("tests:\n  - name: t\n    call: demo.x\n    expect: allow\n{extra}");
    assert_eq!(tests(policy, &case("")), Vec::<&str>::new());
    assert_eq!(
        tests(
            policy,
            "tests:\n  - name: t\n    call: nodot\n    expect: allow\n"
        ),
        ["E0501"]
    );
    assert_eq!(tests(policy, &case("    rule: b\n")), ["E0502"]);
    assert_eq!(
        tests(policy, &case("    rule: default\n")),
        Vec::<&str>::new()
    );
    assert_eq!(
        tests(policy, &case("    principal: { id: x, kind: robot }\n")),
        ["E0503"]
    );
}

#[test]
fn config_checks() {
    assert_eq!(
        config("servers:\n  a:\n    url: https://x.example\n    command: x\n"),
        ["E0601"]
    );
    assert_eq!(config("servers:\n  a: {}\n"), ["E0601"]);
    assert_eq!(
        config("servers:\n  a:\n    command: x\n    headers: { A: b }\n"),
        ["E0601"]
    );
    assert_eq!(
        config("servers:\n  a:\n    url: https://x.example\n    args: [x]\n"),
        ["E0601"]
    );
    assert_eq!(
        config("servers:\n  a:\n    command: x\n    assertion: {}\n"),
        ["E0601"]
    );
    assert_eq!(
        config(
            "servers:\n  a:\n    url: https://x.example\n    assertion: { header: X-A, ttl: 30s, audience: urn:a }\n"
        ),
        Vec::<&str>::new()
    );
    assert_eq!(
        config("servers:\n  a:\n    url: https://x.example\n    assertion: { ttl: soon }\n"),
        ["E0003"]
    );
    assert_eq!(config("servers:\n  A_b:\n    command: x\n"), ["E0602"]);
    assert_eq!(
        config("servers:\n  a:\n    command: x\n    env:\n      T: \"${vault:x}\"\n"),
        ["E0603"]
    );
    assert_eq!(
        config(
            "servers:\n  a:\n    url: https://x.example\n    headers:\n      Authorization: Bearer xoxb-123456789012-abc\n"
        ),
        ["E0604"]
    );
    assert_eq!(
        config(
            "servers:\n  a:\n    url: https://x.example\n    headers:\n      Authorization: Bearer ${secret:a}\n"
        ),
        Vec::<&str>::new()
    );
}

#[test]
fn rules_are_ordered_by_file_then_position() {
    let checked = check_files(vec![
        SourceFile {
            path: "policies/b.yaml".into(),
            text: "rules:\n  - effect: allow\n    tools: demo.b\n".into(),
        },
        SourceFile {
            path: "policies/a.mcpg".into(),
            text: "allow demo.a1;\n@id(\"named\") allow demo.a2;".into(),
        },
    ]);
    let ids: Vec<&str> = checked.policy.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["policies/a.mcpg#1", "named", "policies/b.yaml#1"]);
    let src = &checked.policy.rules[2].source;
    assert_eq!((src.file.as_str(), src.line), ("policies/b.yaml", 2));
}

#[test]
fn identity_config() {
    let ok = "identity:\n  resource: https://mcp.example.com\n  oidc:\n    issuer: https://idp.example.com\n    audience: mcpgate\n    jwks_url: https://idp.example.com/jwks.json\n    algorithms: [RS256, ES256]\n    claims: { id: email, groups: groups, kind: human, attrs: { team: team } }\n";
    assert!(config(ok).is_empty(), "{:?}", config(ok));
    assert!(config("identity: {}\n").is_empty());
    // `none` and HMAC cannot be named.
    assert_eq!(
        config(
            "identity:\n  oidc:\n    issuer: https://i\n    audience: a\n    jwks_file: k.json\n    algorithms: [HS256]\n"
        ),
        ["E0003"]
    );
    assert_eq!(
        config(
            "identity:\n  oidc:\n    issuer: https://i\n    audience: a\n    algorithms: [RS256]\n"
        ),
        ["E0605"]
    );
    assert_eq!(
        config(
            "identity:\n  oidc:\n    issuer: https://i\n    audience: a\n    jwks_url: http://idp.example.com/k\n"
        ),
        ["E0605"]
    );
    assert!(config("identity:\n  oidc:\n    issuer: https://i\n    audience: a\n    jwks_url: http://127.0.0.1:9/k\n").is_empty());
    assert_eq!(config("identity:\n  tokens: false\n"), ["E0605"]);
    assert_eq!(
        config("identity:\n  resource: mcp.example.com\n"),
        ["E0605"]
    );
    assert_eq!(config("identity:\n  token: true\n"), ["E0003"]);
}

#[test]
fn principals_membership() {
    let p = "allow demo.write when \"finance\" in principal.groups;\n";
    let ok = codes(&[
        ("policies/a.mcpg", p),
        ("principals.yaml", "groups:\n  finance: [carol]\n"),
    ]);
    assert!(ok.is_empty(), "{ok:?}");
    assert_eq!(
        codes(&[("principals.yaml", "groups:\n  finance: [carol, carol]\n")]),
        ["W0607"]
    );
    assert_eq!(
        codes(&[("principals.yaml", "groups:\n  \"\": [carol]\n")]),
        ["E0606"]
    );
}

#[test]
fn audit_durability_levels() {
    for level in ["strict", "batched", "written"] {
        assert_eq!(
            config(&format!("audit:\n  durability: {level}\n  sync_ms: 20\n")),
            Vec::<&str>::new(),
            "{level}"
        );
    }
    let files = vec![SourceFile {
        path: "mcpgate.yaml".into(),
        text: "audit:\n  durability: fast\n".into(),
    }];
    let diagnostics = check_files(files).diagnostics;
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let d = &diagnostics[0];
    assert_eq!(d.message, "unknown value `fast` for `audit.durability`");
    let help = d.help.clone().unwrap_or_default();
    for level in ["strict", "batched", "written"] {
        assert!(help.contains(level), "{help}");
    }
}
