//! Names: path roots, fields and functions of the expression language.

use super::Code;
use crate::diag::{Diagnostic, Severity, did_you_mean};
use crate::ir::{Annotation, PathSeg, Var};
use crate::request::{ATTR_DELEGATION, ATTR_ON_BEHALF_OF};
use crate::source::FileId;
use mcpgate_grammar::ast::{Path, Segment, Spanned};

/// A path that starts with an unknown name.
pub const E0101: Code = Code {
    code: "E0101",
    severity: Severity::Error,
    name: "unknown-root",
    doc: r#"
### What it does
Reports a path whose first name is not one of `args`, `principal`, `agent`, `client`,
`server`, `tool` or `delegation`, with the closest known name.

### Example
```
deny demo.send_payment when arg.amount > 100;
```
Use instead: `args.amount`.
"#,
};

/// A field that the root does not have (`principal.grops`, `client.id`).
pub const E0102: Code = Code {
    code: "E0102",
    severity: Severity::Error,
    name: "unknown-field",
    doc: r#"
### What it does
Reports a field that does not exist: `principal` has `id`, `kind`, `groups`,
`attrs.NAME` and `on_behalf_of`; `agent` has `name`; `client` has `name` and `version`;
`tool` has `read_only`, `destructive`, `idempotent` and `open_world`; `delegation` has
`id`, `reason` and `expires`; `server` has none.

### Why is this bad?
An unknown field is always missing at run time, so the condition would never hold (or, in
a restrictive rule, could never be decided).

### Example
```
allow demo.echo when "ops" in principal.grops;
```
Use instead: `principal.groups`.
"#,
};

/// A call to a function that does not exist or with the wrong number of arguments.
pub const E0103: Code = Code {
    code: "E0103",
    severity: Severity::Error,
    name: "unknown-function",
    doc: r#"
### What it does
Reports a call to a function other than `len(x)` and `exists(path)`, or a call with the
wrong number of arguments.

### Example
```
deny demo.write_note when length(args.text) > 1000;
```
Use instead: `len(args.text)`.
"#,
};

/// `exists()` of something that is not a path.
pub const E0104: Code = Code {
    code: "E0104",
    severity: Severity::Error,
    name: "exists-needs-path",
    doc: r#"
### What it does
Reports `exists(x)` where `x` is not a path such as `args.name` or `principal.attrs.team`.

### Example
```
allow demo.echo when exists("text");
```
Use instead: `exists(args.text)`.
"#,
};

pub const CODES: &[Code] = &[E0101, E0102, E0103, E0104];

/// The roots an expression path can start with.
pub const ROOTS: &[&str] = &[
    "args",
    "principal",
    "agent",
    "client",
    "server",
    "tool",
    "delegation",
];
const PRINCIPAL_FIELDS: &[&str] = &["id", "kind", "groups", "attrs", "on_behalf_of"];
/// The fields of `delegation`: set by the gateway for a call made under a delegation.
const DELEGATION_FIELDS: &[&str] = &["id", "reason", "expires"];

const TOOL_FIELDS: &[&str] = &["read_only", "destructive", "idempotent", "open_world"];
/// The functions of the expression language.
pub const FUNCTIONS: &[&str] = &["len", "exists"];

