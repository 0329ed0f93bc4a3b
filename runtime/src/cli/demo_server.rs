//! `mcpgate demo-server` (hidden): the built-in demo MCP server on stdio.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Items per page of `tools/list` and `resources/list` (default: one page).
    #[arg(long)]
    pub page_size: Option<usize>,
}

pub fn run(args: Args) -> ExitCode {
    match crate::demo::run(args.page_size) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: demo server: {e}");
            ExitCode::from(2)
        }
    }
}
