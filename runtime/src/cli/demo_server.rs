//! `mcpgate demo-server` (hidden): the built-in demo MCP server on stdio.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    match crate::demo::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: demo server: {e}");
            ExitCode::from(2)
        }
    }
}
