//! The `mcpgate` command line: a thin face over the compiler and the gateway.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = mcpgate::cli::Cli::parse();
    mcpgate::cli::run(cli)
}
