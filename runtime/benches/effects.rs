//! The cost of quotas and redaction on an allowed call: one quota check (a token bucket in
//! the in-process store, and `quota::enforce` with the program's lookup), and masking one
//! tool result. Run: `cargo bench -p mcpgate --bench effects -- --measurement-time 2`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use mcpgate::gateway::redact::mask_result;
use mcpgate::quota::{Ask, MemoryStore, QuotaStore, enforce};
use mcpgate_compiler::ir::{Limit, LimitKey, Window};
use mcpgate_compiler::repo::{self, SourceFile};
use mcpgate_compiler::vm::Redaction;
use mcpgate_compiler::{Principal, Program, Request, Target, ToolAnnotations, evaluate};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::hint::black_box;

const POLICY: &str = r#"allow demo.*;
limit demo.* 1_000_000_000 per second;
limit demo.echo 1_000_000_000 per second per tool;
redact demo.* result.email, result matching "sk_live_[A-Za-z0-9]{8,}", /\b\d{3}-\d{2}-\d{4}\b/;
"#;

fn program() -> Program {
    let checked = repo::check_files(vec![SourceFile {
        path: "policies/bench.mcpg".into(),
        text: POLICY.into(),
    }]);
    assert_eq!(checked.errors, 0, "{}", checked.rendered);
    Program::compile(&checked.policy, None)
}

/// A tool result of about 2 KB: text with one secret, JSON text, structured content.
fn result() -> Value {
    let prose = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(24);
    json!({
        "content": [
            {"type": "text", "text": format!("{prose} key sk_live_ABCDEFGH12345678 end")},
            {"type": "text", "text": "{\"user\": {\"email\": \"a@example.com\", \"id\": 7}}"}
        ],
        "structuredContent": {"rows": [
            {"email": "b@example.com", "ssn": "123-45-6789", "note": "ok"},
            {"email": "c@example.com", "ssn": "none", "note": "fine"}
        ]},
        "isError": false
    })
}

fn bench(c: &mut Criterion) {
    let store = MemoryStore::new();
    let ask = [Ask {
        rule: "bench",
        key: Cow::Borrowed("user@example.com"),
        limit: Limit {
            count: 1_000_000_000,
            window: Window::Second,
            key: LimitKey::Principal,
        },
    }];
    c.bench_function("quota/bucket", |b| {
        b.iter(|| black_box(store.acquire(black_box(&ask))))
    });

    let p = program();
    let principal = Principal::anonymous();
    let args = json!({"text": "hi"});
    let req = Request {
        principal: &principal,
        agent: None,
        client_name: None,
        client_version: None,
        target: Target::Tool {
            server: "demo",
            tool: "echo",
        },
        args: &args,
        annotations: ToolAnnotations::default(),
    };
    let d = evaluate(&p, &req);
    c.bench_function("quota/enforce-two-limits", |b| {
        b.iter(|| black_box(enforce(&store, &p, &d, black_box(&req))))
    });

    let masks: Vec<Redaction<'_>> = p.redactions(&req).collect();
    let template = result();
    c.bench_function("redact/lookup", |b| {
        b.iter(|| black_box(p.redactions(black_box(&req)).count()))
    });
    c.bench_function("redact/result-2kb", |b| {
        b.iter_batched(
            || template.clone(),
            |mut r| black_box(mask_result(&mut r, &masks)),
            criterion::BatchSize::SmallInput,
        )
    });
    let clean = json!({"content": [{"type": "text", "text": "Lorem ipsum ".repeat(170)}]});
    c.bench_function("redact/result-2kb-nothing-found", |b| {
        b.iter_batched(
            || clean.clone(),
            |mut r| black_box(mask_result(&mut r, &masks)),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
