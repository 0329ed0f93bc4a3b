//! `mcpgate lock [DIR] [--check] [--server NAME]`: pin what every upstream offers in
//! `mcpgate.lock`, or (`--check`) report how the upstreams drifted from the pins.

use crate::gateway::DEFAULT_UPSTREAM_TIMEOUT_SECS;
use crate::upstream::inventory as fetch;
use crate::upstream::{SecretResolver, Upstream};
use mcpgate_compiler::config::Config;
use mcpgate_compiler::lock::{Drift, LOCK_FILE, Lockfile, ServerLock, server_drift};
use mcpgate_compiler::repo::{self, FileKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy repository (default: the current directory).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Write nothing: exit 1 and print the drift when an upstream no longer matches.
    #[arg(long)]
    pub check: bool,
    /// Only this server (repeatable); the other servers' pins are kept as they are.
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,
    /// Where the gateway keeps its state (for `${secret:..}` references).
    #[arg(long, env = "MCPGATE_STATE")]
    pub state: Option<PathBuf>,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The lock as the servers are now.
    pub lock: Lockfile,
    /// The differences with the lock on disk.
    pub drift: Vec<Drift>,
    /// Warnings (unnamed or repeated items).
    pub notes: Vec<String>,
}

/// Reads `mcpgate.yaml` of `dir` (its diagnostics, rendered, on error).
fn read_config(dir: &Path) -> Result<Config, String> {
    let files =
        repo::read_dir(dir).map_err(|e| format!("error: cannot read `{}`: {e}", dir.display()))?;
    let files: Vec<_> = files
        .into_iter()
        .filter(|f| FileKind::of(&f.path) == FileKind::Config)
        .collect();
    if files.is_empty() {
        return Err(format!(
            "error: no `mcpgate.yaml` in `{}`\n  help: the lock pins the servers it names",
            dir.display()
        ));
    }
    let checked = repo::check_files(files);
    if checked.has_errors() {
        return Err(format!(
            "{}error: `mcpgate.yaml` has errors",
            checked.rendered
        ));
    }
    Ok(checked.config.unwrap_or_default())
}

/// Reads the current `mcpgate.lock` of `dir` (`None` when there is none).
fn read_lock(dir: &Path) -> Result<Option<Lockfile>, String> {
    let path = dir.join(LOCK_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Lockfile::parse(&text)
            .map(Some)
            .map_err(|e| format!("error: {e}\n  help: rewrite it with `mcpgate lock`")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("error: cannot read `{}`: {e}", path.display())),
    }
}

