//! `mcpgate fmt`: the canonical layout of a `.mcpg` file.
//!
//! The formatter reprints the syntax tree and keeps every token's text as written (numbers
//! such as `50_000`, string escapes, `/regex/` literals), so only the layout changes:
//!
//! - one rule per line, `@id(...)` on its own line above it, clauses in the order `when`,
//!   `because`, `by`;
//! - a rule longer than [`MAX_WIDTH`] columns puts each clause on a continuation line indented
//!   four spaces, wraps its targets if they alone are too long, and puts each operand of a
//!   long `&&` or `||` chain on its own line, operator first;
//! - every comment is kept: comments above a rule stay above it, a comment at the end of a
//!   line stays at the end of that line (a comment inside a rule forces the long layout so it
//!   can stay next to its clause);
//! - at most one blank line between rules and comment blocks, none at the start, one newline
//!   at the end.
//!
//! Formatting is idempotent and never changes the meaning: `parse(format(x)) == parse(x)`.

use mcpgate_grammar::SyntaxError;
use mcpgate_grammar::ast::{
    BinOp, Comment, Expr, ExprKind, File, Literal, Path, Rule, Segment, Span, Target, UnOp,
};

/// Rules wider than this are broken onto continuation lines.
pub const MAX_WIDTH: usize = 100;

const INDENT: &str = "    ";

/// Formats a whole `.mcpg` source. A source with syntax errors is not formatted; its errors
/// are returned instead.
///
/// # Errors
///
/// Every syntax error of `src`, when there is at least one.
pub fn format_source(src: &str) -> Result<String, Vec<SyntaxError>> {
    let (file, errors) = mcpgate_grammar::parse_file(src);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(format_file(src, &file))
}

/// One top-level thing to print, in source order.
enum Item<'f> {
    Comment(&'f Comment),
    Rule {
        rule: &'f Rule,
        /// Comments inside the rule, by the index of the segment they follow.
        inner: Vec<(usize, &'f Comment)>,
        /// A comment on the line where the rule ends.
        trailing: Option<&'f Comment>,
    },
}

impl Item<'_> {
    fn start(&self) -> u32 {
        match self {
            Item::Comment(c) => c.span.start,
            Item::Rule { rule, .. } => rule.span.start,
        }
    }

    fn end(&self) -> u32 {
        match self {
            Item::Comment(c) => c.span.end,
            Item::Rule { rule, trailing, .. } => trailing.map_or(rule.span.end, |c| c.span.end),
        }
    }
}

/// The parts of a rule that go on their own line in the long layout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Part {
    Id,
    Head,
    When,
    Because,
    By,
}

const PARTS: [Part; 5] = [Part::Id, Part::Head, Part::When, Part::Because, Part::By];

/// Where each present part starts in the source, to attribute the comments inside a rule.
fn part_starts(rule: &Rule) -> Vec<(Part, u32)> {
    let mut starts = Vec::new();
    if rule.id.is_some() {
        starts.push((Part::Id, rule.span.start));
    }
    starts.push((Part::Head, rule.effect.span.start));
    if let Some(e) = &rule.when {
        starts.push((Part::When, e.span.start));
    }
    if let Some(b) = &rule.because {
        starts.push((Part::Because, b.span.start));
    }
    if let Some(g) = rule.by.first() {
        starts.push((Part::By, g.span.start));
    }
    starts
}

fn part_index(part: Part) -> usize {
    PARTS.iter().position(|p| *p == part).unwrap_or(0)
}

fn has_newline(src: &str, from: u32, to: u32) -> bool {
    src.get(from as usize..to as usize)
        .is_none_or(|gap| gap.contains('\n'))
}

fn blank_line_between(src: &str, from: u32, to: u32) -> bool {
    src.get(from as usize..to as usize)
        .is_some_and(|gap| gap.matches('\n').count() >= 2)
}

