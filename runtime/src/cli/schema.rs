//! `mcpgate schema`: the JSON Schema of the YAML formats, for editors and CI.

use mcpgate_compiler::schema;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which format (default: all of them in one document, keyed by name).
    #[arg(value_enum)]
    pub which: Option<Which>,
}

/// The YAML formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// `policies/**/*.yaml`
    Policy,
    /// `tests/**/*.yaml`
    Tests,
    /// `mcpgate.yaml`
    Config,
    /// `principals.yaml`
    Principals,
    /// `responders.yaml`
    Responders,
}

pub fn run(args: Args) -> ExitCode {
    let value = match args.which {
        None => schema::all_schemas(),
        Some(Which::Policy) => schema::policy_schema(),
        Some(Which::Tests) => schema::tests_schema(),
        Some(Which::Config) => schema::config_schema(),
        Some(Which::Principals) => schema::principals_schema(),
        Some(Which::Responders) => schema::responders_schema(),
    };
    match serde_json::to_string_pretty(&value) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot print the schema: {e}");
            ExitCode::from(2)
        }
    }
}
