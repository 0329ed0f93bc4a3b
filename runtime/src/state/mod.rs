//! The gateway's state directory and its SQLite database (`state.db`): tokens, the
//! credential vault, pending approvals. One file, opened by `serve` and by the operator
//! commands (`token`, `secret`, `approvals`), which may run while the gateway does; and
//! PostgreSQL (`state.postgres`), for what the replicas of a fleet share.
//!
//! Bottom layer: uses nothing of the crate.

pub mod db;
pub mod fanout;
pub mod outage_cache;
pub mod postgres;
#[cfg(test)]
pub mod test_redis;
pub mod tls;

use std::path::{Path, PathBuf};

/// The state dir when neither `--state` nor `MCPGATE_STATE` names one.
pub const DEFAULT_STATE_DIR: &str = ".mcpgate-state";

/// `--state` (or `MCPGATE_STATE`, which clap reads into the same flag), else the default.
pub fn dir_or_default(flag: Option<&Path>) -> PathBuf {
    flag.map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), Path::to_path_buf)
}

/// Creates the state dir with mode 0700 (and tightens an existing one).
///
/// # Errors
/// When the directory cannot be created or its mode set.
pub fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Runs blocking work (a round trip to a shared store) from code that may be on the
/// gateway's async threads: under `block_in_place` on a multi-thread runtime, so the other
/// tasks of the worker move on, directly elsewhere (operator commands, tests).
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// This replica's name: `state.replica_id`, else the host name (`HOSTNAME`, else
/// `/etc/hostname`), else `-`.
pub fn replica_name(state: Option<&mcpgate_compiler::config::StateConfig>) -> String {
    state
        .and_then(|s| s.replica_id.clone())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "-".to_owned())
}
