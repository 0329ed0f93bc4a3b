//! Time of the analyses on the generated 1 000- and 10 000-rule programs (the generator
//! of the VM bench): `who-can` for one tool, `can` for one principal over every target,
//! the exact comparison of a program with a one-rule change of it, and the lint of
//! `mcpgate check` (1 000 rules). Thread CPU time, as in the VM bench. Run:
//! `cargo bench -p mcpgate-compiler --bench analysis -- --measurement-time 2`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/vm_common/mod.rs"]
mod vm_common;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mcpgate_compiler::analysis::{self, Model, Named};
use mcpgate_compiler::testing::Call;
use mcpgate_compiler::vm::Memberships;
use mcpgate_compiler::{Principal, PrincipalKind};
use std::hint::black_box;
use vm_common::cpu_timed;

/// The exact tool that the most rules apply to: the heaviest single question.
fn busiest(model: &Model<'_>) -> Named {
    let targets = analysis::targets(&[model.policy], None);
    targets
        .into_iter()
        .filter(|t| !t.pattern && matches!(t.call, Call::Tool { .. }))
        .max_by_key(|t| {
            model
                .program
                .applicable(t.call.target())
                .iter()
                .map(Vec::len)
                .sum::<usize>()
        })
        .unwrap()
}

fn analyses(c: &mut Criterion) {
    let mut g = c.benchmark_group("analysis");
    g.sample_size(10);
    let none = Memberships::new();
    for n in [1_000usize, 10_000] {
        let policy = vm_common::realistic(n, 42);
        let model = Model::new(&policy, &none, None);
        let tool = busiest(&model);
        g.bench_with_input(BenchmarkId::new("who-can-busiest-tool", n), &n, |b, _| {
            b.iter_custom(|iters| {
                cpu_timed(iters, || {
                    black_box(analysis::who_can(&model, &tool, None));
                })
            })
        });
        let targets = analysis::targets(&[model.policy], None);
        let principal = Principal {
            id: "user1@example.com".into(),
            kind: PrincipalKind::Agent,
            groups: vec!["engineering".into(), "sre".into()],
            attrs: serde_json::Map::new(),
        };
        g.bench_with_input(BenchmarkId::new("can-every-target", n), &n, |b, _| {
            b.iter_custom(|iters| {
                cpu_timed(iters, || {
                    black_box(analysis::can(&model, &principal, &targets));
                })
            })
        });
        let mut changed = policy.clone();
        changed.rules.remove(n / 2);
        let head = Model::new(&changed, &none, None);
        g.bench_with_input(BenchmarkId::new("exact-compare", n), &n, |b, _| {
            b.iter_custom(|iters| {
                cpu_timed(iters, || {
                    black_box(analysis::compare(&model, &head));
                })
            })
        });
        if n <= 1_000 {
            // The lint of `mcpgate check` (every target, no tests, no lock).
            let checked = mcpgate_compiler::repo::Checked {
                policy: policy.clone(),
                ..Default::default()
            };
            g.bench_with_input(BenchmarkId::new("lint", n), &n, |b, _| {
                b.iter_custom(|iters| {
                    cpu_timed(iters, || {
                        black_box(analysis::lint::lint(&checked));
                    })
                })
            });
        }
        g.bench_with_input(BenchmarkId::new("who-can-every-target", n), &n, |b, _| {
            b.iter_custom(|iters| {
                cpu_timed(iters, || {
                    black_box(analysis::who_can_all(&model));
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, analyses);
criterion_main!(benches);
