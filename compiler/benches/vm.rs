//! Decision speed of the VM and of the reference interpreter on generated programs of
//! 10 to 10 000 rules, listing speed, and compile time, in thread CPU time (the build
//! machines are shared; `vm-wall-clock/1000` shows the wall time for comparison). Run:
//! `cargo bench -p mcpgate-compiler --bench vm -- --measurement-time 2`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/vm_common/mod.rs"]
mod vm_common;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mcpgate_compiler::vm::{Program, evaluate, visible};
use mcpgate_compiler::{Principal, PrincipalKind, Request, Target, ToolAnnotations, reference};
use serde_json::{Value, json};
use std::hint::black_box;
use vm_common::cpu_timed;

/// Prebuilt request data: principals, argument objects and targets that hit exact tools,
/// glob-only tools, prompts, resources and unknown servers.
struct Corpus {
    principals: Vec<Principal>,
    args: Vec<Value>,
    targets: Vec<(String, String, u8)>,
}

fn corpus(n_rules: usize) -> Corpus {
    let mut rng = vm_common::Rng(7);
    let per_server = (n_rules as u64 / vm_common::SERVERS as u64).max(4);
    let principals = (0..8)
        .map(|i| Principal {
            id: format!("user{i}@example.com"),
            kind: [PrincipalKind::Human, PrincipalKind::Agent][i % 2],
            groups: vm_common::GROUPS
                .iter()
                .filter(|_| rng.below(3) == 0)
                .map(|g| (*g).to_owned())
                .collect(),
            attrs: json!({"level": i % 5}).as_object().cloned().unwrap(),
        })
        .collect();
    let args = vec![
        json!({"amount": 70_000, "repo": {"owner": "acme"}, "env": "dev"}),
        json!({"amount": "60000", "path": "/srv/docs/a/b_c", "branch": "release/2"}),
        json!({"amount": 12.5, "repo": {"owner": "other"}, "branch": "main"}),
        json!({"path": "/etc/passwd", "env": "prod"}),
    ];
    let targets = (0..512)
        .map(|_| {
            let s = vm_common::server_name(rng.below(vm_common::SERVERS as u64 + 2));
            match rng.below(10) {
                0 => (s, "review".to_owned(), 1),
                1 => (s, format!("file:///srv/{}/x/y.md", rng.below(12)), 2),
                _ => {
                    let v = *rng.pick(&vm_common::VERBS);
                    (s, vm_common::tool_name(v, rng.below(per_server + 2)), 0)
                }
            }
        })
        .collect();
    Corpus {
        principals,
        args,
        targets,
    }
}

impl Corpus {
    fn request(&self, i: usize) -> Request<'_> {
        let (s, n, kind) = &self.targets[i % self.targets.len()];
        let target = match kind {
            0 => Target::Tool { server: s, tool: n },
            1 => Target::Prompt { server: s, name: n },
            _ => Target::Resource { server: s, uri: n },
        };
        Request {
            principal: &self.principals[i % self.principals.len()],
            agent: Some("claude-code"),
            client_name: Some("cursor"),
            client_version: Some("1.0"),
            target,
            args: &self.args[(i / 3) % self.args.len()],
            annotations: ToolAnnotations::default(),
        }
    }
}

fn decide(c: &mut Criterion) {
    let mut g = c.benchmark_group("evaluate");
    for n in [10usize, 100, 1_000, 10_000] {
        let policy = vm_common::realistic(n, 42);
        let program = Program::compile(&policy, None);
        let corpus = corpus(n);
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("vm", n), &n, |b, _| {
            b.iter_custom(|iters| {
                cpu_timed(iters, || {
                    i = i.wrapping_add(1);
                    black_box(evaluate(&program, &corpus.request(i)));
                })
            })
        });
        g.bench_with_input(BenchmarkId::new("reference", n), &n, |b, _| {
            b.iter_custom(|iters| {
                cpu_timed(iters, || {
                    i = i.wrapping_add(1);
                    black_box(reference::evaluate(&policy, &corpus.request(i)));
                })
            })
        });
        if n == 1_000 {
            g.bench_function("visible/1000", |b| {
                b.iter_custom(|iters| {
                    cpu_timed(iters, || {
                        i = i.wrapping_add(1);
                        let r = corpus.request(i);
                        black_box(visible(&program, r.principal, r.target));
                    })
                })
            });
            g.bench_function("vm-wall-clock/1000", |b| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    black_box(evaluate(&program, &corpus.request(i)))
                })
            });
        }
    }
    g.finish();
}

fn compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    let policy = vm_common::realistic(10_000, 42);
    g.bench_function("10000", |b| {
        b.iter(|| black_box(Program::compile(&policy, None)))
    });
    let program = Program::compile(&policy, None);
    let bytes = program.encode();
    g.bench_function("decode/10000", |b| {
        b.iter(|| black_box(Program::decode(&bytes).unwrap()))
    });
    g.finish();
}

/// The glob worst case: a URI of 8 KiB (the gateway's limit) that almost matches a pattern
/// of `k` globstars. Time grows with `k` linearly, not as `n^k`.
fn globs(c: &mut Criterion) {
    let mut g = c.benchmark_group("glob-worst-case");
    let text = format!("note:///{}", "a".repeat(8 * 1024 - 8));
    for k in [1usize, 2, 4, 8] {
        let pattern = format!("note:///{}z", "**a".repeat(k));
        g.bench_with_input(BenchmarkId::from_parameter(k), &k, |b, _| {
            b.iter(|| {
                mcpgate_compiler::ir::glob_match(
                    std::hint::black_box(pattern.as_bytes()),
                    std::hint::black_box(text.as_bytes()),
                    true,
                )
            });
        });
    }
    g.finish();
}

criterion_group!(benches, decide, compile, globs);
criterion_main!(benches);
