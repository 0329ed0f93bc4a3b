//! Where the binary under test and the installed peers are.

use std::env;
use std::path::{Path, PathBuf};

/// The workspace root (the folder holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// Cargo's target folder: `$CARGO_TARGET_DIR` if set, else `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// The `mcpgate` binary the tests run: `$MCPGATE_BIN`, else `target/debug/mcpgate`.
pub fn mcpgate_bin() -> PathBuf {
    let bin = match env::var_os("MCPGATE_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => target_dir().join("debug").join("mcpgate"),
    };
    if !bin.is_file() {
        panic!(
            "the mcpgate binary is missing at {}\n\
             help: build it first with `cargo build -p mcpgate` (scripts/test does)",
            bin.display()
        );
    }
    bin
}

/// The installed peers: `$MCPGATE_PEERS`, else `target/peers` in the workspace.
pub fn peers_dir() -> PathBuf {
    match env::var_os("MCPGATE_PEERS") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target").join("peers"),
    }
}

/// Committed peer scripts and fixtures (`tests/peers/`).
pub fn peer_sources() -> PathBuf {
    workspace_root().join("tests").join("peers")
}

fn installed(path: PathBuf) -> PathBuf {
    if !path.exists() {
        panic!(
            "MCP peer missing: {}\n\
             help: run `scripts/install-peers` (it installs the npm and Python peers \
             under target/peers)",
            path.display()
        );
    }
    path
}

/// Node 22, installed as the `node` npm package (the Inspector and conformance need 22).
pub fn node() -> PathBuf {
    installed(peers_dir().join("node_modules").join(".bin").join("node"))
}

/// The folder of an installed npm package, e.g. `@modelcontextprotocol/server-everything`.
pub fn npm_package(name: &str) -> PathBuf {
    installed(peers_dir().join("node_modules").join(name))
}

/// The Python interpreter of the peers' venv (it has the `mcp` SDK).
pub fn python() -> PathBuf {
    installed(peers_dir().join("venv").join("bin").join("python"))
}
