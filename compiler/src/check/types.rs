//! Types: operations whose operand types are known at compile time to disagree, and
//! regular expressions.

use super::Code;
use crate::diag::{Diagnostic, Severity};
use crate::source::FileId;
use mcpgate_grammar::ast::{BinOp, Expr, ExprKind, Literal, Segment, UnOp};

/// A comparison whose two sides can never be compared.
pub const E0201: Code = Code {
    code: "E0201",
    severity: Severity::Error,
    name: "incomparable-types",
    doc: r#"
### What it does
Reports a comparison whose operand types are known to disagree: a literal list or
`principal.groups` ordered against a number, a string ordered against a number, a list
compared with `==` to a string. Values of `args` have no known type and are not reported.

### Why is this bad?
At run time such a comparison is never true (`==`) or cannot be decided (`<`), so the rule
does not do what it says.

### Example
```
allow demo.echo when principal.groups > 3;
allow demo.echo when principal.groups == "ops";
```
Use instead: `len(principal.groups) > 3`, `"ops" in principal.groups`.
"#,
};

/// `len()` of a value that has no length.
pub const E0202: Code = Code {
    code: "E0202",
    severity: Severity::Error,
    name: "len-of-scalar",
    doc: r#"
### What it does
Reports `len(x)` where `x` is known to be a number, a boolean or `null`. `len` counts the
characters of a string, the items of a list and the keys of an object.

### Example
```
deny demo.echo when len(42) > 1;
```
"#,
};

/// An operator applied to an operand of the wrong type.
pub const E0203: Code = Code {
    code: "E0203",
    severity: Severity::Error,
    name: "operand-type",
    doc: r#"
### What it does
Reports an operator applied to an operand known to have the wrong type: `&&`, `||`, `!`
and a whole condition need true or false; `in` needs a list or an object on the right;
`contains`, `starts_with`, `ends_with` and `matches` need a string (or, for `contains`, a
list) on the left.

### Example
```
deny demo.echo when "x" in "xyz";
allow demo.add when principal.id && true;
```
"#,
};

/// A `matches` pattern that is not a valid regular expression.
pub const E0204: Code = Code {
    code: "E0204",
    severity: Severity::Error,
    name: "invalid-regex",
    doc: r#"
### What it does
Compiles the pattern of every `matches`, and every pattern of a `redact` rule's
`result matching`, with the Rust `regex` crate and reports the ones that do not compile,
pointing at the string.

### Example
```
deny demo.read_note when args.name matches "([a-z]+";
```
"#,
};

/// A `matches` pattern that is not a string literal.
pub const E0205: Code = Code {
    code: "E0205",
    severity: Severity::Error,
    name: "regex-not-literal",
    doc: r#"
### What it does
Reports `x matches y` where `y` is not a string literal. Patterns are compiled once, when
the policy is compiled, so they cannot come from the request.

### Example
```
deny demo.echo when args.text matches args.pattern;
```
"#,
};

/// A number literal that is not finite.
pub const E0206: Code = Code {
    code: "E0206",
    severity: Severity::Error,
    name: "number-out-of-range",
    doc: r#"
### What it does
Reports a number literal too large to represent (`1e999`).
"#,
};

/// `principal.kind` compared with a kind that does not exist.
pub const E0207: Code = Code {
    code: "E0207",
    severity: Severity::Error,
    name: "unknown-principal-kind-in-condition",
    doc: r#"
### What it does
Reports `principal.kind` compared with `==` or `!=` to a string other than `human`,
`agent`, `service` or `anonymous`.

### Example
```
deny demo.send_payment when principal.kind == "bot";
```
Use instead: `principal.kind == "agent"`.
"#,
};

pub const CODES: &[Code] = &[E0201, E0202, E0203, E0204, E0205, E0206, E0207];

const KINDS: [&str; 4] = ["human", "agent", "service", "anonymous"];

