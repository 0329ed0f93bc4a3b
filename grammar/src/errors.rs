//! Turns lalrpop's parse errors into [`SyntaxError`]s a policy author can act on: the
//! unexpected token in backticks, what was expected in words, the token it follows.

use crate::SyntaxError;
use crate::ast::Span;
use crate::lexer::Tok;
use lalrpop_util::ParseError;

/// Converts one parse error. `None` when it was already reported by the lexer.
pub fn from_parse_error(
    src: &str,
    tokens: &[(usize, Tok<'_>, usize)],
    error: ParseError<usize, Tok<'_>, SyntaxError>,
) -> Option<SyntaxError> {
    match error {
        ParseError::User { error } => Some(error),
        ParseError::InvalidToken { location } => Some(SyntaxError {
            message: "invalid input".into(),
            span: Span::new(location, location),
            help: None,
        }),
        ParseError::UnrecognizedToken {
            token: (_, Tok::Error, _),
            ..
        } => None,
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => {
            let at_end = tokens.last().is_some_and(|(tl, _, _)| *tl == l);
            let found = if tok == Tok::EndOfRule && at_end {
                "the end of the file".to_string()
            } else {
                tok.describe()
            };
            // A missing `;` is reported at the end of the rule, not on the next rule's first
            // token.
            let span = if tok == Tok::EndOfRule {
                Span::new(l, l)
            } else {
                Span::new(l, r)
            };
            Some(unexpected(src, tokens, l, &found, &expected, span))
        }
        ParseError::UnrecognizedEof { location, expected } => Some(unexpected(
            src,
            tokens,
            location,
            "the end of the input",
            &expected,
            Span::new(location, location),
        )),
        ParseError::ExtraToken { token: (l, tok, r) } => Some(SyntaxError {
            message: format!("unexpected {}", tok.describe()),
            span: Span::new(l, r),
            help: Some("nothing may follow here".into()),
        }),
    }
}

/// Sorts errors by position and drops exact duplicates.
pub fn finish(mut errs: Vec<SyntaxError>) -> Vec<SyntaxError> {
    errs.sort_by_key(|e| (e.span.start, e.span.end));
    errs.dedup();
    errs
}

fn unexpected(
    src: &str,
    tokens: &[(usize, Tok<'_>, usize)],
    at: usize,
    found: &str,
    expected: &[String],
    span: Span,
) -> SyntaxError {
    let prev = tokens
        .iter()
        .rfind(|(_, t, end)| *end <= at && *t != Tok::EndOfRule)
        .and_then(|(l, _, r)| src.get(*l..*r));
    let names = expected_names(expected);
    let comparison = [
        "`==`",
        "`!=`",
        "`<`",
        "`<=`",
        "`>`",
        "`>=`",
        "`in`",
        "`contains`",
        "`starts_with`",
        "`ends_with`",
        "`matches`",
    ];
    if comparison.contains(&found) && names.iter().any(|n| n == "`&&`") {
        return SyntaxError {
            message: format!("comparisons do not chain: unexpected {found}"),
            span,
            help: Some(
                "join two comparisons with `&&`, or group one in parentheses: `(a == b) == c`"
                    .into(),
            ),
        };
    }
    if names.iter().any(|n| n == "`;`") {
        if found == "`per`" && names.iter().any(|n| n == "a number") {
            return SyntaxError {
                message: "expected a count before `per`".into(),
                span,
                help: Some("a rate is written `100 per hour`".into()),
            };
        }
        if found == "`*`" {
            return SyntaxError {
                message: format!("expected `;` after the rule, found {found}"),
                span,
                help: Some("a glob is written without spaces, as in `github.get_*`".into()),
            };
        }
        // `.` and a number are legal here only in rare spellings; naming them confuses.
        let others: Vec<String> = names
            .into_iter()
            .filter(|n| n != "`;`" && n != "`.`" && n != "a number")
            .collect();
        let help = if others.is_empty() {
            "every rule ends with `;`".to_string()
        } else {
            format!(
                "every rule ends with `;`; here the rule may also go on with {}",
                or_list(&others)
            )
        };
        return SyntaxError {
            message: format!("expected `;` after the rule, found {found}"),
            span,
            help: Some(help),
        };
    }
    if names == ["a string"] && prev == Some(".") {
        return SyntaxError {
            message: format!("expected a tool name after `.`, found {found}"),
            span,
            help: Some(
                "write the tool name right after the dot, or quote it: `github.\"odd name\"`"
                    .into(),
            ),
        };
    }
    let after = match prev {
        Some(p) => format!(" after `{p}`"),
        None => String::new(),
    };
    let help = if names.iter().any(|n| n == "an effect") {
        Some(
            "a rule starts with `allow`, `deny`, `hide`, `approve`, `limit` or `redact`"
                .to_string(),
        )
    } else {
        None
    };
    let wanted = if names.is_empty() {
        "nothing more".to_string()
    } else {
        or_list(&names)
    };
    SyntaxError {
        message: format!("expected {wanted}{after}, found {found}"),
        span,
        help,
    }
}

/// Names the expected terminals in words, grouping the many ways an expression can start.
fn expected_names(expected: &[String]) -> Vec<String> {
    let has = |t: &str| expected.iter().any(|e| e == t);
    let mut names: Vec<String> = Vec::new();
    let mut push = |n: &str| {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    };
    // Where an operand may start, the parser also lists `(`, `[` and literals.
    let expression = has("\"(\"") && has("\"[\"") && has("Str");
    let operator = has("\"==\"") && has("\"in\"");
    let rule_start = has("\"@\"") && has("Ident") && !expression;
    let target = has("\"prompt\"") && has("\"resource\"");
    for e in expected {
        let e = e.as_str();
        match e {
            _ if expression && is_expression_start(e) => push("an expression"),
            _ if operator && is_operator(e) => push("an operator"),
            "\"prompt\"" | "\"resource\"" | "\"*\"" | "Ident" | "Word" | "Int" if target => {
                push("a target")
            }
            "\"@\"" | "Ident" if rule_start => push("an effect"),
            "Ident" | "Word" => push("a name"),
            "Int" | "Float" => push("a number"),
            "Str" => push("a string"),
            "Regex" => push("a regex"),
            "EndOfRule" | "BadInput" => {}
            quoted => {
                let inner = quoted
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .unwrap_or(quoted);
                push(&format!("`{inner}`"));
            }
        }
    }
    names
}

fn is_expression_start(e: &str) -> bool {
    matches!(
        e,
        "\"!\""
            | "\"(\""
            | "\"[\""
            | "\"-\""
            | "\"true\""
            | "\"false\""
            | "\"null\""
            | "Ident"
            | "Word"
            | "Int"
            | "Float"
            | "Str"
            | "Regex"
    )
}

fn is_operator(e: &str) -> bool {
    matches!(
        e,
        "\"==\""
            | "\"!=\""
            | "\"<\""
            | "\"<=\""
            | "\">\""
            | "\">=\""
            | "\"in\""
            | "\"contains\""
            | "\"starts_with\""
            | "\"ends_with\""
            | "\"matches\""
    )
}

fn or_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
