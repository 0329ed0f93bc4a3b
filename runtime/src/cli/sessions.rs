//! `mcpgate sessions rotate-key`: a new key for sealing session ids. The old key moves to
//! `session.key.previous` and keeps opening the sessions it sealed, so clients are not cut
//! off; a gateway reads both keys when it starts.

use crate::session::seal::{KEY_FILE, PREVIOUS_KEY_FILE, Sealer};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Seal new session ids under a new key; the current key still opens existing ones
    /// (until the next rotation). Restart the gateway, or every replica after copying both
    /// key files to it, to use the new key.
    RotateKey,
}

pub fn run(args: Args) -> ExitCode {
    let state = crate::state::dir_or_default(args.state.as_deref());
    match args.command {
        Command::RotateKey => match Sealer::rotate(&state) {
            Ok(()) => {
                println!(
                    "new `{KEY_FILE}` in {}; the old key is `{PREVIOUS_KEY_FILE}` and still opens \
                     the sessions it sealed. Restart the gateway to seal with the new key.",
                    state.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "error: cannot rotate the session key in {}: {e}",
                    state.display()
                );
                ExitCode::from(2)
            }
        },
    }
}
