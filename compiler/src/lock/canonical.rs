//! Canonical JSON: the byte string a definition is hashed as. Object keys sorted by their
//! UTF-8 bytes, no whitespace, strings escaped as `serde_json` escapes them (`"`, `\`
//! and control characters; everything else as UTF-8), integers as digits, an integral
//! float in the exact-integer range as an integer (`1.0` is `1`), any other number in the
//! shortest form that reads back to the same `f64`.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Largest integer an `f64` holds exactly (2^53).
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

/// The canonical encoding of `value`.
pub fn encode(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// SHA-256 of the canonical encoding.
pub fn digest(value: &Value) -> [u8; 32] {
    Sha256::digest(encode(value).as_bytes()).into()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads 64 hex digits.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write(v, out);
                }
            }
            out.push('}');
        }
    }
}

fn write_number(n: &serde_json::Number, out: &mut String) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
        return;
    }
    match n.as_f64() {
        // An integral value in the exact range: written as the integer it is.
        #[allow(clippy::cast_possible_truncation)]
        Some(f) if f.fract() == 0.0 && f.abs() <= EXACT_F64 => {
            out.push_str(&(f as i64).to_string());
        }
        _ => out.push_str(&n.to_string()),
    }
}

fn write_string(s: &str, out: &mut String) {
    // serde_json's escaping of a string never fails.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_and_whitespace_dropped() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": "s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(encode(&a), r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
        assert_eq!(digest(&a), digest(&b));
    }

    #[test]
    fn numbers_have_one_form() {
        assert_eq!(encode(&json!(1.0)), "1");
        assert_eq!(encode(&json!(-0.5)), "-0.5");
        assert_eq!(encode(&json!(u64::MAX)), u64::MAX.to_string());
        assert_eq!(encode(&json!(1e300)), "1e+300");
    }

    #[test]
    fn strings_escape_only_what_json_requires() {
        assert_eq!(encode(&json!("é\n\"")), "\"é\\n\\\"\"");
    }

    #[test]
    fn hex_round_trips() {
        let d = digest(&json!({"a": 1}));
        assert_eq!(parse_hex32(&hex(&d)), Some(d));
        assert_eq!(parse_hex32("xyz"), None);
    }
}
