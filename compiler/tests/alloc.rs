//! Deciding allocates nothing: a counting global allocator watches 10 000+ varied
//! evaluations (and listings, and limit lookups) against a realistic program.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vm_common;

use mcpgate_compiler::vm::{Program, evaluate, visible};
use mcpgate_compiler::{Principal, PrincipalKind, Request, Target, ToolAnnotations, Verdict};
use serde_json::{Value, json};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the thread may be tearing down its locals.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        }
    });
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts the allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(Cell::get)
}

#[test]
fn counting_works() {
    assert!(allocations(|| drop(std::hint::black_box(vec![1u8; 10]))) > 0);
}

#[test]
fn deciding_allocates_nothing() {
    let mut policy = vm_common::realistic(600, 42);
    policy.rules.push(vm_common::rule(
        "approve-updates",
        mcpgate_compiler::ir::Effect::Approve,
        vec![vm_common::tool("srv1.update_*")],
        None,
    ));
    for (i, target) in ["srv1.*", "srv2.get_*", "*.delete_*"].iter().enumerate() {
        let mut r = vm_common::rule(
            &format!("redact-{i}"),
            mcpgate_compiler::ir::Effect::Redact,
            vec![vm_common::tool(target)],
            (i == 1).then(|| vm_common::args("amount")),
        );
        r.redact.get_or_insert_default().fields.push("token".into());
        policy.rules.push(r);
    }
    let program = Program::compile(&policy, Some("deadbeef"));
    let mut rng = vm_common::Rng(99);
    let principals: Vec<Principal> = (0..16)
        .map(|i| Principal {
            id: format!("user{i}@example.com"),
            kind: [
                PrincipalKind::Human,
                PrincipalKind::Agent,
                PrincipalKind::Service,
            ][i % 3],
            groups: vm_common::GROUPS
                .iter()
                .filter(|_| rng.below(3) == 0)
                .map(|g| (*g).to_owned())
                .collect(),
            attrs: json!({"level": ([json!(1), json!(2), json!(5), json!("x")][i % 4]).clone()})
                .as_object()
                .cloned()
                .unwrap(),
        })
        .collect();
    let arg_sets: Vec<Value> = vec![
        Value::Null,
        json!({}),
        json!({"amount": 70_000, "repo": {"owner": "acme"}, "env": "dev"}),
        json!({"amount": "60000", "repo": {"owner": 5}, "env": ["dev"]}),
        json!({"amount": 12.5, "path": "/srv/docs/a/b_c", "branch": "release/2"}),
        json!({"path": "/etc/passwd", "branch": 7, "amount": null}),
        json!({"path": "/srv/public/ünï", "repo": [1, 2], "env": "staging"}),
        json!({"amount": 99_999_999_999u64, "branch": "main", "extra": {"deep": [1, {"x": 2}]}}),
    ];
    let names: Vec<(String, String, u8)> = (0..400)
        .map(|_| {
            let s = vm_common::server_name(rng.below(24));
            let kind = (rng.below(10)).min(2) as u8;
            let n = match kind {
                2 => format!("file:///srv/{}/doc{}.md", rng.below(12), rng.below(5)),
                _ => {
                    let v = *rng.pick(&vm_common::VERBS);
                    vm_common::tool_name(v, rng.below(30))
                }
            };
            (s, n, if rng.below(7) == 0 { 1 } else { kind })
        })
        .collect();

    let mut verdicts = [0usize; 4];
    let mut evaluations = 0usize;
    let mut redacted = 0usize;
    let mut run = |n: usize| {
        for i in 0..n {
            let (s, n, kind) = &names[i % names.len()];
            let target = match kind {
                0 => Target::Tool { server: s, tool: n },
                1 => Target::Prompt { server: s, name: n },
                _ => Target::Resource { server: s, uri: n },
            };
            let principal = &principals[(i / 7) % principals.len()];
            let r = Request {
                principal,
                agent: (i % 3 == 0).then_some("claude-code"),
                client_name: Some("cursor"),
                client_version: None,
                target,
                args: &arg_sets[(i / 3) % arg_sets.len()],
                annotations: ToolAnnotations {
                    read_only: (i % 2 == 0).then_some(true),
                    ..ToolAnnotations::default()
                },
            };
            let d = evaluate(&program, &r);
            verdicts[d.verdict as usize] += 1;
            evaluations += 1;
            if d.verdict == Verdict::Allow {
                evaluations += program.limits(&d, &r).count();
            }
            for x in program.redactions(&r) {
                redacted += 1;
                evaluations += x.args().len() + x.fields().len() + x.patterns().len();
            }
            if visible(&program, principal, target) {
                evaluations += 1;
            }
        }
    };
    // The regex crate gives each thread a search cache the first time it runs a regex:
    // one allocation per regex and thread, before steady state. Warm up once.
    let warm_up = allocations(|| run(names.len()));
    let count = allocations(|| run(12_000));
    assert!(warm_up <= 200, "warm-up allocated {warm_up} times");
    assert_eq!(count, 0, "evaluation allocated {count} times");
    assert!(evaluations >= 12_000);
    // The requests are varied: every verdict occurs.
    assert!(verdicts.iter().all(|&v| v > 0), "{verdicts:?}");
    assert!(redacted > 0, "no request matched a redact rule");
}
