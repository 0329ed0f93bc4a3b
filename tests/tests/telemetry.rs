//! OpenTelemetry end to end: the gateway exports one `mcp.request` span per decided call to
//! an OTLP/HTTP receiver in the test (127.0.0.1, protobuf decoded with the OTLP types), with
//! the documented attributes, and its decision and upstream counters as metrics; the HTTP
//! upstream (`tests/peers/header_recorder_server.py`) receives a W3C `traceparent` naming the
//! call's span.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcpgate_tests::peers::{self, HttpPeer, ok, result_text};
use mcpgate_tests::{Gateway, PolicyRepo, cli};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A bound, not an assertion: how long the spans may take to arrive.
const WAIT: Duration = Duration::from_secs(60);

/// One export the receiver got: its path, content type and body.
type Export = (String, String, Bytes);

/// An OTLP/HTTP receiver on 127.0.0.1: records every request and answers 200 with an empty
/// protobuf `ExportTraceServiceResponse`.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Export>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let got: Arc<Mutex<Vec<Export>>> = Arc::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let store = got.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let store = store.clone();
                let service = service_fn(move |req: hyper::Request<Incoming>| {
                    let store = store.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let kind = req
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        store
                            .lock()
                            .unwrap()
                            .push((path, kind, body.unwrap_or_default()));
                        let mut r = hyper::Response::new(Full::new(Bytes::new()));
                        r.headers_mut().insert(
                            "content-type",
                            hyper::header::HeaderValue::from_static("application/x-protobuf"),
                        );
                        Ok::<_, Infallible>(r)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            got,
            _runtime: runtime,
        }
    }

    /// The spans received so far, with the `service.name` of their resource.
    fn spans(&self) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        for (path, kind, body) in self.got.lock().unwrap().iter() {
            if path != "/v1/traces" {
                continue;
            }
            assert_eq!(kind, "application/x-protobuf");
            let req = ExportTraceServiceRequest::decode(body.as_ref())
                .unwrap_or_else(|e| panic!("not an OTLP trace export: {e}"));
            for rs in req.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .map(|r| attrs(&r.attributes))
                    .and_then(|a| a.get("service.name").cloned())
                    .unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        out.push((text(&Some(&service)), span));
                    }
                }
            }
        }
        out
    }

    /// The latest value of each counter data point received: `name{attr=value,...}`.
    fn counters(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (path, kind, body) in self.got.lock().unwrap().iter() {
            if path != "/v1/metrics" {
                continue;
            }
            assert_eq!(kind, "application/x-protobuf");
            let req = ExportMetricsServiceRequest::decode(body.as_ref())
                .unwrap_or_else(|e| panic!("not an OTLP metrics export: {e}"));
            for m in req
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
            {
                let Some(metric::Data::Sum(sum)) = &m.data else {
                    continue;
                };
                for p in &sum.data_points {
                    let labels: Vec<String> = attrs(&p.attributes)
                        .iter()
                        .map(|(k, v)| format!("{k}={}", text(&Some(v))))
                        .collect();
                    let value = match p.value {
                        Some(number_data_point::Value::AsInt(i)) => i as f64,
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        None => continue,
                    };
                    out.insert(format!("{}{{{}}}", m.name, labels.join(",")), value);
                }
            }
        }
        out
    }
}

fn text(v: &Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn value(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        _ => Value::Null,
    }
}

