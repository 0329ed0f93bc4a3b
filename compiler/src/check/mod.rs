//! The checker: one module per family of checks. Every check has a stable code and a doc
//! entry (what it does, why, an example); docs/diagnostics.md is generated from them
//! (`MCPGATE_UPDATE_DOCS=1 cargo test -p mcpgate-compiler diagnostics_doc`).

use crate::diag::{Diagnostic, Severity};
use crate::source::FileId;
use mcpgate_grammar::Span;

pub mod config;
pub mod lock;
pub mod names;
pub mod policy_tests;
pub mod responders;
pub mod rules;
pub mod shadow;
pub mod syntax;
pub mod types;

/// A documented check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    /// `E0101`: `E` for errors, `W` for warnings; the first two digits name the family.
    pub code: &'static str,
    pub severity: Severity,
    /// A short kebab-case name.
    pub name: &'static str,
    /// Markdown: what it does, why it matters, an example and the fix.
    pub doc: &'static str,
}

impl Code {
    /// A diagnostic of this code at `span` in `file`.
    pub fn at(&self, message: impl Into<String>, file: FileId, span: Span) -> Diagnostic {
        match self.severity {
            Severity::Error => Diagnostic::error(self.code, message, file, span),
            Severity::Warning => Diagnostic::warning(self.code, message, file, span),
        }
    }
}

/// Every check, by family, in code order.
pub fn all_codes() -> Vec<&'static Code> {
    [
        syntax::CODES,
        names::CODES,
        types::CODES,
        rules::CODES,
        shadow::CODES,
        policy_tests::CODES,
        config::CODES,
        lock::CODES,
        crate::analysis::lint::CODES,
        responders::CODES,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The documentation of a code, if it exists.
pub fn lookup(code: &str) -> Option<&'static Code> {
    all_codes().into_iter().find(|c| c.code == code)
}

/// docs/diagnostics.md, generated from the codes' documentation.
pub fn docs_markdown() -> String {
    let mut out = String::from(
        "# Diagnostics\n\n\
         `mcpgate check` reports every problem it finds with a stable code, the file, line and\n\
         column, and advice. Codes starting with `E` are errors (the check fails); codes\n\
         starting with `W` are warnings (the check fails only with `--deny-warnings`).\n\n\
         The `W08xx` codes are the policy lint: `mcpgate check` reports them after the\n\
         tests ran, from the exact regions of the compiled program (see\n\
         [analysis.md](analysis.md)).\n\n\
         This file is generated from the checker's sources (`compiler/src/check/`,\n\
         `compiler/src/analysis/lint.rs`).\n\n\
         | code | name | severity |\n|---|---|---|\n",
    );
    for c in all_codes() {
        out.push_str(&format!(
            "| [{}](#{}) | {} | {} |\n",
            c.code,
            c.code.to_lowercase(),
            c.name,
            c.severity
        ));
    }
    for c in all_codes() {
        out.push_str(&format!(
            "\n## {}\n\n`{}` ({})\n\n{}\n",
            c.code,
            c.name,
            c.severity,
            c.doc.trim()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_match_severity() {
        let codes = all_codes();
        for (i, c) in codes.iter().enumerate() {
            assert!(
                codes.iter().skip(i + 1).all(|o| o.code != c.code),
                "duplicate {}",
                c.code
            );
            let letter = if c.severity == Severity::Error {
                'E'
            } else {
                'W'
            };
            assert!(
                c.code.starts_with(letter),
                "{} has the wrong letter",
                c.code
            );
            assert!(c.doc.contains("## What it does") || !c.doc.is_empty());
        }
    }

    #[test]
    fn diagnostics_doc() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/diagnostics.md");
        let generated = docs_markdown();
        if std::env::var_os("MCPGATE_UPDATE_DOCS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            on_disk, generated,
            "docs/diagnostics.md is stale: run with MCPGATE_UPDATE_DOCS=1"
        );
    }
}
