//! `mcpgate diff` against a real git repository: a base commit and a change in the
//! working tree.

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

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const BASE_RULES: &str = r#"allow stripe.list_charges;
@id("refunds")
allow stripe.create_refund when "finance" in principal.groups;
@id("cap-refunds")
deny stripe.create_refund when args.amount > 50_000 because "over the limit";
hide stripe.delete_customer;
"#;

const TESTS: &str = r#"tests:
  - name: finance refunds a small charge
    principal: { id: alice, kind: human, groups: [finance] }
    call: stripe.create_refund
    args: { amount: 100 }
    expect: allow
  - name: big refunds are refused
    principal: { id: alice, kind: human, groups: [finance] }
    call: stripe.create_refund
    args: { amount: 60000 }
    expect: deny
  - name: charges are listed
    principal: { id: bob, kind: human }
    call: stripe.list_charges
    expect: allow
  - name: delete is hidden
    principal: { id: bob, kind: human }
    call: stripe.delete_customer
    expect: hide
"#;

/// A repository whose policy lives in `policy/`, committed once; returns the commit.
fn repo(dir: &Path) -> String {
    git(dir, &["init", "-q", "-b", "main"]);
    write(dir, "policy/policies/stripe.mcpg", BASE_RULES);
    write(dir, "policy/tests/stripe.yaml", TESTS);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "base"]);
    mcpgate::git::resolve(dir, "HEAD").unwrap()
}

