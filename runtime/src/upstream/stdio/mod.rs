//! The stdio transport: one local process per client session, speaking newline-delimited
//! JSON-RPC on stdin and stdout. Processes are capped across the whole gateway, stopped when
//! idle, and shut down gently (close stdin, SIGTERM, SIGKILL).

mod cap;
mod child;
mod lines;

use super::router::{Router, forget_connection, initialized, spawn_reaper};
use super::secrets::GATEWAY_ENV_PREFIX;
use super::{Message, SessionState, UpstreamError};
pub use cap::StdioProcesses;
use child::supervise;
use lines::{log_stderr, read_stdout};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, Command};
use tokio::sync::{mpsc, watch};

/// Time a process gets after stdin closes, and again after SIGTERM.
const GRACE: Duration = Duration::from_secs(2);
/// Longest line read from a process's stdout (one message).
const MAX_LINE_BYTES: usize = super::client::MAX_MESSAGE_BYTES;
/// Longest stderr line logged whole.
const MAX_STDERR_LINE: usize = 8 * 1024;
/// Crash backoff: first delay and ceiling.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A process that ran this long before crashing starts a new streak.
const STABLE_RUN: Duration = Duration::from_secs(30);
/// The command that names the gateway's own executable.
const SELF_COMMAND: &str = "mcpgate";

/// A configured stdio server.
pub(crate) struct StdioUpstream {
    name: String,
    program: String,
    args: Vec<String>,
    /// Resolved values may be credentials: never printed.
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    timeout: Duration,
    idle: Duration,
    processes: StdioProcesses,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StdioUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioUpstream")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .finish_non_exhaustive()
    }
}

/// State shared by an upstream, its sessions and its reaper.
struct Shared {
    sessions: Mutex<HashMap<String, Arc<Process>>>,
    crash_streak: Mutex<u32>,
    reaper_started: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere mid-update of a plain map or counter.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn record_exit(&self, crashed: bool, lived: Duration) {
        let mut streak = lock(&self.crash_streak);
        *streak = match (crashed, lived >= STABLE_RUN) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => streak.saturating_add(1),
        };
    }

    fn backoff(&self) -> Duration {
        match *lock(&self.crash_streak) {
            0 => Duration::ZERO,
            n => BACKOFF_START
                .saturating_mul(
                    1u32.checked_shl(n.saturating_sub(1).min(16))
                        .unwrap_or(u32::MAX),
                )
                .min(BACKOFF_MAX),
        }
    }
}

/// One running server process.
struct Process {
    key: String,
    router: Arc<Router>,
    stdin: Arc<tokio::sync::Mutex<Option<ChildStdin>>>,
    stop: watch::Sender<bool>,
    exited: watch::Receiver<Option<String>>,
    protocol_version: Mutex<String>,
    timeout: Duration,
}

impl Drop for Process {
    fn drop(&mut self) {
        // The supervisor task owns the child and runs the shutdown sequence.
        self.stop.send_replace(true);
    }
}

impl Process {
    fn alive(&self) -> bool {
        self.exited.borrow().is_none()
    }

    async fn stop(&self) {
        self.stop.send_replace(true);
        let mut exited = self.exited.clone();
        let _ = exited.wait_for(Option::is_some).await;
    }

    async fn write(&self, message: &Message) -> Result<(), UpstreamError> {
        let mut line = serde_json::to_vec(message)
            .map_err(|e| UpstreamError::Protocol(format!("cannot encode message: {e}")))?;
        line.push(b'\n');
        let mut stdin = tokio::time::timeout(self.timeout, self.stdin.lock())
            .await
            .map_err(|_| UpstreamError::Timeout)?;
        let gone = || {
            self.router
                .ended()
                .unwrap_or_else(|| UpstreamError::Exited("the process closed its input".into()))
        };
        let Some(pipe) = stdin.as_mut() else {
            return Err(gone());
        };
        let written = tokio::time::timeout(self.timeout, async {
            pipe.write_all(&line).await?;
            pipe.flush().await
        })
        .await;
        match written {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Err(_)) => Err(gone()),
            Ok(Ok(())) => {
                self.router.touch();
                Ok(())
            }
        }
    }
}

/// A session with a stdio server: its process. Cheap to clone.
#[derive(Clone)]
pub(crate) struct StdioSession {
    shared: Arc<Shared>,
    process: Arc<Process>,
}

impl std::fmt::Debug for StdioSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioSession")
            .field("gateway_session", &self.process.key)
            .field("alive", &self.process.alive())
            .finish()
    }
}

