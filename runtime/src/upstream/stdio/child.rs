//! A stdio server's process: supervised until it exits or the gateway stops it (stdin
//! closed, then SIGTERM, then SIGKILL to its process group).

use super::cap::Permit;
use super::{GRACE, Shared};
use rustix::process::{Pid, Signal, kill_process_group};
use std::io;
use std::sync::{Arc, Weak};
use std::time::Instant;
use tokio::process::{Child, ChildStdin};
use tokio::sync::watch;

/// Owns the child: waits for it to exit, or stops it when asked; then frees its slot.
pub(super) async fn supervise(
    mut child: Child,
    permit: Permit,
    mut stop: watch::Receiver<bool>,
    exited: watch::Sender<Option<String>>,
    stdin: Arc<tokio::sync::Mutex<Option<ChildStdin>>>,
    shared: Weak<Shared>,
    server: String,
) {
    let started = Instant::now();
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(Pid::from_raw);
    let description = tokio::select! {
        status = child.wait() => {
            let description = describe(status);
            tracing::warn!(target: "upstream", server = %server, "process exited: {description}");
            if let Some(shared) = shared.upgrade() {
                shared.record_exit(true, started.elapsed());
            }
            // Children it left behind in its process group go with it.
            if let Some(pid) = pid {
                let _ = kill_process_group(pid, Signal::TERM);
            }
            description
        }
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            shut_down(&mut child, pid, &stdin).await;
            if let Some(shared) = shared.upgrade() {
                shared.record_exit(false, started.elapsed());
            }
            "stopped by the gateway".to_owned()
        }
    };
    exited.send_replace(Some(description));
    drop(permit);
}

/// Close stdin, wait; SIGTERM the process group, wait; SIGKILL.
async fn shut_down(
    child: &mut Child,
    pid: Option<Pid>,
    stdin: &tokio::sync::Mutex<Option<ChildStdin>>,
) {
    if let Ok(mut pipe) = tokio::time::timeout(GRACE, stdin.lock()).await {
        pipe.take();
    }
    if tokio::time::timeout(GRACE, child.wait()).await.is_ok() {
        return;
    }
    if let Some(pid) = pid {
        let _ = kill_process_group(pid, Signal::TERM);
    }
    if tokio::time::timeout(GRACE, child.wait()).await.is_ok() {
        return;
    }
    if let Some(pid) = pid {
        let _ = kill_process_group(pid, Signal::KILL);
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

fn describe(status: io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("cannot wait for the process: {e}"),
    }
}
