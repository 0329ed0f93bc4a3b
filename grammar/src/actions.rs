//! The semantic actions of the grammar: building nodes and reporting mistakes that the
//! grammar accepts on purpose so it can name them well (an unknown effect, a misspelt window,
//! a bad server name). Each records a [`SyntaxError`] and returns `None` instead of failing.

use crate::SyntaxError;
use crate::ast::{
    BinOp, Effect, Expr, ExprKind, Limit, LimitKey, Literal, Path, Pattern, Redact, Rule, Segment,
    Span, Spanned, Target, Window,
};

/// A byte range as a [`Span`].
pub fn span(l: usize, r: usize) -> Span {
    Span::new(l, r)
}

/// A name-like token handed to the actions.
#[derive(Clone, Debug)]
pub enum Name<'a> {
    /// An identifier or a glued word, as written.
    Word(&'a str),
    /// `[3]` (digits as written).
    Index(&'a str),
    /// `["key"]`
    Key(String),
}

/// One clause after the targets, with the span of its keyword.
#[derive(Clone, Debug)]
pub enum Clause {
    When(Span, Expr),
    Because(Span, Spanned<String>),
    By(Span, Vec<Spanned<String>>),
}

/// The pieces of a rule as parsed, before validation.
pub struct RuleParts {
    pub start: usize,
    pub id: Option<Option<Spanned<String>>>,
    pub effect: Option<Spanned<Effect>>,
    pub targets: Vec<Option<Spanned<Target>>>,
    pub limit: Option<Option<Limit>>,
    pub redact: Option<Option<Redact>>,
    pub clauses: Vec<Clause>,
    pub end: usize,
}

fn err(errs: &mut Vec<SyntaxError>, message: String, span: Span, help: Option<String>) {
    errs.push(SyntaxError {
        message,
        span,
        help,
    });
}

/// Assembles a rule; `None` when a part was already reported as broken.
pub fn rule(parts: RuleParts, errs: &mut Vec<SyntaxError>) -> Option<Rule> {
    let RuleParts {
        start,
        id,
        effect,
        targets,
        limit,
        redact,
        clauses,
        end,
    } = parts;
    let mut ok = true;
    let id = match id {
        Some(Some(id)) => Some(id),
        Some(None) => {
            ok = false;
            None
        }
        None => None,
    };
    let effect = effect?;
    let mut good_targets = Vec::with_capacity(targets.len());
    for target in targets {
        match target {
            Some(t) => good_targets.push(t),
            None => ok = false,
        }
    }
    let limit = match limit {
        Some(Some(limit)) => Some(limit),
        Some(None) => {
            ok = false;
            None
        }
        None => None,
    };
    match (&effect.node, &limit) {
        (Effect::Limit, None) if ok => {
            err(
                errs,
                "expected a rate after the targets of `limit`".into(),
                effect.span,
                Some("write the rate as in `limit stripe.* 100 per hour;`".into()),
            );
            ok = false;
        }
        (Effect::Limit, _) | (_, None) => {}
        (other, Some(limit)) => {
            err(
                errs,
                format!("a rate is only allowed on `limit` rules, not on `{other}`"),
                limit.count.span.join(limit.window.span),
                Some(format!(
                    "write `limit` instead of `{other}`, or remove the rate"
                )),
            );
            ok = false;
        }
    }
    let redact = match redact {
        Some(Some(redact)) => Some(redact),
        Some(None) => {
            ok = false;
            None
        }
        None => None,
    };
    match (&effect.node, &redact) {
        (Effect::Redact, None) if ok => {
            err(
                errs,
                "expected what to redact after the targets of `redact`".into(),
                effect.span,
                Some(
                    "name argument paths or result fields, as in `redact stripe.* args.card_number;`"
                        .into(),
                ),
            );
            ok = false;
        }
        (Effect::Redact, _) | (_, None) => {}
        (other, Some(redact)) => {
            let at = redact_span(redact).unwrap_or(effect.span);
            err(
                errs,
                format!("fields to redact are only allowed on `redact` rules, not on `{other}`"),
                at,
                Some(format!(
                    "write `redact` instead of `{other}`, or end the targets with `;`"
                )),
            );
            ok = false;
        }
    }
    let mut when = None;
    let mut because = None;
    let mut by: Option<Vec<Spanned<String>>> = None;
    for clause in clauses {
        let (keyword, at, dup) = match clause {
            Clause::When(at, e) => ("when", at, when.replace(e).is_some()),
            Clause::Because(at, s) => ("because", at, because.replace(s).is_some()),
            Clause::By(at, g) => ("by", at, by.replace(g).is_some()),
        };
        if dup {
            err(
                errs,
                format!("a rule takes one `{keyword}` clause"),
                at,
                Some(match keyword {
                    "when" => "combine the conditions with `&&` or `||`".into(),
                    "by" => "list every group in one clause: `by \"a\", \"b\"`".into(),
                    _ => "give one reason".into(),
                }),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    Some(Rule {
        id,
        effect,
        targets: good_targets,
        limit,
        redact,
        when,
        because,
        by: by.unwrap_or_default(),
        span: span(start, end),
    })
}

/// The error for a rule whose `;` is missing, placed right after its last token.
pub fn missing_semicolon(at: usize) -> SyntaxError {
    SyntaxError {
        message: "expected `;` after the rule".into(),
        span: span(at, at),
        help: Some("every rule ends with `;`".into()),
    }
}

/// `@id("...")`
pub fn attribute(
    name: &str,
    nl: usize,
    nr: usize,
    value: String,
    vl: usize,
    vr: usize,
    errs: &mut Vec<SyntaxError>,
) -> Option<Spanned<String>> {
    if name != "id" {
        err(
            errs,
            format!("unknown attribute `@{name}`"),
            span(nl, nr),
            Some("the only attribute is `@id(\"...\")`".into()),
        );
        return None;
    }
    if value.trim().is_empty() {
        err(errs, "a rule id cannot be empty".into(), span(vl, vr), None);
        return None;
    }
    Some(Spanned::new(value, span(vl, vr)))
}

/// The effect keyword; an unknown one gets its own error with a suggestion.
pub fn effect(
    name: &str,
    l: usize,
    r: usize,
    errs: &mut Vec<SyntaxError>,
) -> Option<Spanned<Effect>> {
    if let Some(effect) = Effect::from_keyword(name) {
        return Some(Spanned::new(effect, span(l, r)));
    }
    let known = ["allow", "deny", "hide", "approve", "limit", "redact"];
    let help = match suggest(name, &known) {
        Some(s) => format!("did you mean `{s}`?"),
        None => "a rule starts with `allow`, `deny`, `hide`, `approve`, `limit` or `redact`".into(),
    };
    err(
        errs,
        format!("unknown effect `{name}`"),
        span(l, r),
        Some(help),
    );
    None
}

/// The closest candidate within a small edit distance, for "did you mean" help.
pub fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let best = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            cur[j + 1] = best;
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

fn valid_server(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' || b == b'*'
        })
}

fn server_error(text: &str, at: Span, errs: &mut Vec<SyntaxError>) {
    err(
        errs,
        format!("invalid server name `{text}`"),
        at,
        Some("server names use lowercase letters, digits, `_` and `-`, with `*` as a glob".into()),
    );
}

/// A server name alone (`resource fs "..."`, `fs."odd name"`).
pub fn server_name(
    name: Name<'_>,
    l: usize,
    r: usize,
    errs: &mut Vec<SyntaxError>,
) -> Option<Spanned<Pattern>> {
    let Name::Word(text) = name else {
        return None;
    };
    if !valid_server(text) {
        server_error(text, span(l, r), errs);
        return None;
    }
    Some(Spanned::new(
        Pattern {
            text: text.to_string(),
            quoted: false,
        },
        span(l, r),
    ))
}

/// `server.tool` written as one word: the server is everything before the first dot.
pub fn target_name(
    name: Name<'_>,
    l: usize,
    r: usize,
    errs: &mut Vec<SyntaxError>,
) -> Option<(Spanned<Pattern>, Spanned<Pattern>)> {
    let Name::Word(text) = name else {
        return None;
    };
    let Some((server, tool)) = text.split_once('.') else {
        err(
            errs,
            format!("expected a target `server.tool`, found `{text}`"),
            span(l, r),
            Some(format!(
                "name the tool after a dot, as in `{text}.some_tool` or `{text}.*`"
            )),
        );
        return None;
    };
    let server_span = span(l, l + server.len());
    if !valid_server(server) {
        server_error(server, server_span, errs);
        return None;
    }
    let tool_span = span(l + server.len() + 1, r);
    if tool.is_empty() {
        err(
            errs,
            format!("expected a tool name after `{server}.`"),
            tool_span,
            None,
        );
        return None;
    }
    Some((
        Spanned::new(
            Pattern {
                text: server.to_string(),
                quoted: false,
            },
            server_span,
        ),
        Spanned::new(
            Pattern {
                text: tool.to_string(),
                quoted: false,
            },
            tool_span,
        ),
    ))
}

/// `N per WINDOW [per KEY]`
#[allow(clippy::too_many_arguments)]
pub fn limit(
    count: &str,
    cl: usize,
    cr: usize,
    window: &str,
    wl: usize,
    wr: usize,
    key: Option<(usize, &str, usize)>,
    errs: &mut Vec<SyntaxError>,
) -> Option<Limit> {
    let digits: String = count.chars().filter(|c| *c != '_').collect();
    let count = match digits.parse::<u64>() {
        Ok(n) => Spanned::new(n, span(cl, cr)),
        Err(_) => {
            err(
                errs,
                format!("the count `{count}` is too large"),
                span(cl, cr),
                None,
            );
            return None;
        }
    };
    let Some(window_kw) = Window::from_keyword(window) else {
        let known = ["second", "minute", "hour", "day"];
        let help = match suggest(window.trim_end_matches('s'), &known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "a rate is counted per `second`, `minute`, `hour` or `day`".into(),
        };
        err(
            errs,
            format!("unknown time window `{window}`"),
            span(wl, wr),
            Some(help),
        );
        return None;
    };
    let key = match key {
        None => None,
        Some((kl, name, kr)) => match LimitKey::from_keyword(name) {
            Some(k) => Some(Spanned::new(k, span(kl, kr))),
            None => {
                let known = ["principal", "agent", "server", "tool"];
                let help = match suggest(name, &known) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "a limit is kept per `principal`, `agent`, `server` or `tool`".into(),
                };
                err(
                    errs,
                    format!("unknown limit key `{name}`"),
                    span(kl, kr),
                    Some(help),
                );
                return None;
            }
        },
    };
    Some(Limit {
        count,
        window: Spanned::new(window_kw, span(wl, wr)),
        key,
    })
}

/// A binary node spanning both operands.
pub fn binary(op: BinOp, a: Expr, b: Expr) -> Expr {
    let at = a.span.join(b.span);
    Spanned::new(ExprKind::Binary(op, Box::new(a), Box::new(b)), at)
}

/// `( e )`: the node keeps the parentheses in its span, except a literal, whose span stays
/// exactly its text.
pub fn paren(e: Expr, l: usize, r: usize) -> Expr {
    match e.node {
        ExprKind::Lit(_) => e,
        node => Spanned::new(node, span(l, r)),
    }
}

/// An integer literal, `-` included when written.
pub fn int(text: &str, negative: bool, l: usize, r: usize, errs: &mut Vec<SyntaxError>) -> Expr {
    let mut digits: String = text.chars().filter(|c| *c != '_').collect();
    if negative {
        digits.insert(0, '-');
    }
    match digits.parse::<i64>() {
        Ok(n) => Spanned::new(ExprKind::Lit(Literal::Int(n)), span(l, r)),
        Err(_) => {
            err(
                errs,
                format!("the integer `{text}` is too large"),
                span(l, r),
                Some("integers range from -9223372036854775808 to 9223372036854775807".into()),
            );
            Spanned::new(ExprKind::Error, span(l, r))
        }
    }
}

/// A float literal, `-` included when written.
pub fn float(text: &str, negative: bool, l: usize, r: usize) -> Expr {
    let digits: String = text.chars().filter(|c| *c != '_').collect();
    // The lexer's pattern (digits `.` digits) always parses.
    let value = digits.parse::<f64>().unwrap_or(0.0);
    let value = if negative { -value } else { value };
    Spanned::new(ExprKind::Lit(Literal::Float(value)), span(l, r))
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn path_error(text: &str, at: Span, errs: &mut Vec<SyntaxError>) {
    let help = if text
        .split('.')
        .any(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    {
        "index a list with brackets: `args.items[0]`"
    } else {
        "a path is `args.name.name`; quote other keys: `args[\"odd-key\"]`"
    };
    err(
        errs,
        format!("invalid path `{text}`"),
        at,
        Some(help.into()),
    );
}

/// Adds the dotted fields of `text` (which may start with a dot) to `segments`.
fn push_fields(text: &str, mut at: usize, segments: &mut Vec<Spanned<Segment>>) -> bool {
    for (i, field) in text.split('.').enumerate() {
        if i == 0 && field.is_empty() {
            at += 1;
            continue;
        }
        if !is_ident(field) {
            return false;
        }
        segments.push(Spanned::new(
            Segment::Field(field.to_string()),
            span(at, at + field.len()),
        ));
        at += field.len() + 1;
    }
    true
}

/// `root(.field | [index] | ["key"])*`, from a head word and its suffixes.
pub fn path(
    head: Name<'_>,
    suffixes: Vec<(Name<'_>, usize, usize)>,
    l: usize,
    r: usize,
    errs: &mut Vec<SyntaxError>,
) -> Expr {
    let whole = span(l, r);
    let broken = Spanned::new(ExprKind::Error, whole);
    let Name::Word(text) = head else {
        return broken;
    };
    let (root, rest) = text.split_once('.').unwrap_or((text, ""));
    if !is_ident(root) {
        path_error(text, span(l, l + text.len()), errs);
        return broken;
    }
    let mut segments = Vec::new();
    if !rest.is_empty() || text.contains('.') {
        let ok = push_fields(rest, l + root.len() + 1, &mut segments) && !rest.is_empty();
        if !ok {
            path_error(text, span(l, l + text.len()), errs);
            return broken;
        }
    }
    for (suffix, sl, sr) in suffixes {
        match suffix {
            Name::Index(digits) => {
                let clean: String = digits.chars().filter(|c| *c != '_').collect();
                match clean.parse::<u64>() {
                    Ok(i) => segments.push(Spanned::new(Segment::Index(i), span(sl, sr))),
                    Err(_) => {
                        err(
                            errs,
                            format!("the index `{digits}` is too large"),
                            span(sl, sr),
                            None,
                        );
                        return broken;
                    }
                }
            }
            Name::Key(key) => segments.push(Spanned::new(Segment::Field(key), span(sl, sr))),
            Name::Word(word) => {
                if !word.starts_with('.') {
                    err(
                        errs,
                        format!("unexpected `{word}` after a path"),
                        span(sl, sr),
                        Some("compare with an operator such as `==` or `in`".into()),
                    );
                    return broken;
                }
                if !push_fields(word, sl, &mut segments) {
                    path_error(word, span(sl, sr), errs);
                    return broken;
                }
            }
        }
    }
    Spanned::new(
        ExprKind::Path(Path {
            root: Spanned::new(root.to_string(), span(l, l + root.len())),
            segments,
        }),
        whole,
    )
}

/// A path of a `redact` rule as parsed, turned into a [`Path`] by [`redact`].
pub struct RawPath<'a> {
    pub head: Name<'a>,
    pub suffixes: Vec<(Name<'a>, usize, usize)>,
    pub l: usize,
    pub r: usize,
}

fn redact_span(r: &Redact) -> Option<Span> {
    let first = r
        .fields
        .first()
        .map(|f| f.span)
        .or_else(|| r.patterns.first().map(|p| p.span))?;
    let last = r
        .patterns
        .last()
        .map(|p| p.span)
        .or_else(|| r.fields.last().map(|f| f.span))?;
    Some(first.join(last))
}

/// `FIELD, ... [result matching PATTERN, ...]`: the paths, with a trailing bare `result`
/// taken as the subject of `matching`.
pub fn redact(
    fields: Vec<RawPath<'_>>,
    matching: Option<(Spanned<&str>, Vec<Spanned<String>>)>,
    errs: &mut Vec<SyntaxError>,
) -> Option<Redact> {
    let mut ok = true;
    let mut paths = Vec::with_capacity(fields.len());
    for f in fields {
        let whole = span(f.l, f.r);
        match path(f.head, f.suffixes, f.l, f.r, errs).node {
            ExprKind::Path(p) => paths.push(Spanned::new(p, whole)),
            _ => ok = false,
        }
    }
    let mut patterns = Vec::new();
    if let Some((word, pats)) = matching {
        if word.node != "matching" {
            err(
                errs,
                format!("unexpected `{}` after the fields to redact", word.node),
                word.span,
                Some(
                    "separate fields with `,`; mask patterns with `result matching \"regex\"`"
                        .into(),
                ),
            );
            return None;
        }
        let bare_result = paths.last().is_some_and(|p: &Spanned<Path>| {
            p.node.root.node == "result" && p.node.segments.is_empty()
        });
        if !bare_result {
            let at = paths.last().map_or(word.span, |p| p.span);
            err(
                errs,
                "`matching` applies to `result`".into(),
                at,
                Some("write `result matching \"regex\"`".into()),
            );
            return None;
        }
        paths.pop();
        patterns = pats;
    }
    if !ok {
        return None;
    }
    Some(Redact {
        fields: paths,
        patterns,
    })
}
