//! A policy repository written into a temporary folder by a test.

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

/// A temporary policy repository: `mcpgate.yaml`, `policies/`, `tests/`. Deleted on drop.
pub struct PolicyRepo {
    dir: tempfile::TempDir,
}

impl Default for PolicyRepo {
    fn default() -> Self {
        Self::new()
    }
}

impl PolicyRepo {
    /// An empty repository.
    pub fn new() -> PolicyRepo {
        PolicyRepo {
            dir: tempfile::Builder::new()
                .prefix("mcpgate-repo-")
                .tempdir()
                .expect("create a temporary folder"),
        }
    }

    /// A repository whose `mcpgate.yaml` is `config` (JSON is valid YAML, and quotes every
    /// path safely) and whose `policies/main.mcpg` is `rules`.
    pub fn with(config: &Value, rules: &str) -> PolicyRepo {
        PolicyRepo::new()
            .config(config)
            .file("policies/main.mcpg", rules)
    }

    /// Writes `mcpgate.yaml`.
    pub fn config(self, config: &Value) -> PolicyRepo {
        let text = serde_json::to_string_pretty(config).expect("serialize config");
        self.file("mcpgate.yaml", &text)
    }

    /// Writes a file at `rel` (folders created as needed).
    pub fn file(self, rel: &str, contents: &str) -> PolicyRepo {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create folder in policy repo");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The path of a file in the repository.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// Writes `config` as `mcpgate.yaml` and `rules` as `policies/main.mcpg` into the git
/// repository `dir`, commits them, and returns the commit's hash.
pub fn commit_policy(dir: &Path, config: &Value, rules: &str) -> String {
    std::fs::write(dir.join("mcpgate.yaml"), config.to_string()).unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/main.mcpg"), rules).unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "policy"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Runs `git -C DIR ARGS` with a fixed author and no signing; its trimmed output. Fails the
/// test when git fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run git: {e}"));
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
