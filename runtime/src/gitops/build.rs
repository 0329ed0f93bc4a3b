//! From policy files to a program: check, compile, run the policy tests. A policy with
//! errors or failing tests is rejected with its diagnostics.

use mcpgate_compiler::Program;
use mcpgate_compiler::config::Config;
use mcpgate_compiler::diag::{Diagnostic, Severity};
use mcpgate_compiler::lock::Lockfile;
use mcpgate_compiler::repo::{Checked, SourceFile, check_files};
use mcpgate_compiler::responders::ResponderSet;
use mcpgate_compiler::testing::run_tests;

/// How many diagnostics a rejection keeps for `/status`.
pub const KEPT_DIAGNOSTICS: usize = 10;

/// A policy that checked, compiled and passed its tests.
#[derive(Debug)]
pub struct Built {
    pub program: Program,
    pub config: Config,
    /// `mcpgate.lock` of the same commit, swapped in with the program.
    pub lock: Option<Lockfile>,
    /// `responders.yaml` of the same commit, swapped in with the program.
    pub responders: ResponderSet,
    /// Policy tests run (all passed).
    pub tests: usize,
}

/// A policy that must not go live.
#[derive(Clone, Debug)]
pub struct Rejected {
    pub errors: usize,
    /// The first diagnostics, one line each: `error[CODE] FILE:LINE:COL: message`.
    pub diagnostics: Vec<String>,
    /// Every diagnostic, rendered for a terminal (for the log).
    pub rendered: String,
}

/// Checks `files`, compiles them (the program names `commit`) and runs the policy tests.
///
/// # Errors
/// When the policy has errors or a policy test fails.
pub fn build(files: Vec<SourceFile>, commit: Option<&str>) -> Result<Built, Rejected> {
    let mut checked = check_files(files);
    if !checked.has_errors() {
        let program = checked.program(commit);
        let report = run_tests(&program, &checked.tests);
        if report.failed() == 0 {
            return Ok(Built {
                program,
                config: checked.config.take().unwrap_or_default(),
                lock: checked.lock.take(),
                responders: std::mem::take(&mut checked.responders),
                tests: report.passed(),
            });
        }
        checked.add_test_report(&report);
    }
    Err(rejected(&checked))
}

/// Checks and compiles without running the tests (the folder a development gateway starts
/// on); `Err` when the policy has errors.
///
/// # Errors
/// When the policy has errors.
pub fn build_untested(files: Vec<SourceFile>) -> Result<Built, Rejected> {
    let mut checked = check_files(files);
    if checked.has_errors() {
        return Err(rejected(&checked));
    }
    Ok(Built {
        program: checked.program(None),
        config: checked.config.take().unwrap_or_default(),
        lock: checked.lock.take(),
        responders: std::mem::take(&mut checked.responders),
        tests: 0,
    })
}

fn rejected(checked: &Checked) -> Rejected {
    let diagnostics = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .take(KEPT_DIAGNOSTICS)
        .map(|d| one_line(checked, d))
        .collect();
    Rejected {
        errors: checked.errors.max(1),
        diagnostics,
        rendered: checked.rendered.clone(),
    }
}

fn one_line(checked: &Checked, d: &Diagnostic) -> String {
    let file = d.primary.file;
    let (line, col) = checked
        .sources
        .get(file)
        .map_or((0, 0), |s| s.line_col(d.primary.span.start as usize));
    let severity = match d.severity {
        Severity::Error => "error",
        _ => "warning",
    };
    format!(
        "{severity}[{}] {}:{line}:{col}: {}",
        d.code,
        checked.sources.path(file),
        d.message
    )
}
