//! Gateway overhead on `tools/call`: a load generator on 127.0.0.1 calls a minimal
//! Streamable HTTP MCP server directly and through `mcpgate serve`, in one run, and prints
//! for each configuration the calls per second and the latency percentiles, and what the
//! gateway adds to the direct call.
//!
//! ```sh
//! cargo build --release -p mcpgate
//! MCPGATE_BIN=$PWD/target/release/mcpgate cargo bench -p mcpgate-tests --bench overhead
//! ```
//!
//! Two measurements, each against the server directly and through the gateway:
//!
//! - back to back: each of `BENCH_CONNS` connections (default `1,16`, comma-separated)
//!   sends a call as soon as the previous one is answered. With one connection the
//!   difference with the direct call is the latency the gateway adds to one call; with
//!   several, calls/s is the throughput ceiling and the ratio to direct what is left of it.
//! - fixed rate: `BENCH_RATE` calls per second in total (default 2000; `0` skips it) over
//!   `BENCH_RATE_CONNS` connections (default 8), latency measured from each call's scheduled
//!   send time, so the tail shows queueing (the generator's timer adds about 1 ms).
//!
//! Settings (environment): `BENCH_SECS` measured seconds per run (default 5),
//! `BENCH_AUDIT` the gateway configurations, comma-separated (default `off,batched`): `off`
//! turns the audit log off, `batched` (the default), `strict` and `written` are its
//! durability levels; `MODE+nopoll` runs the gateway with busy polling off
//! (`gateway.busy_poll_us: 0`). `MCPGATE_BIN_BEFORE` names a second build (say, of the main branch):
//! each configuration then runs on both, one after the other, and the ratios are printed
//! (`written` runs on the build under test only: older builds do not know it).
//! `BENCH_QUOTA` (default none) adds gateways whose call a `limit` counts, with the audit
//! log off, comma-separated: `memory` (the in-process store) and `redis` (the fleet store,
//! on a `redis-server` the bench starts on a free port): the difference between the two is
//! what a call's round trip to Redis adds.
//! `BENCH_RELAY=0` leaves out the floor (on by default under `cargo bench`): this bench
//! re-run as a plain byte relay in front of the same upstream, the cost of one more
//! process on the path with nothing parsed or decided (`BENCH_RELAY_SPIN=1`: a relay
//! that spins instead of sleeping, so the share of the floor that is wake-ups shows).
//! `BENCH_ROUNDS` (default 1) repeats the back-to-back runs, each round with the direct
//! call first and the subjects in the other order than the round before (a subject run
//! second reads a few percent slower), and prints each subject's medians over the rounds:
//! on a shared machine noise comes and goes, and one run can be off by 10-20%.
//! Latency figures are in microseconds; `cpu/call` is the CPU time (user and system, all
//! threads) the gateway's process used during the run, per call. Before and after the runs it prints what the disk
//! itself takes to make a 300-byte record durable (`pwrite` + `fdatasync`), appending, into
//! fallocated blocks, and inside an already written file: the floor of an audited call's
//! added latency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mcpgate_tests::stores::Redis;
use mcpgate_tests::{Gateway, PolicyRepo};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

    /// Calls per second.
    fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
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

fn list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

/// What is measured: a gateway (a build and an audit configuration), or the relay floor.
enum Target {
    Gateway {
        gateway: Gateway,
        _repo: PolicyRepo,
        _state: tempfile::TempDir,
    },
    Relay(Relay),
}

struct Subject {
    label: String,
    mode: String,
    before: bool,
    target: Target,
}

impl Subject {
    fn addr(&self) -> SocketAddr {
        match &self.target {
            Target::Gateway { gateway, .. } => gateway.addr(),
            Target::Relay(r) => r.addr,
        }
    }

    /// The MCP endpoint: the gateway's for the stub server, the stub's own through the relay.
    fn path(&self) -> &'static str {
        match &self.target {
            Target::Gateway { .. } => "/mcp/stub",
            Target::Relay(_) => "/mcp",
        }
    }

    /// CPU time (user and system) the subject's process has used so far.
    fn cpu(&self) -> Duration {
        let pid = match &self.target {
            Target::Gateway { gateway, .. } => gateway.pid(),
            Target::Relay(r) => r.child.id(),
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // After the command name (in parentheses): utime and stime are fields 14 and 15,
        // in clock ticks of 1/100 s.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let ticks: u64 = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse::<u64>().ok())
            .sum();
        Duration::from_millis(ticks * 10)
    }

    fn log(&self) -> String {
        match &self.target {
            Target::Gateway { gateway, .. } => gateway.log(),
            Target::Relay(_) => String::new(),
        }
    }
}

