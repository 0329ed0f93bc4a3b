//! `mcpgate init [--state DIR] [DIR]`: the state dir with the vault's master key, and a
//! starter policy folder if `DIR` has no `mcpgate.yaml`, so that `mcpgate serve` works right
//! after. Safe to re-run: nothing that exists is replaced.

use crate::vault::key::{self, MasterKey};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy folder to set up (`mcpgate.yaml`, `policies/`, `tests/`).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The gateway's state dir (default `.mcpgate-state`), as `serve --state` takes it.
    #[arg(long, env = "MCPGATE_STATE")]
    pub state: Option<PathBuf>,
}

/// The starter policy folder: the quickstart's demo server, one policy, one test file.
const STARTER: &[(&str, &str)] = &[
    ("mcpgate.yaml", STARTER_CONFIG),
    ("policies/demo.mcpg", STARTER_POLICY),
    ("tests/demo.yaml", STARTER_TESTS),
];

const STARTER_CONFIG: &str = "\
# The gateway's configuration (see docs/configuration.md). One upstream: the demo MCP server
# built into mcpgate (`command: mcpgate` runs the gateway's own executable).
#
# An upstream that needs a credential references it; the value lives in the vault:
#
#   servers:
#     github:
#       url: https://api.githubcopilot.com/mcp/
#       headers:
#         Authorization: Bearer ${secret:GITHUB_TOKEN}    # mcpgate secret set GITHUB_TOKEN
servers:
  demo:
    command: mcpgate
    args: [demo-server]
";

const STARTER_POLICY: &str = "\
# Rules for the demo server. Anything no rule allows is denied by the built-in rule
# `default`, and hidden from the tool list.

# Reading is harmless.
allow demo.echo, demo.add, demo.list_notes, demo.read_note;

