//! `mcpgate who-can`: every class of principal that can reach a tool, prompt or resource,
//! under which argument conditions, with which verdict, and the rules that decide; exact
//! answers from the compiled program (see docs/analysis.md).

use mcpgate_compiler::analysis::{self, Model, Named, Reach};
use mcpgate_compiler::repo::{Checked, check_files, read_dir};
use mcpgate_compiler::testing::Call;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What is reached: `server.tool`, `prompt:server.name` or `resource:server:URI`.
    #[arg(required_unless_present = "all")]
    pub target: Option<String>,
    /// Every target the policy names or `mcpgate.lock` pins (a pattern is answered for a
    /// name only it matches).
    #[arg(long, conflicts_with = "target")]
    pub all: bool,
    /// The policy repository.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Only the requests for which this condition holds, in the policy language:
    /// `--args-constraint 'args.amount > 1000'`.
    #[arg(long)]
    pub args_constraint: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Reads and checks the repository; the exit code when it cannot be analysed.
pub(crate) fn load(dir: &Path) -> Result<Checked, ExitCode> {
    let files = read_dir(dir).map_err(|e| {
        eprintln!("error: cannot read `{}`: {e}", dir.display());
        ExitCode::from(2)
    })?;
    let checked = check_files(files);
    if checked.has_errors() {
        eprint!("{}", checked.rendered);
        eprintln!("error: the policy has errors; nothing to analyse");
        eprintln!("  = help: run `mcpgate check` for details");
        return Err(ExitCode::from(1));
    }
    Ok(checked)
}

/// Prints reports in the format asked for.
pub(crate) fn print(title: &str, reports: &[Reach], who: bool, format: Format) -> ExitCode {
    match format {
        Format::Text => print!("{}", analysis::plain(reports, who)),
        Format::Markdown => print!("{}", analysis::markdown(title, reports, who)),
        Format::Json => match serde_json::to_string_pretty(reports) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: cannot write the report: {e}");
                return ExitCode::from(2);
            }
        },
    }
    ExitCode::SUCCESS
}

fn named(target: &str) -> Result<Named, String> {
    let call = Call::parse(target).ok_or_else(|| {
        format!(
            "invalid target `{target}`\n  = help: write `server.tool`, `prompt:server.name` or `resource:server:URI`"
        )
    })?;
    Ok(Named {
        label: call.target().to_string(),
        call,
        pattern: false,
    })
}

pub fn run(args: Args) -> ExitCode {
    let filter = match args.args_constraint.as_deref().map(analysis::constraint) {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(rendered)) => {
            eprint!("{rendered}");
            eprintln!("error: `--args-constraint` is not a valid condition");
            return ExitCode::from(2);
        }
    };
    let single = match args.target.as_deref().map(named) {
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Some(Ok(n)) => Some(n),
        None => None,
    };
    let checked = match load(&args.dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let model = Model::of(&checked);
    let targets = match single {
        Some(n) => vec![n],
        None => analysis::targets(&[model.policy], model.lock),
    };
    let reports: Vec<Reach> = targets
        .iter()
        .map(|t| analysis::who_can(&model, t, filter.as_ref()))
        .collect();
    let title = match &args.target {
        Some(t) => format!("Who can reach `{t}`"),
        None => "Who can reach what".to_owned(),
    };
    print(&title, &reports, true, args.format)
}
