//! The error list for each policy in `tests/corpus/bad/`, rendered as a user sees it and
//! kept as an insta snapshot, so any change to a message or a span shows up in review.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcpgate_grammar::{SyntaxError, parse_file};
use std::fmt::Write;
use std::path::Path;

/// 1-based line and column (in characters) of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn render(name: &str, src: &str, errors: &[SyntaxError]) -> String {
    let mut out = String::new();
    for e in errors {
        let (line, col) = line_col(src, e.span.start as usize);
        writeln!(out, "{name}:{line}:{col}: error: {}", e.message).unwrap();
        let text = &src[e.span.range()];
        writeln!(out, "  at: {text:?}").unwrap();
        if let Some(help) = &e.help {
            writeln!(out, "  help: {help}").unwrap();
        }
    }
    out
}

#[test]
fn bad_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mcpg"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "corpus too small: {}", files.len());
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let src = std::fs::read_to_string(&path).unwrap();
        let (file, errors) = parse_file(&src);
        assert!(!errors.is_empty(), "{name}: a bad policy parsed cleanly");
        for e in &errors {
            assert!(e.span.start <= e.span.end && e.span.end as usize <= src.len());
            assert!(src.is_char_boundary(e.span.start as usize));
            assert!(src.is_char_boundary(e.span.end as usize));
            let first = e.message.chars().next().unwrap();
            assert!(!first.is_uppercase(), "{name}: {}", e.message);
            assert!(!e.message.ends_with('.'), "{name}: {}", e.message);
        }
        let mut shown = render(&name, &src, &errors);
        writeln!(shown, "rules kept: {}", file.rules.len()).unwrap();
        insta::assert_snapshot!(name, shown);
    }
}

#[test]
fn recovery_reports_each_broken_rule() {
    let src = include_str!("corpus/bad/multi_error_recovery.mcpg");
    let (file, errors) = parse_file(src);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert_eq!(file.rules.len(), 3);
}
