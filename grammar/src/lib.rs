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
