//! Diagnostics: what the checker reports, and three ways to render it: `human` (rustc
//! style, with the source line and a caret), `github` (workflow commands that annotate a
//! pull request) and `json` (for tools).

use crate::source::{FileId, SourceMap};
use codespan_reporting::diagnostic as cs;
use codespan_reporting::term;
use mcpgate_grammar::Span;
use serde::Serialize;
use std::fmt;

/// How bad a diagnostic is. Errors fail `mcpgate check`; warnings fail it only with
/// `--deny-warnings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A span in one file, with an optional message shown next to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub file: FileId,
    pub span: Span,
    pub message: String,
}

/// One finding: a code (`E0101`, `W0401`), a message, where, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable code, documented in docs/diagnostics.md.
    pub code: &'static str,
    /// Lowercase, no trailing period, user input in backticks.
    pub message: String,
    pub primary: Label,
    /// Other places that explain the finding (the first definition of a duplicate id, the
    /// rule that shadows another).
    pub secondary: Vec<Label>,
    /// Advice: what to write instead.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A new error at `span` in `file`.
    pub fn error(code: &'static str, message: impl Into<String>, file: FileId, span: Span) -> Self {
        Diagnostic::new(Severity::Error, code, message, file, span)
    }

    /// A new warning at `span` in `file`.
    pub fn warning(
        code: &'static str,
        message: impl Into<String>,
        file: FileId,
        span: Span,
    ) -> Self {
        Diagnostic::new(Severity::Warning, code, message, file, span)
    }

    fn new(
        severity: Severity,
        code: &'static str,
        message: impl Into<String>,
        file: FileId,
        span: Span,
    ) -> Self {
        Diagnostic {
            severity,
            code,
            message: message.into(),
            primary: Label {
                file,
                span,
                message: String::new(),
            },
            secondary: Vec::new(),
            help: None,
        }
    }

    /// Sets the text shown next to the primary caret.
    pub fn with_label_message(mut self, message: impl Into<String>) -> Self {
        self.primary.message = message.into();
        self
    }

    /// Adds a secondary label.
    pub fn with_secondary(mut self, file: FileId, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label {
            file,
            span,
            message: message.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the help line when `help` is some.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }
}

/// Output format of [`render`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// rustc style, for a terminal.
    #[default]
    Human,
    /// GitHub Actions workflow commands (`::error file=...`).
    Github,
    /// A JSON array of objects.
    Json,
}

impl Format {
    /// Parses `human`, `github` or `json`.
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "human" => Format::Human,
            "github" => Format::Github,
            "json" => Format::Json,
            _ => return None,
        })
    }
}

/// Renders diagnostics in the given format. Human and github output end with a newline
/// per diagnostic; json is one array.
pub fn render(diags: &[Diagnostic], sources: &SourceMap, format: Format) -> String {
    match format {
        Format::Human => render_human(diags, sources),
        Format::Github => render_github(diags, sources),
        Format::Json => render_json(diags, sources),
    }
}

/// rustc-style rendering with source lines and carets.
pub fn render_human(diags: &[Diagnostic], sources: &SourceMap) -> String {
    let config = term::Config {
        chars: term::Chars::ascii(),
        ..term::Config::default()
    };
    let mut out = String::new();
    for d in diags {
        let cs_diag = to_codespan(d, sources);
        match term::emit_into_string(&config, sources, &cs_diag) {
            Ok(s) => out.push_str(&s),
            // A span that no longer fits its file: still say what is wrong.
            Err(_) => {
                let (line, col) = sources.line_col(d.primary.file, d.primary.span.start as usize);
                out.push_str(&format!(
                    "{}[{}]: {}\n  --> {}:{line}:{col}\n",
                    d.severity,
                    d.code,
                    d.message,
                    sources.path(d.primary.file)
                ));
            }
        }
    }
    out
}

fn to_codespan(d: &Diagnostic, sources: &SourceMap) -> cs::Diagnostic<FileId> {
    let clamp = |file: FileId, span: Span| {
        let len = sources.text(file).len();
        let start = (span.start as usize).min(len);
        let end = (span.end as usize).clamp(start, len);
        start..end
    };
    let severity = match d.severity {
        Severity::Error => cs::Severity::Error,
        Severity::Warning => cs::Severity::Warning,
    };
    let mut labels = vec![
        cs::Label::primary(d.primary.file, clamp(d.primary.file, d.primary.span))
            .with_message(d.primary.message.clone()),
    ];
    labels.extend(d.secondary.iter().map(|l| {
        cs::Label::secondary(l.file, clamp(l.file, l.span)).with_message(l.message.clone())
    }));
    let mut out = cs::Diagnostic::new(severity)
        .with_code(d.code)
        .with_message(d.message.clone())
        .with_labels(labels);
    if let Some(help) = &d.help {
        out = out.with_notes(vec![format!("help: {help}")]);
    }
    out
}

