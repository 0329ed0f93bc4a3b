//! The lexer: logos scans small tokens, then one pass over them glues names and collects
//! comments.
//!
//! The lexer never fails. A character it does not know, an unterminated string or a bad
//! escape becomes an error (and, where the parser must notice, a [`Tok::Error`] token), so
//! the parser can go on and report everything in one run.
//!
//! Names are the subtle part. A target such as `github.get_file.contents`, `fs.2fa-check` or
//! `*.delete_*` and a path such as `args.a.b` are both runs of words, numbers, `.`, `*` and
//! `-` written without spaces between them. The gluing pass turns every such run of two or
//! more tokens into one [`Tok::Word`] carrying the source text; the grammar then reads a
//! `Word` as a target or as a path depending on where it stands. A run never starts with `-`
//! (so `-5` stays a negative number) and never ends with `.` (so `github."odd name"` reads as
//! a server, a dot and a quoted tool name). Because gluing needs adjacency, `github.get_ *`
//! is two tokens and gets a clear error instead of silently meaning something else.

use crate::SyntaxError;
use crate::ast::{Comment, Span};
use logos::Logos;

/// The tokens the parser reads. Names, numbers and operators borrow the source.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok<'a> {
    /// A single word: `allow`, `args`, `maintainers`.
    Ident(&'a str),
    /// A glued run such as `github.get_*`, `args.a.b` or `.b.c` (after `]`).
    Word(&'a str),
    /// An integer as written, `_` separators included.
    Int(&'a str),
    /// A float as written.
    Float(&'a str),
    /// A string literal, escapes resolved.
    Str(String),
    /// A `/regex/` literal, `\/` resolved, other escapes kept for the regex engine.
    Regex(String),
    When,
    Because,
    By,
    Per,
    In,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    True,
    False,
    Null,
    Prompt,
    Resource,
    At,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Semi,
    Dot,
    Star,
    Minus,
    EqEq,
    NotEq,
    Le,
    Lt,
    Ge,
    Gt,
    AndAnd,
    OrOr,
    Bang,
    /// Zero-width stand-in for a missing `;`: inserted where a new rule starts on a fresh line
    /// while the previous one is still open, so both rules survive and one clear error is
    /// reported.
    EndOfRule,
    /// Input the lexer could not read; already reported, never accepted by the grammar.
    Error,
}

impl Tok<'_> {
    /// How the token is named in an error message.
    pub fn describe(&self) -> String {
        let fixed = match self {
            Tok::Ident(s) | Tok::Word(s) | Tok::Int(s) | Tok::Float(s) => {
                return format!("`{s}`");
            }
            Tok::Str(_) => return "a string".into(),
            Tok::Regex(_) => return "a regex".into(),
            Tok::EndOfRule => return "the next rule".into(),
            Tok::Error => return "invalid input".into(),
            Tok::When => "when",
            Tok::Because => "because",
            Tok::By => "by",
            Tok::Per => "per",
            Tok::In => "in",
            Tok::Contains => "contains",
            Tok::StartsWith => "starts_with",
            Tok::EndsWith => "ends_with",
            Tok::Matches => "matches",
            Tok::True => "true",
            Tok::False => "false",
            Tok::Null => "null",
            Tok::Prompt => "prompt",
            Tok::Resource => "resource",
            Tok::At => "@",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Semi => ";",
            Tok::Dot => ".",
            Tok::Star => "*",
            Tok::Minus => "-",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            Tok::Le => "<=",
            Tok::Lt => "<",
            Tok::Ge => ">=",
            Tok::Gt => ">",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            Tok::Bang => "!",
        };
        format!("`{fixed}`")
    }

    /// Whether the token may be glued into a name run.
    fn is_name_piece(&self) -> bool {
        matches!(
            self,
            Tok::Ident(_)
                | Tok::Int(_)
                | Tok::Float(_)
                | Tok::Dot
                | Tok::Star
                | Tok::Minus
                | Tok::When
                | Tok::Because
                | Tok::By
                | Tok::Per
                | Tok::In
                | Tok::Contains
                | Tok::StartsWith
                | Tok::EndsWith
                | Tok::Matches
                | Tok::True
                | Tok::False
                | Tok::Null
                | Tok::Prompt
                | Tok::Resource
        )
    }
}

/// What logos recognises; turned into [`Tok`] by [`lex`].
#[derive(Logos, Clone, Copy, Debug, PartialEq)]
#[logos(skip r"[ \t\r\n\f\u{feff}]+")]
enum Raw {
    #[regex(r"#[^\n]*", allow_greedy = true)]
    Comment,
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident,
    #[regex(r"[0-9][0-9_]*")]
    Int,
    #[regex(r"[0-9][0-9_]*\.[0-9][0-9_]*")]
    Float,
    #[regex(r#""([^"\\\n]|\\[^\n])*""#)]
    Str,
    #[regex(r#""([^"\\\n]|\\[^\n])*"#)]
    UnterminatedStr,
    #[regex(r"/([^/\\\n]|\\[^\n])*/")]
    Regex,
    #[regex(r"/([^/\\\n]|\\[^\n])*")]
    UnterminatedRegex,
    #[token("when")]
    When,
    #[token("because")]
    Because,
    #[token("by")]
    By,
    #[token("per")]
    Per,
    #[token("in")]
    In,
    #[token("contains")]
    Contains,
    #[token("starts_with")]
    StartsWith,
    #[token("ends_with")]
    EndsWith,
    #[token("matches")]
    Matches,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("null")]
    Null,
    #[token("prompt")]
    Prompt,
    #[token("resource")]
    Resource,
    #[token("@")]
    At,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(".")]
    Dot,
    #[token("*")]
    Star,
    #[token("-")]
    Minus,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<=")]
    Le,
    #[token("<")]
    Lt,
    #[token(">=")]
    Ge,
    #[token(">")]
    Gt,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
    #[token("!")]
    Bang,
    #[token("=")]
    LoneEq,
    #[token("&")]
    LoneAnd,
    #[token("|")]
    LoneOr,
}

