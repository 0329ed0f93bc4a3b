//! `mcpgate approvals list|approve|deny`: decide held calls from the gateway host. The
//! command works on the state database directly (the gateway notices within a poll
//! interval); it is an operator's action, recorded with the OS user and `--as`.

use crate::approvals::store::{self, Approval, Status, Store, Verdict};
use crate::approvals::{Approver, authorize, group_list};
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
    /// approvals there (shared by every replica) are listed and decided.
    #[arg(long, global = true)]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Pending approvals (with `--all`, decided ones too), newest first.
    List {
        /// Include approved, denied, timed-out and executed approvals.
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Approve a held call: it runs (or its caller's retry may run it once).
    Approve {
        /// The approval's id, as `list` shows it.
        id: String,
        /// Whom the approval is recorded for (default: the OS user).
        #[arg(long = "as", value_name = "PRINCIPAL")]
        as_: Option<String>,
        /// A comment kept with the decision.
        #[arg(long)]
        note: Option<String>,
    },
    /// Deny a held call: its caller gets the reason.
    Deny {
        id: String,
        /// Why; the caller sees it.
        #[arg(long)]
        reason: String,
        #[arg(long = "as", value_name = "PRINCIPAL")]
        as_: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// The OS user running the command.
fn os_user() -> String {
    for var in ["USER", "LOGNAME", "USERNAME"] {
        if let Ok(u) = std::env::var(var)
            && !u.trim().is_empty()
        {
            return u;
        }
    }
    format!("uid:{}", rustix::process::getuid().as_raw())
}

fn open(
    args_state: Option<&std::path::Path>,
    policy: Option<&std::path::Path>,
) -> Result<Store, ExitCode> {
    let dir = crate::state::dir_or_default(args_state);
    if let Some(policy) = policy {
        match super::serve::policy_db(policy, &dir) {
            Ok(Some(pg)) => {
                return Ok(Store::over(Box::new(
                    crate::approvals::postgres::PgApprovals::new(pg),
                )));
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("error: {e}");
                return Err(ExitCode::from(2));
            }
        }
    }
    if !dir.join(crate::state::db::DB_FILE).is_file() {
        eprintln!("error: no state database in `{}`", dir.display());
        eprintln!(
            "  help: pass the gateway's state dir with `--state DIR` (or set `MCPGATE_STATE`)"
        );
        return Err(ExitCode::from(2));
    }
    Store::open(&dir).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

pub fn run(args: Args) -> ExitCode {
    let store = match open(args.state.as_deref(), args.policy.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match args.command {
        Command::List { all, format } => list(&store, all, format),
        Command::Approve { id, as_, note } => decide(&store, &id, as_, true, note),
        Command::Deny { id, reason, as_ } => {
            if reason.trim().is_empty() {
                eprintln!("error: `--reason` is empty");
                eprintln!("  help: the caller sees the reason; say why the call is refused");
                return ExitCode::from(2);
            }
            decide(&store, &id, as_, false, Some(reason))
        }
    }
}

fn list(store: &Store, all: bool, format: Format) -> ExitCode {
    let now = store::now_ms();
    match store.expire_overdue(now) {
        Ok(_) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let approvals = match store.list(all, 10_000) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match format {
        Format::Json => {
            let text = serde_json::to_string_pretty(&serde_json::json!({"approvals": approvals}))
                .unwrap_or_default();
            println!("{text}");
        }
        Format::Human => {
            if approvals.is_empty() {
                println!("no {}approvals", if all { "" } else { "pending " });
            }
            for a in &approvals {
                print_human(a, now);
            }
        }
    }
    ExitCode::SUCCESS
}

fn print_human(a: &Approval, now: i64) {
    let when = match a.status {
        Status::Pending => format!("expires in {}s", ((a.expires_ms - now).max(0) + 999) / 1000),
        s => s.as_str().to_owned(),
    };
    println!(
        "{}  {}.{}  asked by {} ({})  rule {}  by {}  [{when}]",
        a.id,
        a.server,
        a.tool,
        a.principal.id,
        a.principal.kind,
        a.rule,
        group_list(&a.approvers)
    );
    println!("    arguments: {}", a.arguments);
    if let Some(r) = &a.reason {
        println!("    reason: {r}");
    }
    if let Some(by) = &a.decided_by {
        let via = a.decided_via.as_deref().unwrap_or("-");
        println!("    decided by {by} via {via}");
    }
}

fn decide(
    store: &Store,
    id: &str,
    as_: Option<String>,
    approve: bool,
    note: Option<String>,
) -> ExitCode {
    let operator = os_user();
    let approver = Approver {
        id: as_.unwrap_or_else(|| operator.clone()),
        groups: Vec::new(),
        operator: Some(operator.clone()),
    };
    let current = match store.get(id) {
        Ok(Some(a)) => a,
        Ok(None) => {
            eprintln!("error: no approval `{id}`");
            eprintln!("  help: `mcpgate approvals list` shows the pending ones");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(refusal) = authorize(&current, &approver) {
        eprintln!("error: {refusal}");
        return ExitCode::from(1);
    }
    let verdict = Verdict {
        approve,
        by: approver.id.clone(),
        via: "cli",
        operator: Some(operator),
        note,
    };
    match store.decide(id, &verdict, store::now_ms()) {
        Ok(a) => {
            println!(
                "{} {}: {}.{} asked by {}",
                if approve { "approved" } else { "denied" },
                a.id,
                a.server,
                a.tool,
                a.principal.id
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
