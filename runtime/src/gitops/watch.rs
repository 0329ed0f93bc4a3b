//! Development mode: watch the policy folder and sync after a change settles. The folder is
//! watched recursively, so editors that save by writing a new file and renaming it over the
//! old one are seen as well.

use crate::gitops::Syncer;
use notify::{EventKind, RecursiveMode, Watcher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long the folder must stay quiet before it is read.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Watches `dir` and syncs `syncer` after each burst of changes, until the runtime ends.
///
/// # Errors
/// When the folder cannot be watched.
pub fn spawn(dir: &Path, syncer: Arc<Syncer>) -> notify::Result<()> {
    let root = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let filter_root = root.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && relevant(&filter_root, &event)
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&root, RecursiveMode::Recursive)?;
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            loop {
                tokio::time::sleep(DEBOUNCE).await;
                let mut more = false;
                while rx.try_recv().is_ok() {
                    more = true;
                }
                if !more {
                    break;
                }
            }
            syncer.sync().await;
        }
    });
    Ok(())
}

/// Reads do not count, nor changes to files the policy is not read from: hidden folders
/// (the state dir, `.git`), and anything else written beside the policy (a log file would
/// otherwise reload the policy at every line).
fn relevant(root: &Path, event: &notify::Event) -> bool {
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    event.paths.iter().any(|p| {
        p.strip_prefix(root)
            .is_ok_and(mcpgate_compiler::repo::is_source_path)
    })
}
