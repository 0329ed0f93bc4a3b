//! An incremental parser for `text/event-stream` bodies (the WHATWG server-sent events
//! format). Bytes arrive in arbitrary chunks; complete events come out in order. Lines end
//! with CRLF, LF or CR; the `data`, `event`, `id` and `retry` fields are understood and
//! comments (lines starting with `:`) are skipped. The parser never panics: input that is not
//! UTF-8 is decoded lossily, and the only error is a line or event larger than the limit.

use std::fmt;

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type (`message` unless an `event:` field named another).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id seen so far in the stream, if any.
    pub id: Option<String>,
}

/// The stream broke the parser's size limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseTooLarge {
    /// The limit in bytes.
    pub limit: usize,
}

impl fmt::Display for SseTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event stream line or event larger than {} bytes",
            self.limit
        )
    }
}

impl std::error::Error for SseTooLarge {}

/// Incremental event-stream parser; feed it chunks with [`SseParser::feed`].
#[derive(Debug)]
pub struct SseParser {
    limit: usize,
    line: Vec<u8>,
    /// The previous chunk ended with CR: a LF starting the next chunk belongs to it.
    after_cr: bool,
    /// Still at the very start of the stream, where a byte order mark is dropped.
    at_start: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry: Option<u64>,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(16 * 1024 * 1024)
    }
}

impl SseParser {
    /// A parser that refuses lines and events larger than `limit` bytes.
    pub fn new(limit: usize) -> SseParser {
        SseParser {
            limit,
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            event: String::new(),
            data: String::new(),
            has_data: false,
            last_id: None,
            retry: None,
        }
    }

    /// The last event id the stream set (for `Last-Event-ID` on reconnection).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Seeds the last event id, e.g. when a resumed stream continues an earlier one.
    pub fn set_last_event_id(&mut self, id: Option<String>) {
        self.last_id = id;
    }

    /// The reconnection delay the stream asked for, in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry
    }

    /// Seeds the reconnection delay, e.g. when a resumed stream continues an earlier one.
    pub fn set_retry_ms(&mut self, retry: Option<u64>) {
        self.retry = retry;
    }

    /// Parses one chunk, appending every event it completes to `out`.
    ///
    /// # Errors
    /// A line or an event larger than the limit; the parser should then be discarded.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseTooLarge> {
        if chunk.is_empty() {
            // Nothing to parse, and a pending CR must still meet the next chunk's LF.
            return Ok(());
        }
        if self.at_start {
            // The BOM may itself be split across chunks: hold back a partial one.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let mut probe = std::mem::take(&mut self.line);
            probe.extend_from_slice(chunk);
            if probe.len() < BOM.len() && BOM.starts_with(&probe) {
                self.line = probe;
                return Ok(());
            }
            self.at_start = false;
            let rest = probe.strip_prefix(BOM).unwrap_or(&probe).to_vec();
            return self.feed_bytes(&rest, out);
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        self.feed_bytes(chunk, out)
    }

    fn feed_bytes(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseTooLarge> {
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = chunk.split_at(pos);
            self.push_line_bytes(head)?;
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out)?;
            let is_cr = tail.first() == Some(&b'\r');
            chunk = tail.get(1..).unwrap_or_default();
            if is_cr {
                match chunk.first() {
                    Some(b'\n') => chunk = chunk.get(1..).unwrap_or_default(),
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.push_line_bytes(chunk)
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) -> Result<(), SseTooLarge> {
        if self.line.len().saturating_add(bytes.len()) > self.limit {
            return Err(SseTooLarge { limit: self.limit });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseTooLarge> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line.first() == Some(&b':') {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let (field, rest) = line.split_at(colon);
                let value = rest.get(1..).unwrap_or_default();
                (field, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                if self
                    .data
                    .len()
                    .saturating_add(value.len())
                    .saturating_add(1)
                    > self.limit
                {
                    return Err(SseTooLarge { limit: self.limit });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"id" if !value.contains(&0) => {
                self.last_id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if !std::mem::replace(&mut self.has_data, false) {
            return;
        }
        out.push(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn fields_and_line_endings() {
        let events = parse(&[b"\xEF\xBB\xBFid: 7\r\nevent: endpoint\rdata: /m?x=1\n\n: ping\n\ndata: a\ndata:b\r\n\r\n"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, "endpoint");
        assert_eq!(events[0].data, "/m?x=1");
        assert_eq!(events[0].id.as_deref(), Some("7"));
        assert_eq!(events[1].event, "message");
        assert_eq!(events[1].data, "a\nb");
    }

    #[test]
    fn cr_lf_split_across_chunks_is_one_line_end() {
        let events = parse(&[b"data: x\r", b"\n", b"\r", b"\ndata: y\n\n"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].data, "y");
    }

    #[test]
    fn an_empty_chunk_between_cr_and_lf_changes_nothing() {
        let whole = parse(&[b"data: a\r\ndata: b\n\n"]);
        let split = parse(&[b"data: a\r", b"", b"\ndata: b\n\n"]);
        assert_eq!(whole, split);
        assert_eq!(split.len(), 1);
        assert_eq!(split[0].data, "a\nb");
    }

    #[test]
    fn retry_and_priming_event_without_data() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.feed(b"id: p1\nretry: 250\ndata\n\nid: p2\n\n", &mut out)
            .unwrap();
        assert_eq!(p.retry_ms(), Some(250));
        assert_eq!(p.last_event_id(), Some("p2"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, "");
    }

    #[test]
    fn oversized_line_is_an_error() {
        let mut p = SseParser::new(8);
        let mut out = Vec::new();
        assert!(p.feed(b"data: 0123456789", &mut out).is_err());
    }
}
