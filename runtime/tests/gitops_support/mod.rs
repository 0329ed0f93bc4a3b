//! Policy repositories made with the `git` CLI, and `mcpgate serve` run as a process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "admin-test-token";
pub const WEBHOOK_SECRET: &str = "webhook-test-secret";

pub const CONFIG: &str = "servers:\n  demo:\n    command: mcpgate\n    args: [demo-server]\n";

/// v1: `echo` allowed.
pub const V1: &str = "allow demo.echo, demo.add;\n";
pub const V1_TESTS: &str = "tests:\n  - name: echo is allowed\n    call: demo.echo\n    args: { text: hi }\n    expect: allow\n";
/// v2: only `add`; `echo` is denied by default.
pub const V2: &str = "allow demo.add;\n";
pub const V2_TESTS: &str = "tests:\n  - name: echo is denied\n    call: demo.echo\n    args: { text: hi }\n    expect: deny\n";

/// A fresh temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mcpgate-gitops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `git` in `dir` and returns its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A policy repository with a working tree.
pub struct PolicyRepo {
    pub dir: PathBuf,
}

impl PolicyRepo {
    pub fn new(dir: PathBuf) -> PolicyRepo {
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q", "-b", "main"]);
        PolicyRepo { dir }
    }

    /// Writes the policy and its tests and commits them; returns the commit id.
    pub fn commit(&self, policy: &str, tests: &str, message: &str) -> String {
        std::fs::write(self.dir.join("mcpgate.yaml"), CONFIG).unwrap();
        std::fs::create_dir_all(self.dir.join("policies")).unwrap();
        std::fs::create_dir_all(self.dir.join("tests")).unwrap();
        std::fs::write(self.dir.join("policies/main.mcpg"), policy).unwrap();
        std::fs::write(self.dir.join("tests/main.yaml"), tests).unwrap();
        git(&self.dir, &["add", "-A"]);
        git(&self.dir, &["commit", "-q", "--allow-empty", "-m", message]);
        git(&self.dir, &["rev-parse", "HEAD"])
    }
}

/// `mcpgate serve` as a child process; killed on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Gateway {
    /// Starts `mcpgate serve ARGS --listen 127.0.0.1:0` with the admin token and webhook
    /// secret set, and waits for its address.
    pub fn start(args: &[&str]) -> Gateway {
        let log = std::env::var_os("MCPGATE_TEST_LOG").is_some();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcpgate"))
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("MCPGATE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("MCPGATE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env_remove("MCPGATE_GIT_TOKEN")
            .stdout(Stdio::piped())
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .parse()
            .unwrap();
        Gateway { child, addr }
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 20 ms until it holds, for at most 15 seconds (a bound, not a
/// measurement); returns whether it held.
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
