//! The lock: `mcpgate.lock` must be readable and consistent, and when it pins a server,
//! rules are checked against what the server offered: targets must match a pinned tool,
//! `args.x` must be a property of the pinned input schema, and comparisons must agree with
//! the schema's types.

mod condition;
mod schema_types;

pub use condition::check_condition;

use super::Code;
use crate::config::{Config, LockMode};
use crate::diag::{Diagnostic, Severity, did_you_mean};
use crate::lock::{Kind, Lockfile, Pinned};
use crate::source::FileId;
use mcpgate_grammar::Span;
use mcpgate_grammar::ast::{self, Pattern};

/// An unreadable or inconsistent `mcpgate.lock`.
pub const E0701: Code = Code {
    code: "E0701",
    severity: Severity::Error,
    name: "invalid-lock",
    doc: r#"
### What it does
Reports an `mcpgate.lock` that is not valid JSON, has another format version or an
unknown field, or whose `sha256` does not match the definition pinned next to it (the
file was edited by hand).

### Why is this bad?
The gateway holds every tool whose definition does not match its pin. A lock that cannot
be trusted cannot say what was reviewed.

### Example
A pin whose `description` was edited without re-pinning. Fix: run `mcpgate lock` against
the servers, review the diff, and commit the file it writes.
"#,
};

/// A target that matches no pinned tool or prompt.
pub const W0702: Code = Code {
    code: "W0702",
    severity: Severity::Warning,
    name: "unpinned-target",
    doc: r#"
### What it does
When `mcpgate.lock` pins a server, warns about a rule target on that server that matches
none of its pinned tools (or prompts), with the closest pinned name.

### Why is this bad?
A rule for a tool the server does not offer never applies: usually a typo, or a tool the
server renamed.

### Example
```
allow github.get_isue;
```
Use instead: `allow github.get_issue;`
"#,
};

/// `args.x` where the pinned input schema has no property `x`.
pub const E0703: Code = Code {
    code: "E0703",
    severity: Severity::Error,
    name: "unknown-argument",
    doc: r#"
### What it does
Reports `args.x` in a condition when the pinned input schema of every tool the rule
targets declares its `properties` and `x` is not one of them (and the schema does not
allow other properties with `additionalProperties` or `patternProperties`). Nested paths
(`args.a.b`, `args.items[0].c`) are followed through `properties`, `items` and local
`$ref`s.

### Why is this bad?
The argument is always missing, so the condition never holds (or, in a restrictive rule,
can never be decided).

### Example
With `stripe.create_refund` pinned with properties `charge` and `amount`:
```
deny stripe.create_refund when args.ammount > 50_000;
```
Use instead: `args.amount`.
"#,
};

/// A comparison whose type disagrees with the pinned input schema.
pub const E0704: Code = Code {
    code: "E0704",
    severity: Severity::Error,
    name: "argument-type",
    doc: r#"
### What it does
Reports an operation on `args.x` whose other side has a type the pinned input schema of
`x` does not allow: `args.amount == "5"` when `amount` is an integer, `args.name > 3`
when `name` is a string, `args.count contains "x"` on a number, or a string compared with
`==` to a value outside the schema's `enum`.

### Why is this bad?
Such a comparison is never true (`==`) or cannot be decided (`<`): the rule does not do
what it says.

### Example
With `amount` pinned as `{"type": "integer"}`:
```
deny stripe.create_refund when args.amount == "5";
```
Use instead: `args.amount == 5`.
"#,
};

/// A server under `lock: enforce` that the lock does not pin, or pins of a server that is
/// not configured.
pub const W0705: Code = Code {
    code: "W0705",
    severity: Severity::Warning,
    name: "lock-coverage",
    doc: r#"
### What it does
Warns about a server with `lock: enforce` or `lock: warn` in `mcpgate.yaml` that
`mcpgate.lock` does not pin (under `enforce` every one of its tools is held), and about
pins of a server that `mcpgate.yaml` no longer names.

### Example
```yaml
servers:
  github: { url: "https://api.githubcopilot.com/mcp/", lock: enforce }
```
without a `github` entry in `mcpgate.lock`. Fix: run `mcpgate lock --server github`.
"#,
};

