//! `mcpgate token issue|list|revoke`: per-person grant tokens, kept hashed in the state
//! database. The gateway need not be stopped: a revocation applies to its next request.

use crate::identity::time::{parse_ttl, rfc3339};
use crate::identity::tokens::{NewToken, TokenRecord, TokenStore};
use crate::session::now_secs;
use mcpgate_compiler::PrincipalKind;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Issue a token and print it once (it is stored only as a hash).
    Issue(IssueArgs),
    /// List tokens (never their secrets) with their status.
    List(ListArgs),
    /// Revoke a token by id, or every token of a subject.
    Revoke(RevokeArgs),
}

/// The kinds a token may be issued for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Kind {
    Human,
    Agent,
    Service,
}

impl From<Kind> for PrincipalKind {
    fn from(k: Kind) -> PrincipalKind {
        match k {
            Kind::Human => PrincipalKind::Human,
            Kind::Agent => PrincipalKind::Agent,
            Kind::Service => PrincipalKind::Service,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// The principal id the token acts as (`principal.id`), e.g. `alice@example.com`.
    #[arg(long)]
    pub subject: String,
    /// `principal.kind`.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// The agent acting for the subject (`principal.attrs.agent`).
    #[arg(long)]
    pub agent: Option<String>,
    /// Groups carried by the token, comma separated (merged with `principals.yaml`).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// The only servers the token may reach, comma separated (default: every server the
    /// policy allows).
    #[arg(long, value_delimiter = ',')]
    pub servers: Option<Vec<String>>,
    /// Lifetime: `8h`, `30d`, `2w`, or `never`.
    #[arg(long, default_value = "30d")]
    pub ttl: String,
    /// Why the token is issued (a ticket or request id), kept in the consent record.
    #[arg(long)]
    pub reason: String,
    /// Who issues it (default: the operating-system user).
    #[arg(long)]
    pub issuer: Option<String>,
    #[command(flatten)]
    pub store: super::StoreArgs,
    /// `text` prints the token alone on stdout; `json` prints the token with its record.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub store: super::StoreArgs,
}

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The token id (`tok_...`, from `mcpgate token list`).
    #[arg(required_unless_present = "subject", conflicts_with = "subject")]
    pub id: Option<String>,
    /// Revoke every token of this subject instead.
    #[arg(long)]
    pub subject: Option<String>,
    /// Who revokes (default: the operating-system user).
    #[arg(long)]
    pub by: Option<String>,
    #[command(flatten)]
    pub store: super::StoreArgs,
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        TokenCommand::Issue(a) => issue(a),
        TokenCommand::List(a) => list(&a),
        TokenCommand::Revoke(a) => revoke(&a),
    }
}

/// The operating-system user, for the consent record: `USER`/`LOGNAME`, else the name
/// `/etc/passwd` gives the real user id, else `uid:N`.
pub fn os_user() -> String {
    if let Some(u) = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    {
        return u;
    }
    let uid = rustix::process::getuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
        .unwrap_or_else(|| format!("uid:{uid}"))
}

