//! Counters and histograms for `/metrics` (Prometheus text format): decisions by verdict and
//! their latency, upstream calls by server (latency, errors by kind), policy syncs. Recording
//! is a few relaxed atomic adds; nothing allocates on the request path once a server has
//! been seen.
//!
//! Bottom layer: uses nothing of the crate.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Most buckets a histogram has (the `+Inf` bucket is its count).
const MAX_BUCKETS: usize = 16;

/// Upper bounds of the decision latency buckets, in nanoseconds (1 µs to 10 ms).
const DECISION_BOUNDS_NS: &[u64] = &[
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 10_000_000,
];

/// Upper bounds of the upstream call latency buckets, in nanoseconds (1 ms to 30 s).
const UPSTREAM_BOUNDS_NS: &[u64] = &[
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// A latency histogram with fixed bucket bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// Observations per bucket (not cumulative); those above every bound only count.
    buckets: [AtomicU64; MAX_BUCKETS],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    const fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; MAX_BUCKETS],
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if let Some(b) = self
            .bounds
            .iter()
            .position(|&bound| ns <= bound)
            .and_then(|i| self.buckets.get(i))
        {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The histogram's lines, with `labels` (`server="x"` or empty) on each.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = *bound as f64 / 1e9;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

static DECISION_LATENCY: Histogram = Histogram::new(DECISION_BOUNDS_NS);

/// Records how long one decision took.
pub fn observe_decision(d: Duration) {
    DECISION_LATENCY.observe(d);
}

/// Kinds of upstream failure counted per server, in output order.
pub const UPSTREAM_ERRORS: [&str; 6] = [
    "unavailable",
    "timeout",
    "protocol",
    "session_expired",
    "exited",
    "busy",
];

/// One upstream server's call latency and failures.
#[derive(Debug)]
pub struct UpstreamStats {
    latency: Histogram,
    errors: [AtomicU64; UPSTREAM_ERRORS.len()],
}

impl UpstreamStats {
    /// Records a call answered after `d`.
    pub fn observe(&self, d: Duration) {
        self.latency.observe(d);
    }

    /// How many calls were answered.
    pub fn answered(&self) -> u64 {
        self.latency.count.load(Ordering::Relaxed)
    }

    /// The mean time to an answer, once there is one.
    pub fn mean(&self) -> Option<Duration> {
        let n = self.answered();
        (n > 0).then(|| Duration::from_nanos(self.latency.sum_ns.load(Ordering::Relaxed) / n))
    }

    /// The failures counted so far, by kind (kinds with none left out).
    pub fn failures(&self) -> Vec<(&'static str, u64)> {
        UPSTREAM_ERRORS
            .iter()
            .zip(&self.errors)
            .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Counts a failure of kind `kind` (one of [`UPSTREAM_ERRORS`]).
    pub fn error(&self, kind: &str) {
        if let Some(c) = UPSTREAM_ERRORS
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.errors.get(i))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

static UPSTREAMS: RwLock<BTreeMap<String, Arc<UpstreamStats>>> = RwLock::new(BTreeMap::new());

/// The statistics of upstream server `server`, made on first use.
pub fn upstream(server: &str) -> Arc<UpstreamStats> {
    if let Some(s) = UPSTREAMS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(server)
    {
        return Arc::clone(s);
    }
    let mut all = UPSTREAMS.write().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(all.entry(server.to_owned()).or_insert_with(|| {
        Arc::new(UpstreamStats {
            latency: Histogram::new(UPSTREAM_BOUNDS_NS),
            errors: [const { AtomicU64::new(0) }; UPSTREAM_ERRORS.len()],
        })
    }))
}

/// A server name as a label value (`\`, `"` and newlines escaped).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn histograms(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP mcpgate_decision_duration_seconds Time to decide one request."
    );
    let _ = writeln!(out, "# TYPE mcpgate_decision_duration_seconds histogram");
    DECISION_LATENCY.render(out, "mcpgate_decision_duration_seconds", "");
    let all = UPSTREAMS.read().unwrap_or_else(PoisonError::into_inner);
    let _ = writeln!(
        out,
        "# HELP mcpgate_upstream_request_duration_seconds Time from forwarding a request to its answer, by server."
    );
    let _ = writeln!(
        out,
        "# TYPE mcpgate_upstream_request_duration_seconds histogram"
    );
    for (server, stats) in all.iter() {
        let labels = format!("server=\"{}\"", label(server));
        stats
            .latency
            .render(out, "mcpgate_upstream_request_duration_seconds", &labels);
    }
    let _ = writeln!(
        out,
        "# HELP mcpgate_upstream_errors_total Failed upstream requests, by server and kind."
    );
    let _ = writeln!(out, "# TYPE mcpgate_upstream_errors_total counter");
    for (server, stats) in all.iter() {
        for (kind, c) in UPSTREAM_ERRORS.iter().zip(&stats.errors) {
            let _ = writeln!(
                out,
                "mcpgate_upstream_errors_total{{server=\"{}\",kind=\"{kind}\"}} {}",
                label(server),
                c.load(Ordering::Relaxed)
            );
        }
    }
}

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

/// The decision and upstream counters of this process, as numbers (for OTLP export).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    /// Decisions by verdict.
    pub decisions: Vec<(&'static str, u64)>,
    /// Time spent deciding, in seconds, all decisions together.
    pub decision_seconds: f64,
    pub upstreams: Vec<UpstreamSnapshot>,
}

/// One upstream server's counters.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UpstreamSnapshot {
    pub server: String,
    /// Requests answered.
    pub answered: u64,
    /// Time to the answers, in seconds, all together.
    pub seconds: f64,
    /// Failures by kind (every kind, zeros included).
    pub errors: Vec<(&'static str, u64)>,
}

/// The counters now.
pub fn snapshot() -> Snapshot {
    let all = UPSTREAMS.read().unwrap_or_else(PoisonError::into_inner);
    Snapshot {
        decisions: VERDICTS
            .iter()
            .zip(&DECISIONS)
            .map(|(v, c)| (*v, c.load(Ordering::Relaxed)))
            .collect(),
        decision_seconds: DECISION_LATENCY.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        upstreams: all
            .iter()
            .map(|(server, s)| UpstreamSnapshot {
                server: server.clone(),
                answered: s.answered(),
                seconds: s.latency.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
                errors: UPSTREAM_ERRORS
                    .iter()
                    .zip(&s.errors)
                    .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
                    .collect(),
            })
            .collect(),
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
    histograms(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_into_cumulative_buckets() {
        let h = Histogram::new(DECISION_BOUNDS_NS);
        h.observe(Duration::from_nanos(800));
        h.observe(Duration::from_micros(3));
        h.observe(Duration::from_secs(1));
        let mut out = String::new();
        h.render(&mut out, "x", "server=\"a\"");
        assert!(
            out.contains("x_bucket{server=\"a\",le=\"0.000001\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{server=\"a\",le=\"0.0000025\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{server=\"a\",le=\"0.000005\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{server=\"a\",le=\"0.01\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{server=\"a\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("x_count{server=\"a\"} 3\n"), "{out}");
        assert!(out.contains("x_sum{server=\"a\"} 1.0000038\n"), "{out}");
    }

    #[test]
    fn upstream_errors_are_counted_by_server_and_kind() {
        upstream("metrics-test-a\"b").error("timeout");
        upstream("metrics-test-a\"b").error("timeout");
        upstream("metrics-test-a\"b").error("no such kind");
        upstream("metrics-test-a\"b").observe(Duration::from_millis(3));
        let page = render(None, &Gauges::default());
        assert!(
            page.contains(
                "mcpgate_upstream_errors_total{server=\"metrics-test-a\\\"b\",kind=\"timeout\"} 2\n"
            ),
            "{page}"
        );
        assert!(
            page.contains(
                "mcpgate_upstream_request_duration_seconds_bucket{server=\"metrics-test-a\\\"b\",le=\"0.005\"} 1\n"
            ),
            "{page}"
        );
        assert!(page.contains("# TYPE mcpgate_decision_duration_seconds histogram"));
    }
}
