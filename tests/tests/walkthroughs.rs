//! The walkthroughs of README.md and docs/, run as written: each marked block
//! (`<!-- walkthrough: NAME -->`, see docs/walkthroughs.md) is run in a scratch folder with
//! the built binary, and what the text shows is checked. A failure names the document and
//! the line of the block.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::walkthrough;
use std::collections::BTreeSet;

/// The documents that hold walkthroughs.
const DOCS: &[&str] = &[
    "README.md",
    "docs/language.md",
    "docs/gitops.md",
    "docs/lock.md",
    "docs/audit.md",
    "docs/analysis.md",
];

/// Every walkthrough a test below runs; `docs/language.md` is run whole.
const COVERED: &[(&str, &str)] = &[
    ("README.md", "first-screen"),
    ("README.md", "from-zero"),
    ("README.md", "approvals"),
    ("README.md", "policy-in-brief"),
    ("docs/gitops.md", "gitops-quick-start"),
    ("docs/lock.md", "lock-review"),
    ("docs/audit.md", "audit-verify"),
    ("docs/analysis.md", "who-can-stripe"),
    ("docs/analysis.md", "lint"),
];

#[test]
fn every_marked_walkthrough_is_run_by_a_test() {
    let marked: BTreeSet<(String, String)> = DOCS
        .iter()
        .filter(|doc| **doc != "docs/language.md")
        .flat_map(|doc| {
            walkthrough::names(doc)
                .into_iter()
                .map(move |n| ((*doc).to_owned(), n))
        })
        .collect();
    let covered: BTreeSet<(String, String)> = COVERED
        .iter()
        .map(|(d, n)| ((*d).to_owned(), (*n).to_owned()))
        .collect();
    assert_eq!(
        marked, covered,
        "a walkthrough is marked in a document but no test runs it, or a test names one \
         that is no longer marked"
    );
    // Other documents must not hold markers that nothing runs.
    for entry in
        std::fs::read_dir(mcpgate_tests::paths::workspace_root().join("docs")).expect("read docs/")
    {
        let path = entry.expect("a docs/ entry").path();
        let doc = format!(
            "docs/{}",
            path.file_name().expect("a file name").to_string_lossy()
        );
        if !DOCS.contains(&doc.as_str()) && doc.ends_with(".md") {
            assert!(
                walkthrough::names(&doc).is_empty(),
                "{doc} marks walkthroughs; add it to DOCS in tests/tests/walkthroughs.rs"
            );
        }
    }
}

#[test]
fn readme_first_screen() {
    walkthrough::run("README.md", "first-screen");
}

#[test]
fn readme_from_zero() {
    walkthrough::run("README.md", "from-zero");
}

#[test]
fn readme_approvals() {
    walkthrough::run("README.md", "approvals");
}

#[test]
fn readme_policy_in_brief() {
    walkthrough::run("README.md", "policy-in-brief");
}

#[test]
fn language_examples_check() {
    let names = walkthrough::names("docs/language.md");
    assert!(!names.is_empty(), "docs/language.md marks no walkthrough");
    for name in names {
        walkthrough::run("docs/language.md", &name);
    }
}

#[test]
fn gitops_quick_start() {
    walkthrough::run("docs/gitops.md", "gitops-quick-start");
}

#[test]
fn lock_review() {
    walkthrough::run("docs/lock.md", "lock-review");
}

#[test]
fn audit_verify() {
    walkthrough::run("docs/audit.md", "audit-verify");
}

#[test]
fn analysis_who_can_and_can() {
    walkthrough::run("docs/analysis.md", "who-can-stripe");
}

#[test]
fn analysis_lint() {
    walkthrough::run("docs/analysis.md", "lint");
}
