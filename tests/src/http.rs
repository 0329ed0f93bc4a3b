//! A raw HTTP/1.1 client over `TcpStream`: it sends exactly the bytes a test asks for
//! (a forged `Host`, a broken body), one request per connection.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a response may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The MCP protocol revision the raw requests speak.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON-RPC messages in the body: one JSON value (an array is split into its items),
    /// or the `data:` of every SSE event when the body is an event stream.
    pub fn messages(&self) -> Vec<Value> {
        let text = self.text();
        let is_sse = self
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"));
        if is_sse {
            return sse_events(&text)
                .into_iter()
                .filter_map(|data| serde_json::from_str(&data).ok())
                .collect();
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => items,
            Ok(v) => vec![v],
            Err(_) => Vec::new(),
        }
    }

    /// The last JSON-RPC message of the body; panics with the response when there is none.
    pub fn json(&self) -> Value {
        self.messages()
            .pop()
            .unwrap_or_else(|| panic!("expected a JSON-RPC message, got {self}"))
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        for (n, v) in &self.headers {
            write!(f, "\n{n}: {v}")?;
        }
        write!(f, "\n\n{}", self.text())
    }
}

/// The `data` of each event in an SSE body (multi-line data joined with `\n`).
pub fn sse_events(text: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if !data.is_empty() {
                events.push(data.join("\n"));
                data.clear();
            }
        } else if let Some(rest) = line.strip_prefix("data:") {
            data.push(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    events
}

/// Sends one request and reads the whole response (the connection is closed after it).
/// A `Host` header is added unless `headers` has one; `Content-Length` likewise.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).ok();
    stream.set_write_timeout(Some(TIMEOUT)).ok();
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    if !has("content-length") && (!body.is_empty() || method == "POST") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // A server may answer (413) and close before reading a large body: keep what it said.
    let sent = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        panic!("no response from {addr} to {method} {path} (write: {sent:?}, read: {read:?})");
    }
    parse_response(&raw).unwrap_or_else(|| {
        panic!(
            "unparseable HTTP response from {addr}:\n{}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// A JSON-RPC request object.
pub fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// The `initialize` request of a legacy client.
pub fn initialize_request(id: u64) -> Value {
    initialize_request_as(id, "mcpgate-e2e-raw")
}

/// The `initialize` request of a legacy client that calls itself `name` (`clientInfo.name`).
pub fn initialize_request_as(id: u64, name: &str) -> Value {
    rpc(
        id,
        "initialize",
        json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": name, "version": "1.0.0"}
        }),
    )
}

/// A Streamable HTTP MCP client speaking through raw requests to one endpoint.
pub struct McpHttp {
    pub addr: SocketAddr,
    pub path: String,
    pub session: Option<String>,
    /// Sent as `Authorization: Bearer ...` on every request, when set.
    pub bearer: Option<String>,
}

impl McpHttp {
    pub fn new(addr: SocketAddr, path: &str) -> McpHttp {
        McpHttp {
            addr,
            path: path.to_owned(),
            session: None,
            bearer: None,
        }
    }

    /// The same client presenting `token` on every request.
    pub fn with_bearer(mut self, token: &str) -> McpHttp {
        self.bearer = Some(format!("Bearer {token}"));
        self
    }

    /// POSTs `body` as-is with the standard MCP headers plus `extra`.
    pub fn post_raw(&self, body: &[u8], extra: &[(&str, &str)]) -> Response {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        if let Some(s) = &self.session {
            headers.push(("Mcp-Session-Id", s.as_str()));
            headers.push(("MCP-Protocol-Version", PROTOCOL_VERSION));
        }
        if let Some(b) = &self.bearer {
            headers.push(("Authorization", b.as_str()));
        }
        headers.extend_from_slice(extra);
        request(self.addr, "POST", &self.path, &headers, body)
    }

    /// POSTs one JSON-RPC message.
    pub fn post(&self, message: &Value) -> Response {
        self.post_raw(message.to_string().as_bytes(), &[])
    }

    /// Runs the `initialize` handshake and keeps the session id; returns the response.
    pub fn initialize(&mut self) -> Response {
        self.initialize_as("mcpgate-e2e-raw")
    }

    /// [`McpHttp::initialize`] as a client that calls itself `name` (a delegated agent
    /// must give its delegation's agent name).
    pub fn initialize_as(&mut self, name: &str) -> Response {
        let response = self.post(&initialize_request_as(1, name));
        assert_eq!(
            response.status, 200,
            "initialize through {} failed: {response}",
            self.path
        );
        // A 200 can carry a JSON-RPC error (a refused client name, an unknown version).
        let answered = response
            .messages()
            .into_iter()
            .rfind(|m| m.get("id") == Some(&json!(1)));
        assert!(
            answered.as_ref().is_some_and(|m| m.get("result").is_some()),
            "initialize through {} was not answered with a result: {response}",
            self.path
        );
        self.session = response.header("mcp-session-id").map(str::to_owned);
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let ack = self.post(&note);
        assert!(
            ack.status == 202 || ack.status == 200,
            "notifications/initialized answered {ack}"
        );
        response
    }

    /// Sends a request and returns its JSON-RPC response message.
    pub fn call(&self, id: u64, method: &str, params: Value) -> Value {
        let response = self.post(&rpc(id, method, params));
        response
            .messages()
            .into_iter()
            .rfind(|m| m.get("id") == Some(&json!(id)))
            .unwrap_or_else(|| panic!("no response with id {id} to `{method}`: {response}"))
    }

    /// DELETE on the endpoint with the session id.
    pub fn delete(&self) -> Response {
        let mut headers = vec![("MCP-Protocol-Version", PROTOCOL_VERSION)];
        if let Some(s) = &self.session {
            headers.push(("Mcp-Session-Id", s.as_str()));
        }
        if let Some(b) = &self.bearer {
            headers.push(("Authorization", b.as_str()));
        }
        request(self.addr, "DELETE", &self.path, &headers, b"")
    }
}

/// A loopback HTTP server that answers every request with the same raw bytes (to play an
/// upstream that speaks garbage). Stops when dropped.
pub struct StubServer {
    pub addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StubServer {
    pub fn start(reply: &'static [u8]) -> StubServer {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
                        // Read the request head (best effort), then answer and close.
                        let mut buf = [0u8; 65536];
                        let _ = stream.read(&mut buf);
                        let _ = stream.write_all(reply);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        StubServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://ADDR/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A loopback port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_and_sse_bodies() {
        let parts = [
            "event: message\ndata: {\"a\"",
            ":1}\n\ndat",
            "a: {\"id\":2,\"b\":2}\n\n",
        ];
        let mut raw =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for part in parts {
            raw.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        let r = parse_response(&raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.messages(),
            vec![json!({"a": 1}), json!({"id": 2, "b": 2})]
        );
        assert_eq!(r.json(), json!({"id": 2, "b": 2}));
    }

    #[test]
    fn parses_a_plain_json_body() {
        let raw =
            b"HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\n\r\n{\"x\":true}";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 413);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.json(), json!({"x": true}));
    }
}