fn attrs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, value)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn each_call_is_one_span_with_traceparent_upstream_and_the_counters_are_metrics() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("requests.jsonl");
    let upstream = HttpPeer::header_recorder(&record);
    let config = json!({
        "servers": {"rec": {"url": upstream.url}},
        "telemetry": {
            "endpoint": format!("http://{}", receiver.addr),
            "service_name": "mcpgate-e2e",
        },
    });
    let rules = "allow rec.whoami;\n@id(\"no-danger\")\ndeny rec.danger;\n";
    let repo = PolicyRepo::with(&config, rules);
    // A short batch delay: spans are sent a moment after they end, not five seconds later.
    let gw = Gateway::start_with_env(
        &repo,
        &[],
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    );

    let report = peers::py_client(
        json!({"url": gw.url("/mcp/rec")}),
        json!([
            {"op": "call_tool", "name": "whoami", "arguments": {}},
            {"op": "call_tool", "name": "danger", "arguments": {"force": true}},
        ]),
    );
    assert_eq!(result_text(ok(&report, 0)), "ok", "{report}");
    assert_eq!(ok(&report, 1)["isError"], true, "{report}");

    let deadline = Instant::now() + WAIT;
    let calls = loop {
        let calls: Vec<(String, Span)> = receiver
            .spans()
            .into_iter()
            .filter(|(_, s)| s.name.starts_with("tools/call"))
            .collect();
        if calls.len() >= 2 {
            break calls;
        }
        assert!(
            Instant::now() < deadline,
            "spans received: {:?}\ngateway log:\n{}",
            receiver
                .spans()
                .iter()
                .map(|(_, s)| &s.name)
                .collect::<Vec<_>>(),
            gw.log()
        );
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(calls.len(), 2, "one span per call: {calls:?}");
    let by_tool = |tool: &str| {
        calls
            .iter()
            .find(|(_, s)| s.name == format!("tools/call {tool}"))
            .unwrap_or_else(|| panic!("no span for {tool}: {calls:?}"))
    };
    let (service, allowed) = by_tool("whoami");
    assert_eq!(service, "mcpgate-e2e");
    let a = attrs(&allowed.attributes);
    assert_eq!(a["mcp.method.name"], "tools/call", "{a:?}");
    assert_eq!(a["gen_ai.tool.name"], "whoami", "{a:?}");
    assert_eq!(a["server.name"], "rec", "{a:?}");
    assert_eq!(a["mcpgate.verdict"], "allow", "{a:?}");
    assert_eq!(a["mcpgate.action"], "forward", "{a:?}");
    assert_eq!(a["mcpgate.outcome"], "ok", "{a:?}");
    assert!(
        a["mcpgate.upstream_ns"].as_i64().is_some_and(|n| n > 0),
        "{a:?}"
    );
    assert!(
        a["mcpgate.policy.hash"]
            .as_str()
            .is_some_and(|h| h.len() == 64),
        "{a:?}"
    );
    assert!(
        a["mcpgate.request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{a:?}"
    );
    assert!(
        a["mcpgate.decision_ns"].as_i64().is_some_and(|n| n > 0),
        "{a:?}"
    );
    assert!(allowed.end_time_unix_nano >= allowed.start_time_unix_nano);

    let (_, denied) = by_tool("danger");
    let d = attrs(&denied.attributes);
    assert_eq!(d["mcpgate.verdict"], "deny", "{d:?}");
    assert_eq!(d["mcpgate.rule"], "no-danger", "{d:?}");
    assert!(
        !d.contains_key("mcpgate.upstream_ns"),
        "a denied call reached upstream: {d:?}"
    );

    // The upstream's tools/call request carries the allowed call's trace and span ids.
    let requests = peers::recorded(&record);
    let call = requests
        .iter()
        .find(|r| {
            r["body"]
                .as_str()
                .is_some_and(|b| b.contains("tools/call") && b.contains("whoami"))
        })
        .unwrap_or_else(|| panic!("the upstream saw no tools/call: {requests:?}"));
    let traceparent = call["headers"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent upstream: {call}"));
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", hex(&allowed.trace_id), hex(&allowed.span_id)),
        "{call}"
    );

    // The counters arrive as cumulative sums, once a collection has seen the calls.
    let deadline = Instant::now() + WAIT;
    let counters = loop {
        let c = receiver.counters();
        let seen = |k: &str| c.get(k).copied().unwrap_or(0.0) >= 1.0;
        if seen("mcpgate.decisions{mcpgate.verdict=allow}")
            && seen("mcpgate.decisions{mcpgate.verdict=deny}")
            && seen("mcpgate.upstream.requests{server.name=rec}")
        {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "counters received: {c:?}\n{}",
            gw.log()
        );
        thread::sleep(Duration::from_millis(100));
    };
    assert!(
        counters["mcpgate.decision.duration{}"] > 0.0,
        "{counters:?}"
    );
    assert!(
        counters["mcpgate.upstream.duration{server.name=rec}"] > 0.0,
        "{counters:?}"
    );
    assert_eq!(
        counters.get("mcpgate.upstream.errors{error.type=timeout,server.name=rec}"),
        Some(&0.0),
        "{counters:?}"
    );
}

/// A held call's span covers its wait; once approved, its upstream request carries the
/// span's `traceparent` too.
#[test]
fn an_approved_calls_upstream_request_carries_its_traceparent() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("requests.jsonl");
    let upstream = HttpPeer::header_recorder(&record);
    let config = json!({
        "servers": {"rec": {"url": upstream.url}},
        "approvals": {"timeout": "10m"},
        "telemetry": {"endpoint": format!("http://{}", receiver.addr)},
    });
    let repo = PolicyRepo::with(&config, "approve rec.get_me by \"ops\";\n");
    let gw = Gateway::start_with_env(&repo, &[], &[("OTEL_BSP_SCHEDULE_DELAY", "100")]);
    let url = gw.url("/mcp/rec");
    let call = thread::spawn(move || {
        peers::py_client(
            json!({"url": url}),
            json!([{"op": "call_tool", "name": "get_me", "arguments": {}, "timeout": 150}]),
        )
    });
    let state = gw.state().to_str().unwrap().to_owned();
    let deadline = Instant::now() + WAIT;
    let id = loop {
        let out = cli::mcpgate(
            gw.state(),
            ["approvals", "list", "--format", "json", "--state", &state],
        );
        let listed: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        if let Some(id) = listed["approvals"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "nothing held: {out}\n{}",
            gw.log()
        );
        thread::sleep(Duration::from_millis(100));
    };
    let approved = cli::mcpgate(
        gw.state(),
        [
            "approvals",
            "approve",
            &id,
            "--as",
            "alice@example.com",
            "--state",
            &state,
        ],
    );
    assert_eq!(approved.code(), 0, "{approved}");
    let report = call.join().unwrap();
    assert_eq!(result_text(ok(&report, 0)), "ok", "{report}");

    let deadline = Instant::now() + WAIT;
    let span = loop {
        if let Some((_, s)) = receiver
            .spans()
            .into_iter()
            .find(|(_, s)| s.name == "tools/call get_me")
        {
            break s;
        }
        assert!(Instant::now() < deadline, "no span\n{}", gw.log());
        thread::sleep(Duration::from_millis(100));
    };
    let a = attrs(&span.attributes);
    assert_eq!(a["mcpgate.verdict"], "approve", "{a:?}");
    assert_eq!(a["mcpgate.action"], "hold", "{a:?}");
    assert_eq!(a["mcpgate.outcome"], "ok", "{a:?}");
    let requests = peers::recorded(&record);
    let sent = requests
        .iter()
        .find(|r| {
            r["body"]
                .as_str()
                .is_some_and(|b| b.contains("tools/call") && b.contains("get_me"))
        })
        .unwrap_or_else(|| panic!("the upstream saw no tools/call: {requests:?}"));
    assert_eq!(
        sent["headers"]["traceparent"],
        format!("00-{}-{}-01", hex(&span.trace_id), hex(&span.span_id)),
        "{sent}"
    );
}