/// A pinned input schema that does not compile while arguments are validated.
pub const E0706: Code = Code {
    code: "E0706",
    severity: Severity::Error,
    name: "invalid-pinned-schema",
    doc: r#"
### What it does
With `validate_arguments: true` on a server, reports a pinned input schema that is not a
valid JSON Schema. Every call to that tool would be refused.
"#,
};

pub const CODES: &[Code] = &[E0701, W0702, E0703, E0704, W0705, E0706];

/// Reads `mcpgate.lock`; reports why it cannot be used.
pub fn load(file: FileId, text: &str, out: &mut Vec<Diagnostic>) -> Option<Lockfile> {
    let lock = match Lockfile::parse(text) {
        Ok(l) => l,
        Err(e) => {
            let at = crate::source::offset_of(text, e.line, e.col);
            let end = text
                .get(at..)
                .and_then(|r| r.find('\n'))
                .map_or(text.len(), |i| at + i);
            out.push(
                E0701
                    .at(
                        format!("invalid lock: {}", e.message),
                        file,
                        Span::new(at, end.max(at)),
                    )
                    .with_help("rewrite it with `mcpgate lock`"),
            );
            return None;
        }
    };
    let before = out.len();
    for (server, s) in &lock.servers {
        for kind in Kind::ALL {
            for (name, p) in s.items(kind) {
                if !p.consistent(kind, name) {
                    let span = find_entry(text, server, name);
                    out.push(
                        E0701
                            .at(
                                format!(
                                    "the pin of {} `{server}.{name}` does not match its `sha256`",
                                    kind.noun()
                                ),
                                file,
                                span,
                            )
                            .with_label_message("edited by hand?")
                            .with_help("re-pin with `mcpgate lock` after reviewing the server"),
                    );
                }
            }
        }
    }
    (out.len() == before).then_some(lock)
}

/// The span of `"name":` after `"server":` in the lock text (the start when not found).
fn find_entry(text: &str, server: &str, name: &str) -> Span {
    let key = |s: &str| format!("{}:", serde_json::to_string(s).unwrap_or_default());
    let from = text.find(&key(server)).unwrap_or(0);
    let needle = key(name);
    match text.get(from..).and_then(|r| r.find(&needle)) {
        Some(i) => Span::new(from + i, from + i + needle.len() - 1),
        None => Span::new(0, 0),
    }
}

/// Checks the config against the lock: coverage of enforced servers, stale pins, and
/// schemas that must compile.
pub fn check_config(
    lock: Option<(&Lockfile, FileId, &str)>,
    config: &Config,
    config_file: FileId,
    config_text: &str,
    out: &mut Vec<Diagnostic>,
) {
    let key_span = |name: &str| {
        let needle = format!("{name}:");
        config_text
            .find(&needle)
            .map_or(Span::new(0, 0), |i| Span::new(i, i + name.len()))
    };
    for (name, server) in &config.servers {
        let pinned = lock.and_then(|(l, _, _)| l.server(name));
        if let Some(mode @ (LockMode::Enforce | LockMode::Warn)) = server.lock
            && pinned.is_none()
        {
            let effect = if mode == LockMode::Enforce {
                "every one of its tools is held"
            } else {
                "every one of its tools is reported as new"
            };
            out.push(
                W0705
                    .at(
                        format!(
                            "server `{name}` has `lock: {}` but `mcpgate.lock` does not pin it: {effect}",
                            mode.as_str()
                        ),
                        config_file,
                        key_span(name),
                    )
                    .with_help(format!("run `mcpgate lock --server {name}` and commit `mcpgate.lock`")),
            );
        }
        if server.validate_arguments
            && let Some(p) = pinned
        {
            for (tool, t) in &p.tools {
                if let Some(schema) = t.input_schema()
                    && let Err(e) = jsonschema::validator_for(schema)
                {
                    let (file, span) = lock
                        .map_or((config_file, key_span(name)), |(_, f, text)| {
                            (f, find_entry(text, name, tool))
                        });
                    out.push(E0706.at(
                        format!("the pinned input schema of `{name}.{tool}` does not compile: {e}"),
                        file,
                        span,
                    ));
                }
            }
        }
    }
    if let Some((lock, file, text)) = lock {
        for name in lock
            .servers
            .keys()
            .filter(|n| !config.servers.contains_key(*n))
        {
            out.push(
                W0705
                    .at(
                        format!("`mcpgate.lock` pins server `{name}`, which `mcpgate.yaml` does not name"),
                        file,
                        find_entry(text, "servers", name),
                    )
                    .with_help("run `mcpgate lock` to drop the pins of removed servers"),
            );
        }
    }
}

