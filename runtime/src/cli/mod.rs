//! Subcommands, one module each. Exit codes follow LANGUAGE.md: 0 clean, 1 policy errors or
//! failed tests, 2 usage or I/O errors.
//!
//! The top layer: may use everything; nothing uses it but `main.rs`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where an operator command finds the gateway's records: the state dir, or for a fleet the
/// policy folder whose `mcpgate.yaml` names the shared database.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The gateway's state dir (default `.mcpgate-state`).
    #[arg(long, env = "MCPGATE_STATE")]
    pub state: Option<PathBuf>,
    /// The policy folder of a fleet: when its `mcpgate.yaml` names `state.postgres`, the
    /// records are in that shared database (every replica's) rather than the state dir.
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

pub mod approvals;
pub mod assertions;
pub mod audit;
pub mod can;
pub mod check;
pub mod delegate;
pub mod demo_server;
pub mod diff;
pub mod explain;
pub mod fmt;
pub mod init;
pub mod lock;
pub mod pauses;
pub mod schema;
pub mod secret;
pub mod serve;
pub mod serve_fanout;
pub mod sessions;
pub mod test;
pub mod token;
pub mod who_can;

/// mcpgate: an MCP gateway whose policy lives in git.
#[derive(Debug, Parser)]
#[command(name = "mcpgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, check and compile a policy repository, and run its tests.
    Check(check::Args),
    /// Lay out `.mcpg` files canonically.
    Fmt(fmt::Args),
    /// Run the policy tests (`tests/**/*.yaml`).
    Test(test::Args),
    /// Show the decision for one request and the rules considered.
    Explain(explain::Args),
    /// Which rules and verdicts a change flips, against a git revision.
    Diff(diff::Args),
    /// Who can reach a tool, prompt or resource, under which conditions, by which rules.
    WhoCan(who_can::Args),
    /// Every tool, prompt and resource one principal can use, with the conditions.
    Can(can::Args),
    /// Pin upstream tool definitions in `mcpgate.lock`; `--check` reports drift.
    Lock(lock::Args),
    /// Print the JSON Schema of the YAML formats.
    Schema(schema::Args),
    /// Run the gateway.
    Serve(serve::Args),
    /// Verify, read and export the audit log.
    Audit(audit::Args),
    /// Issue, list and revoke per-person grant tokens.
    Token(token::Args),
    /// Rotate and list the keys that sign downstream assertions.
    Assertions(assertions::Args),
    /// Let an agent act for you on a few tools (with your token), list and revoke that.
    Delegate(delegate::Args),
    /// Set up a state dir (with the vault's master key) and a starter policy folder.
    Init(init::Args),
    /// Store, list and remove upstream credentials in the encrypted vault.
    Secret(secret::Args),
    /// Decide calls held by `approve` rules.
    Approvals(approvals::Args),
    /// Rotate the key that seals session ids.
    Sessions(sessions::Args),
    /// List and lift the pauses responders set (`responders.yaml`).
    Pauses(pauses::Args),
    /// A small MCP server over stdio, for the quickstart and tests.
    #[command(hide = true)]
    DemoServer(demo_server::Args),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check(a) => check::run(a),
        Command::Fmt(a) => fmt::run(a),
        Command::Test(a) => test::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Diff(a) => diff::run(a),
        Command::WhoCan(a) => who_can::run(a),
        Command::Can(a) => can::run(a),
        Command::Lock(a) => lock::run(a),
        Command::Schema(a) => schema::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Audit(a) => audit::run(a),
        Command::Token(a) => token::run(a),
        Command::Delegate(a) => delegate::run(a),
        Command::Assertions(a) => assertions::run(a),
        Command::Init(a) => init::run(a),
        Command::Secret(a) => secret::run(a),
        Command::Approvals(a) => approvals::run(a),
        Command::Sessions(a) => sessions::run(a),
        Command::Pauses(a) => pauses::run(a),
        Command::DemoServer(a) => demo_server::run(a),
    }
}