fn is_principal_kind(e: &Expr) -> bool {
    matches!(&e.node, ExprKind::Path(p) if p.root.node == "principal"
        && p.segments.len() == 1
        && matches!(p.segments.first().map(|s| &s.node), Some(Segment::Field(f)) if f == "kind"))
}

/// What is known of a value's type at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Unknown,
    Str,
    Num,
    Bool,
    Null,
    List,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Unknown => "a value",
            Ty::Str => "a string",
            Ty::Num => "a number",
            Ty::Bool => "a boolean",
            Ty::Null => "null",
            Ty::List => "a list",
        }
    }

    fn known(self) -> bool {
        self != Ty::Unknown
    }
}

/// Checks a `when` condition; the diagnostics quote `src`, the text of `file`.
pub fn check_condition(expr: &Expr, src: &str, file: FileId, out: &mut Vec<Diagnostic>) {
    let mut cx = Cx { src, file, out };
    let ty = cx.infer(expr);
    if !matches!(ty, Ty::Bool | Ty::Unknown) {
        let d = E0203
            .at(
                format!("a condition must be true or false, found {}", ty.name()),
                file,
                expr.span,
            )
            .with_label_message(format!("this is {}", ty.name()));
        cx.out.push(d);
    }
}

struct Cx<'a> {
    src: &'a str,
    file: FileId,
    out: &'a mut Vec<Diagnostic>,
}

