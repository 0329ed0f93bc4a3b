//! A gateway served in-process on 127.0.0.1 and a minimal HTTP/1.1 client for the tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use mcpgate::gateway::server::serve;
use mcpgate::gateway::{EnvSecrets, Gateway};
use mcpgate::session::seal::Sealer;
use mcpgate_compiler::Program;
use mcpgate_compiler::config::Config;
use mcpgate_compiler::ir::Policy;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    /// The body as JSON; for an SSE body, the last event's data.
    pub fn json(&self) -> Value {
        if self
            .head
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream")
        {
            let mut d = mcpgate::sse::Decoder::new();
            let events = d.feed(self.body.as_bytes());
            return events
                .last()
                .and_then(|e| serde_json::from_str(&e.data).ok())
                .unwrap_or(Value::Null);
        }
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        self.head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with(&prefix)
                .then(|| l[prefix.len()..].trim().to_owned())
        })
    }
}

pub struct Running {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the gateway and waits for it (upstream processes are closed).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
    }
}

pub async fn start(config: Config, policy: &Policy, key: [u8; 32]) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let program = Program::compile(policy, None);
    let gw = Arc::new(
        Gateway::new(&config, program, Sealer::from_key(&key), addr, &EnvSecrets).unwrap(),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(serve(listener, gw.clone(), async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        gateway: gw,
        stop: Some(tx),
        done: Some(done),
    }
}

pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        head: head.to_owned(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// An MCP client session over [`send`].
pub struct Client {
    pub addr: SocketAddr,
    pub path: String,
    pub session: String,
    pub next: u64,
}

impl Client {
    pub async fn initialize(addr: SocketAddr, path: &str) -> (Client, Value) {
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test-client","version":"1.0"}}}"#;
        let r = send(addr, "POST", path, &[ACCEPT, JSON], init).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let session = r.header("mcp-session-id").unwrap_or_default();
        let c = Client {
            addr,
            path: path.to_owned(),
            session,
            next: 1,
        };
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let n = c.post(note).await;
        assert_eq!(n.status, 202);
        (c, r.json())
    }

    pub async fn post(&self, body: &str) -> Reply {
        send(
            self.addr,
            "POST",
            &self.path,
            &[
                ACCEPT,
                JSON,
                ("Mcp-Session-Id", &self.session),
                ("MCP-Protocol-Version", "2025-06-18"),
            ],
            body,
        )
        .await
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let r = self.post(&body.to_string()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["id"], id);
        v
    }

    pub async fn tool_names(&mut self) -> Vec<String> {
        let v = self.request("tools/list", serde_json::json!({})).await;
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn call(&mut self, tool: &str, args: Value) -> Value {
        self.request(
            "tools/call",
            serde_json::json!({"name": tool, "arguments": args}),
        )
        .await
    }
}