/// What the parser needs from a source text.
#[derive(Debug, Default)]
pub struct Lexed<'a> {
    /// `(start, token, end)` triples in source order, ready for lalrpop.
    pub tokens: Vec<(usize, Tok<'a>, usize)>,
    pub comments: Vec<Comment>,
    /// Lexical errors: bad characters, unterminated literals, bad escapes.
    pub errors: Vec<SyntaxError>,
}

/// Whether [`lex`] reads a whole file (and may insert [`Tok::EndOfRule`]) or a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    File,
    Fragment,
}

const EFFECTS: [&str; 6] = ["allow", "deny", "hide", "approve", "limit", "redact"];

/// Splits `src` into tokens. Never fails; see the module docs.
pub fn lex(src: &str, mode: Mode) -> Lexed<'_> {
    let mut out = Lexed::default();
    let mut fine: Vec<(usize, Tok<'_>, usize)> = Vec::new();
    let mut lexer = Raw::lexer(src);
    while let Some(item) = lexer.next() {
        let range = lexer.span();
        let (start, end) = (range.start, range.end);
        let slice = lexer.slice();
        let raw = match item {
            Ok(raw) => raw,
            Err(()) => {
                push_bad_chars(&mut out, &mut fine, slice, start);
                continue;
            }
        };
        let tok = match raw {
            Raw::Comment => {
                out.comments.push(Comment {
                    text: slice.trim_end_matches('\r').to_string(),
                    span: Span::new(start, end),
                });
                continue;
            }
            Raw::Ident => Tok::Ident(slice),
            Raw::Int => Tok::Int(slice),
            Raw::Float => Tok::Float(slice),
            Raw::Str => {
                let inner = slice.get(1..slice.len() - 1).unwrap_or("");
                Tok::Str(unescape(inner, start + 1, &mut out.errors))
            }
            Raw::UnterminatedStr => {
                out.errors.push(error(
                    "unterminated string",
                    start,
                    end,
                    Some("a string ends with `\"` on the same line"),
                ));
                Tok::Error
            }
            Raw::Regex => {
                let inner = slice.get(1..slice.len() - 1).unwrap_or("");
                Tok::Regex(inner.replace("\\/", "/"))
            }
            Raw::UnterminatedRegex => {
                out.errors.push(error(
                    "unterminated regex",
                    start,
                    end,
                    Some("a regex ends with `/` on the same line"),
                ));
                Tok::Error
            }
            Raw::When => Tok::When,
            Raw::Because => Tok::Because,
            Raw::By => Tok::By,
            Raw::Per => Tok::Per,
            Raw::In => Tok::In,
            Raw::Contains => Tok::Contains,
            Raw::StartsWith => Tok::StartsWith,
            Raw::EndsWith => Tok::EndsWith,
            Raw::Matches => Tok::Matches,
            Raw::True => Tok::True,
            Raw::False => Tok::False,
            Raw::Null => Tok::Null,
            Raw::Prompt => Tok::Prompt,
            Raw::Resource => Tok::Resource,
            Raw::At => Tok::At,
            Raw::LParen => Tok::LParen,
            Raw::RParen => Tok::RParen,
            Raw::LBracket => Tok::LBracket,
            Raw::RBracket => Tok::RBracket,
            Raw::Comma => Tok::Comma,
            Raw::Semi => Tok::Semi,
            Raw::Dot => Tok::Dot,
            Raw::Star => Tok::Star,
            Raw::Minus => Tok::Minus,
            Raw::EqEq => Tok::EqEq,
            Raw::NotEq => Tok::NotEq,
            Raw::Le => Tok::Le,
            Raw::Lt => Tok::Lt,
            Raw::Ge => Tok::Ge,
            Raw::Gt => Tok::Gt,
            Raw::AndAnd => Tok::AndAnd,
            Raw::OrOr => Tok::OrOr,
            Raw::Bang => Tok::Bang,
            Raw::LoneEq | Raw::LoneAnd | Raw::LoneOr => {
                let help = match raw {
                    Raw::LoneEq => "compare with `==`",
                    Raw::LoneAnd => "logical and is written `&&`",
                    _ => "logical or is written `||`",
                };
                out.errors.push(error(
                    &format!("unexpected `{slice}`"),
                    start,
                    end,
                    Some(help),
                ));
                Tok::Error
            }
        };
        fine.push((start, tok, end));
    }
    let glued = glue(src, fine);
    let tokens = match mode {
        Mode::File => close_rules(src, glued),
        Mode::Fragment => glued,
    };
    out.tokens = limit_nesting(tokens, &mut out.errors);
    out
}

