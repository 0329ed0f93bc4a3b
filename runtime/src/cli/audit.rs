//! `mcpgate audit verify|tail|export`: check the audit log, read it, ship it.

use crate::audit::query::{self, Filter};
use crate::audit::read;
use crate::audit::verify::{self, Options, Severity};
use crate::audit::{DEFAULT_DIR, keys};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check the hash chain and checkpoint signatures, and re-evaluate every decision.
    Verify(VerifyArgs),
    /// Show the last records (and follow new ones with `-f`).
    Tail(TailArgs),
    /// Show every selected record (e.g. `--on-behalf-of ada@example.com`).
    Query(QueryArgs),
    /// Write records as JSON lines, for log shippers.
    Export(ExportArgs),
}

/// Where the log is.
#[derive(Debug, clap::Args)]
pub struct Where {
    /// The gateway's state dir (the log is its `audit/` folder); default `.mcpgate-state`.
    #[arg(long, env = "MCPGATE_STATE", conflicts_with = "log")]
    pub state: Option<PathBuf>,
    /// A log folder or a single log file (when `audit.path` puts the log elsewhere).
    #[arg(long)]
    pub log: Option<PathBuf>,
}

impl Where {
    fn log_path(&self) -> PathBuf {
        match &self.log {
            Some(l) => l.clone(),
            None => crate::state::dir_or_default(self.state.as_deref()).join(DEFAULT_DIR),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Select {
    /// Only records of this principal id.
    #[arg(long)]
    pub principal: Option<String>,
    /// Only what agents did for this person under a delegation.
    #[arg(long)]
    pub on_behalf_of: Option<String>,
    /// Only records about this tool: `server.tool`, `tool`, or a glob (`github.create_*`).
    #[arg(long)]
    pub tool: Option<String>,
    /// Only decisions with this verdict (`allow`, `deny`, `hide`, `approve`).
    #[arg(long)]
    pub verdict: Option<String>,
    /// Only records of this type (`decision`, `outcome`, `list`, `event`).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Only records since this RFC 3339 time, or this long ago (`15m`, `2h`, `7d`).
    #[arg(long)]
    pub since: Option<String>,
}

impl Select {
    fn filter(&self) -> Result<Filter, String> {
        let since = match &self.since {
            Some(s) => Some(query::parse_since(s, crate::session::now_secs())?),
            None => None,
        };
        Ok(Filter {
            principal: self.principal.clone(),
            on_behalf_of: self.on_behalf_of.clone(),
            tool: self.tool.clone(),
            verdict: self.verdict.clone(),
            kind: self.kind.clone(),
            since,
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The gateway's state dir (the log is its `audit/` folder); default `.mcpgate-state`.
    /// Repeat it for the replicas of a fleet: each one's chain is verified on its own.
    #[arg(long, env = "MCPGATE_STATE", conflicts_with = "log")]
    pub state: Vec<PathBuf>,
    /// A log folder or a single log file (when `audit.path` puts the log elsewhere);
    /// repeatable, as `--state`.
    #[arg(long)]
    pub log: Vec<PathBuf>,
    /// The policy repository holding the recorded commits (default: the state dir's
    /// mirror, when there is one).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// The policy folder inside the repository (as `serve --policy-path`).
    #[arg(long, default_value = "")]
    pub policy_path: String,
    /// A policy folder, for decisions made by `serve --policy DIR` (no commit): used for
    /// the records whose program hash it compiles to.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The trusted checkpoint public key (hex, or a file holding it); default: the state
    /// dir's key, else the one stored next to the log.
    #[arg(long)]
    pub key: Option<String>,
    /// `human` or `json`.
    #[arg(long, default_value = "human")]
    pub format: String,
}

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub at: Where,
    #[command(flatten)]
    pub select: Select,
    /// How many records to show.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub lines: usize,
    /// Keep printing new records as they are written.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Print the records as JSON lines instead of one summary line each.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub at: Where,
    #[command(flatten)]
    pub select: Select,
    /// Print the records as JSON lines instead of one summary line each.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub at: Where,
    #[command(flatten)]
    pub select: Select,
    /// Append to this file instead of standard output.
    #[arg(long, conflicts_with = "to_postgres")]
    pub out: Option<PathBuf>,
    /// Keep exporting new records as they are written.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Copy the records into this PostgreSQL database (table `mcpgate_audit`, indexed for
    /// queries) instead: a `postgres://` URL or a reference (`${env:NAME}`,
    /// `${secret:NAME}`). Run again, only records not there yet are added.
    #[arg(long, value_name = "URL")]
    pub to_postgres: Option<String>,
    /// A PEM file of CA certificates trusted for TLS to that database (`sslmode=require`
    /// and stronger), besides the public and platform roots.
    #[arg(long, requires = "to_postgres")]
    pub ca_file: Option<PathBuf>,
    /// The chain name of records that name no replica (the log of one gateway, not of a
    /// fleet); default `gateway`. Give each such gateway its own when several export to
    /// one database.
    #[arg(long, requires = "to_postgres")]
    pub chain: Option<String>,
}

pub fn run(args: Args) -> ExitCode {
    let result = match args.command {
        Command::Verify(a) => run_verify(&a),
        Command::Tail(a) => run_tail(&a),
        Command::Query(a) => run_query(&a),
        Command::Export(a) => run_export(&a),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// One chain to verify: its log, and the state dir it came with (for its key and mirror).
struct Chain {
    log: PathBuf,
    state: Option<PathBuf>,
}

fn run_verify(a: &VerifyArgs) -> Result<ExitCode, String> {
    let chains: Vec<Chain> = if a.log.is_empty() {
        let states = if a.state.is_empty() {
            vec![crate::state::dir_or_default(None)]
        } else {
            a.state.clone()
        };
        states
            .into_iter()
            .map(|s| Chain {
                log: s.join(DEFAULT_DIR),
                state: Some(s),
            })
            .collect()
    } else {
        a.log
            .iter()
            .map(|l| Chain {
                log: l.clone(),
                state: None,
            })
            .collect()
    };
    if let [one] = &chains[..] {
        let report = verify_chain(a, one)?;
        if a.format == "json" {
            let mut v = serde_json::to_value(&report).map_err(|e| e.to_string())?;
            v["ok"] = Value::Bool(report.ok());
            println!("{v}");
        } else {
            print_report(&report);
        }
        return Ok(exit(report.ok()));
    }
    if a.key.is_some() {
        return Err(
            "`--key` names the key of one chain; with several, each state dir's own key is used"
                .into(),
        );
    }
    // A fleet: each replica's chain on its own, named by the replica its records carry.
    let mut all_ok = true;
    let mut out = Vec::with_capacity(chains.len());
    for chain in &chains {
        let report = verify_chain(a, chain)?;
        let name = replica_of(&chain.log).unwrap_or_else(|| chain.log.display().to_string());
        all_ok &= report.ok();
        if a.format == "json" {
            let mut v = serde_json::to_value(&report).map_err(|e| e.to_string())?;
            v["ok"] = Value::Bool(report.ok());
            v["replica"] = Value::String(name);
            v["log"] = Value::String(chain.log.display().to_string());
            out.push(v);
        } else {
            println!("replica {name} ({}):", chain.log.display());
            print_report(&report);
        }
    }
    if a.format == "json" {
        println!("{}", serde_json::json!({"ok": all_ok, "chains": out}));
    } else {
        println!(
            "{}: {} chains",
            if all_ok { "verified" } else { "FAILED" },
            chains.len()
        );
    }
    Ok(exit(all_ok))
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The replica the first record of the log at `log` names (records of a fleet carry it).
fn replica_of(log: &Path) -> Option<String> {
    let files = if log.is_file() {
        vec![log.to_owned()]
    } else {
        crate::audit::writer::log_files(log).ok()?
    };
    let text = std::fs::read_to_string(files.first()?).ok()?;
    let first: Value = serde_json::from_str(text.lines().next()?).ok()?;
    first.get("replica")?.as_str().map(str::to_owned)
}

fn verify_chain(a: &VerifyArgs, chain: &Chain) -> Result<verify::Report, String> {
    let log = chain.log.clone();
    let state = chain.state.clone();
    let key = match &a.key {
        Some(k) => {
            let text = if Path::new(k).is_file() {
                std::fs::read_to_string(k).map_err(|e| format!("cannot read `{k}`: {e}"))?
            } else {
                k.clone()
            };
            Some(keys::parse_public_key(&text).ok_or_else(|| {
                format!(
                    "`{k}` is not an Ed25519 public key (64 hex digits, or a file holding them)"
                )
            })?)
        }
        None => state
            .as_deref()
            .and_then(keys::existing_signing_key)
            .map(|k| k.verifying_key()),
    };
    let repo = a.repo.clone().or_else(|| {
        state
            .as_deref()
            .map(|s| s.join(crate::gitops::MIRROR_DIR))
            .filter(|m| m.is_dir())
    });
    let opts = Options {
        log,
        key,
        repo,
        policy_path: a.policy_path.trim_matches('/').to_owned(),
        policy_dir: a.policy.clone(),
    };
    verify::verify(&opts)
}

fn print_report(report: &verify::Report) {
    for f in &report.findings {
        let sev = match f.severity {
            Severity::Error => "error",
            Severity::Note => "note",
        };
        let at = match (&f.file, f.line) {
            (Some(file), Some(line)) => format!("{file}:{line}: "),
            (Some(file), None) => format!("{file}: "),
            _ => String::new(),
        };
        let seq = f.seq.map_or_else(String::new, |s| format!("seq {s}: "));
        println!("{sev}[{}] {at}{seq}{}", f.kind, f.message);
    }
    if report.more > 0 {
        println!("... and {} more findings", report.more);
    }
    let span = match (report.first_seq, report.last_seq) {
        (Some(a), Some(b)) => format!(" (seq {a} to {b})"),
        _ => String::new(),
    };
    println!(
        "{}: {} records in {} files{span}, {} of {} checkpoints signed, {} of {} decisions re-evaluated",
        if report.ok() { "verified" } else { "FAILED" },
        report.records,
        report.files,
        report.checkpoints_valid,
        report.checkpoints,
        report.reevaluated,
        report.decisions
    );
}

/// Reads the log from `files`/`offsets`, calling `each` for every complete selected record.
struct Follower {
    dir: PathBuf,
    /// (file, bytes consumed).
    position: Option<(PathBuf, u64)>,
    /// A poll stops after the file that brings it to this many lines (memory stays within
    /// about one file for a long log); the next poll goes on from there.
    limit: usize,
}

impl Follower {
    /// New complete lines since the last call.
    fn poll(&mut self) -> Result<Vec<String>, String> {
        let files = if self.dir.is_file() {
            vec![self.dir.clone()]
        } else {
            crate::audit::writer::log_files(&self.dir).map_err(|e| e.to_string())?
        };
        let mut out = Vec::new();
        for f in files {
            let start = match &self.position {
                Some((p, off)) if *p == f => *off,
                Some((p, _)) if f < *p => continue,
                _ => 0,
            };
            let bytes = std::fs::read(&f).map_err(|e| format!("`{}`: {e}", f.display()))?;
            let Some(tail) = bytes.get(usize::try_from(start).unwrap_or(usize::MAX)..) else {
                continue;
            };
            let complete = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            for line in tail[..complete].split(|b| *b == b'\n') {
                if !line.is_empty() {
                    out.push(String::from_utf8_lossy(line).into_owned());
                }
            }
            self.position = Some((f, start + complete as u64));
            if out.len() >= self.limit {
                break;
            }
        }
        Ok(out)
    }
}

fn selected(filter: &Filter, line: &str) -> Option<Value> {
    serde_json::from_str::<Value>(line)
        .ok()
        .filter(|v| filter.matches(v))
}

fn run_tail(a: &TailArgs) -> Result<ExitCode, String> {
    let filter = a.select.filter()?;
    let dir = a.at.log_path();
    read::files(&dir)?;
    let mut follower = Follower {
        dir,
        position: None,
        limit: usize::MAX,
    };
    let mut last = std::collections::VecDeque::new();
    for line in follower.poll()? {
        if let Some(v) = selected(&filter, &line) {
            last.push_back((line, v));
            if last.len() > a.lines {
                last.pop_front();
            }
        }
    }
    let show = |line: &str, v: &Value| {
        let mut out = std::io::stdout().lock();
        let text = if a.json {
            line.to_owned()
        } else {
            query::render(v)
        };
        writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
    };
    for (line, v) in &last {
        if !show(line, v) {
            return Ok(ExitCode::SUCCESS);
        }
    }
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(Duration::from_millis(250));
        for line in follower.poll()? {
            if let Some(v) = selected(&filter, &line)
                && !show(&line, &v)
            {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}

fn run_query(a: &QueryArgs) -> Result<ExitCode, String> {
    let filter = a.select.filter()?;
    let dir = a.at.log_path();
    read::files(&dir)?;
    let mut follower = Follower {
        dir,
        position: None,
        limit: usize::MAX,
    };
    let mut out = std::io::stdout().lock();
    for line in follower.poll()? {
        if let Some(v) = selected(&filter, &line) {
            let text = if a.json { line } else { query::render(&v) };
            if writeln!(out, "{text}").is_err() {
                break;
            }
        }
    }
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}

fn run_export(a: &ExportArgs) -> Result<ExitCode, String> {
    let filter = a.select.filter()?;
    let dir = a.at.log_path();
    read::files(&dir)?;
    if let Some(url) = &a.to_postgres {
        return export_to_postgres(a, url, &filter, dir);
    }
    let mut out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
                .map_err(|e| format!("cannot open `{}`: {e}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut follower = Follower {
        dir,
        position: None,
        limit: usize::MAX,
    };
    loop {
        for line in follower.poll()? {
            if selected(&filter, &line).is_some() && writeln!(out, "{line}").is_err() {
                return Ok(ExitCode::SUCCESS);
            }
        }
        if out.flush().is_err() || !a.follow {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `export --to-postgres`: the selected records into the `mcpgate_audit` table, a batch per
/// poll; a summary on standard output.
fn export_to_postgres(
    a: &ExportArgs,
    url: &str,
    filter: &Filter,
    dir: PathBuf,
) -> Result<ExitCode, String> {
    let url = if url.contains("${") {
        let state = crate::state::dir_or_default(a.at.state.as_deref());
        let secrets = super::serve::secret_resolver(&state)?;
        crate::vault::references::resolve_references(url, secrets.as_ref())
            .map_err(|e| format!("--to-postgres: {e}"))?
            .value
    } else {
        url.to_owned()
    };
    let pg = crate::state::postgres::Pg::open(
        &url,
        a.ca_file.as_deref(),
        crate::audit::postgres::MIGRATIONS,
    )
    .map_err(|e| format!("--to-postgres: {e}"))?;
    let chain = a.chain.as_deref().unwrap_or("gateway");
    let mut follower = Follower {
        dir,
        position: None,
        limit: 50_000,
    };
    let mut total = crate::audit::postgres::Exported::default();
    loop {
        let polled = follower.poll()?;
        let more = !polled.is_empty();
        let lines: Vec<String> = polled
            .into_iter()
            .filter(|l| selected(filter, l).is_some())
            .collect();
        let done = crate::audit::postgres::export(&pg, &lines, chain)
            .map_err(|e| format!("{}: {e}", pg.address()))?;
        total.added += done.added;
        total.present += done.present;
        total.differing.extend(done.differing);
        if a.follow && done.added > 0 {
            eprintln!("{}: {} records added", pg.address(), done.added);
        }
        if !total.differing.is_empty() {
            return Err(format!(
                "{}: records already there with another hash (chain seq): {}; the log or the table was changed, or two logs share a chain name (`--chain`); `mcpgate audit verify` checks the log",
                pg.address(),
                total.differing.join(", ")
            ));
        }
        if more {
            continue;
        }
        if !a.follow {
            println!(
                "{}: {} records added, {} already there",
                pg.address(),
                total.added,
                total.present
            );
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