# Notes stay short.
@id(\"short-notes\")
allow demo.write_note when len(args.text) <= 280;

# Nobody deletes notes through the gateway: the tool is not even listed.
hide demo.delete_note;

# Payments up to 100 go through; larger ones are refused, whoever asks.
@id(\"small-payments\")
allow demo.send_payment when args.amount <= 100;

@id(\"payments-cap\")
deny demo.send_payment when args.amount > 100 because \"payments above 100 need a person\";
";

const STARTER_TESTS: &str = "\
# Policy tests: `mcpgate test` and `mcpgate check` run them.
tests:
  - name: echo is allowed
    call: demo.echo
    args: { text: hello }
    expect: allow

  - name: a short note can be written
    call: demo.write_note
    args: { name: todo, text: buy milk }
    expect: allow
    rule: short-notes

  - name: deleting a note is invisible
    call: demo.delete_note
    args: { name: todo }
    expect: hide

  - name: a small payment goes through
    call: demo.send_payment
    args: { to: bob, amount: 20 }
    expect: allow
    rule: small-payments

  - name: a large payment is refused
    principal: { id: alice@example.com, kind: human }
    call: demo.send_payment
    args: { to: bob, amount: 500 }
    expect: deny
    rule: payments-cap
";

/// Keeps git away from the state dir, wherever it is.
const STATE_GITIGNORE: &str = "# mcpgate state: keys, tokens and secrets; never commit it.\n*\n";

pub fn run(args: Args) -> ExitCode {
    match init(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((message, help)) => {
            eprintln!("error: {message}");
            if let Some(help) = help {
                eprintln!("  help: {help}");
            }
            ExitCode::from(2)
        }
    }
}

type Failure = (String, Option<String>);

fn init(args: &Args) -> Result<(), Failure> {
    let state = crate::state::dir_or_default(args.state.as_deref());
    let existed = state.is_dir();
    crate::state::prepare_dir(&state).map_err(|e| {
        (
            format!("cannot create the state dir `{}`: {e}", state.display()),
            None,
        )
    })?;
    let verb = if existed { "kept" } else { "created" };
    println!("{verb} state dir `{}` (owner-only)", state.display());
    write_if_missing(&state.join(".gitignore"), STATE_GITIGNORE)?;

    master_key(&state)?;
    // The vault's tables, so that a damaged database shows up now rather than at `serve`.
    crate::vault::Vault::open(&state).map_err(|e| (e.to_string(), None))?;

    let config = args.dir.join("mcpgate.yaml");
    if config.exists() {
        println!(
            "kept `{}`: the policy folder is already set up",
            shown(&config)
        );
    } else {
        let mut written = Vec::new();
        for (rel, text) in STARTER {
            let path = args.dir.join(rel);
            if write_if_missing(&path, text)? {
                written.push(format!("`{}`", shown(&path)));
            }
        }
        println!(
            "created {} (one upstream: the built-in demo server)",
            written.join(", ")
        );
    }
    next_steps(args);
    Ok(())
}

/// Creates the master key file unless a key is configured or already there.
fn master_key(state: &Path) -> Result<(), Failure> {
    if std::env::var_os(key::MASTER_KEY_ENV).is_some_and(|v| !v.is_empty()) {
        println!(
            "`{}` is set: the vault uses it, so no `{}` is written",
            key::MASTER_KEY_ENV,
            key::KEY_FILE
        );
        return Ok(());
    }
    if let Some(path) = std::env::var_os(key::MASTER_KEY_FILE_ENV).filter(|p| !p.is_empty()) {
        println!(
            "`{}` is set: the vault reads its key from `{}`",
            key::MASTER_KEY_FILE_ENV,
            Path::new(&path).display()
        );
        return Ok(());
    }
    let path = state.join(key::KEY_FILE);
    match MasterKey::generate().write_new(&path) {
        Ok(()) => {
            println!(
                "created master key `{}` (mode 0600): back it up apart from the state dir; without it the stored secrets cannot be read",
                path.display()
            );
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            // Never replaced; but say so if it is not a usable key.
            MasterKey::read_file(&path).map_err(|e| (e.to_string(), e.help()))?;
            println!("kept master key `{}`", path.display());
            Ok(())
        }
        Err(e) => Err((
            format!("cannot write the master key `{}`: {e}", path.display()),
            None,
        )),
    }
}

/// Writes `text` to `path` unless it exists; `true` when written.
fn write_if_missing(path: &Path, text: &str) -> Result<bool, Failure> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            (
                format!("cannot create folder `{}`: {e}", parent.display()),
                None,
            )
        })?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path);
    match file {
        Ok(mut f) => {
            std::io::Write::write_all(&mut f, text.as_bytes())
                .map_err(|e| (format!("cannot write `{}`: {e}", path.display()), None))?;
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err((format!("cannot write `{}`: {e}", path.display()), None)),
    }
}

fn next_steps(args: &Args) {
    let dir = shell_word(&args.dir);
    let state_flag = match &args.state {
        Some(s) => format!(" --state {}", shell_word(s)),
        None => String::new(),
    };
    let steps = [
        (
            format!("mcpgate check {dir}"),
            "check the policy and run its tests",
        ),
        (
            format!("mcpgate secret set NAME{state_flag} < file"),
            "store an upstream credential, used in mcpgate.yaml as ${secret:NAME}",
        ),
        (
            format!("mcpgate serve --policy {dir}{state_flag}"),
            "run the gateway on 127.0.0.1:8080",
        ),
    ];
    let width = steps.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    println!();
    println!("next steps:");
    for (command, what) in &steps {
        println!("  {command:width$}   # {what}");
    }
    println!("then point an MCP client at http://127.0.0.1:8080/mcp (see examples/clients/)");
}

/// `path` for messages: relative to the current folder without a leading `./`.
fn shown(path: &Path) -> String {
    path.strip_prefix(".").unwrap_or(path).display().to_string()
}

/// A path as a shell word (quoted when it holds anything unusual).
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '~'))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