/// How many operators and brackets one rule may hold. Far above any real policy, it bounds
/// the depth of the tree so that no later recursive pass (or drop) can exhaust the stack.
pub const MAX_OPERATORS: usize = 512;

/// Replaces the rest of a rule whose expression exceeds [`MAX_OPERATORS`] with one error token.
fn limit_nesting<'a>(
    tokens: Vec<(usize, Tok<'a>, usize)>,
    errors: &mut Vec<SyntaxError>,
) -> Vec<(usize, Tok<'a>, usize)> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut count = 0usize;
    let mut skipping = false;
    for (start, tok, end) in tokens {
        if matches!(tok, Tok::Semi | Tok::EndOfRule) {
            count = 0;
            skipping = false;
            out.push((start, tok, end));
            continue;
        }
        if skipping {
            continue;
        }
        if matches!(
            tok,
            Tok::LParen | Tok::LBracket | Tok::Bang | Tok::Minus | Tok::AndAnd | Tok::OrOr
        ) {
            count += 1;
            if count > MAX_OPERATORS {
                errors.push(error(
                    "this rule is too complex",
                    start,
                    end,
                    Some(&format!(
                        "a rule may hold at most {MAX_OPERATORS} operators and brackets; \
                         split it into several rules"
                    )),
                ));
                out.push((start, Tok::Error, end));
                skipping = true;
                continue;
            }
        }
        out.push((start, tok, end));
    }
    out
}

