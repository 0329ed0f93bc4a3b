//! Reading the gateway's audit log (`STATE/audit/audit-*.jsonl`) as the tests check it.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The event records named `name` (`responder.paused`, ...) in the audit files in `dir`.
pub fn events(dir: &Path, name: &str) -> Vec<Value> {
    records(dir)
        .into_iter()
        .filter(|r| r["type"] == "event" && r["event"] == name)
        .collect()
}

/// The first event named `name` in `dir`, waiting up to `timeout` for it: events are
/// written without waiting for the disk, so one may land just after the answer.
pub fn wait_for_event(dir: &Path, name: &str, timeout: std::time::Duration) -> Option<Value> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(e) = events(dir, name).into_iter().next() {
            return Some(e);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits up to `timeout` until the last signed checkpoint in `dir` covers the last record:
/// a checkpoint is signed after its records are acknowledged, so a gateway killed right
/// after its last answer may not have signed it yet. Whether it came.
pub fn wait_for_checkpoint(dir: &Path, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let last_record = records(dir).last().and_then(|r| r["seq"].as_u64());
        let last_checkpoint = std::fs::read_to_string(dir.join("checkpoints.jsonl"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter_map(|c| c["seq"].as_u64())
                    .max()
            });
        if last_record.is_some() && last_checkpoint >= last_record {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Every complete record of the audit files in `dir`, oldest file first. Only
/// newline-terminated lines are records (a line being written is left out); a complete line
/// that is not JSON fails the test.
pub fn records(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the audit dir `{}`: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        out.extend(complete.lines().map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("not a record in `{}`: {e}: {l}", f.display()))
        }));
    }
    out
}

/// The text of one log file as a reader sees it: without the zeros a preallocated file
/// ends with while its gateway runs (or after it was killed).
pub fn text(file: &Path) -> String {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", file.display()));
    text.trim_end_matches('\0').to_owned()
}
