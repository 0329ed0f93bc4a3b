//! `mcpgate diff`: which rules and which verdicts a change flips, comparing the policy at a
//! git revision with the working tree.

use crate::git;
use mcpgate_compiler::diff::{self, PolicyDiff, Side};
use mcpgate_compiler::repo::{self, Checked, SourceFile};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For a pull request comment.
    Markdown,
    /// For tools: the shape documented in docs/review.md.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The revision to compare with (a commit, branch or tag).
    #[arg(long)]
    pub base: String,
    /// The policy repository, in a git working tree (default: the current directory).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: Format,
    /// Exit 1 if any verdict moves toward more access (hide < deny < approve < allow).
    #[arg(long)]
    pub fail_on_widen: bool,
}

/// Why a diff could not be made, with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

fn usage(message: String) -> Failure {
    Failure { message, code: 2 }
}

/// The path of `dir` inside its git repository (`""` for the root), `/`-separated.
///
/// # Errors
/// When `dir` is not inside a git working tree.
pub fn subdir_in_repo(dir: &Path) -> Result<String, String> {
    let repo = git2::Repository::discover(dir).map_err(|e| {
        format!(
            "`{}` is not in a git repository: {}",
            dir.display(),
            e.message()
        )
    })?;
    let root = repo
        .workdir()
        .ok_or_else(|| "the repository has no working tree".to_owned())?;
    let root = root.canonicalize().map_err(|e| e.to_string())?;
    let dir = dir.canonicalize().map_err(|e| e.to_string())?;
    let rel = dir
        .strip_prefix(&root)
        .map_err(|_| format!("`{}` is outside its repository", dir.display()))?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(parts.join("/"))
}

fn check_side(files: Vec<SourceFile>, what: &str) -> Result<Checked, Failure> {
    let checked = repo::check_files(files);
    if checked.has_errors() {
        return Err(Failure {
            message: format!(
                "{}error: the policy {what} has errors\n  = help: run `mcpgate check` on it for details",
                checked.rendered
            ),
            code: 1,
        });
    }
    Ok(checked)
}

/// Reads and checks both sides and compares them.
///
/// # Errors
/// A side that cannot be read (exit 2) or that has errors (exit 1, with its diagnostics).
pub fn diff_dir(dir: &Path, base: &str) -> Result<PolicyDiff, Failure> {
    let subdir = subdir_in_repo(dir).map_err(usage)?;
    let base_files = git::read_tree(dir, base, &subdir).map_err(|e| {
        usage(format!(
            "cannot read the policy at `{base}`: {e}\n  = help: the base must be a commit of the repository that contains `{}`",
            dir.display()
        ))
    })?;
    let head_files =
        repo::read_dir(dir).map_err(|e| usage(format!("cannot read `{}`: {e}", dir.display())))?;
    let old = check_side(base_files, &format!("at `{base}`"))?;
    let new = check_side(head_files, "in the working tree")?;
    Ok(diff::diff(
        Side {
            policy: &old.policy,
            tests: &old.tests,
            memberships: &old.memberships,
        },
        Side {
            policy: &new.policy,
            tests: &new.tests,
            memberships: &new.memberships,
        },
    ))
}

pub fn run(args: Args) -> ExitCode {
    let d = match diff_dir(&args.dir, &args.base) {
        Ok(d) => d,
        Err(f) => {
            if f.code == 2 {
                eprintln!("error: {}", f.message);
            } else {
                eprintln!("{}", f.message);
            }
            return ExitCode::from(f.code);
        }
    };
    match args.format {
        Format::Markdown => print!("{}", diff::markdown(&d, &args.base)),
        Format::Json => match serde_json::to_string_pretty(&d) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: cannot write the diff: {e}");
                return ExitCode::from(2);
            }
        },
    }
    eprintln!("diff: {}", d.summary());
    if args.fail_on_widen && d.widens() {
        eprintln!("error: the change widens access (`--fail-on-widen`)");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
