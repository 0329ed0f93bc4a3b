//! The layers of `runtime/src`: every `crate::…` path a module names must point to its own
//! layer or one below, the modules must form no import cycle, and no service imports
//! `gateway` or `cli`. The layers are drawn in docs/architecture.md; a new top-level module
//! has to be given a layer here before it builds into a passing test suite.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by layer, bottom first.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "bottom",
        &[
            "busy_poll",
            "clock",
            "demo",
            "git",
            "http_client",
            "http_proxy",
            "in_place",
            "jsonrpc",
            "keep_awake",
            "mcp_headers",
            "metrics",
            "protocol_version",
            "signature",
            "sse",
            "state",
            "telemetry",
        ],
    ),
    ("decision core", &["decision"]),
    (
        "services",
        &[
            "approvals",
            "assertions",
            "audit",
            "delegation",
            "gitops",
            "identity",
            "lock",
            "parked",
            "quota",
            "responders",
            "tasks",
            "vault",
        ],
    ),
    ("sessions and upstreams", &["session", "upstream"]),
    // The console imports the gateway; the gateway routes to it through a trait it defines.
    ("gateway", &["gateway", "console"]),
    ("command line", &["cli"]),
];

/// One `crate::module` a file names.
#[derive(Debug, Clone)]
struct Use {
    from: String,
    to: String,
    at: String,
}

fn runtime_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`gateway/http.rs` -> `gateway`), `None` for the
/// crate roots.
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The code of a line without its comment (a `//` outside a string literal).
fn code_of(line: &str) -> &str {
    let mut in_str = false;
    let mut prev = '\0';
    for (i, c) in line.char_indices() {
        match c {
            '"' if prev != '\\' => in_str = !in_str,
            '/' if !in_str && prev == '/' => return &line[..i - 1],
            _ => {}
        }
        prev = if prev == '\\' && c == '\\' { '\0' } else { c };
    }
    line
}

/// Every `crate::name` in `text`, with its line, including the names of grouped imports
/// (`use crate::{a, b::c}`).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let code: Vec<&str> = text.lines().map(code_of).collect();
    let joined = code.join("\n");
    let mut rest = joined.as_str();
    let mut offset = 0;
    while let Some(i) = rest.find("crate::") {
        let start = offset + i;
        let before = joined[..start].chars().next_back();
        let after = &joined[start + "crate::".len()..];
        offset = start + "crate::".len();
        rest = &joined[offset..];
        // `mcpgate_compiler::` and the like are other crates.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let line = joined[..start].matches('\n').count() + 1;
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    out.push((line, name));
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((line, name));
            }
        }
    }
    out
}

fn uses_of_tree(root: &Path) -> Vec<Use> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut uses = Vec::new();
    for file in files {
        let Some(from) = module_of(root, &file) else {
            continue;
        };
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let rel = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for (line, to) in crate_paths(&text) {
            if to != from {
                uses.push(Use {
                    from: from.clone(),
                    to,
                    at: format!("runtime/src/{rel}:{line}"),
                });
            }
        }
    }
    uses
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// What is wrong with `uses`: imports that point up, service imports of `gateway` or
/// `cli`, modules without a layer, and import cycles.
fn problems(uses: &[Use], modules: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for m in modules {
        if layer_of(m).is_none() {
            out.push(format!(
                "module `{m}` has no layer: place it in LAYERS (tests/tests/layering.rs) and docs/architecture.md"
            ));
        }
    }
    let services = LAYERS
        .iter()
        .find(|(n, _)| *n == "services")
        .map(|(_, m)| *m);
    for u in uses {
        if services.is_some_and(|s| s.contains(&u.from.as_str()))
            && matches!(u.to.as_str(), "gateway" | "console" | "cli")
        {
            out.push(format!(
                "{}: service `{}` imports `{}`: a call back up is a trait or channel the service defines",
                u.at, u.from, u.to
            ));
            continue;
        }
        if let (Some(a), Some(b)) = (layer_of(&u.from), layer_of(&u.to))
            && b > a
        {
            out.push(format!(
                "{}: `{}` ({}) imports `{}` ({}), a layer above it",
                u.at, u.from, LAYERS[a].0, u.to, LAYERS[b].0
            ));
        }
    }
    out.extend(cycles(uses));
    out
}

