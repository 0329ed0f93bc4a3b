//! The lock: `mcpgate.lock` must be readable and consistent, and when it pins a server,
//! rules are checked against what the server offered: targets must match a pinned tool,
//! `args.x` must be a property of the pinned input schema, and comparisons must agree with
//! the schema's types.

use super::Code;
use crate::config::{Config, LockMode};
use crate::diag::{Diagnostic, Severity, did_you_mean};
use crate::lock::{Kind, Lockfile, Pinned};
use crate::source::FileId;
use mcpgate_grammar::Span;
use mcpgate_grammar::ast::{self, BinOp, Expr, ExprKind, Literal, Pattern, Segment, Spanned};
use serde_json::Value;

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
fn pinned_tools<'a>(
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

/// Checks `args` paths and their comparisons in a rule's condition against the pinned
/// input schemas of the tools it targets.
pub fn check_condition(
    rule: &ast::Rule,
    lock: &Lockfile,
    src: &str,
    file: FileId,
    out: &mut Vec<Diagnostic>,
) {
    let Some(cond) = &rule.when else { return };
    let Some(tools) = pinned_tools(rule, lock) else {
        return;
    };
    if tools.is_empty() {
        return;
    }
    let cx = Cx {
        tools: &tools,
        src,
        file,
    };
    cx.walk(cond, out);
}

/// JSON types a schema allows (`None`: anything or unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Types(u8);

const T_STRING: u8 = 1;
const T_NUMBER: u8 = 2;
const T_INTEGER: u8 = 4;
const T_BOOL: u8 = 8;
const T_NULL: u8 = 16;
const T_ARRAY: u8 = 32;
const T_OBJECT: u8 = 64;

impl Types {
    fn has(self, t: u8) -> bool {
        self.0 & t != 0
    }

    fn describe(self) -> String {
        let names = [
            (T_STRING, "a string"),
            (T_INTEGER, "an integer"),
            (T_NUMBER, "a number"),
            (T_BOOL, "a boolean"),
            (T_ARRAY, "an array"),
            (T_OBJECT, "an object"),
            (T_NULL, "null"),
        ];
        let v: Vec<&str> = names
            .iter()
            .filter(|(t, _)| self.has(*t))
            .map(|(_, n)| *n)
            .collect();
        match v.as_slice() {
            [] => "nothing".into(),
            [one] => (*one).to_owned(),
            [init @ .., last] => format!("{} or {last}", init.join(", ")),
        }
    }
}

fn type_bit(name: &str) -> u8 {
    match name {
        "string" => T_STRING,
        "number" => T_NUMBER,
        "integer" => T_INTEGER,
        "boolean" => T_BOOL,
        "null" => T_NULL,
        "array" => T_ARRAY,
        "object" => T_OBJECT,
        _ => 0,
    }
}

fn value_bit(v: &Value) -> u8 {
    match v {
        Value::String(_) => T_STRING,
        Value::Number(n) if n.is_i64() || n.is_u64() => T_INTEGER | T_NUMBER,
        Value::Number(_) => T_NUMBER,
        Value::Bool(_) => T_BOOL,
        Value::Null => T_NULL,
        Value::Array(_) => T_ARRAY,
        Value::Object(_) => T_OBJECT,
    }
}

/// Follows local `$ref`s (`#/...`), a bounded number of times.
fn deref<'a>(root: &'a Value, mut s: &'a Value) -> Option<&'a Value> {
    for _ in 0..16 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => s = root.pointer(r.strip_prefix('#')?)?,
            None => return Some(s),
        }
    }
    None
}

/// The types a schema allows, when it says.
fn types_of(root: &Value, s: &Value) -> Option<Types> {
    let s = deref(root, s)?;
    if let Some(v) = s.get("const") {
        return Some(Types(value_bit(v)));
    }
    if let Some(Value::Array(vals)) = s.get("enum") {
        return Some(Types(vals.iter().fold(0, |a, v| a | value_bit(v))));
    }
    match s.get("type") {
        Some(Value::String(t)) => {
            let b = type_bit(t);
            // An integer value is also a number.
            return (b != 0).then_some(Types(if b == T_INTEGER { T_INTEGER } else { b }));
        }
        Some(Value::Array(ts)) => {
            let mut b = 0;
            for t in ts {
                let bit = type_bit(t.as_str()?);
                if bit == 0 {
                    return None;
                }
                b |= bit;
            }
            return Some(Types(b));
        }
        _ => {}
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = s.get(key) {
            let mut b = 0;
            for br in branches {
                b |= types_of(root, br)?.0;
            }
            return Some(Types(b));
        }
    }
    None
}

