//! Property tests: whatever text the files hold, checking a repository reports
//! diagnostics and never panics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_compiler::diag::Format;
use mcpgate_compiler::repo::{SourceFile, check_files};
use proptest::prelude::*;

const DSL: &str = include_str!("../../examples/quickstart/policies/demo.mcpg");
const YAML: &str = include_str!("../../examples/quickstart/policies/payments.yaml");
const TESTS: &str = include_str!("../../examples/quickstart/tests/demo.yaml");
const CONFIG: &str = include_str!("../../examples/quickstart/mcpgate.yaml");

/// Pieces that steer random text towards the interesting parts of both grammars.
const PIECES: &[&str] = &[
    "allow ",
    "deny ",
    "hide ",
    "approve ",
    "limit ",
    "demo.",
    "*",
    "when ",
    "because ",
    "by ",
    "args.",
    "principal.",
    "groups",
    "len(",
    "exists(",
    ")",
    "\"",
    "'",
    ";",
    "\n",
    "  ",
    "- ",
    ": ",
    "rules:",
    "tests:",
    "effect: ",
    "tools: ",
    "when: ",
    "rate: ",
    "per ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "#",
    "${secret:",
    "${",
    "matches ",
    "\"(\"",
    "1_000",
    "-1",
    "1e999",
    "é",
    "\t",
    "|\n",
    ">-\n",
    "&&",
    "||",
    "!",
    "==",
    ">",
    "@id(\"x\")",
];

fn pieces() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..40).prop_map(|v| v.concat())
}

/// A mutation of `base`: a few bytes replaced, inserted or removed, at char boundaries.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, pieces()), 1..6).prop_map(
        move |edits| {
            let mut s = base.to_owned();
            for (at, kind, text) in edits {
                let mut i = at.index(s.len() + 1);
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                match kind {
                    0 => s.insert_str(i, &text),
                    1 => {
                        let mut end = (i + text.len().max(1)).min(s.len());
                        while !s.is_char_boundary(end) {
                            end -= 1;
                        }
                        s.replace_range(i..end, "");
                    }
                    // Replace one character.
                    _ => {
                        let end = s[i..].chars().next().map_or(i, |c| i + c.len_utf8());
                        let with: String = text.chars().take(1).collect();
                        s.replace_range(i..end, &with);
                    }
                }
            }
            s
        },
    )
}

fn repo(dsl: String, yaml: String, tests: String, config: String) -> Vec<SourceFile> {
    vec![
        SourceFile {
            path: "mcpgate.yaml".into(),
            text: config,
        },
        SourceFile {
            path: "policies/a.mcpg".into(),
            text: dsl,
        },
        SourceFile {
            path: "policies/b.yaml".into(),
            text: yaml,
        },
        SourceFile {
            path: "tests/t.yaml".into(),
            text: tests,
        },
    ]
}

fn check_all_formats(files: Vec<SourceFile>) {
    let checked = check_files(files);
    for f in [Format::Human, Format::Github, Format::Json] {
        let _ = checked.render(f);
    }
    assert_eq!(checked.errors + checked.warnings, checked.diagnostics.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(a in any::<String>(), b in any::<String>(), c in any::<String>(), d in any::<String>()) {
        check_all_formats(repo(a, b, c, d));
    }

    #[test]
    fn grammar_pieces(a in pieces(), b in pieces(), c in pieces(), d in pieces()) {
        check_all_formats(repo(a, b, c, d));
    }

    #[test]
    fn mutated_sources(a in mutated(DSL), b in mutated(YAML), c in mutated(TESTS), d in mutated(CONFIG)) {
        check_all_formats(repo(a, b, c, d));
    }
}