impl StdioUpstream {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: &str,
        program: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
        timeout: Duration,
        idle: Duration,
        processes: StdioProcesses,
    ) -> StdioUpstream {
        StdioUpstream {
            name: name.to_owned(),
            program,
            args,
            env,
            cwd,
            timeout,
            idle,
            processes,
            shared: Arc::new(Shared {
                sessions: Mutex::new(HashMap::new()),
                crash_streak: Mutex::new(0),
                reaper_started: AtomicBool::new(false),
            }),
        }
    }

    /// Starts a process for `gateway_session` (replacing any it had) and initializes it.
    pub(crate) async fn connect(
        &self,
        gateway_session: &str,
        initialize: Message,
    ) -> Result<(StdioSession, Message), UpstreamError> {
        let old = lock(&self.shared.sessions).remove(gateway_session);
        if let Some(old) = old {
            old.stop().await;
        }
        let delay = self.shared.backoff();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let process = self.spawn(gateway_session)?;
        self.start_reaper();
        let session = StdioSession {
            shared: Arc::clone(&self.shared),
            process: Arc::clone(&process),
        };
        let answer = initialized(
            &self.name,
            session.request(initialize),
            &process.protocol_version,
        )
        .await;
        match answer {
            Ok(response) => {
                let replaced = lock(&self.shared.sessions)
                    .insert(gateway_session.to_owned(), Arc::clone(&process));
                if let Some(replaced) = replaced {
                    tokio::spawn(async move { replaced.stop().await });
                }
                Ok((session, response))
            }
            Err(e) => {
                process.stop().await;
                Err(e)
            }
        }
    }

    /// The live session of `gateway_session`, if this gateway runs its process.
    pub(crate) fn resume(&self, gateway_session: &str) -> Option<StdioSession> {
        let process = lock(&self.shared.sessions)
            .get(gateway_session)
            .filter(|p| p.alive())
            .cloned()?;
        Some(StdioSession {
            shared: Arc::clone(&self.shared),
            process,
        })
    }

    fn program(&self) -> Result<PathBuf, UpstreamError> {
        if self.program == SELF_COMMAND {
            return std::env::current_exe().map_err(|e| {
                UpstreamError::Unavailable(format!("cannot find the gateway's executable: {e}"))
            });
        }
        Ok(PathBuf::from(&self.program))
    }

    fn spawn(&self, key: &str) -> Result<Arc<Process>, UpstreamError> {
        let permit = self.processes.try_acquire().ok_or(UpstreamError::Busy)?;
        let program = self.program()?;
        let mut cmd = Command::new(&program);
        cmd.args(&self.args);
        // The gateway's own settings and secrets (`MCPGATE_SECRET_*`, the master key, admin
        // and git tokens) stay in the gateway; config `env` may still set such a name.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with(GATEWAY_ENV_PREFIX) {
                cmd.env_remove(name);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            UpstreamError::Unavailable(format!("cannot start `{}`: {e}", self.program))
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.start_kill();
            return Err(UpstreamError::Unavailable(
                "the process has no stdio pipes".into(),
            ));
        };
        tracing::debug!(target: "upstream", server = %self.name, pid = child.id(), "started process");
        let router = Arc::new(Router::new(&self.name, self.timeout));
        let stdin = Arc::new(tokio::sync::Mutex::new(Some(stdin)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(supervise(
            child,
            permit,
            stop_rx.clone(),
            exit_tx,
            Arc::clone(&stdin),
            Arc::downgrade(&self.shared),
            self.name.clone(),
        ));
        tokio::spawn(read_stdout(
            stdout,
            Arc::clone(&router),
            exit_rx.clone(),
            stop_rx,
            self.name.clone(),
        ));
        tokio::spawn(log_stderr(stderr, self.name.clone()));
        Ok(Arc::new(Process {
            key: key.to_owned(),
            router,
            stdin,
            stop: stop_tx,
            exited: exit_rx,
            protocol_version: Mutex::new(String::new()),
            timeout: self.timeout,
        }))
    }

    fn start_reaper(&self) {
        let idle = self.idle;
        let name = self.name.clone();
        spawn_reaper(
            &self.shared.reaper_started,
            &self.shared,
            idle,
            move |shared: &Shared| {
                let stale: Vec<Arc<Process>> = {
                    let mut sessions = lock(&shared.sessions);
                    let keys: Vec<String> = sessions
                        .iter()
                        .filter(|(_, p)| {
                            !p.alive() || (p.router.in_flight() == 0 && p.router.idle_for() >= idle)
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    keys.iter().filter_map(|k| sessions.remove(k)).collect()
                };
                for process in stale {
                    if process.alive() {
                        tracing::info!(target: "upstream", server = %name, "stopping an idle process");
                        tokio::spawn(async move { process.stop().await });
                    }
                }
            },
        );
    }
}

impl StdioSession {
    /// What the core seals into the client's session token (no session id for stdio).
    pub(crate) fn state(&self) -> SessionState {
        SessionState {
            session_id: None,
            protocol_version: lock(&self.process.protocol_version).clone(),
            client_capabilities: None,
        }
    }

    pub(crate) async fn request(&self, message: Message) -> Result<super::Exchange, UpstreamError> {
        let write = self.process.write(&message);
        self.process.router.send(&message, write).await
    }

    pub(crate) async fn notify(&self, message: Message) -> Result<(), UpstreamError> {
        self.process
            .router
            .notify(self.process.write(&message))
            .await
    }

    pub(crate) fn listen(&self) -> mpsc::Receiver<Message> {
        self.process.router.listener()
    }

    pub(crate) async fn close(&self) {
        forget_connection(&self.shared.sessions, &self.process.key, &self.process);
        self.process.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        let shared = Shared {
            sessions: Mutex::new(HashMap::new()),
            crash_streak: Mutex::new(0),
            reaper_started: AtomicBool::new(false),
        };
        assert_eq!(shared.backoff(), Duration::ZERO);
        shared.record_exit(true, Duration::ZERO);
        assert_eq!(shared.backoff(), Duration::from_millis(100));
        shared.record_exit(true, Duration::ZERO);
        assert_eq!(shared.backoff(), Duration::from_millis(200));
        for _ in 0..20 {
            shared.record_exit(true, Duration::ZERO);
        }
        assert_eq!(shared.backoff(), BACKOFF_MAX);
        shared.record_exit(false, Duration::ZERO);
        assert_eq!(shared.backoff(), Duration::ZERO);
    }
}
