//! `mcpgate delegate create|list|revoke`: a person lets an agent act for them on a few
//! tools. The person proves who they are with their gateway token, read from the
//! `MCPGATE_TOKEN` environment variable (never a flag: command lines are visible to every
//! user of the machine); the policy folder says what they may delegate.

use super::token::os_user;
use crate::delegation::{Delegation, Delegations, GrantError, GrantRequest};
use crate::identity::Authenticated;
use crate::identity::time::{parse_ttl, rfc3339};
use crate::identity::tokens::{TokenError, TokenStore};
use crate::session::now_secs;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The environment variable holding the delegating person's gateway token.
pub const TOKEN_ENV: &str = "MCPGATE_TOKEN";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: DelegateCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DelegateCommand {
    /// Open a delegation for an agent and print its token once (your token in `MCPGATE_TOKEN`).
    Create(CreateArgs),
    /// List delegations (never their tokens) with their status.
    List(ListArgs),
    /// Revoke a delegation by id, or every delegation a person made.
    Revoke(RevokeArgs),
}

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The agent (client) name the delegation is for; its calls have it as `principal.id`.
    #[arg(long)]
    pub agent: String,
    /// The tools the agent may call, `server.tool`, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub tools: Vec<String>,
    /// Lifetime: `15m`, `8h`, `7d` (at most 30 days; never beyond your token's expiry).
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// Why (free text or a ticket), readable by the policy as `delegation.reason`.
    #[arg(long)]
    pub reason: String,
    /// The policy repository the gateway serves: a delegation wider than what it lets you
    /// do is refused. When its `mcpgate.yaml` names `state.postgres`, the delegation (and
    /// the check of your token) is in that shared database.
    #[arg(long, visible_alias = "policy", default_value = ".")]
    pub dir: PathBuf,
    /// The gateway's state dir (default `.mcpgate-state`).
    #[arg(long, env = "MCPGATE_STATE")]
    pub state: Option<PathBuf>,
    /// `text` prints the agent's token alone on stdout; `json` adds the record.
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
    /// The delegation id (`dlg_...`, from `mcpgate delegate list`).
    #[arg(required_unless_present = "person", conflicts_with = "person")]
    pub id: Option<String>,
    /// Revoke every delegation this person made instead.
    #[arg(long)]
    pub person: Option<String>,
    /// Who revokes (default: the operating-system user).
    #[arg(long)]
    pub by: Option<String>,
    #[command(flatten)]
    pub store: super::StoreArgs,
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        DelegateCommand::Create(a) => create(&a),
        DelegateCommand::List(a) => list(&a),
        DelegateCommand::Revoke(a) => revoke(&a),
    }
}

fn fail(msg: &str, help: Option<&str>, code: u8) -> ExitCode {
    eprintln!("error: {msg}");
    if let Some(h) = help {
        eprintln!("  help: {h}");
    }
    ExitCode::from(code)
}

/// The delegations and the people's tokens: in the shared database when `policy`'s
/// `mcpgate.yaml` names `state.postgres`, else in the state dir.
fn open(
    state: Option<&Path>,
    policy: Option<&Path>,
) -> Result<(Delegations, TokenStore), ExitCode> {
    let dir = crate::state::dir_or_default(state);
    if let Err(e) = crate::state::prepare_dir(&dir) {
        return Err(fail(
            &format!("cannot create state dir `{}`: {e}", dir.display()),
            None,
            2,
        ));
    }
    if let Some(policy) = policy {
        match super::serve::policy_db(policy, &dir) {
            Ok(Some(pg)) => {
                let d = Delegations::shared(&pg, super::serve::postgres_tokens(&pg));
                return Ok((d, super::serve::postgres_tokens(&pg)));
            }
            Ok(None) => {}
            Err(e) => return Err(fail(&e, None, 2)),
        }
    }
    let d = Delegations::open(&dir).map_err(|e| fail(&e, None, 2))?;
    let tokens = TokenStore::open(&dir).map_err(|e| fail(&e.to_string(), None, 2))?;
    Ok((d, tokens))
}

/// The person behind the token in `MCPGATE_TOKEN`.
fn person(store: &TokenStore) -> Result<Authenticated, ExitCode> {
    let token = std::env::var(TOKEN_ENV).unwrap_or_default();
    let token = token.trim();
    if token.is_empty() {
        return Err(fail(
            "no token: a delegation is made with your own gateway token",
            Some("put it in the `MCPGATE_TOKEN` environment variable"),
            2,
        ));
    }
    match store.verify(token, now_secs()) {
        Ok(record) => Ok(Authenticated::from_token(&record)),
        Err(e @ (TokenError::Unknown | TokenError::Expired | TokenError::Revoked)) => Err(fail(
            &format!("`MCPGATE_TOKEN`: {e}"),
            Some(
                "use an active token of this gateway (`mcpgate token list`, with `--policy DIR` in a fleet)",
            ),
            1,
        )),
        Err(e) => Err(fail(&e.to_string(), None, 2)),
    }
}

