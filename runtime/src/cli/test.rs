//! `mcpgate test`: run the policy tests of a repository, one line per test.

use mcpgate_compiler::repo::{check_files, read_dir};
use mcpgate_compiler::testing::{TestOutcome, TestReport, run_tests};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy repository.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

pub fn run(args: Args) -> ExitCode {
    let files = match read_dir(&args.dir) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", args.dir.display());
            return ExitCode::from(2);
        }
    };
    let checked = check_files(files);
    if checked.has_errors() {
        eprint!("{}", checked.rendered);
        eprintln!(
            "error: the policy has {} error{}; tests were not run",
            checked.errors,
            if checked.errors == 1 { "" } else { "s" }
        );
        eprintln!("  = help: run `mcpgate check` for details");
        return ExitCode::from(1);
    }
    let program = checked.program(None);
    let report = run_tests(&program, &checked.tests);
    print!("{}", render(&report));
    if report.failed() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The report as printed: one line per test, then `N passed, N failed`.
pub fn render(report: &TestReport) -> String {
    let mut out = String::new();
    for o in &report.outcomes {
        out.push_str(&line(o));
        out.push('\n');
    }
    out.push_str(&format!(
        "{} passed, {} failed\n",
        report.passed(),
        report.failed()
    ));
    out
}

/// One test's line: `ok   NAME` or `FAIL NAME: what went wrong (rule ID at FILE:LINE:COL)`.
pub fn line(o: &TestOutcome) -> String {
    if o.passed {
        return format!("ok   {}", o.name);
    }
    let at = match &o.rule_source {
        Some(src) => format!("rule {} at {src}", o.rule),
        None => format!("rule {}: no rule matched", o.rule),
    };
    let undecided = if o.undecided {
        ", its condition could not be decided"
    } else {
        ""
    };
    let what = match &o.expected_rule {
        Some(want) if o.expected == o.actual && *want != o.rule => {
            format!("expected rule {want} to decide, got {}", o.rule)
        }
        _ => format!("expected {}, got {}", o.expected, o.actual),
    };
    format!("FAIL {}: {what} ({at}{undecided})", o.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgate_compiler::Verdict;
    use mcpgate_compiler::ir::SourceLoc;

    fn outcome(passed: bool, actual: Verdict, rule: &str, want: Option<&str>) -> TestOutcome {
        TestOutcome {
            name: "big refunds".into(),
            passed,
            expected: Verdict::Deny,
            actual,
            rule: rule.into(),
            expected_rule: want.map(str::to_owned),
            rule_source: (rule != "default").then(|| SourceLoc {
                file: "policies/x.mcpg".into(),
                line: 3,
                col: 1,
            }),
            undecided: false,
            source: SourceLoc::default(),
        }
    }

    #[test]
    fn lines_name_the_test_the_verdicts_and_the_rule() {
        let report = TestReport {
            outcomes: vec![
                outcome(true, Verdict::Deny, "cap", None),
                outcome(false, Verdict::Allow, "policies/x.mcpg#2", None),
                outcome(false, Verdict::Deny, "other", Some("cap")),
                outcome(false, Verdict::Deny, "default", Some("cap")),
            ],
            uncovered: Vec::new(),
        };
        assert_eq!(
            render(&report),
            "ok   big refunds\n\
             FAIL big refunds: expected deny, got allow (rule policies/x.mcpg#2 at policies/x.mcpg:3:1)\n\
             FAIL big refunds: expected rule cap to decide, got other (rule other at policies/x.mcpg:3:1)\n\
             FAIL big refunds: expected rule cap to decide, got default (rule default: no rule matched)\n\
             1 passed, 3 failed\n"
        );
    }
}
