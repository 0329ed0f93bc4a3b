//! Lexer, grammar and syntax tree of the mcpgate policy language (`.mcpg`).
//!
//! The lexer (logos) never fails: bad input becomes an error token that the parser reports
//! with a span. The parser (lalrpop, generated at build time) recovers from errors so that a
//! file with several mistakes reports all of them.

mod actions;
pub mod ast;
mod errors;
mod lexer;

lalrpop_util::lalrpop_mod!(
    #[allow(
        clippy::all,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        unused
    )]
    grammar
);

pub use ast::Span;

/// A syntax error with the span it refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Lowercase, no trailing period, user input in backticks.
    pub message: String,
    pub span: Span,
    /// Extra advice, e.g. "rules end with `;`".
    pub help: Option<String>,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SyntaxError {}

/// Parses a whole `.mcpg` file. Always returns a tree (rules that could not be parsed are
/// skipped) together with every syntax error found; the file is valid iff the list is empty.
pub fn parse_file(src: &str) -> (ast::File, Vec<SyntaxError>) {
    let lexed = lexer::lex(src, lexer::Mode::File);
    let mut errs = lexed.errors;
    let mut recovered = Vec::new();
    let rules = match grammar::FileParser::new().parse(
        &mut errs,
        &mut recovered,
        lexed.tokens.iter().cloned().map(Ok::<_, SyntaxError>),
    ) {
        Ok(rules) => rules,
        Err(e) => {
            recovered.push(lalrpop_util::ErrorRecovery {
                error: e,
                dropped_tokens: Vec::new(),
            });
            Vec::new()
        }
    };
    for r in recovered {
        errs.extend(errors::from_parse_error(src, &lexed.tokens, r.error));
    }
    let file = ast::File {
        rules,
        comments: lexed.comments,
    };
    (file, errors::finish(errs))
}

/// Parses one expression (a `when` condition written in YAML). Spans are relative to `src`;
/// callers shift them with [`Span::offset`].
pub fn parse_expr(src: &str) -> Result<ast::Expr, Vec<SyntaxError>> {
    let lexed = lexer::lex(src, lexer::Mode::Fragment);
    let mut errs = lexed.errors;
    let mut recovered = Vec::new();
    let tokens = lexed.tokens.iter().cloned().map(Ok::<_, SyntaxError>);
    match grammar::ExprParser::new().parse(&mut errs, &mut recovered, tokens) {
        Ok(expr) if errs.is_empty() => Ok(expr),
        Ok(_) => Err(errors::finish(errs)),
        Err(e) => {
            errs.extend(errors::from_parse_error(src, &lexed.tokens, e));
            Err(errors::finish(errs))
        }
    }
}

/// Parses one target as written in YAML `tools:` (`server.tool`, globs, `server."odd name"`)
/// or, with `kind`, a prompt target (`server.name`).
pub fn parse_target(
    src: &str,
    kind: TargetKind,
) -> Result<ast::Spanned<ast::Target>, Vec<SyntaxError>> {
    let lexed = lexer::lex(src, lexer::Mode::Fragment);
    let mut errs = lexed.errors;
    let mut recovered = Vec::new();
    let tokens = lexed.tokens.iter().cloned().map(Ok::<_, SyntaxError>);
    match grammar::TargetNameParser::new().parse(&mut errs, &mut recovered, tokens) {
        Ok(Some((server, name))) if errs.is_empty() => {
            let span = server.span.join(name.span);
            let target = match kind {
                TargetKind::Tool => ast::Target::Tool { server, tool: name },
                TargetKind::Prompt => ast::Target::Prompt { server, name },
            };
            Ok(ast::Spanned::new(target, span))
        }
        Ok(_) => Err(errors::finish(errs)),
        Err(e) => {
            errs.extend(errors::from_parse_error(src, &lexed.tokens, e));
            Err(errors::finish(errs))
        }
    }
}

/// Which kind of target [`parse_target`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    Tool,
    Prompt,
}
