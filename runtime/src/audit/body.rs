//! A record built member by member straight into its canonical form, and the line the
//! writer makes of it once it knows the record's `seq` and `prev`.
//!
//! Every call writes a decision record and an outcome record. Built as a `serde_json`
//! map, each member costs a key string, a value and a tree node, all dropped again once
//! encoded; here each member is encoded as it is added (one buffer for the record, one
//! list of member positions), sorted once at the end. The bytes are the canonical encoding
//! of [`crate::audit::record`]: keys in byte order at every level, no whitespace,
//! `serde_json`'s escapes.

use crate::audit::record::{Fields, canonical_into, write_str, write_u64};
use serde_json::Value;
use std::borrow::Cow;
use std::ops::Range;

/// A record being built. Members may come in any order; a key given twice keeps its last
/// value, as a map's insert does. `seq` and `prev` are the writer's: given here, they are
/// left out.
#[derive(Debug, Default)]
pub struct Record {
    /// Each member's `"key":value`, one after the other in the order they were added.
    buf: Vec<u8>,
    members: Vec<(Cow<'static, str>, Range<usize>)>,
}

/// The members of a finished record in canonical order, each followed by a comma, and
/// where the writer's `prev` and `seq` go among them.
#[derive(Debug)]
pub struct Body {
    bytes: Vec<u8>,
    prev_at: usize,
    seq_at: usize,
}

impl Record {
    /// An empty record.
    pub fn new() -> Record {
        Record {
            buf: Vec::with_capacity(768),
            members: Vec::with_capacity(32),
        }
    }

    /// A record of `type` `kind`.
    pub fn of_type(kind: &'static str) -> Record {
        let mut r = Record::new();
        r.str("type", kind);
        r
    }

    /// Starts the member `key`: its key is written, its value comes next. Returns where
    /// the member starts, for [`Record::end`].
    fn key(&mut self, key: &str) -> usize {
        let start = self.buf.len();
        write_str(key, &mut self.buf);
        self.buf.push(b':');
        start
    }

    fn end(&mut self, key: impl Into<Cow<'static, str>>, start: usize) {
        self.members.push((key.into(), start..self.buf.len()));
    }

    /// A string member.
    pub fn str(&mut self, key: &'static str, value: &str) -> &mut Record {
        let start = self.key(key);
        write_str(value, &mut self.buf);
        self.end(key, start);
        self
    }

    /// A string member when there is a value.
    pub fn opt_str(&mut self, key: &'static str, value: Option<&str>) -> &mut Record {
        if let Some(v) = value {
            self.str(key, v);
        }
        self
    }

    /// A number member.
    pub fn u64(&mut self, key: &'static str, value: u64) -> &mut Record {
        let start = self.key(key);
        write_u64(value, &mut self.buf);
        self.end(key, start);
        self
    }

    /// A true or false member.
    pub fn bool(&mut self, key: &'static str, value: bool) -> &mut Record {
        let start = self.key(key);
        self.buf
            .extend_from_slice(if value { b"true" } else { b"false" });
        self.end(key, start);
        self
    }

    /// A member holding any JSON value (encoded canonically).
    pub fn value(&mut self, key: impl Into<Cow<'static, str>>, value: &Value) -> &mut Record {
        let key = key.into();
        let start = self.key(&key);
        canonical_into(value, &mut self.buf);
        self.end(key, start);
        self
    }

    /// A member holding what `value` serializes to (encoded canonically), `null` if it
    /// cannot be.
    pub fn serialized<T: serde::Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> &mut Record {
        self.value(key, &serde_json::to_value(value).unwrap_or(Value::Null))
    }

    /// A member holding an object whose members are written in byte order of their keys
    /// (the caller names them in that order); closed when the [`Object`] is dropped.
    pub fn object(&mut self, key: &'static str) -> Object<'_> {
        let start = self.key(key);
        self.buf.push(b'{');
        Object {
            record: self,
            key,
            start,
            last: None,
        }
    }

    /// Whether a member `key` was given.
    pub fn has(&self, key: &str) -> bool {
        self.members.iter().any(|(k, _)| k == key)
    }

    /// The members in canonical order, ready for the writer.
    pub fn finish(mut self) -> Body {
        // Stable: of the members given under one key, the last stays last.
        self.members.sort_by(|a, b| a.0.cmp(&b.0));
        let mut bytes = Vec::with_capacity(self.buf.len() + self.members.len());
        let (mut prev_at, mut seq_at) = (None, None);
        let n = self.members.len();
        for (i, (key, range)) in self.members.iter().enumerate() {
            if i + 1 < n && self.members[i + 1].0 == *key {
                continue;
            }
            if prev_at.is_none() && key.as_ref() >= "prev" {
                prev_at = Some(bytes.len());
            }
            if seq_at.is_none() && key.as_ref() >= "seq" {
                seq_at = Some(bytes.len());
            }
            if key == "prev" || key == "seq" {
                continue;
            }
            bytes.extend_from_slice(&self.buf[range.clone()]);
            bytes.push(b',');
        }
        Body {
            prev_at: prev_at.unwrap_or(bytes.len()),
            seq_at: seq_at.unwrap_or(bytes.len()),
            bytes,
        }
    }
}

impl From<Fields> for Record {
    fn from(fields: Fields) -> Record {
        let mut r = Record::new();
        for (k, v) in &fields {
            r.value(k.clone(), v);
        }
        r
    }
}

/// An object member being written; see [`Record::object`].
pub struct Object<'a> {
    record: &'a mut Record,
    key: &'static str,
    start: usize,
    last: Option<&'static str>,
}

impl Object<'_> {
    fn key(&mut self, key: &'static str) {
        debug_assert!(
            self.last.is_none_or(|l| l < key),
            "object members in byte order"
        );
        if self.last.is_some() {
            self.record.buf.push(b',');
        }
        self.last = Some(key);
        let _ = self.record.key(key);
    }

