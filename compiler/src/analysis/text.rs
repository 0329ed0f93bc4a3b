//! Conditions printed back in the policy language, so that reports quote what the author
//! wrote (modulo layout and redundant parentheses).

use crate::ir::{Annotation, CmpOp, Expr, PathSeg, StrOp, Var};
use serde_json::Value;

/// `args.amount > 50000`, `"finance" in principal.groups`, ...
pub fn expr(e: &Expr) -> String {
    wrapped(e, 0)
}

/// Binding strength: `||` 1, `&&` 2, `!` 3, everything else 4.
fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::Or(..) => 1,
        Expr::And(..) => 2,
        Expr::Not(_) => 3,
        Expr::Cmp(..) | Expr::In(..) | Expr::Str(..) | Expr::Matches(..) => 4,
        _ => 5,
    }
}

fn wrapped(e: &Expr, min: u8) -> String {
    let s = bare(e);
    if precedence(e) < min {
        format!("({s})")
    } else {
        s
    }
}

fn bare(e: &Expr) -> String {
    match e {
        Expr::Const(v) => literal(v),
        Expr::List(items) => format!(
            "[{}]",
            items.iter().map(expr).collect::<Vec<_>>().join(", ")
        ),
        Expr::Var(v) => var(v),
        Expr::Not(a) => format!("!{}", wrapped(a, 5)),
        Expr::And(a, b) => format!("{} && {}", wrapped(a, 2), wrapped(b, 3)),
        Expr::Or(a, b) => format!("{} || {}", wrapped(a, 1), wrapped(b, 2)),
        Expr::Cmp(op, a, b) => {
            let op = match op {
                CmpOp::Eq => "==",
                CmpOp::Ne => "!=",
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
            };
            format!("{} {op} {}", wrapped(a, 5), wrapped(b, 5))
        }
        Expr::In(a, b) => format!("{} in {}", wrapped(a, 5), wrapped(b, 5)),
        Expr::Str(op, a, b) => {
            let op = match op {
                StrOp::Contains => "contains",
                StrOp::StartsWith => "starts_with",
                StrOp::EndsWith => "ends_with",
            };
            format!("{} {op} {}", wrapped(a, 5), wrapped(b, 5))
        }
        Expr::Matches(a, re) => format!("{} matches {}", wrapped(a, 5), quote(re)),
        Expr::Len(a) => format!("len({})", expr(a)),
        Expr::Exists(v) => format!("exists({})", var(v)),
    }
}

/// A literal as the language writes it.
pub fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
        v => v.to_string(),
    }
}

fn quote(s: &str) -> String {
    // JSON string escapes are the language's escapes.
    Value::String(s.to_owned()).to_string()
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn path(root: &str, segs: &[PathSeg]) -> String {
    let mut out = root.to_owned();
    for s in segs {
        match s {
            PathSeg::Key(k) if is_ident(k) => {
                out.push('.');
                out.push_str(k);
            }
            PathSeg::Key(k) => out.push_str(&format!("[{}]", quote(k))),
            PathSeg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A request value as the language names it: `args.a.b`, `principal.attrs.level`, ...
pub fn var(v: &Var) -> String {
    match v {
        Var::Args(p) => path("args", p),
        Var::PrincipalId => "principal.id".into(),
        Var::PrincipalKind => "principal.kind".into(),
        Var::PrincipalGroups => "principal.groups".into(),
        Var::PrincipalAttr(p) => match p.as_slice() {
            // The names a policy reads a delegated call's person and delegation by.
            [PathSeg::Key(k)] if k == crate::request::ATTR_ON_BEHALF_OF => {
                "principal.on_behalf_of".into()
            }
            [PathSeg::Key(d), PathSeg::Key(f)]
                if d == crate::request::ATTR_DELEGATION
                    && matches!(f.as_str(), "id" | "reason" | "expires") =>
            {
                format!("delegation.{f}")
            }
            _ => path("principal.attrs", p),
        },
        Var::AgentName => "agent.name".into(),
        Var::ClientName => "client.name".into(),
        Var::ClientVersion => "client.version".into(),
        Var::Server => "server".into(),
        Var::Tool => "tool".into(),
        Var::ToolAnnotation(a) => match a {
            Annotation::ReadOnly => "tool.read_only",
            Annotation::Destructive => "tool.destructive",
            Annotation::Idempotent => "tool.idempotent",
            Annotation::OpenWorld => "tool.open_world",
        }
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{SourceFile, check_files};

    fn condition(src: &str) -> Expr {
        let checked = check_files(vec![SourceFile {
            path: "policies/a.mcpg".into(),
            text: src.into(),
        }]);
        assert!(!checked.has_errors(), "{}", checked.rendered);
        checked.policy.rules[0].condition.clone().unwrap()
    }

    #[test]
    fn printed_conditions_parse_back_to_the_same_meaning() {
        for cond in [
            r#"!(args.path contains "..") && (args.x > 1 || args["odd key"][0] == "y")"#,
            r#"args.base == "main" || !exists(args.base)"#,
            r#"len(principal.attrs.team) >= 2 && args.q matches "^a\\.b$""#,
            r#"!(args.c in ["A", "B"]) && principal.kind != "agent""#,
            r#"principal.on_behalf_of == "ada" && delegation.reason starts_with "T""#,
            r#"delegation.expires < "2030" && principal.attrs.delegation.tools == 1"#,
        ] {
            let e = condition(&format!("allow a.b when {cond};"));
            let printed = expr(&e);
            assert!(!printed.contains("attrs.on_behalf_of"), "{printed}");
            assert_eq!(
                condition(&format!("allow a.b when {printed};")),
                e,
                "{printed}"
            );
        }
    }
}
