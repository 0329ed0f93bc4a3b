//! OpenTelemetry over OTLP/HTTP: the `mcp.request` span of every decided request (target
//! `mcpgate::audit`, see `audit::decision`) is exported, as a child of the client's span
//! when the client sent a W3C `traceparent` ([`client_trace`]), W3C `traceparent` is
//! sent to HTTP upstreams inside it, and the counters of `/metrics` are exported as metrics
//! (`telemetry/metrics.rs`). Configured by the `telemetry` section of `mcpgate.yaml` and
//! the standard `OTEL_*` variables (see `docs/telemetry.md`).
//!
//! The tracing layer is installed with the log subscriber, before the configuration is
//! read; it creates no span until [`start`] turns export on, so a gateway without telemetry
//! pays one atomic load per `mcp.request` span (other callsites are never asked). Spans are sent by the SDK's batch processor
//! through the gateway's own HTTP client (hyper and rustls: no second HTTP or TLS stack).
//!
//! Bottom layer: uses `http_client` and `metrics`.

pub mod metrics;

use crate::http_client;
use bytes::Bytes;
use http_body_util::Full;
use mcpgate_compiler::config::TelemetryConfig;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracerProvider, Span, SpanData, SpanProcessor,
};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::subscriber::Interest;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::dynamic_filter_fn;
use tracing_subscriber::registry::LookupSpan;

/// The target of the spans (and their events) that are exported.
pub const TARGET: &str = "mcpgate::audit";
/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether spans are exported (set once by [`start`]).
static ON: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The span processor the provider is built with: empty until [`start`] gives it the
/// batch processor (the exporter needs the configuration, the layer does not).
#[derive(Debug, Default)]
struct Deferred {
    inner: OnceLock<BatchSpanProcessor>,
}

impl SpanProcessor for Deferred {
    fn on_start(&self, span: &mut Span, cx: &opentelemetry::Context) {
        if let Some(p) = self.inner.get() {
            p.on_start(span, cx);
        }
    }