impl Cx<'_> {
    fn text(&self, e: &Expr) -> String {
        let t = self.src.get(e.span.range()).unwrap_or("this");
        if t.chars().count() > 40 || t.contains('\n') {
            "this".into()
        } else {
            format!("`{t}`")
        }
    }

    fn operand_error(&mut self, code: Code, msg: String, op: &Expr, whole: &Expr, ty: Ty) {
        let what = self.text(op);
        let d = code.at(msg, self.file, whole.span).with_secondary(
            self.file,
            op.span,
            format!("{what} is {}", ty.name()),
        );
        self.out.push(d);
    }

    fn infer(&mut self, e: &Expr) -> Ty {
        match &e.node {
            ExprKind::Lit(l) => match l {
                Literal::Str(_) => Ty::Str,
                Literal::Int(_) => Ty::Num,
                Literal::Float(f) => {
                    if !f.is_finite() {
                        self.out
                            .push(E0206.at("number literal out of range", self.file, e.span));
                    }
                    Ty::Num
                }
                Literal::Bool(_) => Ty::Bool,
                Literal::Null => Ty::Null,
            },
            ExprKind::List(items) => {
                for i in items {
                    self.infer(i);
                }
                Ty::List
            }
            ExprKind::Path(p) => path_type(p),
            ExprKind::Unary(UnOp::Not, inner) => {
                let t = self.infer(inner);
                if !matches!(t, Ty::Bool | Ty::Unknown) {
                    self.operand_error(
                        E0203,
                        format!("`!` needs true or false, found {}", t.name()),
                        inner,
                        e,
                        t,
                    );
                }
                Ty::Bool
            }
            ExprKind::Binary(op, l, r) => {
                let (lt, rt) = (self.infer(l), self.infer(r));
                self.binary(*op, e, l, r, lt, rt);
                Ty::Bool
            }
            ExprKind::Call(name, args) => {
                let tys: Vec<Ty> = args.iter().map(|a| self.infer(a)).collect();
                match name.node.as_str() {
                    "len" => {
                        if let (Some(a), Some(&t)) = (args.first(), tys.first())
                            && matches!(t, Ty::Num | Ty::Bool | Ty::Null)
                        {
                            self.operand_error(
                                E0202,
                                format!(
                                    "`len` of {}: only strings, lists and objects have a length",
                                    t.name()
                                ),
                                a,
                                e,
                                t,
                            );
                        }
                        Ty::Num
                    }
                    "exists" => Ty::Bool,
                    _ => Ty::Unknown,
                }
            }
            ExprKind::Error => Ty::Unknown,
        }
    }

    fn binary(&mut self, op: BinOp, e: &Expr, l: &Expr, r: &Expr, lt: Ty, rt: Ty) {
        let sym = op.symbol();
        match op {
            BinOp::And | BinOp::Or => {
                for (side, t) in [(l, lt), (r, rt)] {
                    if !matches!(t, Ty::Bool | Ty::Unknown) {
                        self.operand_error(
                            E0203,
                            format!("`{sym}` needs true or false, found {}", t.name()),
                            side,
                            e,
                            t,
                        );
                    }
                }
            }
            BinOp::Eq | BinOp::Ne => {
                for (path, lit) in [(l, r), (r, l)] {
                    if is_principal_kind(path)
                        && let ExprKind::Lit(Literal::Str(kind)) = &lit.node
                        && !KINDS.contains(&kind.as_str())
                    {
                        let help = crate::diag::did_you_mean(kind, KINDS).map_or_else(
                            || {
                                "a principal is `human`, `agent`, `service` or `anonymous`"
                                    .to_owned()
                            },
                            |s| format!("did you mean `{s}`?"),
                        );
                        self.out.push(
                            E0207
                                .at(
                                    format!("unknown principal kind `{kind}`"),
                                    self.file,
                                    lit.span,
                                )
                                .with_help(help),
                        );
                    }
                }
                if lt.known() && rt.known() && lt != rt && lt != Ty::Null && rt != Ty::Null {
                    let verdict = if op == BinOp::Eq {
                        "never true"
                    } else {
                        "always true"
                    };
                    let mut d = E0201
                        .at(
                            format!(
                                "`{sym}` compares {} with {}: {verdict}",
                                lt.name(),
                                rt.name()
                            ),
                            self.file,
                            e.span,
                        )
                        .with_secondary(
                            self.file,
                            l.span,
                            format!("{} is {}", self.text(l), lt.name()),
                        )
                        .with_secondary(
                            self.file,
                            r.span,
                            format!("{} is {}", self.text(r), rt.name()),
                        );
                    if lt == Ty::List || rt == Ty::List {
                        let (list, item) = if lt == Ty::List { (l, r) } else { (r, l) };
                        d = d.with_help(format!(
                            "to test membership, write `{} in {}`",
                            self.raw(item),
                            self.raw(list)
                        ));
                    }
                    self.out.push(d);
                }
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let orderable = |t: Ty| matches!(t, Ty::Num | Ty::Str | Ty::Unknown);
                if let Some((side, t)) =
                    [(l, lt), (r, rt)].into_iter().find(|&(_, t)| !orderable(t))
                {
                    let mut d = E0201
                        .at(
                            format!("`{sym}` orders numbers or strings, not {}", t.name()),
                            self.file,
                            e.span,
                        )
                        .with_secondary(
                            self.file,
                            side.span,
                            format!("{} is {}", self.text(side), t.name()),
                        );
                    if t == Ty::List {
                        d = d.with_help(format!(
                            "to compare the number of items, write `len({})`",
                            self.raw(side)
                        ));
                    }
                    self.out.push(d);
                } else if lt.known() && rt.known() && lt != rt {
                    let d = E0201
                        .at(
                            format!(
                                "`{sym}` compares {} with {}: this can never be decided",
                                lt.name(),
                                rt.name()
                            ),
                            self.file,
                            e.span,
                        )
                        .with_secondary(
                            self.file,
                            l.span,
                            format!("{} is {}", self.text(l), lt.name()),
                        )
                        .with_secondary(
                            self.file,
                            r.span,
                            format!("{} is {}", self.text(r), rt.name()),
                        );
                    self.out.push(d);
                }
            }
            BinOp::In => {
                if matches!(rt, Ty::Str | Ty::Num | Ty::Bool | Ty::Null) {
                    let mut d = E0203
                        .at(
                            format!(
                                "`in` needs a list or an object on the right, found {}",
                                rt.name()
                            ),
                            self.file,
                            e.span,
                        )
                        .with_secondary(
                            self.file,
                            r.span,
                            format!("{} is {}", self.text(r), rt.name()),
                        );
                    if rt == Ty::Str {
                        d = d.with_help(format!(
                            "to find a substring, write `{} contains {}`",
                            self.raw(r),
                            self.raw(l)
                        ));
                    }
                    self.out.push(d);
                }
            }
            BinOp::Contains => {
                if matches!(lt, Ty::Num | Ty::Bool | Ty::Null) {
                    self.operand_error(
                        E0203,
                        format!(
                            "`contains` needs a string or a list on the left, found {}",
                            lt.name()
                        ),
                        l,
                        e,
                        lt,
                    );
                }
            }
            BinOp::StartsWith | BinOp::EndsWith => {
                if matches!(lt, Ty::Num | Ty::Bool | Ty::Null | Ty::List) {
                    self.operand_error(
                        E0203,
                        format!("`{sym}` needs a string on the left, found {}", lt.name()),
                        l,
                        e,
                        lt,
                    );
                }
                if matches!(rt, Ty::Num | Ty::Bool | Ty::Null | Ty::List) {
                    self.operand_error(
                        E0203,
                        format!("`{sym}` needs a string on the right, found {}", rt.name()),
                        r,
                        e,
                        rt,
                    );
                }
            }
            BinOp::Matches => {
                if matches!(lt, Ty::Num | Ty::Bool | Ty::Null | Ty::List) {
                    self.operand_error(
                        E0203,
                        format!("`matches` needs a string on the left, found {}", lt.name()),
                        l,
                        e,
                        lt,
                    );
                }
                match &r.node {
                    ExprKind::Lit(Literal::Str(pattern)) => {
                        if let Err(err) = compile_regex(pattern) {
                            let d = E0204
                                .at(format!("invalid regular expression: {}", first_line(&err)), self.file, r.span)
                                .with_label_message("this pattern does not compile")
                                .with_help("patterns use the Rust `regex` syntax: https://docs.rs/regex/#syntax");
                            self.out.push(d);
                        }
                    }
                    ExprKind::Error => {}
                    _ => {
                        let d = E0205
                            .at(
                                "the pattern of `matches` must be a string literal",
                                self.file,
                                r.span,
                            )
                            .with_label_message("not a string literal");
                        self.out.push(d);
                    }
                }
            }
        }
    }

    fn raw(&self, e: &Expr) -> String {
        self.src.get(e.span.range()).unwrap_or("...").to_owned()
    }
}

