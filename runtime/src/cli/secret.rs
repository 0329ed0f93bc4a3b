//! `mcpgate secret set|list|rm|rekey`: the credential vault. A value is read from stdin, never
//! from the command line (which other users can see and shells keep in history).

use crate::vault::key::KeySource;
use crate::vault::{MasterKey, SecretInfo, SetOutcome, Vault, VaultError};
use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use zeroize::Zeroizing;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
    /// The gateway's state dir (default `.mcpgate-state`), as `serve --state` takes it.
    #[arg(long, env = "MCPGATE_STATE", global = true)]
    pub state: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Store a secret; the value is read from stdin (one trailing newline is dropped).
    Set {
        /// The name config refers to as `${secret:NAME}`: letters, digits and `_`.
        name: String,
    },
    /// List stored secrets: names and dates, never values.
    List {
        /// `human` (default) or `json`.
        #[arg(long, default_value = "human", value_parser = ["human", "json"])]
        format: String,
    },
    /// Remove a secret.
    Rm {
        /// The secret's name.
        name: String,
    },
    /// Seal every secret under a new, random master key, in one transaction. A key file
    /// is replaced in place; a key from `MCPGATE_MASTER_KEY` needs `--out`.
    Rekey {
        /// Write the new key to this new file (mode 0600) and leave the old key where it is.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> ExitCode {
    let state = crate::state::dir_or_default(args.state.as_deref());
    let result = match &args.command {
        Command::Set { name } => set(&state, name),
        Command::List { format } => list(&state, format == "json"),
        Command::Rm { name } => rm(&state, name),
        Command::Rekey { out } => rekey(&state, out.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(help) = e.help() {
                eprintln!("  help: {help}");
            }
            ExitCode::from(match e {
                VaultError::BadName(_) | VaultError::BadValue { .. } => 1,
                _ => 2,
            })
        }
    }
}

/// The master key for the vault in `state`, wherever it comes from.
fn located_key(state: &Path) -> Result<(MasterKey, KeySource), VaultError> {
    MasterKey::locate(state)?.ok_or_else(|| {
        VaultError::NoKey(
            state
                .join(crate::vault::key::KEY_FILE)
                .display()
                .to_string(),
        )
    })
}

fn set(state: &Path, name: &str) -> Result<ExitCode, VaultError> {
    crate::vault::validate_name(name)?;
    let (key, source) = located_key(state)?;
    crate::state::prepare_dir(state).map_err(|e| {
        VaultError::Key(format!(
            "cannot create the state dir `{}`: {e}",
            state.display()
        ))
    })?;
    let mut vault = Vault::open(state)?;
    // Refuse a wrong key before asking for the value.
    vault.check_key(&key, &source)?;
    let value = read_value(name)?;
    let outcome = vault.set(&key, &source, name, value.as_bytes())?;
    let done = match outcome {
        SetOutcome::Created => "stored",
        SetOutcome::Updated => "replaced",
    };
    println!("{done} secret `{name}` (encrypted under the master key from {source})");
    if outcome == SetOutcome::Updated {
        println!("a running gateway reads secrets when it starts: restart it to use the new value");
    }
    Ok(ExitCode::SUCCESS)
}

/// The value from stdin: a line typed without echo on a terminal, else everything piped in,
/// less one trailing newline.
fn read_value(name: &str) -> Result<Zeroizing<String>, VaultError> {
    let stdin = std::io::stdin();
    let bad = |reason| VaultError::BadValue {
        name: name.to_owned(),
        reason,
    };
    let mut raw = Zeroizing::new(Vec::new());
    if rustix::termios::isatty(&stdin) {
        read_hidden_line(name, &mut raw)?;
    } else {
        let limit = crate::vault::MAX_VALUE_LEN as u64 + 2;
        stdin
            .lock()
            .take(limit)
            .read_to_end(&mut raw)
            .map_err(|_| bad("stdin cannot be read"))?;
        if raw.len() as u64 >= limit {
            return Err(bad("it is longer than 64 KiB"));
        }
    }
    if raw.last() == Some(&b'\n') {
        raw.pop();
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
    }
    if raw.is_empty() {
        return Err(bad(
            "it is empty (pipe it in: `mcpgate secret set NAME < file`)",
        ));
    }
    let text = std::str::from_utf8(&raw).map_err(|_| bad("it is not UTF-8 text"))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// Reads one line from the terminal with echo turned off, restoring the terminal after.
fn read_hidden_line(name: &str, out: &mut Vec<u8>) -> Result<(), VaultError> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let refuse = || VaultError::BadValue {
        name: name.to_owned(),
        reason: "stdin is a terminal that cannot hide what is typed (pipe the value in: `mcpgate secret set NAME < file`)",
    };
    let saved = tcgetattr(&stdin).map_err(|_| refuse())?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    eprint!("value of `{name}` (typing is not shown, one line): ");
    let _ = std::io::stderr().flush();
    tcsetattr(&stdin, OptionalActions::Flush, &quiet).map_err(|_| refuse())?;
    let read = stdin.lock().read_until(b'\n', out);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    read.map_err(|_| refuse())?;
    Ok(())
}

