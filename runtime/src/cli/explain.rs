//! `mcpgate explain`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    eprintln!("error: `mcpgate explain` is not available in this build");
    ExitCode::from(2)
}
