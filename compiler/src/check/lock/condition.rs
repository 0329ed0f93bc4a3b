//! A rule's condition against the pinned input schemas of the tools it targets: `args.x`
//! must be a property of each schema, and comparisons must agree with its types.

use super::schema_types::{
    Lookup, T_ARRAY, T_BOOL, T_INTEGER, T_NULL, T_NUMBER, T_OBJECT, T_STRING, Types, deref, lookup,
    types_of,
};
use super::{E0703, E0704, pinned_tools};
use crate::diag::{Diagnostic, did_you_mean};
use crate::lock::{Lockfile, Pinned};
use crate::source::FileId;
use mcpgate_grammar::Span;
use mcpgate_grammar::ast::{self, BinOp, Expr, ExprKind, Literal, Segment};
use serde_json::Value;

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
