//! Gateway overhead on `tools/call`: a load generator on 127.0.0.1 calls a minimal
//! Streamable HTTP MCP server directly, then the same server through `mcpgate serve`, at the
//! same request rate, and prints the latency percentiles of both and their difference.
//!
//! ```sh
//! cargo build --release -p mcpgate
//! MCPGATE_BIN=target/release/mcpgate cargo bench -p mcpgate-tests --bench overhead
//! ```
//!
//! Settings (environment): `BENCH_RATE` requests per second in total (default 2000),
//! `BENCH_CONNS` keep-alive connections (default 8), `BENCH_SECS` measured seconds (default 5),
//! `BENCH_AUDIT` the audit modes to run the gateway with, comma-separated (default
//! `off,batched,strict`). For each mode it also measures the most calls per second the
//! gateway completes with `BENCH_CONNS` connections calling back to back, and compares the
//! latency of those calls with the same back-to-back run against the server directly
//! (`BENCH_CONNS=1`: one call at a time, the per-call overhead without queueing).
//! Latency is measured from each request's scheduled send time, so a slow server cannot
//! hide its queueing delay by slowing the generator down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The upstream: answers `initialize`, notifications, `tools/list` and `tools/call` at once.
async fn stub(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let reply = |status: StatusCode, body: Value| {
        let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
        *r.status_mut() = status;
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r.headers_mut()
            .insert("mcp-session-id", "stub-session".parse().unwrap());
        Ok(r)
    };
    if method != hyper::Method::POST {
        let status = if method == hyper::Method::DELETE {
            StatusCode::OK
        } else {
            StatusCode::METHOD_NOT_ALLOWED
        };
        return reply(status, json!({}));
    }
    let Ok(message) = body.map(|b| serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null))
    else {
        return reply(StatusCode::BAD_REQUEST, json!({}));
    };
    let Some(id) = message.get("id").cloned() else {
        return reply(StatusCode::ACCEPTED, json!({}));
    };
    let result = match message["method"].as_str() {
        Some("initialize") => json!({
            "protocolVersion": message["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "bench-stub", "version": "1.0.0"}
        }),
        Some("tools/list") => json!({"tools": [{
            "name": "echo",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}
        }]}),
        Some("tools/call") => {
            json!({"content": [{"type": "text", "text": "ok"}], "isError": false})
        }
        _ => json!({}),
    };
    reply(
        StatusCode::OK,
        json!({"jsonrpc": "2.0", "id": id, "result": result}),
    )
}

async fn start_stub() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(stub))
                    .await;
            });
        }
    });
    addr
}

/// One keep-alive connection speaking MCP over Streamable HTTP.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    path: String,
    session: Option<String>,
}

impl Conn {
    async fn open(addr: SocketAddr, path: &str) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut c = Conn {
            sender,
            addr,
            path: path.to_owned(),
            session: None,
        };
        let (status, headers, _) = c
            .post(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"}}}),
            )
            .await;
        assert_eq!(status, 200, "initialize on {path}");
        c.session = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        c.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        c
    }

    async fn post(&mut self, message: Value) -> (u16, hyper::HeaderMap, Bytes) {
        let mut req = Request::post(self.path.as_str())
            .header("host", self.addr.to_string())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = &self.session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        let req = req
            .body(Full::new(Bytes::from(message.to_string())))
            .unwrap();
        self.sender.ready().await.unwrap();
        let resp = self.sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body)
    }
}

struct Stats {
    latencies_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
}

impl Stats {
    fn percentile(&self, p: f64) -> u64 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i]
    }
}

async fn load(addr: SocketAddr, path: &str, rate: u64, conns: u64, secs: u64) -> Stats {
    let interval = Duration::from_secs_f64(conns as f64 / rate as f64);
    let mut workers = Vec::new();
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs(secs);
    for w in 0..conns {
        let path = path.to_owned();
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr, &path).await;
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            // Stagger the workers across one interval.
            let mut next = start + interval.mul_f64(w as f64 / conns as f64);
            let mut id = 1u64;
            while next < end {
                tokio::time::sleep_until(next.into()).await;
                let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                                  "params": {"name": "echo", "arguments": {"text": "hi"}}});
                let (status, _, body) = conn.post(call).await;
                let ok = status == 200 && body.windows(4).any(|w| w == b"\"ok\"");
                if ok {
                    latencies.push(next.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
                id += 1;
                next += interval;
            }
            (latencies, errors)
        }));
    }
    let mut stats = Stats {
        latencies_us: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for w in workers {
        let (l, e) = w.await.unwrap();
        stats.latencies_us.extend(l);
        stats.errors += e;
    }
    stats.elapsed = start.elapsed();
    stats.latencies_us.sort_unstable();
    stats
}