/// The floor of any proxy run as its own process: this bench re-run as a byte relay
/// (tokio, as many workers as the gateway, one task per connection copying both ways), in
/// front of the same upstream. What it adds to a direct call is the cost of the extra
/// process hop alone (two more loopback exchanges and their wake-ups), with no HTTP
/// parsing and no policy; the gateway's own cost is what it adds on top.
struct Relay {
    addr: SocketAddr,
    child: std::process::Child,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env(RELAY_ENV, upstream.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().parse().expect("the relay prints its address");
        Relay { addr, child }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Set in the relay's environment: the upstream it relays to.
const RELAY_ENV: &str = "MCPGATE_BENCH_RELAY_TO";

/// The relay process: prints its address, relays until its standard input closes.
fn relay_main(upstream: &str) {
    let upstream: SocketAddr = upstream.parse().unwrap();
    // The parent holds our stdin: when it goes (even by a panic), so do we.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    if std::env::var("BENCH_RELAY_SPIN").is_ok() {
        spinning_relay(upstream);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = client.set_nodelay(true);
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = server.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
}

/// `BENCH_RELAY_SPIN=1`: a relay that never sleeps (a thread per connection spinning on
/// non-blocking sockets), to tell the wake-ups of a sleeping relay from its other costs.
fn spinning_relay(upstream: SocketAddr) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", listener.local_addr().unwrap());
    for client in listener.incoming() {
        let client = client.unwrap();
        std::thread::spawn(move || {
            let server = std::net::TcpStream::connect(upstream).unwrap();
            for s in [&client, &server] {
                s.set_nodelay(true).unwrap();
                s.set_nonblocking(true).unwrap();
            }
            let mut buf = vec![0u8; 65536];
            loop {
                for (mut from, mut to) in [(&client, &server), (&server, &client)] {
                    let n = match from.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => n,
                        Err(_) => continue,
                    };
                    let mut off = 0;
                    while off < n {
                        match to.write(&buf[off..n]) {
                            Ok(k) => off += k,
                            Err(_) => std::hint::spin_loop(),
                        }
                    }
                }
            }
        });
    }
}

fn start(bin: &Path, mode: &str, upstream: SocketAddr, before: bool) -> Subject {
    // `MODE+nopoll`: the same with busy polling off.
    let (audit_mode, nopoll) = match mode.strip_suffix("+nopoll") {
        Some(m) => (m, true),
        None => (mode, false),
    };
    let audit = match audit_mode {
        "off" => json!({"enabled": false}),
        m => json!({"durability": m}),
    };
    let mut config = json!({"servers": {"stub": {"url": format!("http://{upstream}/mcp")}},
                            "audit": audit});
    if nopoll {
        config["gateway"] = json!({"busy_poll_us": 0});
    }
    let repo = PolicyRepo::with(&config, "allow stub.echo;\n");
    let state = tempfile::Builder::new()
        .prefix("mcpgate-bench-")
        .tempdir()
        .unwrap();
    let args = vec![
        "--policy".to_owned(),
        repo.path().to_str().unwrap().to_owned(),
    ];
    let gateway = Gateway::start_bin(bin, state.path(), &args, &[("RUST_LOG", "warn")]);
    let label = format!(
        "{}audit {audit_mode}{}",
        if before { "before: " } else { "" },
        if nopoll { ", no busy poll" } else { "" }
    );
    Subject {
        label,
        mode: mode.to_owned(),
        before,
        target: Target::Gateway {
            gateway,
            _repo: repo,
            _state: state,
        },
    }
}