/// What a path leads to in one schema.
enum Lookup<'a> {
    /// The schema of the value there.
    Schema(&'a Value),
    /// Nothing is known (open schema, combinators).
    Unknown,
    /// The path cannot exist: segment `at` is not allowed; the known property names.
    Missing { at: usize, known: Vec<&'a str> },
}

fn lookup<'a>(root: &'a Value, segs: &[Spanned<Segment>]) -> Lookup<'a> {
    let mut s = root;
    for (i, seg) in segs.iter().enumerate() {
        let Some(cur) = deref(root, s) else {
            return Lookup::Unknown;
        };
        match &seg.node {
            Segment::Field(f) => {
                let props = cur.get("properties").and_then(Value::as_object);
                if let Some(p) = props.and_then(|p| p.get(f)) {
                    s = p;
                    continue;
                }
                match cur.get("additionalProperties") {
                    Some(ap @ Value::Object(_)) => {
                        s = ap;
                        continue;
                    }
                    Some(Value::Bool(true)) => return Lookup::Unknown,
                    _ => {}
                }
                if cur.get("patternProperties").is_some()
                    || ["anyOf", "oneOf", "allOf", "if", "$ref", "dependentSchemas"]
                        .iter()
                        .any(|k| cur.get(*k).is_some())
                {
                    return Lookup::Unknown;
                }
                match props {
                    Some(p) => {
                        return Lookup::Missing {
                            at: i,
                            known: p.keys().map(String::as_str).collect(),
                        };
                    }
                    None => {
                        // A scalar has no fields; an object without `properties` is open.
                        let t = types_of(root, cur);
                        return match t {
                            Some(t) if !t.has(T_OBJECT) && t.0 != 0 => Lookup::Missing {
                                at: i,
                                known: Vec::new(),
                            },
                            _ => Lookup::Unknown,
                        };
                    }
                }
            }
            Segment::Index(_) => match cur.get("items") {
                Some(items @ Value::Object(_)) if cur.get("prefixItems").is_none() => s = items,
                _ => return Lookup::Unknown,
            },
        }
    }
    Lookup::Schema(s)
}

struct Cx<'a> {
    tools: &'a [(&'a str, &'a str, &'a Pinned)],
    src: &'a str,
    file: FileId,
}

/// What is known of an `args` path across the targeted tools.
struct ArgInfo<'a> {
    types: Option<Types>,
    /// String values allowed by an `enum`, when every tool has one.
    enum_strings: Option<Vec<&'a str>>,
}

impl<'a> Cx<'a> {
    fn text(&self, span: Span) -> &str {
        self.src.get(span.range()).unwrap_or("this")
    }

