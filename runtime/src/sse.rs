//! Server-Sent Events: the encoder for streams the gateway sends to clients, and a small
//! decoder (used by tests and tools that read the gateway's streams).
//!
//! Bottom layer: uses nothing of the crate.

use bytes::Bytes;

/// Encodes one event. Every line of `data` becomes its own `data:` field, so any text
/// round-trips; an `id` containing a line break is dropped (it could inject fields).
pub fn encode(data: &str, id: Option<&str>) -> Bytes {
    let mut out = String::with_capacity(data.len() + 16);
    if let Some(id) = id.filter(|i| !i.contains(['\n', '\r', '\0'])) {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str("event: message\n");
    for line in split_lines(data) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// A comment line: keeps idle streams alive through proxies and detects closed clients.
pub fn keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

/// Lines as SSE splits them: on `\r\n`, `\n` or `\r`. An empty text is one empty line.
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    loop {
        match rest.find(['\r', '\n']) {
            None => {
                lines.push(rest);
                return lines;
            }
            Some(i) => {
                lines.push(rest.get(..i).unwrap_or_default());
                let skip = if rest.get(i..i + 2) == Some("\r\n") {
                    2
                } else {
                    1
                };
                rest = rest.get(i + skip..).unwrap_or_default();
            }
        }
    }
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// An incremental SSE decoder: feed bytes, take complete events.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    data: Option<String>,
    id: Option<String>,
    event: Option<String>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            // A `\r` at the end of the buffer may be the first half of `\r\n`: wait for more.
            if self.buf.get(pos) == Some(&b'\r') && pos + 1 == self.buf.len() {
                break;
            }
            let skip = if self.buf.get(pos) == Some(&b'\r') && self.buf.get(pos + 1) == Some(&b'\n')
            {
                2
            } else {
                1
            };
            let line: Vec<u8> = self.buf.drain(..pos + skip).take(pos).collect();
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let data = self.data.take()?;
            return Some(Event {
                id: self.id.take(),
                event: self.event.take(),
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_json_as_one_data_line() {
        let e = encode(r#"{"a":1}"#, Some("7"));
        assert_eq!(&e[..], b"id: 7\nevent: message\ndata: {\"a\":1}\n\n");
    }

    #[test]
    fn decodes_split_input() {
        let mut d = Decoder::new();
        assert!(d.feed(b"data: a\r").is_empty());
        assert!(d.feed(b"\ndata: b\n").is_empty());
        let ev = d.feed(b"\n: comment\n\n");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data, "a\nb");
    }

    proptest! {
        #[test]
        fn round_trips(data in any::<String>(), id in proptest::option::of("[a-z0-9]{1,8}"), cut in 0usize..64) {
            let bytes = encode(&data, id.as_deref());
            let mut d = Decoder::new();
            let cut = cut.min(bytes.len());
            let mut events = d.feed(&bytes[..cut]);
            events.extend(d.feed(&bytes[cut..]));
            prop_assert_eq!(events.len(), 1);
            let normalized = data.replace("\r\n", "\n").replace('\r', "\n");
            prop_assert_eq!(&events[0].data, &normalized);
            prop_assert_eq!(&events[0].id, &id);
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut d = Decoder::new();
            let _ = d.feed(&bytes);
            let _ = d.feed(b"\n\n");
        }
    }
}