fn items<'f>(src: &str, file: &'f File) -> Vec<Item<'f>> {
    let mut items = Vec::with_capacity(file.rules.len() + file.comments.len());
    let mut comments = file.comments.iter().peekable();
    for (i, rule) in file.rules.iter().enumerate() {
        let next_start = file.rules.get(i + 1).map_or(u32::MAX, |r| r.span.start);
        let mut inner = Vec::new();
        while let Some(c) = comments.peek() {
            if c.span.start >= rule.span.start {
                break;
            }
            items.push(Item::Comment(c));
            comments.next();
        }
        let starts = part_starts(rule);
        while let Some(c) = comments.peek() {
            if c.span.start >= rule.span.end {
                break;
            }
            let part = starts
                .iter()
                .rev()
                .find(|(_, s)| *s <= c.span.start)
                .map_or(Part::Head, |(p, _)| *p);
            inner.push((part_index(part), *c));
            comments.next();
        }
        // A comment on the rule's last line, unless another rule stands between them.
        let trailing = comments.next_if(|c| {
            c.span.start < next_start && !has_newline(src, rule.span.end, c.span.start)
        });
        items.push(Item::Rule {
            rule,
            inner,
            trailing,
        });
    }
    items.extend(comments.map(Item::Comment));
    items
}

fn format_file(src: &str, file: &File) -> String {
    let mut out = String::new();
    let mut prev_end: Option<u32> = None;
    for item in items(src, file) {
        if let Some(end) = prev_end
            && blank_line_between(src, end, item.start())
        {
            out.push('\n');
        }
        match &item {
            Item::Comment(c) => {
                out.push_str(c.text.trim_end());
                out.push('\n');
            }
            Item::Rule {
                rule,
                inner,
                trailing,
            } => format_rule(src, rule, inner, *trailing, &mut out),
        }
        prev_end = Some(item.end());
    }
    out
}

fn slice(src: &str, span: Span) -> &str {
    src.get(span.range()).unwrap_or("")
}

fn format_rule(
    src: &str,
    rule: &Rule,
    inner: &[(usize, &Comment)],
    trailing: Option<&Comment>,
    out: &mut String,
) {
    if let Some(id) = &rule.id {
        out.push_str(&format!("@id({})", slice(src, id.span)));
    }
    let targets: Vec<String> = rule.targets.iter().map(|t| target(src, &t.node)).collect();
    let mut head_end = String::new();
    if let Some(limit) = &rule.limit {
        head_end.push_str(&format!(
            " {} per {}",
            slice(src, limit.count.span),
            limit.window.node.keyword()
        ));
        if let Some(key) = &limit.key {
            head_end.push_str(&format!(" per {}", key.node.keyword()));
        }
    }
    if let Some(redact) = &rule.redact {
        let mut items: Vec<String> = redact.fields.iter().map(|f| path(&f.node)).collect();
        if !redact.patterns.is_empty() {
            let pats: Vec<&str> = redact.patterns.iter().map(|p| slice(src, p.span)).collect();
            items.push(format!("result matching {}", pats.join(", ")));
        }
        head_end.push(' ');
        head_end.push_str(&items.join(", "));
    }
    let mut clauses: Vec<(Part, String)> = Vec::new();
    if let Some(e) = &rule.when {
        clauses.push((Part::When, format!("when {}", expr(src, e))));
    }
    if let Some(b) = &rule.because {
        clauses.push((Part::Because, format!("because {}", slice(src, b.span))));
    }
    if !rule.by.is_empty() {
        let groups: Vec<&str> = rule.by.iter().map(|g| slice(src, g.span)).collect();
        clauses.push((Part::By, format!("by {}", groups.join(", "))));
    }
    let effect = rule.effect.node.keyword();
    let last_part = clauses.last().map_or(Part::Head, |(p, _)| *p);
    let comments_of = |part: Part| -> Vec<&str> {
        inner
            .iter()
            .filter(|(i, _)| *i == part_index(part))
            .map(|(_, c)| c.text.trim_end())
            .collect()
    };
    // Comments of the last part follow the `;`; the first stays on the rule's last line.
    let mut after: Vec<&str> = comments_of(last_part);
    after.extend(trailing.map(|c| c.text.trim_end()));

    if rule.id.is_some() {
        push_comments(out, &comments_of(Part::Id), "");
    }
    let single = format!(
        "{effect} {}{head_end}{}",
        targets.join(", "),
        clauses
            .iter()
            .map(|(_, c)| format!(" {c}"))
            .collect::<String>()
    );
    let inner_comments = inner
        .iter()
        .any(|(i, _)| *i != part_index(last_part) && *i != part_index(Part::Id));
    let mut lines: Vec<(String, Vec<&str>)> = Vec::new();
    if !inner_comments && single.chars().count() < MAX_WIDTH {
        lines.push((single, Vec::new()));
    } else {
        let head_comments = if last_part == Part::Head {
            Vec::new()
        } else {
            comments_of(Part::Head)
        };
        let head_lines = wrap_head(effect, &targets, &head_end);
        let count = head_lines.len();
        for (i, line) in head_lines.into_iter().enumerate() {
            let comments = if i + 1 == count {
                head_comments.clone()
            } else {
                Vec::new()
            };
            lines.push((line, comments));
        }
        for (part, text) in &clauses {
            let comments = if *part == last_part {
                Vec::new()
            } else {
                comments_of(*part)
            };
            let line = format!("{INDENT}{text}");
            match (&rule.when, *part) {
                (Some(e), Part::When) if line.chars().count() >= MAX_WIDTH => {
                    lines.push((
                        format!("{INDENT}when {}", broken_condition(src, e)),
                        comments,
                    ));
                }
                _ => lines.push((line, comments)),
            }
        }
    }
    let count = lines.len();
    for (i, (line, comments)) in lines.into_iter().enumerate() {
        out.push_str(&line);
        if i + 1 == count {
            out.push(';');
            push_comments(out, &after, "");
        } else {
            push_comments(out, &comments, INDENT);
        }
    }
}

