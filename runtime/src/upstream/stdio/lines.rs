//! Reading a stdio server's output: one JSON-RPC message per stdout line (bounded), routed
//! to the request it answers; stderr lines go to the log.

use super::{GRACE, MAX_LINE_BYTES, MAX_STDERR_LINE};
use crate::upstream::router::Router;
use crate::upstream::{Message, UpstreamError};
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::sync::watch;

/// How reading one line ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// A line is in the buffer (without its newline).
    Read,
    /// The line was longer than the limit and was skipped.
    TooLong,
    Eof,
}

/// Reads one `\n`-terminated line of at most `limit` bytes into `buf`.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(match (too_long, buf.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::Eof,
                (false, false) => Line::Read,
            });
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (available.len(), false),
        };
        if !too_long {
            if buf.len().saturating_add(take) > limit {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(available.get(..take).unwrap_or_default());
            }
        }
        reader.consume(if done { take + 1 } else { take });
        if done {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(if too_long { Line::TooLong } else { Line::Read });
        }
    }
}

/// Routes every message the process prints; ends the router when stdout closes.
pub(super) async fn read_stdout(
    stdout: tokio::process::ChildStdout,
    router: Arc<Router>,
    mut exited: watch::Receiver<Option<String>>,
    stop: watch::Receiver<bool>,
    server: String,
) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        match read_line(&mut reader, &mut buf, MAX_LINE_BYTES).await {
            Ok(Line::Read) => {
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<Message>(&buf) {
                    Ok(message @ Message::Object(_)) => router.route(message),
                    _ => tracing::warn!(
                        target: "upstream",
                        server = %server,
                        "skipping a line that is not a JSON-RPC message ({} bytes)",
                        buf.len()
                    ),
                }
            }
            Ok(Line::TooLong) => tracing::warn!(
                target: "upstream",
                server = %server,
                "skipping a message larger than {MAX_LINE_BYTES} bytes"
            ),
            Ok(Line::Eof) | Err(_) => break,
        }
    }
    if *stop.borrow() {
        router.end(
            UpstreamError::Exited("stopped by the gateway".into()),
            UpstreamError::SessionExpired,
        );
        return;
    }
    // Wait (bounded) for the exit status so the error says how the process ended.
    let waited = tokio::time::timeout(GRACE, exited.wait_for(Option::is_some)).await;
    let description = match waited {
        Ok(Ok(d)) => d.clone().unwrap_or_default(),
        _ => "closed its output".to_owned(),
    };
    if description == "stopped by the gateway" {
        router.end(
            UpstreamError::Exited(description),
            UpstreamError::SessionExpired,
        );
    } else {
        router.end(
            UpstreamError::Exited(description.clone()),
            UpstreamError::Exited(description),
        );
    }
}

/// Forwards the process's stderr lines to the log.
pub(super) async fn log_stderr(stderr: tokio::process::ChildStderr, server: String) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        match read_line(&mut reader, &mut buf, MAX_STDERR_LINE).await {
            Ok(Line::Read) => tracing::info!(
                target: "upstream",
                server = %server,
                "stderr: {}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(Line::TooLong) => tracing::info!(
                target: "upstream",
                server = %server,
                "stderr: a line longer than {MAX_STDERR_LINE} bytes was skipped"
            ),
            Ok(Line::Eof) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_line_limits_and_trims() {
        let input: &[u8] = b"{\"a\":1}\r\n0123456789abcdef\nlast";
        let mut r = BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 10).await.unwrap(), Line::Read);
        assert_eq!(buf, b"{\"a\":1}");
        assert_eq!(
            read_line(&mut r, &mut buf, 10).await.unwrap(),
            Line::TooLong
        );
        assert_eq!(read_line(&mut r, &mut buf, 10).await.unwrap(), Line::Read);
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut r, &mut buf, 10).await.unwrap(), Line::Eof);
    }
}