fn open(state: Option<&Path>, policy: Option<&Path>) -> Result<TokenStore, ExitCode> {
    let dir = crate::state::dir_or_default(state);
    if let Err(e) = crate::state::prepare_dir(&dir) {
        eprintln!("error: cannot create state dir `{}`: {e}", dir.display());
        return Err(ExitCode::from(2));
    }
    if let Some(policy) = policy {
        match shared_store(policy, &dir) {
            Ok(Some(store)) => return Ok(store),
            Ok(None) => {}
            Err(e) => {
                eprintln!("error: {e}");
                return Err(ExitCode::from(2));
            }
        }
    }
    TokenStore::open(&dir).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// The token store `state.postgres` of `policy`'s `mcpgate.yaml` names, if it names one.
fn shared_store(policy: &Path, state: &Path) -> Result<Option<TokenStore>, String> {
    Ok(super::serve::policy_db(policy, state)?.map(|pg| super::serve::postgres_tokens(&pg)))
}

fn usage(msg: &str, help: &str) -> ExitCode {
    eprintln!("error: {msg}");
    eprintln!("  help: {help}");
    ExitCode::from(2)
}

fn issue(a: IssueArgs) -> ExitCode {
    let subject = a.subject.trim().to_owned();
    if subject.is_empty() || subject == "anonymous" {
        return usage(
            &format!("`{subject}` cannot be a token subject"),
            "name the person or service, e.g. `--subject alice@example.com`",
        );
    }
    if a.reason.trim().is_empty() {
        return usage(
            "the reason is empty",
            "say why the token is issued, e.g. `--reason TICKET-123`",
        );
    }
    let groups: Vec<String> = a
        .groups
        .iter()
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .collect();
    let servers = match a.servers {
        Some(list) => {
            let list: Vec<String> = list.iter().map(|s| s.trim().to_owned()).collect();
            if let Some(bad) = list
                .iter()
                .find(|s| !mcpgate_compiler::testing::valid_server(s))
            {
                return usage(
                    &format!("invalid server name `{bad}`"),
                    "server names are lowercase letters, digits, `_` and `-`, as in mcpgate.yaml",
                );
            }
            Some(list)
        }
        None => None,
    };
    let ttl = match parse_ttl(&a.ttl) {
        Ok(t) => t,
        Err(e) => return usage(&e, "e.g. `--ttl 8h`"),
    };
    let store = match open(a.store.state.as_deref(), a.store.policy.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let new = NewToken {
        issuer: a.issuer.unwrap_or_else(os_user),
        subject,
        kind: a.kind.into(),
        agent: a.agent.filter(|s| !s.trim().is_empty()),
        groups,
        servers,
        reason: a.reason.trim().to_owned(),
        ttl_secs: ttl,
    };
    let (secret, record) = match store.issue(new, now_secs()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match a.format {
        Format::Text => {
            println!("{secret}");
            eprintln!(
                "issued {} for `{}` ({}), {}; it is shown only this once",
                record.id,
                record.subject,
                record.kind.as_str(),
                match record.expires {
                    Some(e) => format!("expires {}", rfc3339(e)),
                    None => "never expires".to_owned(),
                }
            );
        }
        Format::Json => {
            let mut v = record_json(&record, now_secs());
            v["token"] = json!(secret);
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
    ExitCode::SUCCESS
}

fn record_json(r: &TokenRecord, now: u64) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["status"] = json!(r.status(now).as_str());
    // Times as UTC timestamps, like the text listing.
    v["created"] = json!(rfc3339(r.created));
    v["expires"] = json!(r.expires.map(rfc3339));
    v["revoked_at"] = json!(r.revoked_at.map(rfc3339));
    v
}

fn list(a: &ListArgs) -> ExitCode {
    let store = match open(a.store.state.as_deref(), a.store.policy.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let records = match store.list() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let now = now_secs();
    match a.format {
        Format::Json => {
            let v: Vec<_> = records.iter().map(|r| record_json(r, now)).collect();
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => print!("{}", table(&records, now)),
    }
    ExitCode::SUCCESS
}

/// The human listing: one line per token.
fn table(records: &[TokenRecord], now: u64) -> String {
    let mut rows = vec![[
        "ID".to_owned(),
        "SUBJECT".into(),
        "KIND".into(),
        "STATUS".into(),
        "EXPIRES".into(),
        "SERVERS".into(),
        "REASON".into(),
    ]];
    for r in records {
        rows.push([
            r.id.clone(),
            r.subject.clone(),
            r.kind.as_str().to_owned(),
            r.status(now).as_str().to_owned(),
            r.expires.map_or_else(|| "never".to_owned(), rfc3339),
            r.servers
                .as_ref()
                .map_or_else(|| "*".to_owned(), |s| s.join(",")),
            r.reason.clone(),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if records.is_empty() {
        out.push_str("no tokens issued\n");
    }
    out
}

fn revoke(a: &RevokeArgs) -> ExitCode {
    let store = match open(a.store.state.as_deref(), a.store.policy.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let by = a.by.clone().unwrap_or_else(os_user);
    let now = now_secs();
    if let Some(subject) = &a.subject {
        // Their agents lose access with them, whichever credential delegated.
        let dir = crate::state::dir_or_default(a.store.state.as_deref());
        match crate::delegation::Delegations::open(&dir).and_then(|d| {
            d.revoke_person(subject, &by, now)
                .map_err(|e| e.to_string())
        }) {
            Ok(0) => {}
            Ok(n) => println!(
                "revoked {n} delegation{} made by `{subject}`",
                if n == 1 { "" } else { "s" }
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
        return match store.revoke_subject(subject, &by, now) {
            Ok(0) => {
                eprintln!("error: `{subject}` has no unrevoked token");
                eprintln!("  help: `mcpgate token list` shows every token");
                ExitCode::from(1)
            }
            Ok(n) => {
                println!(
                    "revoked {n} token{} of `{subject}`",
                    if n == 1 { "" } else { "s" }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let id = a.id.as_deref().unwrap_or_default();
    match store.revoke(id, &by, now) {
        Ok(true) => {
            println!("revoked {id}");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("error: no unrevoked token `{id}`");
            eprintln!("  help: `mcpgate token list` shows every token and its status");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