/// Connects to the selected servers and compares what they offer with the lock on disk.
///
/// # Errors
/// Bad config or lock, an unknown `--server`, or a server that cannot be listed (the
/// message names it).
pub async fn run_lock(
    dir: &Path,
    only: &[String],
    secrets: &dyn SecretResolver,
) -> Result<Outcome, String> {
    let config = read_config(dir)?;
    let old = read_lock(dir)?.unwrap_or_default();
    for s in only {
        if !config.servers.contains_key(s) {
            let known: Vec<&str> = config.servers.keys().map(String::as_str).collect();
            return Err(format!(
                "error: no server `{s}` in `mcpgate.yaml`\n  help: servers: {}",
                known.join(", ")
            ));
        }
    }
    let selected: Vec<&String> = config
        .servers
        .keys()
        .filter(|n| only.is_empty() || only.contains(n))
        .collect();
    let mut live: BTreeMap<String, ServerLock> = BTreeMap::new();
    let mut notes = Vec::new();
    let fetches = selected.iter().map(|name| {
        let server = &config.servers[*name];
        let up = Upstream::from_config(name, server, &config.gateway, secrets);
        let secs = server.timeout_secs.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_SECS);
        async move {
            let up = up.map_err(|e| format!("error: server `{name}`: {e}"))?;
            // Initialize plus a few lists, each under the server's own timeout.
            let budget = Duration::from_secs(secs.max(1).saturating_mul(4));
            let fetched = tokio::time::timeout(budget, fetch::fetch(&up))
                .await
                .map_err(|_| format!("error: server `{name}`: timed out listing its definitions"))?
                .map_err(|e| format!("error: server `{name}`: {e}"))?;
            Ok::<_, String>(((*name).clone(), fetched))
        }
    });
    for r in futures_util::future::join_all(fetches).await {
        let (name, fetched) = r?;
        notes.extend(
            fetched
                .problems
                .iter()
                .map(|p| format!("server `{name}`: {p}")),
        );
        live.insert(name, fetched.lock);
    }
    let mut drift = Vec::new();
    let empty = ServerLock::default();
    let mut lock = Lockfile::default();
    // Servers not selected keep their pins; pins of servers no longer configured go.
    for (name, pins) in &old.servers {
        if !config.servers.contains_key(name) {
            if only.is_empty() {
                drift.extend(server_drift(name, pins, &empty));
            }
        } else if !live.contains_key(name) {
            lock.servers.insert(name.clone(), pins.clone());
        }
    }
    for (name, now) in live {
        let before = old.servers.get(&name).unwrap_or(&empty);
        drift.extend(server_drift(&name, before, &now));
        lock.servers.insert(name, now);
    }
    drift.sort_by(|a, b| (&a.server, a.kind, &a.name).cmp(&(&b.server, b.kind, &b.name)));
    Ok(Outcome { lock, drift, notes })
}

fn counts(lock: &Lockfile) -> String {
    let mut n = [0usize; 3];
    for s in lock.servers.values() {
        n[0] += s.tools.len();
        n[1] += s.prompts.len();
        n[2] += s.resource_templates.len();
    }
    format!(
        "{} tools, {} prompts, {} resource templates of {} servers",
        n[0],
        n[1],
        n[2],
        lock.servers.len()
    )
}

/// Writes the lock atomically (temp file, then rename).
fn write_lock(dir: &Path, lock: &Lockfile) -> std::io::Result<()> {
    let path = dir.join(LOCK_FILE);
    let temp = dir.join(format!(".{LOCK_FILE}.tmp"));
    std::fs::write(&temp, lock.render())?;
    std::fs::rename(&temp, &path)
}

pub fn run(args: Args) -> ExitCode {
    let state = crate::state::dir_or_default(args.state.as_deref());
    // As for `serve`: the vault lives in the state dir, created on first use.
    if let Err(e) = crate::state::prepare_dir(&state) {
        eprintln!("error: cannot create state dir `{}`: {e}", state.display());
        return ExitCode::from(2);
    }
    let secrets = match crate::cli::serve::secret_resolver(&state) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(run_lock(&args.dir, &args.servers, secrets.as_ref()));
    // Stdio servers are stopped with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(5));
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    for n in &outcome.notes {
        eprintln!("warning: {n}");
    }
    if args.check {
        if outcome.drift.is_empty() {
            println!("lock ok: {} match `{LOCK_FILE}`", counts(&outcome.lock));
            return ExitCode::SUCCESS;
        }
        for d in &outcome.drift {
            println!("{d}");
        }
        println!(
            "lock drift: {} difference(s) from `{LOCK_FILE}`",
            outcome.drift.len()
        );
        println!(
            "  help: review the new definitions, then run `mcpgate lock` and commit `{LOCK_FILE}`"
        );
        return ExitCode::from(1);
    }
    if let Err(e) = write_lock(&args.dir, &outcome.lock) {
        eprintln!(
            "error: cannot write `{}`: {e}",
            args.dir.join(LOCK_FILE).display()
        );
        return ExitCode::from(2);
    }
    for d in &outcome.drift {
        println!("{d}");
    }
    println!("pinned {} in `{LOCK_FILE}`", counts(&outcome.lock));
    ExitCode::SUCCESS
}