/// The pinned tools a rule applies to; `None` when some target is not a tool target or
/// names a server the lock does not pin (nothing is known then).
pub(super) fn pinned_tools<'a>(
    rule: &ast::Rule,
    lock: &'a Lockfile,
) -> Option<Vec<(&'a str, &'a str, &'a Pinned)>> {
    let mut out = Vec::new();
    for t in &rule.targets {
        let ast::Target::Tool { server, tool } = &t.node else {
            return None;
        };
        let servers = matching_servers(&server.node, lock)?;
        for (sname, s) in servers {
            for (tname, p) in &s.tools {
                if pattern_matches(&tool.node, tname) {
                    out.push((sname, tname.as_str(), p));
                }
            }
        }
    }
    Some(out)
}

fn pattern_matches(p: &Pattern, name: &str) -> bool {
    if p.is_glob() {
        crate::ir::glob_match(p.text.as_bytes(), name.as_bytes(), false)
    } else {
        p.text == name
    }
}

/// The pinned servers a server pattern names; `None` when it names one the lock does not
/// pin (or, as a glob, none that it pins).
fn matching_servers<'a>(
    p: &Pattern,
    lock: &'a Lockfile,
) -> Option<Vec<(&'a str, &'a crate::lock::ServerLock)>> {
    let v: Vec<_> = lock
        .servers
        .iter()
        .filter(|(n, _)| pattern_matches(p, n))
        .map(|(n, s)| (n.as_str(), s))
        .collect();
    (!v.is_empty()).then_some(v)
}

/// Warns about targets that match no pinned tool or prompt.
pub fn check_targets(rule: &ast::Rule, lock: &Lockfile, file: FileId, out: &mut Vec<Diagnostic>) {
    for t in &rule.targets {
        let (server, name, kind) = match &t.node {
            ast::Target::Tool { server, tool } => (server, tool, Kind::Tool),
            ast::Target::Prompt { server, name } => (server, name, Kind::Prompt),
            ast::Target::Resource { .. } => continue,
        };
        let Some(servers) = matching_servers(&server.node, lock) else {
            continue;
        };
        let any = servers
            .iter()
            .any(|(_, s)| s.items(kind).keys().any(|n| pattern_matches(&name.node, n)));
        if any {
            continue;
        }
        let single = servers.len() == 1;
        let candidates: Vec<String> = servers
            .iter()
            .flat_map(|(sn, s)| {
                s.items(kind).keys().map(move |n| {
                    if single {
                        n.clone()
                    } else {
                        format!("{sn}.{n}")
                    }
                })
            })
            .collect();
        let shown = if servers.len() == 1 {
            name.node.text.clone()
        } else {
            format!("{}.{}", server.node.text, name.node.text)
        };
        let help = did_you_mean(&shown, candidates.iter().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| {
                format!(
                    "`mcpgate.lock` pins {} {}s on `{}`; run `mcpgate lock` if the server changed",
                    candidates.len(),
                    kind.noun(),
                    server.node.text
                )
            });
        out.push(
            W0702
                .at(
                    format!(
                        "`{}.{}` matches no pinned {}",
                        server.node.text,
                        name.node.text,
                        kind.noun()
                    ),
                    file,
                    name.span,
                )
                .with_label_message("not in `mcpgate.lock`")
                .with_help(help),
        );
    }
}