/// Compiles a `matches` pattern the way the VM does.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// The reason a pattern does not compile, without the regex crate's caret drawing.
pub fn regex_reason(err: &str) -> String {
    first_line(err)
}

fn first_line(err: &str) -> String {
    // The regex crate's message spans several lines with its own caret; keep the reason.
    let reason = err
        .lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .unwrap_or(err);
    reason.trim_start_matches("error:").trim().to_owned()
}

/// The type of a path, when it is known.
fn path_type(p: &mcpgate_grammar::ast::Path) -> Ty {
    let first = match p.segments.first().map(|s| &s.node) {
        Some(Segment::Field(f)) => Some(f.as_str()),
        Some(Segment::Index(_)) => Some(""),
        None => None,
    };
    let rest = p.segments.len().saturating_sub(1);
    match (p.root.node.as_str(), first, rest) {
        ("principal", Some("id" | "kind"), 0) => Ty::Str,
        ("principal", Some("groups"), 0) => Ty::List,
        ("agent", Some("name"), 0) | ("client", Some("name" | "version"), 0) => Ty::Str,
        ("server", None, _) | ("tool", None, _) => Ty::Str,
        ("tool", Some("read_only" | "destructive" | "idempotent" | "open_world"), 0) => Ty::Bool,
        _ => Ty::Unknown,
    }
}