/// Calls back to back on `conns` connections for `secs`: the throughput ceiling.
async fn saturate(addr: SocketAddr, path: &str, conns: u64, secs: u64) -> Stats {
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for _ in 0..conns {
        let path = path.to_owned();
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr, &path).await;
            tokio::time::sleep_until(start.into()).await;
            let (mut latencies, mut errors, mut id) = (Vec::new(), 0u64, 1u64);
            while Instant::now() < end {
                let sent = Instant::now();
                let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                                  "params": {"name": "echo", "arguments": {"text": "hi"}}});
                let (status, _, body) = conn.post(call).await;
                if status == 200 && body.windows(4).any(|w| w == b"\"ok\"") {
                    latencies.push(sent.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
                id += 1;
            }
            (latencies, errors)
        }));
    }
    let mut stats = Stats {
        latencies_us: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for w in workers {
        let (l, e) = w.await.unwrap();
        stats.latencies_us.extend(l);
        stats.errors += e;
    }
    stats.elapsed = start.elapsed();
    stats.latencies_us.sort_unstable();
    stats
}

fn report(name: &str, s: &Stats) {
    println!(
        "{name:>13}: {:>7} ok, {:>4} errors, {:>7.0} req/s, p50 {:>6} us, p90 {:>6} us, p99 {:>6} us, max {:>7} us",
        s.latencies_us.len(),
        s.errors,
        s.latencies_us.len() as f64 / s.elapsed.as_secs_f64(),
        s.percentile(0.50),
        s.percentile(0.90),
        s.percentile(0.99),
        s.latencies_us.last().copied().unwrap_or(0),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run briefly then.
    let benching = std::env::args().any(|a| a == "--bench");
    let rate = env_or("BENCH_RATE", 2000);
    let conns = env_or("BENCH_CONNS", 8);
    let secs = env_or("BENCH_SECS", if benching { 5 } else { 1 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let upstream = runtime.block_on(start_stub());
    let modes = std::env::var("BENCH_AUDIT").unwrap_or_else(|_| {
        if benching {
            "off,batched,strict".into()
        } else {
            "batched".into()
        }
    });
    println!(
        "tools/call at {rate} req/s over {conns} connections for {secs}s (gateway: {})",
        mcpgate_tests::paths::mcpgate_bin().display()
    );
    let direct = runtime.block_on(load(upstream, "/mcp", rate, conns, secs));
    report("direct", &direct);
    // Back to back, each call waits for the previous one: no timer in the measurement, so
    // the difference with the gateway's back-to-back run is its cost per call.
    let direct_most = runtime.block_on(saturate(upstream, "/mcp", conns, secs));
    report("max direct", &direct_most);
    for mode in modes.split(',').map(str::trim) {
        let audit = match mode {
            "off" => json!({"enabled": false}),
            m => json!({"durability": m}),
        };
        let repo = PolicyRepo::with(
            &json!({"servers": {"stub": {"url": format!("http://{upstream}/mcp")}},
                    "audit": audit}),
            "allow stub.echo;\n",
        );
        let gateway = Gateway::start_with_env(&repo, &[], &[("RUST_LOG", "warn")]);
        let via = runtime.block_on(load(gateway.addr(), "/mcp/stub", rate, conns, secs));
        report(&format!("audit {mode}"), &via);
        println!(
            "overhead: p50 {} us, p99 {} us",
            via.percentile(0.50) as i64 - direct.percentile(0.50) as i64,
            via.percentile(0.99) as i64 - direct.percentile(0.99) as i64,
        );
        let most = runtime.block_on(saturate(gateway.addr(), "/mcp/stub", conns, secs));
        report(&format!("max {mode}"), &most);
        println!(
            "overhead back to back: p50 {} us, p99 {} us",
            most.percentile(0.50) as i64 - direct_most.percentile(0.50) as i64,
            most.percentile(0.99) as i64 - direct_most.percentile(0.99) as i64,
        );
        for s in [&via, &most] {
            assert_eq!(
                s.errors,
                0,
                "failed calls through the gateway:\n{}",
                gateway.log()
            );
        }
    }
}