/// GitHub Actions workflow commands: one line per diagnostic.
pub fn render_github(diags: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = String::new();
    for d in diags {
        let path = sources.path(d.primary.file);
        let (line, col) = sources.line_col(d.primary.file, d.primary.span.start as usize);
        let (end_line, end_col) = sources.line_col(d.primary.file, d.primary.span.end as usize);
        let mut message = d.message.clone();
        if let Some(help) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        out.push_str(&format!(
            "::{} file={},line={line},col={col},endLine={end_line},endColumn={end_col},title={}::{}\n",
            d.severity,
            escape_property(path),
            escape_property(d.code),
            escape_data(&message)
        ));
    }
    out
}

/// GitHub escapes for the message part of a workflow command.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// GitHub escapes for a property value of a workflow command.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One diagnostic as JSON.
#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: Severity,
    code: &'a str,
    message: &'a str,
    file: &'a str,
    line: u32,
    col: u32,
    end_line: u32,
    end_col: u32,
    help: Option<&'a str>,
    labels: Vec<JsonLabel<'a>>,
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    file: &'a str,
    line: u32,
    col: u32,
    message: &'a str,
}

/// A JSON array of `{severity, code, message, file, line, col, end_line, end_col, help}`.
pub fn render_json(diags: &[Diagnostic], sources: &SourceMap) -> String {
    let items: Vec<JsonDiagnostic<'_>> = diags
        .iter()
        .map(|d| {
            let (line, col) = sources.line_col(d.primary.file, d.primary.span.start as usize);
            let (end_line, end_col) = sources.line_col(d.primary.file, d.primary.span.end as usize);
            JsonDiagnostic {
                severity: d.severity,
                code: d.code,
                message: &d.message,
                file: sources.path(d.primary.file),
                line,
                col,
                end_line,
                end_col,
                help: d.help.as_deref(),
                labels: d
                    .secondary
                    .iter()
                    .map(|l| {
                        let (line, col) = sources.line_col(l.file, l.span.start as usize);
                        JsonLabel {
                            file: sources.path(l.file),
                            line,
                            col,
                            message: &l.message,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into())
}

/// The closest candidate to `name` by edit distance, for "did you mean" help.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        // A shortened or lengthened name (`length` for `len`) is as good as a typo.
        .map(|c| {
            let prefix =
                name.len().min(c.len()) >= 3 && (name.starts_with(c) || c.starts_with(name));
            (if prefix { 1 } else { edit_distance(name, c) }, c)
        })
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (SourceMap, Vec<Diagnostic>) {
        let mut map = SourceMap::new();
        let f = map.add("policies/a.mcpg", "allow x.y when principal.grops == 1;\n");
        let d = Diagnostic::error(
            "E0102",
            "unknown field `grops` of `principal`",
            f,
            Span::new(25, 30),
        )
        .with_help("did you mean `groups`?");
        (map, vec![d])
    }

    #[test]
    fn human_is_rustc_style() {
        let (map, diags) = sample();
        let out = render_human(&diags, &map);
        assert!(
            out.starts_with("error[E0102]: unknown field `grops` of `principal`"),
            "{out}"
        );
        assert!(out.contains("--> policies/a.mcpg:1:26"), "{out}");
        assert!(out.contains("^^^^^"), "{out}");
        assert!(out.contains("help: did you mean `groups`?"), "{out}");
    }

    #[test]
    fn github_and_json() {
        let (map, diags) = sample();
        let gh = render_github(&diags, &map);
        assert!(
            gh.starts_with("::error file=policies/a.mcpg,line=1,col=26,"),
            "{gh}"
        );
        assert!(gh.contains("title=E0102::unknown field"), "{gh}");
        let json: serde_json::Value = serde_json::from_str(&render_json(&diags, &map)).unwrap();
        assert_eq!(json[0]["code"], "E0102");
        assert_eq!(json[0]["line"], 1);
        assert_eq!(json[0]["end_col"], 31);
        assert_eq!(json[0]["severity"], "error");
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("grops", ["id", "groups", "kind"]),
            Some("groups")
        );
        assert_eq!(did_you_mean("zzz", ["id", "groups"]), None);
    }
}