/// A gateway whose every call a `limit` counts (one never reached), in the quota store
/// `store` (`memory`, or `redis` on `redis`), the audit log off.
fn start_quota(bin: &Path, store: &str, upstream: SocketAddr, redis: Option<&Redis>) -> Subject {
    let mut config = json!({"servers": {"stub": {"url": format!("http://{upstream}/mcp")}},
                            "audit": {"enabled": false}});
    let mut env = vec![("RUST_LOG", "warn".to_owned())];
    if let Some(r) = redis.filter(|_| store == "redis") {
        config["state"] = json!({"redis": "${env:MCPGATE_REDIS_URL}"});
        env.push(("MCPGATE_REDIS_URL", r.url()));
    }
    let repo = PolicyRepo::with(
        &config,
        "allow stub.echo;\n@id(\"bench-quota\")\nlimit stub.echo 1000000000 per second;\n",
    );
    let state = tempfile::Builder::new()
        .prefix("mcpgate-bench-")
        .tempdir()
        .unwrap();
    let args = vec![
        "--policy".to_owned(),
        repo.path().to_str().unwrap().to_owned(),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gateway = Gateway::start_bin(bin, state.path(), &args, &env);
    Subject {
        label: format!("quota {store}"),
        mode: format!("quota-{store}"),
        before: false,
        target: Target::Gateway {
            gateway,
            _repo: repo,
            _state: state,
        },
    }
}

/// p50 and p99 of a bare `pwrite` + `fdatasync` of a 300-byte record: appended to a new
/// file, written into blocks `fallocate` left unwritten (each first write into a block
/// makes the sync write its conversion too), and rewritten inside a file already written (no
/// size or block to allocate, as in the gateway's zeroed-ahead log files): the disk's own
/// cost of one durable record, next to which the audit's cost is read.
fn disk_sync(dir: &Path) -> [(u64, u64); 3] {
    use std::os::unix::fs::FileExt;
    let record = [b'x'; 300];
    let mut out = [(0, 0); 3];
    for (i, room) in ["append", "fallocate", "written"].into_iter().enumerate() {
        let path = dir.join(format!("sync-{i}"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        match room {
            "fallocate" => {
                rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, 1 << 20)
                    .unwrap();
                file.sync_all().unwrap();
            }
            "written" => {
                file.write_all_at(&vec![0; 1 << 20], 0).unwrap();
                file.sync_all().unwrap();
            }
            _ => {}
        }
        let mut times: Vec<u64> = (0..300u64)
            .map(|n| {
                let t = Instant::now();
                file.write_all_at(&record, n * 300).unwrap();
                file.sync_data().unwrap();
                t.elapsed().as_micros() as u64
            })
            .collect();
        times.sort_unstable();
        out[i] = (times[times.len() / 2], times[times.len() * 99 / 100]);
        let _ = std::fs::remove_file(&path);
    }
    out
}

fn print_disk_sync(dir: &Path) {
    let [append, unwritten, inside] = disk_sync(dir);
    println!(
        "disk: pwrite+fdatasync of 300 bytes: appending p50 {} p99 {} us, into fallocated blocks p50 {} p99 {} us, inside a written file p50 {} p99 {} us",
        append.0, append.1, unwritten.0, unwritten.1, inside.0, inside.1
    );
}

fn header() {
    println!(
        "{:<28} {:>9} {:>8} {:>8} {:>10} {:>10} {:>9} {:>7} {:>9}",
        "", "calls/s", "p50", "p99", "added p50", "added p99", "vs direct", "errors", "cpu/call"
    );
}

/// One line of figures; `cpu`: the subject process's CPU time during the run.
fn row(name: &str, s: &Stats, direct: &Stats, cpu: Option<Duration>) {
    let cpu = cpu.map_or(String::new(), |c| {
        format!(
            "{:.0} us",
            c.as_secs_f64() * 1e6 / s.latencies_us.len().max(1) as f64
        )
    });
    println!(
        "{name:<28} {:>9.0} {:>8} {:>8} {:>10} {:>10} {:>9.2} {:>7} {cpu:>9}",
        s.rate(),
        s.percentile(0.50),
        s.percentile(0.99),
        s.percentile(0.50) as i64 - direct.percentile(0.50) as i64,
        s.percentile(0.99) as i64 - direct.percentile(0.99) as i64,
        s.rate() / direct.rate(),
        s.errors,
    );
}

/// One subject's back-to-back run, against the direct run of its round.
struct Outcome {
    conns: u64,
    mode: String,
    label: String,
    before: bool,
    added_p50: f64,
    added_p99: f64,
    rate: f64,
    vs_direct: f64,
    cpu_us: f64,
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Each subject's medians over the rounds at `conns` connections.
fn print_medians(results: &[Outcome], conns: u64, rounds: u64) {
    println!("\nmedians of {rounds} rounds, {conns} connection(s):");
    println!(
        "{:<28} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "", "calls/s", "added p50", "added p99", "vs direct", "cpu/call"
    );
    let mut seen: Vec<&str> = Vec::new();
    for o in results.iter().filter(|o| o.conns == conns) {
        if seen.contains(&o.label.as_str()) {
            continue;
        }
        seen.push(&o.label);
        let of: Vec<&Outcome> = results
            .iter()
            .filter(|r| r.conns == conns && r.label == o.label)
            .collect();
        let m = |f: fn(&Outcome) -> f64| median(of.iter().map(|o| f(o)));
        println!(
            "{:<28} {:>9.0} {:>10.0} {:>10.0} {:>9.2} {:>6.0} us",
            o.label,
            m(|o| o.rate),
            m(|o| o.added_p50),
            m(|o| o.added_p99),
            m(|o| o.vs_direct),
            m(|o| o.cpu_us),
        );
    }
}

/// The build under test against `MCPGATE_BIN_BEFORE`: medians over the rounds of each
/// round's figures (a round runs both builds).
fn print_after_before(results: &[Outcome], conns: &[u64]) {
    println!("\nafter / before (back to back, medians over the rounds):");
    println!(
        "{:<24} {:>6} {:>14} {:>14} {:>8}",
        "", "conns", "added p50", "added p99", "calls/s"
    );
    for &n in conns {
        let mut modes: Vec<&str> = Vec::new();
        for o in results.iter().filter(|o| o.conns == n && o.before) {
            if modes.contains(&o.mode.as_str()) {
                continue;
            }
            modes.push(&o.mode);
            let of = |before: bool| -> Vec<&Outcome> {
                results
                    .iter()
                    .filter(|r| r.conns == n && r.mode == o.mode && r.before == before)
                    .collect()
            };
            let (b, a) = (of(true), of(false));
            if a.is_empty() {
                continue;
            }
            let m = |v: &[&Outcome], f: fn(&Outcome) -> f64| median(v.iter().map(|o| f(o)));
            println!(
                "{:<24} {n:>6} {:>6.0}->{:<6.0} {:>6.0}->{:<6.0} {:>8.2}",
                format!("audit {}", o.mode),
                m(&b, |o| o.added_p50),
                m(&a, |o| o.added_p50),
                m(&b, |o| o.added_p99),
                m(&a, |o| o.added_p99),
                m(&a, |o| o.rate) / m(&b, |o| o.rate),
            );
        }
    }
}

fn main() {
    if let Ok(upstream) = std::env::var(RELAY_ENV) {
        relay_main(&upstream);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run briefly then.
    let benching = std::env::args().any(|a| a == "--bench");
    let secs = env_or("BENCH_SECS", if benching { 5 } else { 1 });
    let rate = env_or("BENCH_RATE", 2000);
    let rate_conns = env_or("BENCH_RATE_CONNS", 8);
    let conns: Vec<u64> = list("BENCH_CONNS", "1,16")
        .iter()
        .map(|c| c.parse().expect("BENCH_CONNS: numbers"))
        .collect();
    let modes = list(
        "BENCH_AUDIT",
        if benching { "off,batched" } else { "batched" },
    );
    let after = mcpgate_tests::paths::mcpgate_bin();
    let before = std::env::var_os("MCPGATE_BIN_BEFORE").map(PathBuf::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let upstream = runtime.block_on(start_stub());
    // The disk the gateways' state dirs (and so their audit logs) are on.
    let scratch = tempfile::Builder::new()
        .prefix("mcpgate-bench-")
        .tempdir()
        .unwrap();
    println!("tools/call, {secs} s per run; gateway: {}", after.display());
    print_disk_sync(scratch.path());
    if let Some(b) = &before {
        println!("before: {}", b.display());
    }
    let mut subjects = Vec::new();
    if std::env::var("BENCH_RELAY").map_or(benching, |v| v != "0") {
        subjects.push(Subject {
            label: "relay (floor)".into(),
            mode: "relay".into(),
            before: false,
            target: Target::Relay(Relay::start(upstream)),
        });
    }
    let quotas = list("BENCH_QUOTA", "");
    let redis = quotas.iter().any(|q| q == "redis").then(Redis::start);
    for q in &quotas {
        assert!(
            q == "memory" || q == "redis",
            "BENCH_QUOTA: `memory` or `redis`, not `{q}`"
        );
        subjects.push(start_quota(&after, q, upstream, redis.as_ref()));
    }
    for mode in &modes {
        // Builds from before `busy_poll_us` existed refuse `+nopoll`.
        if let Some(b) = before.as_ref().filter(|_| !mode.ends_with("+nopoll")) {
            subjects.push(start(b, mode, upstream, true));
        }
        subjects.push(start(&after, mode, upstream, false));
    }
    // Rounds alternate the order of the subjects (a subject run second reads a few percent
    // slower on a quiet VM) and take the median: a shared machine's noise comes and goes.
    let rounds = env_or("BENCH_ROUNDS", 1).max(1);
    let mut results: Vec<Outcome> = Vec::new();
    for &n in &conns {
        for round in 0..rounds {
            if rounds > 1 {
                println!(
                    "\nback to back, {n} connection(s), round {} of {rounds}:",
                    round + 1
                );
            } else {
                println!("\nback to back, {n} connection(s):");
            }
            header();
            let direct = runtime.block_on(saturate(upstream, "/mcp", n, secs));
            row("direct", &direct, &direct, None);
            let order: Vec<&Subject> = if round % 2 == 0 {
                subjects.iter().collect()
            } else {
                subjects.iter().rev().collect()
            };
            for s in order {
                let cpu = s.cpu();
                let via = runtime.block_on(saturate(s.addr(), s.path(), n, secs));
                let used = s.cpu().saturating_sub(cpu);
                row(&s.label, &via, &direct, Some(used));
                assert_eq!(via.errors, 0, "failed calls:\n{}", s.log());
                results.push(Outcome {
                    conns: n,
                    mode: s.mode.clone(),
                    label: s.label.clone(),
                    before: s.before,
                    added_p50: via.percentile(0.5) as f64 - direct.percentile(0.5) as f64,
                    added_p99: via.percentile(0.99) as f64 - direct.percentile(0.99) as f64,
                    rate: via.rate(),
                    vs_direct: via.rate() / direct.rate(),
                    cpu_us: used.as_secs_f64() * 1e6 / via.latencies_us.len().max(1) as f64,
                });
            }
        }
        if rounds > 1 {
            print_medians(&results, n, rounds);
        }
    }
    for &n in &conns {
        let added = |mode: &str| {
            let of: Vec<&Outcome> = results
                .iter()
                .filter(|o| o.conns == n && o.mode == mode)
                .collect();
            (!of.is_empty()).then(|| {
                (
                    median(of.iter().map(|o| o.added_p50)),
                    median(of.iter().map(|o| o.rate)),
                )
            })
        };
        if let (Some((mem, mem_rate)), Some((red, red_rate))) =
            (added("quota-memory"), added("quota-redis"))
        {
            println!(
                "\nquota redis vs memory, {n} connection(s): added p50 {mem:.0} -> {red:.0} us ({:+.0} us per call), calls/s ratio {:.2}",
                red - mem,
                red_rate / mem_rate
            );
        }
    }
    if before.is_some() {
        print_after_before(&results, &conns);
    }
    if rate > 0 {
        println!("\nfixed rate, {rate} calls/s over {rate_conns} connections:");
        header();
        let direct = runtime.block_on(load(upstream, "/mcp", rate, rate_conns, secs));
        row("direct", &direct, &direct, None);
        for s in &subjects {
            let cpu = s.cpu();
            let via = runtime.block_on(load(s.addr(), s.path(), rate, rate_conns, secs));
            row(&s.label, &via, &direct, Some(s.cpu().saturating_sub(cpu)));
            println!(
                "{:<24} p99.9 {} us, max {} us",
                "",
                via.percentile(0.999),
                via.latencies_us.last().copied().unwrap_or(0)
            );
            assert_eq!(via.errors, 0, "failed calls:\n{}", s.log());
        }
    }
    print_disk_sync(scratch.path());
}
