//! `mcpgate assertions rotate-key|keys`: the keys that sign downstream assertions, kept in
//! the vault. A running gateway signs with the new key from its next call; the replaced key
//! stays in `/.well-known/jwks.json` for the grace period.

use crate::assertions::keys::{self, DEFAULT_GRACE_SECS, Keyring};
use crate::identity::time::{parse_ttl, rfc3339};
use crate::session::now_secs;
use crate::vault::{MasterKey, Vault};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: AssertionsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AssertionsCommand {
    /// Create a new signing key; the current one stays published for `--grace`.
    RotateKey(RotateArgs),
    /// List the signing keys (ids and dates, never the keys).
    Keys(KeysArgs),
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// How long the replaced key stays in the JWKS (at least the assertions' lifetime plus
    /// how long upstreams cache the key set).
    #[arg(long)]
    pub grace: Option<String>,
    /// The gateway's state dir (default `.mcpgate-state`).
    #[arg(long, env = "MCPGATE_STATE")]
    pub state: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// The gateway's state dir (default `.mcpgate-state`).
    #[arg(long, env = "MCPGATE_STATE")]
    pub state: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    let result = match args.command {
        AssertionsCommand::RotateKey(a) => rotate(&a),
        AssertionsCommand::Keys(a) => list(&a),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn open(
    state: Option<&std::path::Path>,
) -> Result<(Vault, MasterKey, crate::vault::KeySource), String> {
    let dir = crate::state::dir_or_default(state);
    let (key, source) = MasterKey::locate(&dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            "no master key: run `mcpgate init`, or set `MCPGATE_MASTER_KEY`".to_owned()
        })?;
    let vault = Vault::open(&dir).map_err(|e| e.to_string())?;
    vault.check_key(&key, &source).map_err(|e| e.to_string())?;
    Ok((vault, key, source))
}

fn rotate(a: &RotateArgs) -> Result<ExitCode, String> {
    let grace = match &a.grace {
        None => DEFAULT_GRACE_SECS,
        Some(g) => parse_ttl(g)?.ok_or("the grace period must end (e.g. `--grace 1h`)")?,
    };
    let (mut vault, key, source) = open(a.state.as_deref())?;
    let kid = keys::rotate(&mut vault, &key, &source, now_secs(), grace)?;
    println!("{kid}");
    eprintln!(
        "signing with key {kid}; the previous key stays published until {}",
        rfc3339(now_secs().saturating_add(grace))
    );
    Ok(ExitCode::SUCCESS)
}

fn list(a: &KeysArgs) -> Result<ExitCode, String> {
    let (vault, key, source) = open(a.state.as_deref())?;
    let ring = Keyring::load(&vault, &key, &source)?;
    let now = now_secs();
    if ring.keys.is_empty() {
        println!("no signing keys (the gateway creates one when a server asks for assertions)");
    }
    for k in &ring.keys {
        let status = match (k.retired, k.published(now)) {
            (None, _) => "active".to_owned(),
            (Some(_), true) => format!(
                "published until {}",
                k.until.map_or_else(String::new, rfc3339)
            ),
            (Some(_), false) => "expired".to_owned(),
        };
        println!("{}  created {}  {status}", k.kid, rfc3339(k.created));
    }
    Ok(ExitCode::SUCCESS)
}