    /// A string member.
    pub fn str(&mut self, key: &'static str, value: &str) -> &mut Self {
        self.key(key);
        write_str(value, &mut self.record.buf);
        self
    }

    /// A string member when there is a value.
    pub fn opt_str(&mut self, key: &'static str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.str(key, v);
        }
        self
    }

    /// A true or false member when there is a value.
    pub fn opt_bool(&mut self, key: &'static str, value: Option<bool>) -> &mut Self {
        if let Some(v) = value {
            self.key(key);
            self.record
                .buf
                .extend_from_slice(if v { b"true" } else { b"false" });
        }
        self
    }

    /// A member holding any JSON value (encoded canonically).
    pub fn value(&mut self, key: &'static str, value: &Value) -> &mut Self {
        self.key(key);
        canonical_into(value, &mut self.record.buf);
        self
    }
}

impl Drop for Object<'_> {
    fn drop(&mut self) {
        self.record.buf.push(b'}');
        self.record.end(self.key, self.start);
    }
}

impl Body {
    /// Appends the record's line (without its newline) to `out`: the members with
    /// `prev` and `seq` in their places.
    pub fn line_into(&self, seq: u64, prev: &str, out: &mut Vec<u8>) {
        let b = &self.bytes;
        out.reserve(b.len() + prev.len() + 40);
        out.push(b'{');
        out.extend_from_slice(&b[..self.prev_at]);
        out.extend_from_slice(b"\"prev\":");
        write_str(prev, out);
        out.push(b',');
        out.extend_from_slice(&b[self.prev_at..self.seq_at]);
        out.extend_from_slice(b"\"seq\":");
        write_u64(seq, out);
        out.push(b',');
        out.extend_from_slice(&b[self.seq_at..]);
        // Every member, `seq` included, is followed by a comma: the last one closes.
        if let Some(last) = out.last_mut() {
            *last = b'}';
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::canonical;
    use serde_json::json;

    /// The line of `fields` as the canonical encoding of the map with `seq` and `prev`.
    fn reference(fields: &Fields, seq: u64, prev: &str) -> String {
        let mut m = fields.clone();
        m.insert("seq".into(), json!(seq));
        m.insert("prev".into(), json!(prev));
        canonical(&Value::Object(m))
    }

    fn line(body: &Body, seq: u64, prev: &str) -> String {
        let mut out = Vec::new();
        body.line_into(seq, prev, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_built_record_is_the_canonical_encoding_of_its_map() {
        let cases = [
            json!({"type": "outcome", "request_id": "r1", "status": "ok", "upstream_ns": 5}),
            json!({"type": "decision", "arguments": {"z": [1, {"b": "\"q\"", "a": null}], "a\n": 1.5},
                   "action": "forward", "annotations": {"read_only": true}, "undecided": false}),
            json!({"a": 1}),
            json!({"zzz": "last", "replica": "r-1", "q": "between prev and seq", "sez": 0}),
            json!({"seq": 99, "prev": "given", "type": "event"}),
            json!({}),
            json!({"k\u{1}": "\u{7f}é\u{2028}", "prev0": 1, "seq0": 2, "pre": 3, "se": 4}),
        ];
        for case in cases {
            let Value::Object(fields) = case else {
                unreachable!()
            };
            let body = Record::from(fields.clone()).finish();
            let mut expected = fields.clone();
            expected.remove("seq");
            expected.remove("prev");
            for (seq, prev) in [(0, "0".repeat(64)), (12_345_678_901, "ab".into())] {
                assert_eq!(line(&body, seq, &prev), reference(&expected, seq, &prev));
            }
        }
    }

    #[test]
    fn members_in_any_order_and_objects_come_out_sorted() {
        let mut r = Record::of_type("decision");
        r.u64("decision_ns", 42).str("action", "forward");
        {
            let mut o = r.object("target");
            o.str("kind", "tool").str("name", "echo");
        }
        {
            let mut o = r.object("client");
            o.opt_str("name", None).opt_str("version", Some("1.0"));
        }
        r.bool("listed", true)
            .value("jsonrpc_id", &json!(7))
            .serialized("principal", &json!({"id": "ann", "groups": ["b", "a"]}))
            .str("action", "deny");
        assert!(r.has("target") && !r.has("seq"));
        let expected = json!({
            "type": "decision", "decision_ns": 42, "action": "deny",
            "target": {"kind": "tool", "name": "echo"}, "client": {"version": "1.0"},
            "listed": true, "jsonrpc_id": 7, "principal": {"id": "ann", "groups": ["b", "a"]},
        });
        let Value::Object(fields) = expected else {
            unreachable!()
        };
        assert_eq!(line(&r.finish(), 3, "p"), reference(&fields, 3, "p"));
    }
}
