//! Counters for `/metrics` (Prometheus text format): decisions by verdict, policy syncs.
//!
//! Bottom layer: uses nothing of the crate.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Verdicts counted by [`count_decision`], in output order.
const VERDICTS: [&str; 5] = ["allow", "deny", "hide", "approve", "other"];

static DECISIONS: [AtomicU64; 5] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

/// Counts one decision by its verdict (`Verdict::as_str`).
pub fn count_decision(verdict: &str) {
    let i = VERDICTS
        .iter()
        .position(|v| *v == verdict)
        .unwrap_or(VERDICTS.len() - 1);
    if let Some(c) = DECISIONS.get(i) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Policy sync counters of one gateway.
#[derive(Debug, Default)]
pub struct Metrics {
    pub syncs_ok: AtomicU64,
    pub syncs_failed: AtomicU64,
    pub swaps: AtomicU64,
    pub rejected: AtomicU64,
}

/// What the gauges are computed from.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Committer time of the live commit.
    pub commit_time: Option<i64>,
    /// When the live program went live.
    pub loaded_at: Option<u64>,
    /// Whether the gateway denies everything for want of a good program.
    pub fail_closed: bool,
    pub now: u64,
}

fn counter(out: &mut String, name: &str, help: &str, values: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (labels, v) in values {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// The metrics page.
pub fn render(m: Option<&Metrics>, g: &Gauges) -> String {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut out = String::new();
    if let Some(m) = m {
        counter(
            &mut out,
            "mcpgate_policy_syncs_total",
            "Policy syncs (fetch and build) by result.",
            &[
                ("{result=\"ok\"}", load(&m.syncs_ok)),
                ("{result=\"failed\"}", load(&m.syncs_failed)),
            ],
        );
        counter(
            &mut out,
            "mcpgate_policy_swaps_total",
            "Programs swapped in.",
            &[("", load(&m.swaps))],
        );
        counter(
            &mut out,
            "mcpgate_policy_rejected_total",
            "Policy versions rejected (errors or failing tests).",
            &[("", load(&m.rejected))],
        );
    }
    let decisions: Vec<(String, u64)> = VERDICTS
        .iter()
        .zip(DECISIONS.iter())
        .map(|(v, c)| (format!("{{verdict=\"{v}\"}}"), load(c)))
        .collect();
    let decisions: Vec<(&str, u64)> = decisions.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    counter(
        &mut out,
        "mcpgate_decisions_total",
        "Decisions by verdict.",
        &decisions,
    );
    let now = i64::try_from(g.now).unwrap_or(i64::MAX);
    if let Some(t) = g.commit_time {
        gauge(
            &mut out,
            "mcpgate_policy_commit_age_seconds",
            "Age of the live commit (since its committer time).",
            now.saturating_sub(t).max(0),
        );
    }
    if let Some(t) = g.loaded_at {
        gauge(
            &mut out,
            "mcpgate_policy_loaded_age_seconds",
            "Time since the live program went live.",
            now.saturating_sub(i64::try_from(t).unwrap_or(i64::MAX))
                .max(0),
        );
    }
    gauge(
        &mut out,
        "mcpgate_policy_fail_closed",
        "1 when no good program is loaded and everything is denied.",
        i64::from(g.fail_closed),
    );
    out
}