    /// Reports a path no targeted tool can have; returns what the tools say of it.
    fn arg(&self, e: &Expr, out: &mut Vec<Diagnostic>) -> Option<ArgInfo<'a>> {
        let ExprKind::Path(p) = &e.node else {
            return None;
        };
        if p.root.node != "args" || p.segments.is_empty() {
            return None;
        }
        let mut types = 0u8;
        let mut all_typed = true;
        let mut enums: Option<Vec<&'a str>> = Some(Vec::new());
        let mut missing: Option<(usize, Vec<&str>)> = None;
        let mut found = false;
        for (_, _, pinned) in self.tools {
            let schema = pinned.input_schema()?;
            match lookup(schema, &p.segments) {
                Lookup::Unknown => return None,
                Lookup::Missing { at, known } => {
                    if missing.as_ref().is_none_or(|(a, _)| at > *a) {
                        missing = Some((at, known));
                    }
                }
                Lookup::Schema(s) => {
                    found = true;
                    match types_of(schema, s) {
                        Some(t) => types |= t.0,
                        None => all_typed = false,
                    }
                    let strings = deref(schema, s)
                        .and_then(|s| s.get("enum"))
                        .and_then(Value::as_array)
                        .filter(|v| v.iter().all(Value::is_string));
                    match (strings, enums.as_mut()) {
                        (Some(v), Some(acc)) => acc.extend(v.iter().filter_map(Value::as_str)),
                        _ => enums = None,
                    }
                }
            }
        }
        if !found {
            if let Some((at, known)) = missing {
                let seg = p.segments.get(at)?;
                let name = match &seg.node {
                    Segment::Field(f) => f.clone(),
                    Segment::Index(i) => format!("[{i}]"),
                };
                let tools = self.tool_list();
                let help = did_you_mean(&name, known.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| {
                        if known.is_empty() {
                            "only objects have fields".to_owned()
                        } else {
                            format!(
                                "the pinned input schema has {}",
                                known
                                    .iter()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    });
                let message = if known.is_empty() && at > 0 {
                    let end = p.segments.get(at - 1).map_or(e.span.end, |s| s.span.end);
                    let parent = Span::new(e.span.start as usize, end as usize);
                    format!(
                        "`{}` has no field `{name}`: the pinned input schema of {tools} makes it a scalar",
                        self.text(parent)
                    )
                } else {
                    format!(
                        "`{}`: no argument `{name}` in the pinned input schema of {tools}",
                        self.text(e.span)
                    )
                };
                out.push(
                    E0703
                        .at(message, self.file, seg.span)
                        .with_label_message("not in the schema")
                        .with_help(help),
                );
            }
            return None;
        }
        Some(ArgInfo {
            types: all_typed.then_some(Types(types)),
            enum_strings: enums.filter(|v| !v.is_empty()),
        })
    }

    fn tool_list(&self) -> String {
        let mut names: Vec<String> = self
            .tools
            .iter()
            .map(|(s, t, _)| format!("`{s}.{t}`"))
            .collect();
        names.dedup();
        if names.len() > 3 {
            format!(
                "{} and {} other tools",
                names[..2].join(", "),
                names.len() - 2
            )
        } else {
            names.join(", ")
        }
    }

    fn mismatch(&self, e: &Expr, arg: &Expr, t: Types, message: String, out: &mut Vec<Diagnostic>) {
        out.push(E0704.at(message, self.file, e.span).with_secondary(
            self.file,
            arg.span,
            format!(
                "`{}` is {} in the pinned schema of {}",
                self.text(arg.span),
                t.describe(),
                self.tool_list()
            ),
        ));
    }

    fn walk(&self, e: &Expr, out: &mut Vec<Diagnostic>) {
        match &e.node {
            ExprKind::Path(_) => {
                self.arg(e, out);
            }
            ExprKind::List(items) => items.iter().for_each(|i| self.walk(i, out)),
            ExprKind::Unary(_, inner) => self.walk(inner, out),
            ExprKind::Call(name, args) => {
                for a in args {
                    match (name.node.as_str(), self.arg(a, out)) {
                        ("len", Some(ArgInfo { types: Some(t), .. }))
                            if !t.has(T_STRING | T_ARRAY | T_OBJECT) =>
                        {
                            self.mismatch(
                                e,
                                a,
                                t,
                                format!(
                                    "`len` of {}: only strings, arrays and objects have a length",
                                    t.describe()
                                ),
                                out,
                            );
                        }
                        (_, _) => {}
                    }
                }
            }
            ExprKind::Binary(op, l, r) => self.binary(*op, e, l, r, out),
            ExprKind::Lit(_) | ExprKind::Error => {}
        }
    }

    fn binary(&self, op: BinOp, e: &Expr, l: &Expr, r: &Expr, out: &mut Vec<Diagnostic>) {
        if matches!(op, BinOp::And | BinOp::Or) {
            self.walk(l, out);
            self.walk(r, out);
            return;
        }
        let (li, ri) = (self.arg(l, out), self.arg(r, out));
        // Not paths: keep looking inside (lists, calls).
        if li.is_none() && !matches!(l.node, ExprKind::Path(_)) {
            self.walk(l, out);
        }
        if ri.is_none() && !matches!(r.node, ExprKind::Path(_)) {
            self.walk(r, out);
        }
        let sym = op.symbol();
        match op {
            BinOp::Eq | BinOp::Ne => {
                for (info, arg, lit) in [(&li, l, r), (&ri, r, l)] {
                    let (Some(info), ExprKind::Lit(literal)) = (info, &lit.node) else {
                        continue;
                    };
                    let Some(t) = info.types else { continue };
                    let Some(bit) = literal_bit(literal) else {
                        continue;
                    };
                    if bit == T_NULL {
                        continue;
                    }
                    if t.0 & bit == 0 {
                        let verdict = if op == BinOp::Eq {
                            "never true"
                        } else {
                            "always true"
                        };
                        self.mismatch(
                            e,
                            arg,
                            t,
                            format!(
                                "`{sym}` compares `{}` ({}) with {}: {verdict}",
                                self.text(arg.span),
                                t.describe(),
                                literal_name(literal)
                            ),
                            out,
                        );
                    } else if let (Literal::Str(s), Some(allowed)) = (literal, &info.enum_strings)
                        && !allowed.contains(&s.as_str())
                    {
                        let help = did_you_mean(s, allowed.iter().copied()).map_or_else(
                            || {
                                format!(
                                    "the pinned schema allows {}",
                                    allowed
                                        .iter()
                                        .map(|a| format!("`{a}`"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )
                            },
                            |m| format!("did you mean `{m}`?"),
                        );
                        out.push(
                            E0704
                                .at(
                                    format!("`{}` is never `{s}`: the pinned schema of {} does not allow it", self.text(arg.span), self.tool_list()),
                                    self.file,
                                    lit.span,
                                )
                                .with_help(help),
                        );
                    }
                }
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                for (info, arg, other) in [(&li, l, r), (&ri, r, l)] {
                    let Some(ArgInfo { types: Some(t), .. }) = info else {
                        continue;
                    };
                    let want = match &other.node {
                        ExprKind::Lit(Literal::Int(_) | Literal::Float(_)) => T_NUMBER | T_INTEGER,
                        ExprKind::Lit(Literal::Str(_)) => T_STRING,
                        _ => continue,
                    };
                    if !t.has(want) {
                        self.mismatch(
                            e,
                            arg,
                            *t,
                            format!(
                                "`{sym}` orders `{}` ({}) against {}: this can never be decided",
                                self.text(arg.span),
                                t.describe(),
                                if want == T_STRING {
                                    "a string"
                                } else {
                                    "a number"
                                }
                            ),
                            out,
                        );
                    }
                }
            }
            BinOp::In => {
                // `args.x in [..]`: some item must have a type the schema allows.
                if let (Some(ArgInfo { types: Some(t), .. }), ExprKind::List(items)) =
                    (&li, &r.node)
                {
                    let bits: Vec<u8> = items
                        .iter()
                        .filter_map(|i| match &i.node {
                            ExprKind::Lit(lit) => literal_bit(lit),
                            _ => None,
                        })
                        .collect();
                    if bits.len() == items.len()
                        && !items.is_empty()
                        && bits.iter().all(|b| t.0 & b == 0)
                    {
                        self.mismatch(
                            e,
                            l,
                            *t,
                            format!(
                                "no item of the list has the type of `{}` ({})",
                                self.text(l.span),
                                t.describe()
                            ),
                            out,
                        );
                    }
                }
                if let Some(ArgInfo { types: Some(t), .. }) = &ri
                    && !t.has(T_ARRAY | T_OBJECT)
                {
                    self.mismatch(
                        e,
                        r,
                        *t,
                        format!(
                            "`in` needs an array or an object on the right; `{}` is {}",
                            self.text(r.span),
                            t.describe()
                        ),
                        out,
                    );
                }
            }
            BinOp::Contains | BinOp::StartsWith | BinOp::EndsWith | BinOp::Matches => {
                if let Some(ArgInfo { types: Some(t), .. }) = &li {
                    let ok = t.has(T_STRING) || (op == BinOp::Contains && t.has(T_ARRAY));
                    if !ok {
                        self.mismatch(
                            e,
                            l,
                            *t,
                            format!(
                                "`{sym}` needs a string on the left; `{}` is {}",
                                self.text(l.span),
                                t.describe()
                            ),
                            out,
                        );
                    }
                }
            }
            BinOp::And | BinOp::Or => {}
        }
    }
}

fn literal_bit(l: &Literal) -> Option<u8> {
    Some(match l {
        Literal::Str(_) => T_STRING,
        Literal::Int(_) => T_INTEGER | T_NUMBER,
        // `5.0 == 5` holds: an integral float may equal an integer.
        Literal::Float(f) if f.fract() == 0.0 => T_INTEGER | T_NUMBER,
        Literal::Float(_) => T_NUMBER,
        Literal::Bool(_) => T_BOOL,
        Literal::Null => T_NULL,
    })
}

fn literal_name(l: &Literal) -> &'static str {
    match l {
        Literal::Str(_) => "a string",
        Literal::Int(_) | Literal::Float(_) => "a number",
        Literal::Bool(_) => "a boolean",
        Literal::Null => "null",
    }
}
