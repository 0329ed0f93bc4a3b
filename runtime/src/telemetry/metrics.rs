//! The gateway's counters over OTLP/HTTP: what `/metrics` shows of decisions and upstreams
//! (`crate::metrics`), read by observable instruments when the SDK's periodic reader
//! collects (every `OTEL_METRIC_EXPORT_INTERVAL` milliseconds, default 60 s). Sums are
//! cumulative counters: a rate of `mcpgate.decision.duration` over a rate of
//! `mcpgate.decisions` is the mean decision time.

use super::Client;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use std::sync::OnceLock;

static PROVIDER: OnceLock<SdkMeterProvider> = OnceLock::new();

/// Starts exporting to `url` (the full `/v1/metrics` URL).
///
/// # Errors
/// When the exporter cannot be built, or metrics are already exported.
pub fn start(client: Client, url: &str, resource: Resource) -> Result<(), String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(url)
        .build()
        .map_err(|e| format!("telemetry: {e}"))?;
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter).build())
        .with_resource(resource)
        .build();
    register(&provider);
    PROVIDER
        .set(provider)
        .map_err(|_| "metrics are already exported".to_owned())
}

/// The instruments, each read from one snapshot of the counters.
fn register(provider: &SdkMeterProvider) {
    let meter = provider.meter("mcpgate");
    // The SDK keeps the registered callbacks for the provider's life.
    let _ = meter
        .u64_observable_counter("mcpgate.decisions")
        .with_description("Decisions, by verdict.")
        .with_callback(|o| {
            for (verdict, n) in crate::metrics::snapshot().decisions {
                o.observe(n, &[KeyValue::new("mcpgate.verdict", verdict)]);
            }
        })
        .build();
    let _ = meter
        .f64_observable_counter("mcpgate.decision.duration")
        .with_description("Time spent deciding, all decisions together.")
        .with_unit("s")
        .with_callback(|o| o.observe(crate::metrics::snapshot().decision_seconds, &[]))
        .build();
    let _ = meter
        .u64_observable_counter("mcpgate.upstream.requests")
        .with_description("Upstream requests answered, by server.")
        .with_callback(|o| {
            for u in crate::metrics::snapshot().upstreams {
                o.observe(u.answered, &[KeyValue::new("server.name", u.server)]);
            }
        })
        .build();
    let _ = meter
        .f64_observable_counter("mcpgate.upstream.duration")
        .with_description(
            "Time from forwarding to the answer, all answered requests together, by server.",
        )
        .with_unit("s")
        .with_callback(|o| {
            for u in crate::metrics::snapshot().upstreams {
                o.observe(u.seconds, &[KeyValue::new("server.name", u.server)]);
            }
        })
        .build();
    let _ = meter
        .u64_observable_counter("mcpgate.upstream.errors")
        .with_description("Failed upstream requests, by server and kind.")
        .with_callback(|o| {
            for u in crate::metrics::snapshot().upstreams {
                for (kind, n) in u.errors {
                    o.observe(
                        n,
                        &[
                            KeyValue::new("server.name", u.server.clone()),
                            KeyValue::new("error.type", kind),
                        ],
                    );
                }
            }
        })
        .build();
}

/// Sends the counters once more (at shutdown). Blocks: call off the async threads.
pub fn flush() {
    if let Some(p) = PROVIDER.get()
        && let Err(e) = p.force_flush()
    {
        tracing::warn!(error = %e, "telemetry: metrics could not be flushed");
    }
}