    fn on_end(&self, span: SpanData) {
        if let Some(p) = self.inner.get() {
            p.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.get().map_or(Ok(()), SpanProcessor::force_flush)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner
            .get()
            .map_or(Ok(()), |p| p.shutdown_with_timeout(timeout))
    }
}

/// The processor shared by the provider and [`start`].
static DEFERRED: OnceLock<std::sync::Arc<Deferred>> = OnceLock::new();

/// A processor handle the provider owns (it wants a value, [`start`] fills the shared one).
#[derive(Debug)]
struct Shared(std::sync::Arc<Deferred>);

impl SpanProcessor for Shared {
    fn on_start(&self, span: &mut Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx);
    }
    fn on_end(&self, span: SpanData) {
        self.0.on_end(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

/// The tracing layer that turns `mcp.request` spans into OpenTelemetry spans, idle until
/// [`start`]. Install it once, with the log subscriber.
pub fn layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let shared = DEFERRED.get_or_init(Default::default).clone();
    let provider = PROVIDER.get_or_init(|| {
        SdkTracerProvider::builder()
            .with_span_processor(Shared(shared))
            .build()
    });
    let tracer = provider.tracer("mcpgate");
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(
            dynamic_filter_fn(|meta, _| ON.load(Ordering::Relaxed) && meta.target() == TARGET)
                // Callsites of other targets are never asked again: the log's `debug!` and
                // `trace!` callsites stay cached as off.
                .with_callsite_filter(|meta| {
                    if meta.target() == TARGET {
                        Interest::sometimes()
                    } else {
                        Interest::never()
                    }
                }),
        )
}

/// What is exported: each has its OTLP path and its own variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

/// Where `signal` goes, from the section and the environment: `None` when its export is
/// off.
pub fn endpoint(
    cfg: Option<&TelemetryConfig>,
    signal: Signal,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let exporter = format!("OTEL_{}_EXPORTER", signal.name());
    if cfg.and_then(|c| c.enabled) == Some(false)
        || set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || set(&exporter).is_some_and(|v| v.trim().eq_ignore_ascii_case("none"))
    {
        return None;
    }
    if let Some(base) = cfg.and_then(|c| c.endpoint.as_deref()) {
        return Some(format!("{}{}", base.trim_end_matches('/'), signal.path()));
    }
    if let Some(url) = set(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.name())) {
        return Some(url);
    }
    set("OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|b| format!("{}{}", b.trim_end_matches('/'), signal.path()))
}

/// The exporters' HTTP client: the gateway's pooled client, its requests run on the
/// gateway's runtime (the batch processor and the metric reader export from their own
/// threads).
#[derive(Debug)]
pub struct Client {
    client: http_client::HttpClient,
    runtime: tokio::runtime::Handle,
}

impl opentelemetry_http::HttpClient for Client {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: http::Request<Bytes>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<http::Response<Bytes>, opentelemetry_http::HttpError>,
                > + Send
                + 'b,
        >,
    >
    where
        'a: 'b,
        Self: 'b,
    {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let req = http::Request::from_parts(parts, Full::new(body));
            let resp = http_client::send(&client, req, EXPORT_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            let (parts, body) = resp.into_parts();
            let bytes = http_client::read_body(body, EXPORT_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(http::Response::from_parts(parts, bytes))
        });
        Box::pin(async move {
            match task.await {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(format!("export task failed: {e}").into()),
            }
        })
    }
}

/// Turns export on for each signal whose endpoint the configuration or the environment
/// names; returns the URLs exported to. Call once, inside the gateway's runtime.
///
/// # Errors
/// When an exporter cannot be built (a bad URL, a bad header variable).
pub fn start(cfg: Option<&TelemetryConfig>) -> Result<Vec<String>, String> {
    let env = |k: &str| std::env::var(k).ok();
    let traces = endpoint(cfg, Signal::Traces, env);
    let metrics = endpoint(cfg, Signal::Metrics, env);
    if traces.is_none() && metrics.is_none() {
        return Ok(Vec::new());
    }
    let service = cfg
        .and_then(|c| c.service_name.clone())
        .or_else(|| {
            std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "mcpgate".into());
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let mut started = Vec::new();
    if let Some(url) = traces {
        start_traces(&url, &resource)?;
        started.push(url);
    }
    if let Some(url) = metrics {
        metrics::start(client()?, &url, resource)?;
        started.push(url);
    }
    Ok(started)
}

/// The exporters' client, on the current runtime.
fn client() -> Result<Client, String> {
    Ok(Client {
        client: http_client::build_client()?,
        runtime: tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?,
    })
}

fn start_traces(url: &str, resource: &Resource) -> Result<(), String> {
    let Some(shared) = DEFERRED.get() else {
        return Err("the tracing layer is not installed".into());
    };
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client()?)
        .with_endpoint(url)
        .build()
        .map_err(|e| format!("telemetry: {e}"))?;
    let mut batch = BatchSpanProcessor::builder(exporter).build();
    batch.set_resource(resource);
    if shared.inner.set(batch).is_err() {
        return Err("telemetry is already started".into());
    }
    ON.store(true, Ordering::Relaxed);
    Ok(())
}

/// Sends what is still buffered (at shutdown). Blocks: call off the async threads.
pub fn flush() {
    if ON.load(Ordering::Relaxed)
        && let Some(p) = PROVIDER.get()
        && let Err(e) = p.force_flush()
    {
        tracing::warn!(error = %e, "telemetry: spans could not be flushed");
    }
    metrics::flush();
}

/// Whether spans are exported (then a decided call gets its span even without an audit log).
pub fn exporting() -> bool {
    ON.load(Ordering::Relaxed)
}

tokio::task_local! {
    /// The trace context the client sent with the request being handled.
    static CLIENT_TRACE: opentelemetry::Context;
}

/// The W3C trace context a client sent with a request (its `traceparent` and `tracestate`).
#[derive(Debug, Clone)]
pub struct ClientTrace(opentelemetry::Context);

/// The trace context of `headers`, when spans are exported and `traceparent` is valid; a
/// malformed header is ignored, as W3C Trace Context asks.
pub fn client_trace(headers: &http::HeaderMap) -> Option<ClientTrace> {
    use opentelemetry::trace::TraceContextExt;
    if !exporting() || !headers.contains_key("traceparent") {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    cx.span()
        .span_context()
        .is_valid()
        .then_some(ClientTrace(cx))
}

/// Runs `fut` (the handling of one client request) with the client's trace context: the
/// `mcp.request` span made inside continues the client's trace ([`adopt_client_trace`]).
pub async fn with_client_trace<F: std::future::Future>(
    trace: Option<ClientTrace>,
    fut: F,
) -> F::Output {
    match trace {
        Some(ClientTrace(cx)) => CLIENT_TRACE.scope(cx, fut).await,
        None => fut.await,
    }
}

/// Makes the client's span (see [`client_trace`]) the parent of `span`, a freshly made
/// span with no parent in the gateway; nothing when the client sent no trace context.
pub fn adopt_client_trace(span: &tracing::Span) {
    if !exporting() {
        return;
    }
    let _ = CLIENT_TRACE.try_with(|cx| {
        if let Err(e) = span.set_parent(cx.clone()) {
            tracing::debug!(error = %e, "the client's trace context is not applied");
        }
    });
}

/// Adds the W3C `traceparent` (and `tracestate`) of the current span to `headers`, when
/// spans are exported; an upstream's own trace then continues the gateway's.
pub fn inject(headers: &mut http::HeaderMap) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new()
        .inject_context(&cx, &mut opentelemetry_http::HeaderInjector(headers));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> + Copy {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_endpoint_comes_from_the_section_then_the_environment() {
        use Signal::{Metrics, Traces};
        let cfg = TelemetryConfig {
            endpoint: Some("http://collector:4318/".into()),
            ..TelemetryConfig::default()
        };
        let other = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318")]);
        assert_eq!(
            endpoint(Some(&cfg), Traces, other),
            Some("http://collector:4318/v1/traces".into())
        );
        assert_eq!(
            endpoint(Some(&cfg), Metrics, other),
            Some("http://collector:4318/v1/metrics".into())
        );
        assert_eq!(endpoint(None, Traces, env(&[])), None);
        assert_eq!(
            endpoint(None, Metrics, other),
            Some("http://other:4318/v1/metrics".into())
        );
        let specific = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/x"),
        ]);
        assert_eq!(
            endpoint(None, Traces, specific),
            Some("http://t:1/x".into())
        );
        assert_eq!(
            endpoint(None, Metrics, specific),
            Some("http://c:4318/v1/metrics".into())
        );
        let off = TelemetryConfig {
            enabled: Some(false),
            ..cfg.clone()
        };
        assert_eq!(endpoint(Some(&off), Traces, env(&[])), None);
        let disabled = env(&[("OTEL_SDK_DISABLED", "true")]);
        assert_eq!(endpoint(Some(&cfg), Metrics, disabled), None);
        let no_traces = env(&[("OTEL_TRACES_EXPORTER", "none")]);
        assert_eq!(endpoint(Some(&cfg), Traces, no_traces), None);
        assert!(endpoint(Some(&cfg), Metrics, no_traces).is_some());
    }

    #[test]
    fn the_clients_trace_is_not_read_while_export_is_off() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        assert!(client_trace(&h).is_none());
    }

    #[test]
    fn nothing_is_injected_while_export_is_off() {
        let mut h = http::HeaderMap::new();
        inject(&mut h);
        assert!(h.is_empty());
    }
}
