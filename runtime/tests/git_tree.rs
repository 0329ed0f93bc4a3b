//! Reading a commit's policy files through libgit2, against a real repository.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?} failed");
}

#[test]
fn reads_the_policy_files_of_a_past_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(dir.join("policies/sub")).unwrap();
    std::fs::write(dir.join("policies/a.mcpg"), "allow demo.echo;\n").unwrap();
    std::fs::write(dir.join("policies/sub/b.yaml"), "rules: []\n").unwrap();
    std::fs::write(dir.join("README.md"), "not policy\n").unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "v1"]);
    let v1 = mcpgate::git::resolve(dir, "HEAD").unwrap();
    std::fs::write(dir.join("policies/a.mcpg"), "deny demo.echo;\n").unwrap();
    git(dir, &["commit", "-q", "-am", "v2"]);

    let files = mcpgate::git::read_tree(dir, &v1, "").unwrap();
    let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["policies/a.mcpg", "policies/sub/b.yaml"]);
    assert_eq!(files[0].text, "allow demo.echo;\n");

    let head = mcpgate::git::read_tree(dir, "main", "policies").unwrap();
    assert!(
        head.is_empty(),
        "a subfolder is read as a repository root: {head:?}"
    );
    assert!(mcpgate::git::read_tree(dir, "no-such-rev", "").is_err());
}
