//! Front-end speed: read, parse, lower and check a generated repository of 10 000 rules
//! in 100 files (half DSL, half YAML), as `mcpgate check` does before compiling.

use criterion::{Criterion, criterion_group, criterion_main};
use mcpgate_compiler::repo::{SourceFile, check_files};
use std::hint::black_box;

const FILES: usize = 100;
const RULES_PER_FILE: usize = 100;

fn dsl_file(f: usize) -> String {
    let mut s = String::new();
    for r in 0..RULES_PER_FILE {
        let server = format!("srv{}", f % 10);
        match r % 5 {
            0 => s.push_str(&format!("allow {server}.get_{r}, {server}.list_{r};\n")),
            1 => s.push_str(&format!(
                "@id(\"f{f}-r{r}\")\ndeny {server}.pay_{r} when args.amount > {r}_000 because \"too much\";\n"
            )),
            2 => s.push_str(&format!(
                "allow {server}.write_{r} when \"eng\" in principal.groups && len(args.text) <= 280;\n"
            )),
            3 => s.push_str(&format!(
                "approve {server}.merge_{r} when args.base == \"main\" && args.title matches \"^[A-Z]\" by \"leads\";\n"
            )),
            _ => s.push_str(&format!("limit {server}.*_{r} 100 per hour per principal;\n")),
        }
    }
    s
}

fn yaml_file(f: usize) -> String {
    let mut s = String::from("rules:\n");
    for r in 0..RULES_PER_FILE {
        let server = format!("srv{}", f % 10);
        match r % 4 {
            0 => s.push_str(&format!("  - effect: allow\n    tools: [{server}.read_{r}, {server}.find_{r}]\n")),
            1 => s.push_str(&format!(
                "  - id: y{f}-r{r}\n    effect: deny\n    tools: {server}.drop_{r}\n    when: args.force == true || principal.kind == \"agent\"\n    because: no\n"
            )),
            2 => s.push_str(&format!(
                "  - effect: approve\n    tools: {server}.deploy_{r}\n    when: args.env starts_with \"prod\"\n    by: [ops]\n"
            )),
            _ => s.push_str(&format!("  - effect: limit\n    tools: {server}.*\n    rate: 10 per minute\n    per: agent\n")),
        }
    }
    s
}

fn repo() -> Vec<SourceFile> {
    (0..FILES)
        .map(|f| {
            if f % 2 == 0 {
                SourceFile {
                    path: format!("policies/gen{f:03}.mcpg"),
                    text: dsl_file(f),
                }
            } else {
                SourceFile {
                    path: format!("policies/gen{f:03}.yaml"),
                    text: yaml_file(f),
                }
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let files = repo();
    let checked = check_files(files.clone());
    assert_eq!(
        checked.policy.rules.len(),
        FILES * RULES_PER_FILE,
        "{}",
        checked.rendered
    );
    assert_eq!(checked.errors, 0, "{}", checked.rendered);
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    group.bench_function("10k_rules_100_files", |b| {
        b.iter(|| check_files(black_box(files.clone())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
