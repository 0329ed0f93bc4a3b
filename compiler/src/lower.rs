//! Lowering: syntax trees (from the DSL, or built from YAML) to the IR, resolving names
//! on the way. Checks that need spans run on the syntax tree, before lowering.

use crate::check::{names, rules, types};
use crate::diag::{Diagnostic, Severity};
use crate::ir::{self, CmpOp, Expr, NamePattern, StrOp, UriPattern};
use crate::source::FileId;
use mcpgate_grammar::ast::{self, BinOp, ExprKind, Literal, Pattern, UnOp};
use serde_json::{Number, Value};

/// A rule as written, in DSL or YAML form, with the file it came from.
#[derive(Clone, Debug)]
pub struct SourceRule {
    pub file: FileId,
    /// 1-based position of the rule in its file (the `#N` of its default id).
    pub ordinal: usize,
    pub rule: ast::Rule,
}

/// The id of a rule: `@id`/`id:`, or `path#N`.
pub fn rule_id(rule: &SourceRule, path: &str) -> String {
    match &rule.rule.id {
        Some(id) => id.node.clone(),
        None => format!("{path}#{}", rule.ordinal),
    }
}

/// Lowers one rule, or `None` when it has errors (reported to `out`).
pub fn lower_rule(
    rule: &SourceRule,
    path: &str,
    source: ir::SourceLoc,
    out: &mut Vec<Diagnostic>,
) -> Option<ir::Rule> {
    let errors_before = count_errors(out);
    let r = &rule.rule;
    let targets: Vec<ir::Target> = r.targets.iter().map(|t| lower_target(&t.node)).collect();
    let condition = r.when.as_ref().and_then(|w| lower_expr(w, rule.file, out));
    let limit = r.limit.as_ref().map(|l| ir::Limit {
        count: l.count.node,
        window: l.window.node,
        key: l.key.as_ref().map_or(ast::LimitKey::Principal, |k| k.node),
    });
    let redact = r
        .redact
        .as_ref()
        .and_then(|x| lower_redact(x, rule.file, out));
    if count_errors(out) > errors_before {
        return None;
    }
    Some(ir::Rule {
        id: rule_id(rule, path),
        effect: r.effect.node,
        targets,
        condition,
        reason: r.because.as_ref().map(|b| b.node.clone()),
        approvers: r.by.iter().map(|b| b.node.clone()).collect(),
        limit,
        redact,
        source,
    })
}

/// Lowers what a `redact` rule masks; `None` when a path or pattern is wrong (reported).
fn lower_redact(r: &ast::Redact, file: FileId, out: &mut Vec<Diagnostic>) -> Option<ir::Redaction> {
    let mut ok = true;
    let mut red = ir::Redaction::default();
    for f in &r.fields {
        match rules::redact_field(&f.node, f.span, file) {
            Ok(rules::RedactField::Arg(path)) => red.args.push(path),
            Ok(rules::RedactField::Result(name)) => red.fields.push(name),
            Err(d) => {
                out.push(*d);
                ok = false;
            }
        }
    }
    for p in &r.patterns {
        // Reported by the checker (E0204).
        if types::compile_regex(&p.node).is_err() {
            ok = false;
        }
        red.patterns.push(p.node.clone());
    }
    ok.then_some(red)
}

fn count_errors(out: &[Diagnostic]) -> usize {
    out.iter().filter(|d| d.severity == Severity::Error).count()
}

fn name_pattern(p: &Pattern) -> NamePattern {
    if p.is_glob() {
        NamePattern::Glob(p.text.clone())
    } else {
        NamePattern::Exact(p.text.clone())
    }
}

/// Lowers one target.
pub fn lower_target(t: &ast::Target) -> ir::Target {
    match t {
        ast::Target::Tool { server, tool } => ir::Target::Tool {
            server: name_pattern(&server.node),
            tool: name_pattern(&tool.node),
        },
        ast::Target::Prompt { server, name } => ir::Target::Prompt {
            server: name_pattern(&server.node),
            name: name_pattern(&name.node),
        },
        ast::Target::Resource { server, uri } => ir::Target::Resource {
            server: name_pattern(&server.node),
            uri: UriPattern(uri.node.text.clone()),
        },
    }
}

