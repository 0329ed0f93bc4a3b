//! `mcpgate serve` on a free loopback port, stopped on drop.

use crate::paths;
use crate::process::Proc;
use crate::repo::PolicyRepo;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long the gateway may take to print its `listening on` line.
const STARTUP: Duration = Duration::from_secs(60);

/// A running gateway.
pub struct Gateway {
    proc: Proc,
    addr: SocketAddr,
    state: std::path::PathBuf,
    _state: Option<tempfile::TempDir>,
}

impl Gateway {
    /// Runs `mcpgate serve --policy REPO --listen 127.0.0.1:0 --state TMP` and waits for
    /// `listening on http://ADDR`.
    pub fn start(repo: &PolicyRepo) -> Gateway {
        Gateway::start_with(repo, &[])
    }

    /// As [`Gateway::start`], with extra command-line arguments.
    pub fn start_with(repo: &PolicyRepo, extra: &[&str]) -> Gateway {
        Gateway::start_with_env(repo, extra, &[])
    }

    /// As [`Gateway::start_with`], with environment variables set for the process
    /// (`RUST_LOG` is `info` unless given).
    pub fn start_with_env(repo: &PolicyRepo, extra: &[&str], env: &[(&str, &str)]) -> Gateway {
        Gateway::start_dir(repo.path(), extra, env)
    }

    /// Runs the gateway on a policy folder that is not a [`PolicyRepo`] (an example).
    pub fn start_dir(policy: &Path, extra: &[&str], env: &[(&str, &str)]) -> Gateway {
        let state = tempfile::Builder::new()
            .prefix("mcpgate-state-")
            .tempdir()
            .expect("create a state folder");
        let mut args = vec!["--policy".to_owned(), path_text(policy)];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let mut gateway = Gateway::start_in(state.path(), &args, env);
        gateway._state = Some(state);
        gateway
    }

    /// Runs `mcpgate serve ARGS --listen 127.0.0.1:0 --state STATE` on a state dir the
    /// caller keeps (to restart a gateway on the same state); `args` name the policy.
    pub fn start_in(state: &Path, args: &[String], env: &[(&str, &str)]) -> Gateway {
        Gateway::start_bin(&paths::mcpgate_bin(), state, args, env)
    }

    /// As [`Gateway::start_in`], running the binary `bin` (another build, to compare).
    pub fn start_bin(bin: &Path, state: &Path, args: &[String], env: &[(&str, &str)]) -> Gateway {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--state"])
            .arg(state)
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        // Tests reach their peers on loopback directly; a test that wants a proxy sets one.
        for k in [
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "HTTP_PROXY",
            "http_proxy",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn("mcpgate serve", &mut cmd);
        let addr = proc.output.wait_for(STARTUP, parse_listening);
        let Some(addr) = addr else {
            proc.kill();
            panic!(
                "mcpgate serve did not print `listening on http://ADDR` within {STARTUP:?}; \
                 its output:\n{}",
                proc.output.text()
            );
        };
        Gateway {
            proc,
            addr,
            state: state.to_owned(),
            _state: None,
        }
    }

    /// The gateway's state dir.
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// `mcpgate token issue` for a human `subject` against this gateway's state dir, with
    /// `extra` flags (`--groups`, `--servers`...); returns the token.
    pub fn issue_token(&self, subject: &str, extra: &[&str]) -> String {
        let state = self.state.to_str().unwrap_or_default().to_owned();
        let mut args = vec![
            "token",
            "issue",
            "--subject",
            subject,
            "--kind",
            "human",
            "--reason",
            "end-to-end test",
            "--state",
            &state,
        ];
        args.extend_from_slice(extra);
        let done = crate::cli::mcpgate(&self.state, &args);
        assert_eq!(done.code(), 0, "token issue failed:\n{done}");
        let token = done.stdout.trim().to_owned();
        assert!(token.starts_with("mcpg_"), "not a token: {token}");
        token
    }

    /// Kills the gateway at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.proc.id()
    }

    /// `http://ADDR` followed by `path` (`/mcp/demo`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// What the gateway printed so far (for failure messages).
    pub fn log(&self) -> String {
        self.proc.output.text()
    }

    /// Whether the gateway prints a line containing `text` within a few seconds: its output
    /// is read by another thread, so a line written just before an answer may arrive after.
    pub fn wait_for_log(&self, text: &str) -> bool {
        self.proc
            .output
            .wait_for(STARTUP, |l| l.contains(text).then_some(()))
            .is_some()
    }

    /// Stops the gateway and returns everything it printed (stdout and stderr).
    pub fn stop(mut self) -> String {
        self.proc.kill();
        self.proc.output.wait_for(STARTUP, |_| None::<()>);
        self.proc.output.text()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.proc.try_wait().is_none()
    }
}

fn path_text(p: &Path) -> String {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
        .to_owned()
}

/// Extracts the address from a `listening on http://127.0.0.1:PORT` line (anywhere in the
/// line, so log prefixes and JSON logs work too).
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let at = line.find("listening on http://")?;
    let rest = &line[at + "listening on http://".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_listening;

    #[test]
    fn finds_the_address_in_plain_and_decorated_lines() {
        let addr = "127.0.0.1:4242".parse().ok();
        assert_eq!(parse_listening("listening on http://127.0.0.1:4242"), addr);
        assert_eq!(
            parse_listening(
                "2026-01-01T00:00:00Z  INFO mcpgate: listening on http://127.0.0.1:4242/mcp"
            ),
            addr
        );
        assert_eq!(
            parse_listening(r#"{"msg":"listening on http://127.0.0.1:4242","level":"info"}"#),
            addr
        );
        assert_eq!(parse_listening("starting"), None);
    }
}