/// The client's W3C `traceparent` makes the gateway's span a child of the client's span, and
/// the spans are made with the audit log off (`audit: {enabled: false}`) too: the allowed
/// call's and the denied call's, the upstream's `traceparent` continuing the same trace.
#[test]
fn the_clients_traceparent_is_the_parent_of_the_span_without_an_audit_log() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("requests.jsonl");
    let upstream = HttpPeer::header_recorder(&record);
    let config = json!({
        "servers": {"rec": {"url": upstream.url}},
        "audit": {"enabled": false},
        "telemetry": {"endpoint": format!("http://{}", receiver.addr)},
    });
    let rules = "allow rec.whoami;\ndeny rec.danger;\n";
    let repo = PolicyRepo::with(&config, rules);
    let gw = Gateway::start_with_env(&repo, &[], &[("OTEL_BSP_SCHEDULE_DELAY", "100")]);
    let report = peers::py_client(
        json!({"url": gw.url("/mcp/rec"),
               "headers": {"traceparent": format!("00-{TRACE}-{PARENT}-01")}}),
        json!([
            {"op": "call_tool", "name": "whoami", "arguments": {}},
            {"op": "call_tool", "name": "danger", "arguments": {}},
        ]),
    );
    assert_eq!(result_text(ok(&report, 0)), "ok", "{report}");
    assert_eq!(ok(&report, 1)["isError"], true, "{report}");
    assert!(
        !gw.state().join("audit").exists(),
        "the audit log is off, yet it was written"
    );

    let deadline = Instant::now() + WAIT;
    let calls = loop {
        let calls: Vec<Span> = receiver
            .spans()
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| s.name.starts_with("tools/call"))
            .collect();
        if calls.len() >= 2 {
            break calls;
        }
        assert!(Instant::now() < deadline, "spans: {calls:?}\n{}", gw.log());
        thread::sleep(Duration::from_millis(100));
    };
    for s in &calls {
        assert_eq!(hex(&s.trace_id), TRACE, "{}", s.name);
        assert_eq!(hex(&s.parent_span_id), PARENT, "{}", s.name);
    }
    let allowed = calls
        .iter()
        .find(|s| s.name == "tools/call whoami")
        .unwrap_or_else(|| panic!("{calls:?}"));
    let a = attrs(&allowed.attributes);
    assert_eq!(a["mcpgate.outcome"], "ok", "{a:?}");
    let denied = calls
        .iter()
        .find(|s| s.name == "tools/call danger")
        .unwrap_or_else(|| panic!("{calls:?}"));
    assert_eq!(attrs(&denied.attributes)["mcpgate.verdict"], "deny");
    let sent = peers::recorded(&record)
        .into_iter()
        .find(|r| r["body"].as_str().is_some_and(|b| b.contains("whoami")))
        .unwrap_or_else(|| panic!("the upstream saw no call"));
    assert_eq!(
        sent["headers"]["traceparent"],
        format!("00-{TRACE}-{}-01", hex(&allowed.span_id)),
        "{sent}"
    );

    // A malformed `traceparent` is ignored: the span starts a trace of its own.
    let report = peers::py_client(
        json!({"url": gw.url("/mcp/rec"),
               "headers": {"traceparent": format!("00-{TRACE}-not-a-span-id-01")}}),
        json!([{"op": "call_tool", "name": "whoami", "arguments": {}}]),
    );
    assert_eq!(result_text(ok(&report, 0)), "ok", "{report}");
    let deadline = Instant::now() + WAIT;
    let own = loop {
        let whoami: Vec<Span> = receiver
            .spans()
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| s.name == "tools/call whoami")
            .collect();
        if let Some(s) = whoami.iter().find(|s| hex(&s.trace_id) != TRACE) {
            break s.clone();
        }
        assert!(
            whoami.len() < 2,
            "the malformed header was used: {whoami:?}"
        );
        assert!(Instant::now() < deadline, "spans: {whoami:?}\n{}", gw.log());
        thread::sleep(Duration::from_millis(100));
    };
    assert!(own.parent_span_id.is_empty(), "{own:?}");
}