fn create(a: &CreateArgs) -> ExitCode {
    let ttl_secs = match parse_ttl(&a.ttl) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return fail(
                "a delegation cannot live forever",
                Some("e.g. `--ttl 1h`"),
                2,
            );
        }
        Err(e) => return fail(&e, Some("e.g. `--ttl 1h`"), 2),
    };
    let (delegations, tokens) = match open(a.state.as_deref(), Some(&a.dir)) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let person = match person(&tokens) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let checked = match super::who_can::load(&a.dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let program = checked.program(None);
    let request = GrantRequest {
        agent: a.agent.clone(),
        tools: a.tools.clone(),
        ttl_secs,
        reason: a.reason.clone(),
    };
    let (token, d) = match delegations.create(&program, &person, request, now_secs()) {
        Ok(x) => x,
        Err(e @ GrantError::Wider { .. }) => {
            return fail(
                &e.to_string(),
                Some("delegate only tools you may call yourself (`mcpgate can YOU` lists them)"),
                1,
            );
        }
        Err(e @ (GrantError::Invalid(_) | GrantError::NotAllowed(_))) => {
            return fail(&e.to_string(), None, 2);
        }
        Err(e @ GrantError::Store(_)) => return fail(&e.to_string(), None, 2),
    };
    match a.format {
        Format::Text => {
            println!("{token}");
            eprintln!(
                "delegation {} lets `{}` act for `{}` on {} until {}; the token is shown only this once",
                d.id,
                d.agent,
                d.person,
                d.tools.join(", "),
                rfc3339(d.expires)
            );
        }
        Format::Json => {
            let mut v = record_json(&d, now_secs());
            v["token"] = json!(token);
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
    ExitCode::SUCCESS
}

fn record_json(d: &Delegation, now: u64) -> serde_json::Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    v["status"] = json!(d.status(now).as_str());
    v["created"] = json!(rfc3339(d.created));
    v["expires"] = json!(rfc3339(d.expires));
    v["revoked_at"] = json!(d.revoked_at.map(rfc3339));
    v
}

fn list(a: &ListArgs) -> ExitCode {
    let (delegations, _) = match open(a.store.state.as_deref(), a.store.policy.as_deref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let all = match delegations.list() {
        Ok(x) => x,
        Err(e) => return fail(&e.to_string(), None, 2),
    };
    let now = now_secs();
    let mut standing = Vec::with_capacity(all.len());
    for d in &all {
        match delegations.standing(d, now) {
            Ok(s) => standing.push(s),
            Err(e) => return fail(&e.to_string(), None, 2),
        }
    }
    match a.format {
        Format::Json => {
            let v: Vec<_> = all
                .iter()
                .zip(&standing)
                .map(|(d, s)| {
                    let mut v = record_json(d, now);
                    v["status"] = json!(s);
                    v
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => {
            if all.is_empty() {
                println!("no delegations");
            }
            for (d, status) in all.iter().zip(&standing) {
                println!(
                    "{}  {}  for {}  {}  until {}  [{}]  {}",
                    d.id,
                    d.agent,
                    d.person,
                    status,
                    rfc3339(d.expires),
                    d.tools.join(","),
                    d.reason
                );
            }
        }
    }
    ExitCode::SUCCESS
}

fn revoke(a: &RevokeArgs) -> ExitCode {
    let (delegations, _) = match open(a.store.state.as_deref(), a.store.policy.as_deref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let by = a.by.clone().unwrap_or_else(os_user);
    let now = now_secs();
    if let Some(person) = &a.person {
        return match delegations.revoke_person(person, &by, now) {
            Ok(n) => {
                println!(
                    "revoked {n} delegation{} of `{person}`",
                    if n == 1 { "" } else { "s" }
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string(), None, 2),
        };
    }
    let id = a.id.as_deref().unwrap_or_default();
    match delegations.revoke(id, &by, now) {
        Ok(true) => {
            println!("revoked {id}");
            ExitCode::SUCCESS
        }
        Ok(false) => fail(
            &format!("no unrevoked delegation `{id}`"),
            Some("`mcpgate delegate list` shows every delegation and its status"),
            1,
        ),
        Err(e) => fail(&e.to_string(), None, 2),
    }
}