/// Ends the current line with the first comment and puts the others on their own lines.
fn push_comments(out: &mut String, comments: &[&str], indent: &str) {
    let mut rest = comments.iter();
    if let Some(first) = rest.next() {
        out.push_str("  ");
        out.push_str(first);
    }
    out.push('\n');
    for c in rest {
        out.push_str(indent);
        out.push_str(c);
        out.push('\n');
    }
}

/// A condition too long for one line: a chain of `||` or `&&` with one operand per line,
/// the operator leading.
fn broken_condition(src: &str, e: &Expr) -> String {
    let ExprKind::Binary(op @ (BinOp::Or | BinOp::And), ..) = &e.node else {
        return expr(src, e);
    };
    // Flatten the left-leaning chain of the same operator: ((a op b) op c) op d.
    let mut operands = Vec::new();
    let mut cur = e;
    while let ExprKind::Binary(o, a, b) = &cur.node
        && o == op
    {
        operands.push(b.as_ref());
        cur = a;
    }
    operands.push(cur);
    operands.reverse();
    let mut out = String::new();
    for (i, operand) in operands.into_iter().enumerate() {
        // The same parentheses as in the one-line form.
        let text = match op {
            BinOp::Or => or_operand(src, operand, if i == 0 { 1 } else { 2 }),
            _ => wrapped(src, operand, if i == 0 { 2 } else { 3 }),
        };
        if i > 0 {
            out.push_str(&format!("\n{INDENT}{INDENT}{} ", op.symbol()));
        }
        out.push_str(&text);
    }
    out
}

/// `effect targets limit`, wrapped onto continuation lines when too long.
fn wrap_head(effect: &str, targets: &[String], head_end: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = effect.to_string();
    let count = targets.len();
    for (i, t) in targets.iter().enumerate() {
        let piece = if i + 1 == count {
            format!("{t}{head_end}")
        } else {
            format!("{t},")
        };
        let fresh = line.trim().is_empty();
        if !fresh && line.chars().count() + 1 + piece.chars().count() > MAX_WIDTH {
            lines.push(line);
            line = INDENT.to_string();
        } else if !line.ends_with(' ') {
            line.push(' ');
        }
        line.push_str(&piece);
    }
    lines.push(line);
    lines
}

