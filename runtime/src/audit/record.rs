//! The canonical encoding of an audit record and the hash that chains records together.
//!
//! A record is one JSON object on one line: keys sorted by byte order at every level, no
//! whitespace, strings escaped as `serde_json` escapes them. The line's SHA-256 (without
//! the newline) is what the next record's `prev` holds.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical one-line encoding of `value` (sorted keys, no whitespace).
pub fn canonical(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    canonical_into(value, &mut out);
    // serde_json writes UTF-8 only; the lossy path is never taken.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends the canonical encoding of `value` to `out`: the writer encodes each record
/// straight into the batch it writes, with no string per key or scalar.
pub fn canonical_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            out.push(b'{');
            // serde_json's map is a BTreeMap (sorted) unless a dependency turns on
            // `preserve_order`; sort only when the keys are not in byte order already.
            if map.keys().is_sorted() {
                write_members(map.iter(), out);
            } else {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_unstable_by(|a, b| a.0.cmp(b.0));
                write_members(members.into_iter(), out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_into(v, out);
            }
            out.push(b']');
        }
        Value::String(text) => write_str(text, out),
        scalar => write_json(scalar, out),
    }
}

fn write_members<'a>(members: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    for (i, (k, v)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(k, out);
        out.push(b':');
        canonical_into(v, out);
    }
}

/// A string as serde_json writes it. Most strings of a record (ids, hashes, names, times)
/// hold nothing to escape: they are copied whole; the others go through serde_json, so
/// the escapes stay exactly its own (`"`, `\\` and the control characters below 0x20).
pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        write_json(s, out);
    }
}

/// Whether `bytes` hold a `"`, a `\\` or a control character below 0x20, tested eight
/// bytes at a time (a false alarm would only send the string through serde_json).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Some byte of `v` below `n` (n <= 0x80): the classic word-at-a-time test.
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            return true;
        };
        let v = u64::from_le_bytes(word);
        if below(v, 0x20)
            | below(v ^ (ONES * u64::from(b'"')), 1)
            | below(v ^ (ONES * u64::from(b'\\')), 1)
            != 0
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// A number as serde_json writes it.
pub(crate) fn write_u64(n: u64, out: &mut Vec<u8>) {
    write_json(&n, out);
}

/// A scalar or a key as serde_json writes it (compact, its escapes).
fn write_json<T: serde::Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    // Writing a string, number, bool or null to a Vec cannot fail.
    let _ = serde_json::to_writer(out, v);
}

/// SHA-256 of `line`, hex.
pub fn hash_hex(line: &[u8]) -> String {
    hex(&Sha256::digest(line))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Bytes of a hex string, if it is one.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

/// A record's fields, before the writer gives it `seq` and `prev`.
pub type Fields = Map<String, Value>;

/// Now, as an RFC 3339 UTC timestamp with microseconds (`2026-01-02T03:04:05.678901Z`).
pub fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs(), d.subsec_micros())
}

/// `secs` since the epoch (and `micros`) as RFC 3339 UTC.
pub fn rfc3339(secs: u64, micros: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    // Every record carries one: digits written in place, not through `format!`.
    match (u32::try_from(y), micros) {
        (Ok(year @ 0..=9999), 0..=999_999) => {
            let mut b = *b"0000-00-00T00:00:00.000000Z";
            let mut put = |at: usize, width: usize, mut n: u64| {
                for i in (at..at + width).rev() {
                    b[i] = b'0' + (n % 10) as u8;
                    n /= 10;
                }
            };
            put(0, 4, u64::from(year));
            put(5, 2, u64::from(m));
            put(8, 2, u64::from(d));
            put(11, 2, rem / 3600);
            put(14, 2, (rem / 60) % 60);
            put(17, 2, rem % 60);
            put(20, 6, u64::from(micros));
            String::from_utf8_lossy(&b).into_owned()
        }
        _ => format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        ),
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The encoding records were chained with before `canonical_into`: every key and scalar
    /// through `Value`'s Display. The two must agree byte for byte, or old logs stop verifying.
    fn reference(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_unstable();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    reference(&map[k.as_str()], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    reference(v, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }

    #[test]
    fn canonical_matches_the_reference_encoding_byte_for_byte() {
        let cases = [
            json!({"z": 1, "a": "x", "m": {"b": [1, 2.5, -3, 1e300, null, true], "a": {}}}),
            json!({"esc": "quote \" back \\ nl \n tab \t ctl \u{1} del \u{7f}", "é": "ü😀"}),
            json!({"": "", "A": 0, "a": -0.0, "aa": [[], [{}], [[1]]], "B": u64::MAX, "i": i64::MIN}),
            json!([{"k2": 2, "k10": 10, "k1": 1}, "s", 0.1, 12345678901234567890_u64]),
            json!("just a string \u{2028}"),
            json!(null),
            json!({"k\"ey\u{1f}": "v\u{0}", "plain key": "x\\y", "\u{1b}[31m": "\u{20}"}),
        ];
        for v in cases {
            let mut want = String::new();
            reference(&v, &mut want);
            assert_eq!(canonical(&v), want, "{v}");
            let mut bytes = b"prefix".to_vec();
            canonical_into(&v, &mut bytes);
            assert_eq!(&bytes[6..], want.as_bytes());
        }
    }

    #[test]
    fn the_word_at_a_time_escape_test_agrees_with_the_bytewise_one() {
        let bytewise = |s: &[u8]| s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        let mut cases: Vec<Vec<u8>> = vec![Vec::new(), b"plain ascii text, long enough".to_vec()];
        // Every byte value at every position of words and tails, among harmless bytes,
        // the characters just beside the escaped ones and non-ASCII included.
        for len in [1usize, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for b in 0u8..=255 {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    cases.push(s);
                }
            }
        }
        cases.push("é\u{2028}😀 #$%[]^_`{|}~\u{7f}".as_bytes().to_vec());
        for s in cases {
            assert_eq!(needs_escape(&s), bytewise(&s), "{s:?}");
        }
    }

    #[test]
    fn canonical_sorts_keys_at_every_level_and_has_no_spaces() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": null, "x": "é\n"}], "c": 1.5}});
        assert_eq!(
            canonical(&v),
            r#"{"a":{"c":1.5,"z":[3,{"x":"é\n","y":null}]},"b":1}"#
        );
        let back: Value = serde_json::from_str(&canonical(&v)).unwrap();
        assert_eq!(canonical(&back), canonical(&v));
    }

    #[test]
    fn hex_round_trips_and_hashes_are_sha256() {
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(
            hash_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(
            rfc3339(1_767_225_599, 999_999),
            "2025-12-31T23:59:59.999999Z"
        );
        // Past year 9999 the digits widen, as `format!` writes them.
        assert_eq!(rfc3339(253_402_300_800, 0), "10000-01-01T00:00:00.000000Z");
    }
}