fn error(message: &str, start: usize, end: usize, help: Option<&str>) -> SyntaxError {
    SyntaxError {
        message: message.to_string(),
        span: Span::new(start, end),
        help: help.map(str::to_string),
    }
}

/// Reports each character logos could not read and leaves one error token for the parser.
fn push_bad_chars<'a>(
    out: &mut Lexed<'a>,
    fine: &mut Vec<(usize, Tok<'a>, usize)>,
    slice: &str,
    start: usize,
) {
    for (offset, c) in slice.char_indices() {
        let at = start + offset;
        let shown: String = c.escape_debug().collect();
        out.errors.push(error(
            &format!("unexpected character `{shown}`"),
            at,
            at + c.len_utf8(),
            None,
        ));
    }
    fine.push((start, Tok::Error, start + slice.len()));
}

/// Resolves the escapes of a string body that starts at byte `base`; bad escapes are reported
/// and kept as written.
fn unescape(body: &str, base: usize, errors: &mut Vec<SyntaxError>) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else {
            // The lexer's pattern never ends a string body with a lone backslash.
            out.push('\\');
            continue;
        };
        match e {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            'u' => match unicode_escape(&mut chars) {
                Some(c) => out.push(c),
                None => {
                    let end = chars.peek().map_or(body.len(), |(j, _)| *j);
                    errors.push(error(
                        "invalid unicode escape",
                        base + i,
                        base + end,
                        Some("write a code point as `\\u{1F600}`"),
                    ));
                }
            },
            other => {
                let shown: String = other.escape_debug().collect();
                errors.push(error(
                    &format!("unknown escape `\\{shown}` in a string"),
                    base + i,
                    base + i + 1 + other.len_utf8(),
                    Some(
                        "write `\\\\` for a backslash; a regex can be written `/.../` \
                         where backslashes need no doubling",
                    ),
                ));
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

/// Reads `{XXXX}` after `\u`; consumes up to the closing brace even when invalid.
fn unicode_escape(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> Option<char> {
    if chars.peek().map(|(_, c)| *c) != Some('{') {
        return None;
    }
    chars.next();
    let mut digits = String::new();
    for (_, c) in chars.by_ref() {
        if c == '}' {
            return u32::from_str_radix(&digits, 16)
                .ok()
                .filter(|_| !digits.is_empty() && digits.len() <= 6)
                .and_then(char::from_u32);
        }
        digits.push(c);
    }
    None
}

/// Glues runs of adjacent name pieces into [`Tok::Word`]s (see the module docs).
fn glue<'a>(src: &'a str, fine: Vec<(usize, Tok<'a>, usize)>) -> Vec<(usize, Tok<'a>, usize)> {
    let mut out = Vec::with_capacity(fine.len());
    let mut i = 0;
    while i < fine.len() {
        let Some((start, tok, _)) = fine.get(i) else {
            break;
        };
        // A run starts at a name piece other than `-`.
        if !tok.is_name_piece() || *tok == Tok::Minus {
            out.push(fine[i].clone());
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while let (Some((_, _, prev_end)), Some((next_start, next, _))) =
            (fine.get(j - 1), fine.get(j))
        {
            if prev_end != next_start || !next.is_name_piece() {
                break;
            }
            j += 1;
        }
        // A run never ends with a dot: `github."odd name"`.
        while j > i + 1 && matches!(fine.get(j - 1), Some((_, Tok::Dot, _))) {
            j -= 1;
        }
        if j == i + 1 {
            out.push(fine[i].clone());
        } else {
            let end = fine.get(j - 1).map_or(*start, |t| t.2);
            out.push((*start, Tok::Word(src.get(*start..end).unwrap_or("")), end));
        }
        i = j;
    }
    out
}

/// Inserts [`Tok::EndOfRule`] where a rule starts on a new line while the previous rule has
/// no `;`, and at the end of input after an unterminated rule.
fn close_rules<'a>(
    src: &str,
    tokens: Vec<(usize, Tok<'a>, usize)>,
) -> Vec<(usize, Tok<'a>, usize)> {
    let mut out: Vec<(usize, Tok<'a>, usize)> = Vec::with_capacity(tokens.len() + 1);
    // Between `@` and the effect of the same rule: a new line there is not a new rule.
    let mut in_attribute = false;
    for (start, tok, end) in tokens {
        let starts_rule = match &tok {
            Tok::At => true,
            Tok::Ident(s) => EFFECTS.contains(s),
            _ => false,
        };
        if starts_rule {
            if let Some((_, prev, prev_end)) = out.last() {
                let on_new_line = src
                    .get(*prev_end..start)
                    .is_some_and(|gap| gap.contains('\n'));
                let open = !matches!(prev, Tok::Semi | Tok::EndOfRule);
                if on_new_line && open && !in_attribute {
                    let at = *prev_end;
                    out.push((at, Tok::EndOfRule, at));
                }
            }
            in_attribute = tok == Tok::At;
        }
        out.push((start, tok, end));
    }
    if let Some((_, last, end)) = out.last()
        && !matches!(last, Tok::Semi | Tok::EndOfRule)
    {
        let at = *end;
        out.push((at, Tok::EndOfRule, at));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok<'_>> {
        lex(src, Mode::Fragment)
            .tokens
            .into_iter()
            .map(|t| t.1)
            .collect()
    }

    #[test]
    fn glues_targets_and_paths() {
        assert_eq!(
            toks("github.get_*, fs.2fa-check"),
            vec![
                Tok::Word("github.get_*"),
                Tok::Comma,
                Tok::Word("fs.2fa-check")
            ]
        );
        assert_eq!(toks("args.a.b"), vec![Tok::Word("args.a.b")]);
        assert_eq!(
            toks("github.\"odd name\""),
            vec![Tok::Ident("github"), Tok::Dot, Tok::Str("odd name".into())]
        );
        assert_eq!(toks("-5"), vec![Tok::Minus, Tok::Int("5")]);
        assert_eq!(toks("github.limit"), vec![Tok::Word("github.limit")]);
    }

    #[test]
    fn unterminated_string_is_an_error_token() {
        let lexed = lex("\"abc\nallow", Mode::Fragment);
        assert_eq!(lexed.tokens[0].1, Tok::Error);
        assert_eq!(lexed.errors[0].message, "unterminated string");
        assert_eq!(lexed.tokens[1].1, Tok::Ident("allow"));
    }

    #[test]
    fn escapes() {
        assert_eq!(
            toks(r#""a\"b\\c\n\u{41}""#),
            vec![Tok::Str("a\"b\\c\nA".into())]
        );
        let lexed = lex(r#""\d""#, Mode::Fragment);
        assert_eq!(lexed.errors.len(), 1);
    }

    #[test]
    fn comments_are_collected() {
        let lexed = lex("allow a.b; # why\n# next\n", Mode::File);
        assert_eq!(lexed.comments.len(), 2);
        assert_eq!(lexed.comments[0].text, "# why");
    }

    #[test]
    fn missing_semicolon_inserts_end_of_rule() {
        let lexed = lex("allow a.b\ndeny c.d;", Mode::File);
        let kinds: Vec<_> = lexed.tokens.iter().map(|t| &t.1).collect();
        assert_eq!(kinds[2], &Tok::EndOfRule);
        let lexed = lex("@id(\"x\")\nallow a.b;", Mode::File);
        assert!(!lexed.tokens.iter().any(|t| t.1 == Tok::EndOfRule));
    }
}