fn target(src: &str, t: &Target) -> String {
    match t {
        Target::Tool { server, tool } => {
            if tool.node.quoted {
                format!("{}.{}", server.node.text, slice(src, tool.span))
            } else {
                format!("{}.{}", server.node.text, tool.node.text)
            }
        }
        Target::Prompt { server, name } => {
            if name.node.quoted {
                format!("prompt {}.{}", server.node.text, slice(src, name.span))
            } else {
                format!("prompt {}.{}", server.node.text, name.node.text)
            }
        }
        Target::Resource { server, uri } => {
            format!("resource {} {}", server.node.text, slice(src, uri.span))
        }
    }
}

/// Binding strength, loosest first: `||`, `&&`, `!`, comparisons, operands.
fn precedence(e: &Expr) -> u8 {
    match &e.node {
        ExprKind::Binary(BinOp::Or, ..) => 1,
        ExprKind::Binary(BinOp::And, ..) => 2,
        ExprKind::Unary(UnOp::Not, _) => 3,
        ExprKind::Binary(..) => 4,
        _ => 5,
    }
}

fn wrapped(src: &str, e: &Expr, min: u8) -> String {
    if precedence(e) < min {
        format!("({})", expr(src, e))
    } else {
        expr(src, e)
    }
}

/// Prints an expression with canonical spacing and the parentheses its structure needs
/// (plus parentheses around `&&` inside `||`, for readers).
fn expr(src: &str, e: &Expr) -> String {
    match &e.node {
        ExprKind::Lit(lit) => literal(src, e.span, lit),
        ExprKind::List(items) => {
            let items: Vec<String> = items.iter().map(|i| expr(src, i)).collect();
            format!("[{}]", items.join(", "))
        }
        ExprKind::Path(p) => path(p),
        ExprKind::Unary(UnOp::Not, inner) => {
            let min = if matches!(inner.node, ExprKind::Unary(..)) {
                3
            } else {
                5
            };
            format!("!{}", wrapped(src, inner, min))
        }
        ExprKind::Binary(BinOp::Or, a, b) => {
            format!("{} || {}", or_operand(src, a, 1), or_operand(src, b, 2))
        }
        ExprKind::Binary(BinOp::And, a, b) => {
            format!("{} && {}", wrapped(src, a, 2), wrapped(src, b, 3))
        }
        ExprKind::Binary(op, a, b) => {
            format!(
                "{} {} {}",
                wrapped(src, a, 5),
                op.symbol(),
                wrapped(src, b, 5)
            )
        }
        ExprKind::Call(name, args) => {
            let args: Vec<String> = args.iter().map(|a| expr(src, a)).collect();
            format!("{}({})", name.node, args.join(", "))
        }
        // Never reached: a tree with errors is not formatted.
        ExprKind::Error => slice(src, e.span).to_string(),
    }
}

/// An operand of `||`: an `&&` gets parentheses for readers, a right-hand `||` because the
/// tree says so.
fn or_operand(src: &str, e: &Expr, min: u8) -> String {
    if matches!(e.node, ExprKind::Binary(BinOp::And, ..)) {
        format!("({})", expr(src, e))
    } else {
        wrapped(src, e, min)
    }
}

fn literal(src: &str, span: Span, lit: &Literal) -> String {
    let text = slice(src, span);
    match lit {
        Literal::Bool(b) => b.to_string(),
        Literal::Null => "null".into(),
        // A negative number may be written `- 5`; keep the digits as written.
        Literal::Int(_) | Literal::Float(_) if text.starts_with('-') => {
            format!(
                "-{}",
                text.split_whitespace()
                    .last()
                    .unwrap_or("")
                    .trim_start_matches('-')
            )
        }
        Literal::Int(_) | Literal::Float(_) | Literal::Str(_) => text.to_string(),
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn path(p: &Path) -> String {
    let mut out = p.root.node.clone();
    for seg in &p.segments {
        match &seg.node {
            Segment::Field(name) if is_ident(name) => {
                out.push('.');
                out.push_str(name);
            }
            Segment::Field(name) => {
                out.push('[');
                out.push_str(&quote(name));
                out.push(']');
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A string literal for `s` in the policy language's escapes.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
