//! Which executable a stdio upstream's `command` names.

use std::path::PathBuf;

/// The program to spawn for a configured `command`: exactly `mcpgate` means this very
/// executable (so `command: mcpgate, args: [demo-server]` works wherever the binary
/// lives); anything else is used as written (looked up on `PATH` by the OS).
pub fn resolve_command(command: &str) -> PathBuf {
    if command == "mcpgate"
        && let Ok(exe) = std::env::current_exe()
    {
        return exe;
    }
    PathBuf::from(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcpgate_is_this_executable() {
        assert_eq!(resolve_command("mcpgate"), std::env::current_exe().unwrap());
        assert_eq!(resolve_command("npx"), PathBuf::from("npx"));
        assert_eq!(
            resolve_command("/usr/bin/mcpgate"),
            PathBuf::from("/usr/bin/mcpgate")
        );
    }
}