fn list(state: &Path, json: bool) -> Result<ExitCode, VaultError> {
    // Listing needs no key, and never creates a state dir that is not there.
    let secrets = if state.join(crate::state::db::DB_FILE).exists() {
        Vault::open(state)?.list()?
    } else {
        Vec::new()
    };
    if json {
        let items: Vec<serde_json::Value> = secrets.iter().map(info_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "secrets": items }))
                .unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if secrets.is_empty() {
        println!("no secrets stored (add one with `mcpgate secret set NAME < file`)");
        return Ok(ExitCode::SUCCESS);
    }
    let width = secrets
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:width$}  {:20}  UPDATED", "NAME", "CREATED");
    for s in &secrets {
        println!(
            "{:width$}  {:20}  {}",
            s.name,
            rfc3339(s.created_at),
            rfc3339(s.updated_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn info_json(s: &SecretInfo) -> serde_json::Value {
    serde_json::json!({
        "name": s.name,
        "created_at": rfc3339(s.created_at),
        "updated_at": rfc3339(s.updated_at),
    })
}

fn rm(state: &Path, name: &str) -> Result<ExitCode, VaultError> {
    crate::vault::validate_name(name)?;
    let removed =
        state.join(crate::state::db::DB_FILE).exists() && Vault::open(state)?.remove(name)?;
    if removed {
        println!("removed secret `{name}`");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: no secret named `{name}`");
        eprintln!("  help: `mcpgate secret list` shows the stored names");
        Ok(ExitCode::from(1))
    }
}

fn rekey(state: &Path, out: Option<&Path>) -> Result<ExitCode, VaultError> {
    let (old, source) = located_key(state)?;
    // In place for a key file: the new key goes next to it first and replaces it only once
    // every secret is sealed under it, so an interruption leaves a key that opens the vault.
    let (written, replace) = match (out, &source) {
        (Some(out), _) => (out.to_path_buf(), None),
        (None, KeySource::File(path)) => {
            let mut tmp = path.clone().into_os_string();
            tmp.push(".new");
            (PathBuf::from(tmp), Some(path.clone()))
        }
        (None, KeySource::Env) => {
            return Err(VaultError::Key(
                "the key comes from `MCPGATE_MASTER_KEY`, which this command cannot change: give `--out FILE` for the new key".into(),
            ));
        }
    };
    let mut vault = Vault::open(state)?;
    vault.check_key(&old, &source)?;
    let new = MasterKey::generate();
    new.write_new(&written).map_err(|e| {
        VaultError::Key(format!(
            "cannot write the new key to `{}`: {e}",
            written.display()
        ))
    })?;
    let count = match vault.rekey(&old, &source, &new) {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&written);
            return Err(e);
        }
    };
    let at = match &replace {
        Some(path) => {
            std::fs::rename(&written, path).map_err(|e| {
                VaultError::Key(format!(
                    "the secrets are sealed under the new key in `{}`, but it could not replace `{}`: {e}; move it there by hand",
                    written.display(),
                    path.display()
                ))
            })?;
            path.clone()
        }
        None => written,
    };
    println!(
        "sealed {count} secret{} under a new master key, written to `{}`",
        if count == 1 { "" } else { "s" },
        at.display()
    );
    if replace.is_none() {
        println!(
            "the old key no longer opens the vault: point the gateway at the new one (`MCPGATE_MASTER_KEY_FILE`, or `MCPGATE_MASTER_KEY` set to `xxd -p -c 64 {}`)",
            at.display()
        );
    }
    println!("restart running gateways: they read secrets when they start");
    Ok(ExitCode::SUCCESS)
}

/// A stored time (seconds since the epoch) as RFC 3339 UTC.
fn rfc3339(secs: i64) -> String {
    crate::identity::time::rfc3339(u64::try_from(secs).unwrap_or(0))
}