/// Resolves a path to the request value it reads.
pub fn resolve_path(path: &Path, file: FileId) -> Result<Var, Box<Diagnostic>> {
    let root = path.root.node.as_str();
    let segs = &path.segments;
    let field = |i: usize| -> Option<(&str, &Spanned<Segment>)> {
        let s = segs.get(i)?;
        match &s.node {
            Segment::Field(f) => Some((f.as_str(), s)),
            Segment::Index(_) => Some(("", s)),
        }
    };
    // A path like `principal.id.x`: `principal.id` has no fields.
    let no_more = |from: usize, var: Var, what: &str| -> Result<Var, Box<Diagnostic>> {
        match segs.get(from) {
            None => Ok(var),
            Some(s) => Err(Box::new(
                E0102
                    .at(format!("`{what}` has no fields"), file, s.span)
                    .with_label_message("unexpected field"),
            )),
        }
    };
    match root {
        "args" => Ok(Var::Args(segs.iter().map(|s| to_seg(&s.node)).collect())),
        "principal" => match field(0) {
            None => Err(Box::new(
                E0102
                    .at("`principal` is not a value", file, path.root.span)
                    .with_help("use one of `principal.id`, `principal.kind`, `principal.groups`, `principal.attrs.NAME`"),
            )),
            Some(("id", _)) => no_more(1, Var::PrincipalId, "principal.id"),
            Some(("kind", _)) => no_more(1, Var::PrincipalKind, "principal.kind"),
            Some(("groups", _)) => no_more(1, Var::PrincipalGroups, "principal.groups"),
            Some(("attrs", _)) => Ok(Var::PrincipalAttr(
                segs.iter().skip(1).map(|s| to_seg(&s.node)).collect(),
            )),
            // A view of the attribute only the gateway sets for a delegated call.
            Some(("on_behalf_of", _)) => no_more(
                1,
                Var::PrincipalAttr(vec![PathSeg::Key(ATTR_ON_BEHALF_OF.into())]),
                "principal.on_behalf_of",
            ),
            Some((name, s)) => Err(Box::new(unknown_field("principal", name, PRINCIPAL_FIELDS, s, file))),
        },
        "agent" => match field(0) {
            Some(("name", _)) => no_more(1, Var::AgentName, "agent.name"),
            None => Err(Box::new(
                E0102
                    .at("`agent` is not a value", file, path.root.span)
                    .with_help("use `agent.name`"),
            )),
            Some((name, s)) => Err(Box::new(unknown_field("agent", name, &["name"], s, file))),
        },
        "client" => match field(0) {
            Some(("name", _)) => no_more(1, Var::ClientName, "client.name"),
            Some(("version", _)) => no_more(1, Var::ClientVersion, "client.version"),
            None => Err(Box::new(
                E0102
                    .at("`client` is not a value", file, path.root.span)
                    .with_help("use `client.name` or `client.version`"),
            )),
            Some((name, s)) => Err(Box::new(unknown_field("client", name, &["name", "version"], s, file))),
        },
        "server" => no_more(0, Var::Server, "server"),
        "delegation" => match field(0) {
            Some((name @ ("id" | "reason" | "expires"), _)) => no_more(
                1,
                Var::PrincipalAttr(vec![
                    PathSeg::Key(ATTR_DELEGATION.into()),
                    PathSeg::Key(name.into()),
                ]),
                &format!("delegation.{name}"),
            ),
            None => Err(Box::new(
                E0102
                    .at("`delegation` is not a value", file, path.root.span)
                    .with_help("use `delegation.id`, `delegation.reason` or `delegation.expires`"),
            )),
            Some((name, s)) => Err(Box::new(unknown_field(
                "delegation",
                name,
                DELEGATION_FIELDS,
                s,
                file,
            ))),
        },
        "tool" => match field(0) {
            None => Ok(Var::Tool),
            Some((name, s)) => {
                let ann = match name {
                    "read_only" => Annotation::ReadOnly,
                    "destructive" => Annotation::Destructive,
                    "idempotent" => Annotation::Idempotent,
                    "open_world" => Annotation::OpenWorld,
                    _ => return Err(Box::new(unknown_field("tool", name, TOOL_FIELDS, s, file))),
                };
                no_more(1, Var::ToolAnnotation(ann), &format!("tool.{name}"))
            }
        },
        other => {
            let help = did_you_mean(other, ROOTS.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    "paths start with `args`, `principal`, `agent`, `client`, `server`, `tool` or `delegation`"
                        .into()
                });
            Err(Box::new(
                E0101
                    .at(format!("unknown name `{other}`"), file, path.root.span)
                    .with_label_message("not a known value")
                    .with_help(help),
            ))
        }
    }
}

fn unknown_field(
    root: &str,
    name: &str,
    known: &[&'static str],
    seg: &Spanned<Segment>,
    file: FileId,
) -> Diagnostic {
    let shown = match &seg.node {
        Segment::Field(f) => f.clone(),
        Segment::Index(i) => format!("[{i}]"),
    };
    let list = known
        .iter()
        .map(|k| format!("`{root}.{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let help = match did_you_mean(name, known.iter().copied()) {
        Some(s) => format!("did you mean `{root}.{s}`?"),
        None => format!("known fields: {list}"),
    };
    E0102
        .at(
            format!("unknown field `{shown}` of `{root}`"),
            file,
            seg.span,
        )
        .with_help(help)
}

fn to_seg(seg: &Segment) -> PathSeg {
    match seg {
        Segment::Field(f) => PathSeg::Key(f.clone()),
        Segment::Index(i) => PathSeg::Index(*i),
    }
}
