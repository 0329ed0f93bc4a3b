//! `mcpgate pauses list|unpause`: the principals and sessions a responder paused, from the
//! state database, or a fleet's shared database with `--policy DIR` (the gateway sees a
//! lifted pause at the paused caller's next call, and records it in the audit then).

use crate::responders::pauses::{Pause, PauseStore, PauseTable, now_ms};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
    /// The gateway's state dir (default `.mcpgate-state`).
    #[arg(long, env = "MCPGATE_STATE", global = true)]
    pub state: Option<PathBuf>,
    /// The policy folder of a fleet: when its `mcpgate.yaml` names `state.postgres`, the
    /// pauses are in that shared database rather than the state dir.
    #[arg(long, global = true)]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Pauses in force, soonest end first.
    List {
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Lift every pause of a principal id or a session id.
    Unpause {
        /// The principal id (`bob@example.com`) or session id, as `list` shows it.
        subject: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

pub fn run(args: Args) -> ExitCode {
    let state = crate::state::dir_or_default(args.state.as_deref());
    if !state.is_dir() {
        eprintln!("error: no state dir at `{}`", state.display());
        eprintln!("  help: pass the gateway's `--state` (or set MCPGATE_STATE)");
        return ExitCode::from(2);
    }
    let shared = match &args.policy {
        Some(policy) => match super::serve::policy_db(policy, &state) {
            Ok(pg) => pg,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let store: Box<dyn PauseTable> = match shared {
        Some(pg) => Box::new(crate::responders::postgres::PgPauses::new(pg)),
        None => match PauseStore::open(&state) {
            Ok(s) => Box::new(s),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match args.command {
        Command::List { format } => list(store.as_ref(), format),
        Command::Unpause { subject } => unpause(store.as_ref(), &subject),
    }
}

fn list(store: &dyn PauseTable, format: Format) -> ExitCode {
    let pauses = match store.active(now_ms()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot read the pauses: {e}");
            return ExitCode::from(2);
        }
    };
    match format {
        Format::Json => {
            let v = serde_json::json!({ "pauses": pauses });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Human if pauses.is_empty() => println!("no pauses"),
        Format::Human => {
            for p in &pauses {
                println!("{}", line(p));
            }
        }
    }
    ExitCode::SUCCESS
}

fn line(p: &Pause) -> String {
    let until = crate::audit::record::rfc3339(u64::try_from(p.until_ms / 1000).unwrap_or(0), 0);
    format!(
        "{} {}  until {until}  by responder `{}` ({})",
        p.scope, p.subject, p.responder, p.reason
    )
}

fn unpause(store: &dyn PauseTable, subject: &str) -> ExitCode {
    match store.remove(subject) {
        Ok(0) => {
            eprintln!("error: `{subject}` is not paused");
            eprintln!("  help: `mcpgate pauses list` shows the pauses in force");
            ExitCode::from(1)
        }
        Ok(n) => {
            println!("lifted {n} pause(s) of `{subject}`");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot lift the pause: {e}");
            ExitCode::from(2)
        }
    }
}
