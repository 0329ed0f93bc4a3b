//! `mcpgate check`: parse, check, compile, and run the policy tests of a repository.

use mcpgate_compiler::diag::Format;
use mcpgate_compiler::repo;
use mcpgate_compiler::testing;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy repository (default: the current directory).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// Fail on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// rustc style, with source lines.
    Human,
    /// GitHub Actions annotations.
    Github,
    /// A JSON array of diagnostics.
    Json,
}

impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Format {
        match f {
            OutputFormat::Human => Format::Human,
            OutputFormat::Github => Format::Github,
            OutputFormat::Json => Format::Json,
        }
    }
}

/// What a check found, for the summary and the exit code.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub rules: usize,
    pub tests: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub warnings: usize,
}

/// Checks a repository, runs its tests, and returns the diagnostics rendered in `format`
/// with the summary.
pub fn check_dir(dir: &std::path::Path, format: Format) -> std::io::Result<(String, Summary)> {
    let files = repo::read_dir(dir)?;
    let mut checked = repo::check_files(files);
    let mut summary = Summary {
        rules: checked.policy.rules.len(),
        tests: checked.tests.len(),
        ..Summary::default()
    };
    // With errors, the policy is partial: its test results would mislead.
    if !checked.has_errors() {
        let program = checked.program(None);
        let report = testing::run_tests(&program, &checked.tests);
        summary.passed = report.passed();
        summary.failed = report.failed();
        checked.add_test_report(&report);
        // The lint reads the exact regions of the compiled program (docs/analysis.md).
        let lints = mcpgate_compiler::analysis::lint::lint(&checked);
        checked.extend(lints);
    }
    summary.errors = checked.errors;
    summary.warnings = checked.warnings;
    Ok((checked.render(format), summary))
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

impl Summary {
    /// `6 rules, 7 tests: 7 passed, 0 failed; 0 errors, 0 warnings`
    pub fn line(&self) -> String {
        format!(
            "{}, {}: {} passed, {} failed; {}, {}",
            plural(self.rules, "rule"),
            plural(self.tests, "test"),
            self.passed,
            self.failed,
            plural(self.errors, "error"),
            plural(self.warnings, "warning"),
        )
    }
}

pub fn run(args: Args) -> ExitCode {
    let format = Format::from(args.format);
    let (rendered, summary) = match check_dir(&args.dir, format) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", args.dir.display());
            return ExitCode::from(2);
        }
    };
    let failed =
        summary.errors > 0 || summary.failed > 0 || (args.deny_warnings && summary.warnings > 0);
    match format {
        Format::Json => {
            println!("{rendered}");
            eprintln!("{}", summary.line());
        }
        Format::Human | Format::Github => {
            print!("{rendered}");
            let status = if failed { "failed" } else { "ok" };
            println!("check {status}: {}", summary.line());
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn example(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
    }

    #[test]
    fn quickstart_is_clean() {
        let (rendered, summary) = check_dir(&example("examples/quickstart"), Format::Json).unwrap();
        assert_eq!(rendered.trim(), "[]");
        assert_eq!(
            (summary.errors, summary.warnings, summary.failed),
            (0, 0, 0)
        );
        assert!(summary.passed >= 7, "{summary:?}");
        assert!(
            summary.line().contains("0 errors, 0 warnings"),
            "{}",
            summary.line()
        );
    }

    #[test]
    fn errors_are_counted_and_rendered() {
        let dir = example("compiler/tests/corpus/bad/duplicate_ids");
        let (rendered, summary) = check_dir(&dir, Format::Github).unwrap();
        assert_eq!(summary.errors, 2, "{rendered}");
        assert!(
            rendered.contains("title=E0301::duplicate rule id `payments`"),
            "{rendered}"
        );
        // With errors the policy is partial, so its tests are not run.
        assert_eq!(summary.passed + summary.failed, 0);
    }

    #[test]
    fn lint_findings_are_warnings_at_the_rule_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(
            dir.path().join("policies/a.mcpg"),
            "allow demo.echo;\nallow demo.add when args.n > 5 && args.n < 3;\n",
        )
        .unwrap();
        let (rendered, summary) = check_dir(dir.path(), Format::Github).unwrap();
        // The lint's warning, and W0505 for the rules no test exercises.
        assert_eq!((summary.errors, summary.warnings), (0, 3), "{rendered}");
        assert!(
            rendered.lines().any(
                |l| l.starts_with("::warning file=policies/a.mcpg,line=2,col=1,")
                    && l.contains("title=W0801::rule `policies/a.mcpg#2` never decides a call")
            ),
            "{rendered}"
        );
        // A warning alone does not fail the check unless `--deny-warnings` says so.
        let run = |deny_warnings| {
            super::run(Args {
                dir: dir.path().to_owned(),
                format: OutputFormat::Json,
                deny_warnings,
            })
        };
        assert_eq!(run(false), ExitCode::SUCCESS);
        assert_eq!(run(true), ExitCode::from(1));
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        assert!(check_dir(Path::new("/nonexistent/mcpgate-policy"), Format::Human).is_err());
    }
}