/// Every import cycle between modules, each named once with one import per edge.
fn cycles(uses: &[Use]) -> Vec<String> {
    let mut edges: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for u in uses {
        edges
            .entry(u.from.as_str())
            .or_default()
            .entry(u.to.as_str())
            .or_insert(u.at.as_str());
    }
    let mut found = Vec::new();
    let mut seen_cycles = BTreeSet::new();
    for &start in edges.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        let mut visited = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for (&next, _) in edges.get(node).into_iter().flatten() {
                if next == start {
                    let mut key: Vec<&str> = path.clone();
                    key.sort_unstable();
                    if seen_cycles.insert(key) {
                        let mut text = String::from("import cycle: ");
                        for w in path.windows(2) {
                            text.push_str(&format!("{} -> ", w[0]));
                        }
                        let last = path.last().copied().unwrap_or(start);
                        text.push_str(&format!("{last} -> {start} ("));
                        let mut hops: Vec<&str> = path.clone();
                        hops.push(start);
                        let sites: Vec<String> = hops
                            .windows(2)
                            .filter_map(|w| edges.get(w[0]).and_then(|e| e.get(w[1])))
                            .map(|s| s.to_string())
                            .collect();
                        text.push_str(&sites.join(", "));
                        text.push(')');
                        found.push(text);
                    }
                } else if visited.insert(next) {
                    let mut p = path.clone();
                    p.push(next);
                    stack.push((next, p));
                }
            }
        }
    }
    found
}

#[test]
fn runtime_modules_point_down_and_form_no_cycle() {
    let root = runtime_src();
    let uses = uses_of_tree(&root);
    assert!(
        uses.len() > 50,
        "found only {} cross-module imports under {}: is the scan broken?",
        uses.len(),
        root.display()
    );
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(&root, f)).collect();
    let found = problems(&uses, &modules);
    assert!(
        found.is_empty(),
        "runtime/src layering broken:\n  {}",
        found.join("\n  ")
    );
}

fn synthetic(edges: &[(&str, &str)]) -> Vec<Use> {
    edges
        .iter()
        .enumerate()
        .map(|(i, (a, b))| Use {
            from: (*a).to_owned(),
            to: (*b).to_owned(),
            at: format!("x.rs:{i}"),
        })
        .collect()
}

#[test]
fn the_check_catches_cycles_upward_imports_and_services_calling_the_gateway() {
    let modules: BTreeSet<String> = ["audit", "lock", "gateway", "decision", "jsonrpc"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let ok = synthetic(&[
        ("gateway", "audit"),
        ("audit", "decision"),
        ("decision", "jsonrpc"),
    ]);
    assert_eq!(problems(&ok, &modules), Vec::<String>::new());

    let up = synthetic(&[("audit", "gateway")]);
    let p = problems(&up, &modules);
    assert!(
        p.iter()
            .any(|m| m.contains("service `audit` imports `gateway`")),
        "{p:?}"
    );

    let cycle = synthetic(&[("audit", "lock"), ("lock", "audit")]);
    let p = problems(&cycle, &modules);
    assert!(
        p.iter()
            .any(|m| m.starts_with("import cycle: audit -> lock -> audit")),
        "{p:?}"
    );

    let core_up = synthetic(&[("decision", "audit")]);
    let p = problems(&core_up, &modules);
    assert!(p.iter().any(|m| m.contains("a layer above it")), "{p:?}");

    let mut unplaced = modules.clone();
    unplaced.insert("newthing".into());
    let p = problems(&[], &unplaced);
    assert!(
        p.iter().any(|m| m.contains("`newthing` has no layer")),
        "{p:?}"
    );
}

#[test]
fn imports_are_read_from_code_not_comments_or_other_crates() {
    let text = "use crate::{audit::Log, gateway, self};\n\
                // crate::cli in a comment\n\
                let x = mcpgate_compiler::crate_thing; let u = \"http://x\"; crate::lock::f();\n\
                /// see crate::state\n";
    let names: Vec<String> = crate_paths(text).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["audit", "gateway", "lock"]);
}
