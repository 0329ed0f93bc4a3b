//! Runs `mcpgate` subcommands other than `serve`.

use crate::paths;
use crate::process::{self, Finished};
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Deadline of one CLI command.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `mcpgate ARGS` in `cwd` and returns its exit status and output.
pub fn mcpgate<I, S>(cwd: &Path, args: I) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(paths::mcpgate_bin());
    cmd.args(args).current_dir(cwd).env("NO_COLOR", "1");
    process::run("mcpgate", &mut cmd, b"", TIMEOUT)
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code(),
            self.stdout,
            self.stderr
        )
    }
}