fn mcpgate(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcpgate"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_diff(dir: &Path, base: &str) -> serde_json::Value {
    let (code, out, err) = mcpgate(dir, &["diff", "--base", base, "policy", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn flip_lines(v: &serde_json::Value) -> Vec<String> {
    v["flips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let args = if f["args"].is_null() {
                String::new()
            } else {
                format!(" {}", f["args"])
            };
            format!(
                "{}: {}{args}: {} -> {} ({} -> {})",
                f["principal"].as_str().unwrap(),
                f["target"].as_str().unwrap(),
                f["before"].as_str().unwrap(),
                f["after"].as_str().unwrap(),
                f["before_rule"].as_str().unwrap(),
                f["after_rule"].as_str().unwrap(),
            )
        })
        .collect()
}

#[test]
fn raising_the_refund_cap_names_exactly_the_flipped_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let base = repo(dir);
    write(
        dir,
        "policy/policies/stripe.mcpg",
        &BASE_RULES.replace("50_000", "100_000"),
    );
    let v = json_diff(dir, &base);
    assert_eq!(v["rules"]["changed"][0]["id"], "cap-refunds");
    assert_eq!(
        v["rules"]["changed"][0]["fields"],
        serde_json::json!(["condition"])
    );
    assert_eq!(v["rules"]["added"], serde_json::json!([]));
    // The test's 60000 and the probes at the old boundary now pass for finance only.
    assert_eq!(
        flip_lines(&v),
        [
            r#"alice: stripe.create_refund {"amount":60000}: deny -> allow (cap-refunds -> refunds)"#,
            r#"human@finance: stripe.create_refund {"amount":100000}: deny -> allow (cap-refunds -> refunds)"#,
            r#"human@finance: stripe.create_refund {"amount":50001}: deny -> allow (cap-refunds -> refunds)"#,
            r#"human@finance: stripe.create_refund {"amount":99999}: deny -> allow (cap-refunds -> refunds)"#,
        ]
    );
    assert!(v["flips"][0]["widens"].as_bool().unwrap());
    assert_eq!(v["flips"][0]["origin"], "test");
    assert_eq!(v["flips"][0]["test"], "big refunds are refused");
    assert_eq!(v["flips"][1]["origin"], "probe");

    let (code, md, err) = mcpgate(dir, &["diff", "--base", &base, "policy"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        md.contains("#### `stripe.create_refund`: 4 flips, 4 widen"),
        "{md}"
    );
    assert!(
        md.contains("| `cap-refunds` | changed: condition |"),
        "{md}"
    );

    let (code, _, err) = mcpgate(dir, &["diff", "--base", &base, "policy", "--fail-on-widen"]);
    assert_eq!(code, 1, "a widening change must fail: {err}");
    assert!(err.contains("widens access"), "{err}");
}

#[test]
fn a_narrowing_change_passes_fail_on_widen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let base = repo(dir);
    write(
        dir,
        "policy/policies/stripe.mcpg",
        &BASE_RULES.replace(
            "allow stripe.list_charges;",
            "approve stripe.list_charges by \"leads\";",
        ),
    );
    let v = json_diff(dir, &base);
    let lines = flip_lines(&v);
    assert!(
        lines.contains(&"bob: stripe.list_charges: allow -> approve (policies/stripe.mcpg#1 -> policies/stripe.mcpg#1)".to_owned()),
        "{lines:?}"
    );
    assert!(
        v["flips"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["widens"] == false)
    );
    let (code, _, err) = mcpgate(dir, &["diff", "--base", &base, "policy", "--fail-on-widen"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn moving_rules_between_files_flips_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let base = repo(dir);
    // Same rules with ids kept: the two unnamed ones get ids so they survive the move.
    let (first, second) = BASE_RULES.split_at(BASE_RULES.find("@id(\"cap-refunds\")").unwrap());
    write(dir, "policy/policies/stripe.mcpg", first);
    write(dir, "policy/policies/limits/refunds.mcpg", second);
    let v = json_diff(dir, &base);
    assert_eq!(v["flips"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["rules"]["changed"], serde_json::json!([]));
    let moved = v["rules"]["moved"].as_array().unwrap();
    assert_eq!(moved.len(), 1, "{v:#}");
    assert_eq!(moved[0]["id"], "cap-refunds");
    assert_eq!(moved[0]["from"], "policies/stripe.mcpg:4");
    assert_eq!(moved[0]["to"], "policies/limits/refunds.mcpg:1");
    // The unnamed hide rule was the fourth rule of the file and is now in another file:
    // its id changes, so it reads as removed and added, with no verdict flipped.
    assert_eq!(v["rules"]["removed"][0]["id"], "policies/stripe.mcpg#4");
    assert_eq!(
        v["rules"]["added"][0]["id"],
        "policies/limits/refunds.mcpg#2"
    );
    assert!(v["evaluated"].as_u64().unwrap() > 10);
}

#[test]
fn json_has_the_documented_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let base = repo(dir);
    let v = json_diff(dir, &base);
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["evaluated", "exact", "flips", "probes_truncated", "rules"]
    );
    let mut exact_keys: Vec<&String> = v["exact"].as_object().unwrap().keys().collect();
    exact_keys.sort();
    assert_eq!(
        exact_keys,
        [
            "exact",
            "flips",
            "incomplete_targets",
            "opaque_targets",
            "targets",
            "truncated"
        ]
    );
    let mut rule_keys: Vec<&String> = v["rules"].as_object().unwrap().keys().collect();
    rule_keys.sort();
    assert_eq!(
        rule_keys,
        ["added", "changed", "memberships", "moved", "removed"]
    );
    assert_eq!(v["flips"], serde_json::json!([]));
    assert_eq!(v["exact"]["flips"], serde_json::json!([]));
}

#[test]
fn a_side_with_errors_prints_its_diagnostics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let base = repo(dir);
    write(dir, "policy/policies/broken.mcpg", "allow ;\n");
    let (code, _, err) = mcpgate(dir, &["diff", "--base", &base, "policy"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("policies/broken.mcpg"), "{err}");
    assert!(
        err.contains("the policy in the working tree has errors"),
        "{err}"
    );
    let (code, _, err) = mcpgate(dir, &["diff", "--base", "no-such-rev", "policy"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("error: cannot read the policy at `no-such-rev`"),
        "{err}"
    );
}
