//! Snapshot tests: every repository under `tests/corpus/bad/` is checked, and its
//! diagnostics are rendered (human, and json for the positions) and compared with the
//! snapshots in `tests/snapshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_compiler::diag::Format;
use mcpgate_compiler::repo;
use std::path::Path;

fn corpus_cases() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn check(name: &str) -> repo::Checked {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/bad")
        .join(name);
    repo::check_files(repo::read_dir(&dir).unwrap())
}

#[test]
fn corpus_snapshots() {
    let cases = corpus_cases();
    assert!(cases.len() >= 15, "the corpus has {} cases", cases.len());
    for name in cases {
        let checked = check(&name);
        assert!(
            checked.errors + checked.warnings > 0,
            "`{name}` is in the bad corpus but has no diagnostics"
        );
        insta::assert_snapshot!(name.as_str(), checked.render(Format::Human));
    }
}

#[test]
fn json_positions_are_one_based_characters() {
    let checked = check("yaml_bad_expression");
    let json: serde_json::Value = serde_json::from_str(&checked.render(Format::Json)).unwrap();
    let first = &json[0];
    assert_eq!(first["file"], "policies/a.yaml");
    assert_eq!(first["code"], "E0004");
    // `when: args.amount >> 100`: the second `>` is at line 4, column 24.
    assert_eq!(first["line"], 4);
    assert_eq!(first["col"], 24);
}

#[test]
fn github_annotations() {
    let checked = check("shadowed_rule");
    let out = checked.render(Format::Github);
    assert!(
        out.lines().any(
            |l| l.starts_with("::warning file=policies/a.mcpg,line=2,col=1,")
                && l.contains("title=W0401::")
        ),
        "{out}"
    );
}
