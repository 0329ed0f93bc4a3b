//! A webhook receiver on 127.0.0.1 for the gateway's signed notifications (approvals,
//! responders): answers 200 to each request and hands it to the test.

use hmac::Mac;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// One request a webhook receiver got: its headers (lowercased names) and body.
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A loopback HTTP listener that answers 200 to each request and hands it over.
pub fn receiver() -> (String, mpsc::Receiver<Delivery>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { return };
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            let (head_end, length) = loop {
                let Ok(n) = s.read(&mut buf) else { return };
                if n == 0 {
                    return;
                }
                raw.extend_from_slice(&buf[..n]);
                if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    break (end + 4, length);
                }
            };
            while raw.len() < head_end + length {
                let Ok(n) = s.read(&mut buf) else { return };
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buf[..n]);
            }
            let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_owned()))
                .collect();
            let body = raw[head_end..].to_vec();
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx.send(Delivery { headers, body }).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

impl Delivery {
    /// A header's value (empty when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// `sha256=HEX`, the HMAC-SHA256 of `body` under `secret`, computed here independently
/// of the gateway.
pub fn signature(secret: &str, body: &[u8]) -> String {
    signature_with_key(secret.as_bytes(), body)
}

/// As [`signature`], under a binary key.
pub fn signature_with_key(key: &[u8], body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}