/// Lowers an expression, reporting unknown names; `None` when it cannot be lowered.
pub fn lower_expr(e: &ast::Expr, file: FileId, out: &mut Vec<Diagnostic>) -> Option<Expr> {
    let lower = |x: &ast::Expr, out: &mut Vec<Diagnostic>| lower_expr(x, file, out).map(Box::new);
    Some(match &e.node {
        ExprKind::Lit(l) => Expr::Const(literal(l)?),
        ExprKind::List(items) => {
            let items: Vec<Option<Expr>> = items.iter().map(|i| lower_expr(i, file, out)).collect();
            let items: Vec<Expr> = items.into_iter().collect::<Option<_>>()?;
            if items.iter().all(|i| matches!(i, Expr::Const(_))) {
                Expr::Const(Value::Array(
                    items
                        .into_iter()
                        .filter_map(|i| match i {
                            Expr::Const(v) => Some(v),
                            _ => None,
                        })
                        .collect(),
                ))
            } else {
                Expr::List(items)
            }
        }
        ExprKind::Path(p) => match names::resolve_path(p, file) {
            Ok(var) => Expr::Var(var),
            Err(d) => {
                out.push(*d);
                return None;
            }
        },
        ExprKind::Unary(UnOp::Not, x) => Expr::Not(lower(x, out)?),
        ExprKind::Binary(op, l, r) => {
            let (lo, ro) = (lower(l, out), lower(r, out));
            let (l2, r2) = (lo?, ro?);
            match op {
                BinOp::And => Expr::And(l2, r2),
                BinOp::Or => Expr::Or(l2, r2),
                BinOp::Eq => Expr::Cmp(CmpOp::Eq, l2, r2),
                BinOp::Ne => Expr::Cmp(CmpOp::Ne, l2, r2),
                BinOp::Lt => Expr::Cmp(CmpOp::Lt, l2, r2),
                BinOp::Le => Expr::Cmp(CmpOp::Le, l2, r2),
                BinOp::Gt => Expr::Cmp(CmpOp::Gt, l2, r2),
                BinOp::Ge => Expr::Cmp(CmpOp::Ge, l2, r2),
                BinOp::In => Expr::In(l2, r2),
                BinOp::Contains => Expr::Str(StrOp::Contains, l2, r2),
                BinOp::StartsWith => Expr::Str(StrOp::StartsWith, l2, r2),
                BinOp::EndsWith => Expr::Str(StrOp::EndsWith, l2, r2),
                BinOp::Matches => match *r2 {
                    // The checker reported anything else (E0205) and bad patterns (E0204).
                    Expr::Const(Value::String(p)) if types::compile_regex(&p).is_ok() => {
                        Expr::Matches(l2, p)
                    }
                    _ => return None,
                },
            }
        }
        ExprKind::Call(name, args) => lower_call(e, name, args, file, out)?,
        ExprKind::Error => return None,
    })
}

fn lower_call(
    e: &ast::Expr,
    name: &ast::Spanned<String>,
    args: &[ast::Expr],
    file: FileId,
    out: &mut Vec<Diagnostic>,
) -> Option<Expr> {
    let arity = |n: usize, out: &mut Vec<Diagnostic>| {
        if args.len() == n {
            true
        } else {
            out.push(names::E0103.at(
                format!("`{}` takes {n} argument, found {}", name.node, args.len()),
                file,
                e.span,
            ));
            false
        }
    };
    match name.node.as_str() {
        "len" => {
            if !arity(1, out) {
                return None;
            }
            Some(Expr::Len(Box::new(lower_expr(args.first()?, file, out)?)))
        }
        "exists" => {
            if !arity(1, out) {
                return None;
            }
            let arg = args.first()?;
            match &arg.node {
                ExprKind::Path(p) => match names::resolve_path(p, file) {
                    Ok(var) => Some(Expr::Exists(var)),
                    Err(d) => {
                        out.push(*d);
                        None
                    }
                },
                _ => {
                    out.push(
                        names::E0104
                            .at("`exists` takes a path", file, arg.span)
                            .with_label_message("not a path")
                            .with_help("write a path such as `exists(args.name)`"),
                    );
                    None
                }
            }
        }
        other => {
            let help = crate::diag::did_you_mean(other, names::FUNCTIONS.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| "the functions are `len(x)` and `exists(path)`".into());
            out.push(
                names::E0103
                    .at(format!("unknown function `{other}`"), file, name.span)
                    .with_help(help),
            );
            None
        }
    }
}

fn literal(l: &Literal) -> Option<Value> {
    Some(match l {
        Literal::Str(s) => Value::String(s.clone()),
        Literal::Int(i) => Value::from(*i),
        // Non-finite literals are reported by the type checker (E0206).
        Literal::Float(f) => Value::Number(Number::from_f64(*f)?),
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Null => Value::Null,
    })
}
