//! Lexer, grammar and syntax tree of the mcpgate policy language (`.mcpg`).
//!
//! The lexer (logos) never fails: bad input becomes an error token that the parser reports
//! with a span. The parser (lalrpop, generated at build time) recovers from errors so that a
//! file with several mistakes reports all of them.

pub mod ast;

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

/// Parses a whole `.mcpg` file. Always returns a tree (rules that could not be parsed are
/// skipped) together with every syntax error found; the file is valid iff the list is empty.
pub fn parse_file(src: &str) -> (ast::File, Vec<SyntaxError>) {
    // Replaced by the lalrpop parser.
    let _ = src;
    (
        ast::File::default(),
        vec![SyntaxError {
            message: "parser not built".into(),
            span: Span::default(),
            help: None,
        }],
    )
}

/// Parses one expression (a `when` condition written in YAML). Spans are relative to `src`;
/// callers shift them with [`Span::offset`].
pub fn parse_expr(src: &str) -> Result<ast::Expr, Vec<SyntaxError>> {
    let _ = src;
    Err(vec![SyntaxError {
        message: "parser not built".into(),
        span: Span::default(),
        help: None,
    }])
}

/// Parses one target as written in YAML `tools:` (`server.tool`, globs, `server."odd name"`)
/// or, with `kind`, a prompt target (`server.name`).
pub fn parse_target(
    src: &str,
    kind: TargetKind,
) -> Result<ast::Spanned<ast::Target>, Vec<SyntaxError>> {
    let _ = (src, kind);
    Err(vec![SyntaxError {
        message: "parser not built".into(),
        span: Span::default(),
        help: None,
    }])
}

/// Which kind of target [`parse_target`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    Tool,
    Prompt,
}
