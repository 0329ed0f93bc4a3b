//! HTTP headers of the stateless protocol era (2026-07-28) that mirror the body: the value
//! codec (`=?base64?...?=` for values that are not plain printable ASCII), and `Mcp-Param-*`
//! headers. A tool's input schema may mark properties with `x-mcp-header: TOKEN`; a
//! `tools/call` then mirrors each such argument as `Mcp-Param-TOKEN`. The same code writes
//! these headers for upstreams and checks those a client sent, so both sides agree on which
//! marks count and how values are rendered.
//!
//! Bottom layer: uses nothing of the crate.

use base64::Engine as _;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// The schema keyword that marks a property as mirrored in a header.
pub const MARK_KEYWORD: &str = "x-mcp-header";
/// The header name prefix of a marked argument, as the protocol spells it.
pub const PARAM_PREFIX: &str = "Mcp-Param-";
/// Most schema positions visited in one schema (a bound on hostile input).
const MAX_POSITIONS: usize = 10_000;

/// Schema keywords whose value is one subschema (JSON Schema 2020-12 applicators).
const SUBSCHEMA_ONE: [&str; 11] = [
    "items",
    "contains",
    "unevaluatedItems",
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
];
/// Schema keywords whose value is a list of subschemas.
const SUBSCHEMA_LIST: [&str; 4] = ["allOf", "anyOf", "oneOf", "prefixItems"];
/// Schema keywords whose value is a map of subschemas.
const SUBSCHEMA_MAP: [&str; 4] = [
    "patternProperties",
    "dependentSchemas",
    "$defs",
    "definitions",
];

/// Encodes a header value: plain printable ASCII without edge spaces passes as it is,
/// anything else as `=?base64?...?=` (UTF-8 in standard base64).
pub fn encode_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..=0x7E).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        return value.to_owned();
    }
    format!(
        "=?base64?{}?=",
        base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
    )
}

/// Decodes a header value: `=?base64?...?=` is UTF-8 in canonical base64, anything else is
/// taken as it is. `None` for a malformed sentinel, so it never matches a body value.
pub fn decode_value(raw: &str) -> Option<String> {
    match raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(payload) => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(raw.to_owned()),
    }
}

/// One marked argument: where it sits in `arguments`, its header, and whether the schema
/// types it `integer` (compared by value, so `42` and `42.0` agree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub path: Vec<String>,
    pub token: String,
    pub header: HeaderName,
    pub integer: bool,
}

impl Mark {
    /// The header name as the protocol spells it (`Mcp-Param-Region`).
    pub fn shown(&self) -> String {
        format!("{PARAM_PREFIX}{}", self.token)
    }

    /// The argument this mark mirrors, `null` counting as absent.
    pub fn argument<'a>(&self, arguments: &'a Value) -> Option<&'a Value> {
        self.path
            .iter()
            .try_fold(arguments, |v, key| v.as_object()?.get(key))
            .filter(|v| !v.is_null())
    }

    /// The header value a `tools/call` with these arguments carries, if any.
    pub fn header_value(&self, arguments: &Value) -> Option<HeaderValue> {
        let rendered = render(self.argument(arguments)?)?;
        HeaderValue::from_str(&encode_value(&rendered)).ok()
    }
}

/// The marks of an input schema. A schema whose marks are not all valid has none (clients
/// drop such a tool, and servers check nothing for it): a mark must sit on a property
/// reached from the root through `properties` only, be an RFC 9110 token unique regardless
/// of case, and be on a `string`, `integer` or `boolean` property.
pub fn marks(schema: &Value) -> Vec<Mark> {
    let mut out: Vec<Mark> = Vec::new();
    // (path through `properties` only, or `None` once another keyword was crossed; schema)
    let mut stack: Vec<(Option<Vec<String>>, &Value)> = vec![(Some(Vec::new()), schema)];
    let mut visited = 0;
    while let Some((path, node)) = stack.pop() {
        let Some(obj) = node.as_object() else {
            continue;
        };
        visited += 1;
        if visited > MAX_POSITIONS {
            return Vec::new();
        }
        if let Some(token) = obj.get(MARK_KEYWORD) {
            let Some(mark) = valid_mark(path.as_deref(), token, obj.get("type")) else {
                return Vec::new();
            };
            if out.iter().any(|m| m.header == mark.header) {
                return Vec::new();
            }
            out.push(mark);
        }
        for (keyword, value) in obj {
            let k = keyword.as_str();
            if k == "properties" {
                for (name, sub) in value.as_object().into_iter().flatten() {
                    let sub_path = path.as_ref().map(|p| {
                        let mut p = p.clone();
                        p.push(name.clone());
                        p
                    });
                    stack.push((sub_path, sub));
                }
            } else if SUBSCHEMA_ONE.contains(&k) {
                stack.push((None, value));
            } else if SUBSCHEMA_LIST.contains(&k) {
                stack.extend(value.as_array().into_iter().flatten().map(|s| (None, s)));
            } else if SUBSCHEMA_MAP.contains(&k) {
                stack.extend(
                    value
                        .as_object()
                        .into_iter()
                        .flat_map(|m| m.values())
                        .map(|s| (None, s)),
                );
            }
        }
    }
    out
}

fn valid_mark(path: Option<&[String]>, token: &Value, kind: Option<&Value>) -> Option<Mark> {
    let path = path.filter(|p| !p.is_empty())?;
    let token = token.as_str().filter(|t| is_token(t))?;
    let kind = kind.and_then(Value::as_str)?;
    if !matches!(kind, "string" | "integer" | "boolean") {
        return None;
    }
    let header = HeaderName::from_bytes(format!("mcp-param-{token}").as_bytes()).ok()?;
    Some(Mark {
        path: path.to_vec(),
        token: token.to_owned(),
        header,
        integer: kind == "integer",
    })
}

/// RFC 9110 token characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An argument as its header carries it, before encoding: booleans `true`/`false`, numbers
/// in JSON form, strings as they are; `None` for values that have no header form.
pub fn render(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Checks a `tools/call`'s `Mcp-Param-*` headers against its arguments: every marked
/// argument that is present (and has a header form) needs its header with an equal value,
/// a marked argument that is absent must have no header, and no marked header may appear
/// twice. Headers that name no mark are not looked at.
///
/// # Errors
/// Why the headers disagree with the body.
pub fn check(marks: &[Mark], arguments: &Value, headers: &HeaderMap) -> Result<(), String> {
    for mark in marks {
        let mut values = headers.get_all(&mark.header).iter();
        let raw = values.next();
        let shown = mark.shown();
        let arg = mark.path.join(".");
        if values.next().is_some() {
            return Err(format!("the `{shown}` header appears more than once"));
        }
        let value = mark.argument(arguments);
        let rendered = value.and_then(render);
        let (raw, value, rendered) = match (raw, value, rendered) {
            (None, None, _) | (None, Some(_), None) => continue,
            (Some(_), None, _) => {
                return Err(format!(
                    "the `{shown}` header is present but the body has no `{arg}` argument"
                ));
            }
            (Some(_), Some(_), None) => {
                return Err(format!(
                    "the `{shown}` header does not match the body's `{arg}` argument"
                ));
            }
            (None, Some(_), Some(_)) => {
                return Err(format!(
                    "the `{shown}` header is missing but the body has a `{arg}` argument"
                ));
            }
            (Some(raw), Some(value), Some(rendered)) => (raw, value, rendered),
        };
        let Some(decoded) = raw.to_str().ok().and_then(decode_value) else {
            return Err(format!("the `{shown}` header is not a well-formed value"));
        };
        if !matches(mark, value, &rendered, &decoded) {
            return Err(format!(
                "the `{shown}` header does not match the body's `{arg}` argument"
            ));
        }
    }
    Ok(())
}

/// Whether a decoded header value agrees with its argument. Strings and booleans compare
/// as rendered; numbers also by value: an `integer` property's whole number against a plain
/// decimal header (`42` and `42.0`), and any number against a header that parses as the
/// same floating-point number (clients render floats differently: `1e+20`, `1e20`).
fn matches(mark: &Mark, value: &Value, rendered: &str, decoded: &str) -> bool {
    if decoded == rendered {
        return true;
    }
    let Value::Number(n) = value else {
        return false;
    };
    if mark.integer
        && let Some(whole) = plain_decimal_whole(decoded)
    {
        let body = n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e38)
                    // Exact: a whole f64 below 2^127 fits an i128.
                    .map(|f| f as i128)
            });
        return body == Some(whole);
    }
    n.is_f64()
        && decoded
            .parse::<f64>()
            .is_ok_and(|h| h.is_finite() && Some(h) == n.as_f64())
}

/// The whole number a plain decimal (`-?[0-9]+(\.[0-9]+)?`) stands for, when its fraction
/// is zero.
fn plain_decimal_whole(s: &str) -> Option<i128> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if s.contains('.') && (fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    if !fraction.bytes().all(|b| b == b'0') {
        return None;
    }
    let digits = whole.strip_prefix('-').unwrap_or(whole);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    whole.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "limit": {"type": "integer", "x-mcp-header": "Limit"},
            "dry": {"type": "boolean", "x-mcp-header": "Dry-Run"},
            "opts": {"type": "object", "properties": {
                "tenant": {"type": "string", "x-mcp-header": "Tenant"}}},
            "plain": {"type": "string"}
        }})
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn codec_round_trips_and_refuses_malformed_sentinels() {
        assert_eq!(encode_value("eu-west"), "eu-west");
        assert_eq!(encode_value("file:///é"), "=?base64?ZmlsZTovLy/DqQ==?=");
        assert_eq!(encode_value(" x"), "=?base64?IHg=?=");
        assert_eq!(encode_value("=?base64?x?="), "=?base64?PT9iYXNlNjQ/eD89?=");
        for v in ["a b", "é", " lead", "=?base64?abc?="] {
            assert_eq!(decode_value(&encode_value(v)).as_deref(), Some(v));
        }
        assert_eq!(decode_value("=?base64?!!?="), None);
        // Non-canonical trailing bits.
        assert_eq!(decode_value("=?base64?IHh=?="), None);
    }

    #[test]
    fn marks_follow_properties_and_refuse_invalid_schemas() {
        let m = marks(&schema());
        let mut found: Vec<(String, bool)> =
            m.iter().map(|m| (m.path.join("."), m.integer)).collect();
        found.sort();
        assert_eq!(
            found,
            [
                ("dry".to_owned(), false),
                ("limit".to_owned(), true),
                ("opts.tenant".to_owned(), false),
                ("region".to_owned(), false)
            ]
        );
        assert!(m.iter().any(|m| m.header == "mcp-param-dry-run"));
        let invalid = [
            json!({"properties": {"r": {"type": "number", "x-mcp-header": "R"}}}),
            json!({"properties": {"r": {"x-mcp-header": "R"}}}),
            json!({"properties": {"r": {"type": "string", "x-mcp-header": "a b"}}}),
            json!({"properties": {"r": {"type": "string", "x-mcp-header": 5}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "X"},
                                  "b": {"type": "string", "x-mcp-header": "x"}}}),
            json!({"anyOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]}),
            json!({"type": "string", "x-mcp-header": "Root"}),
        ];
        for s in invalid {
            assert!(marks(&s).is_empty(), "{s}");
        }
        // Instance data is not a schema position.
        let data = json!({"properties": {"a": {"type": "object",
            "default": {"x-mcp-header": "no"}}}});
        assert!(marks(&data).is_empty());
    }

    #[test]
    fn matching_headers_pass_in_any_case_and_form() {
        let m = marks(&schema());
        let args = json!({"region": "eu-wé", "limit": 5, "dry": true,
                          "opts": {"tenant": "acme"}, "plain": "x"});
        let h = headers(&[
            ("MCP-PARAM-REGION", "=?base64?ZXUtd8Op?="),
            ("mcp-param-limit", "5"),
            ("Mcp-Param-Dry-Run", "true"),
            ("Mcp-Param-Tenant", "acme"),
            ("Mcp-Param-Unknown", "whatever"),
        ]);
        assert_eq!(check(&m, &args, &h), Ok(()));
        // What the writer produces always passes.
        let mut written = HeaderMap::new();
        for mark in &m {
            if let Some(v) = mark.header_value(&args) {
                written.insert(mark.header.clone(), v);
            }
        }
        assert_eq!(written.len(), 4);
        assert_eq!(check(&m, &args, &written), Ok(()));
        // Absent and null arguments need no header.
        assert_eq!(
            check(&m, &json!({"opts": {"tenant": null}}), &HeaderMap::new()),
            Ok(())
        );
    }

    #[test]
    fn numbers_compare_by_value() {
        let m = marks(&schema());
        let limit = |body: Value, header: &str| {
            check(
                &m,
                &json!({"limit": body}),
                &headers(&[("mcp-param-limit", header)]),
            )
        };
        assert_eq!(limit(json!(42), "42"), Ok(()));
        assert_eq!(limit(json!(42), "42.0"), Ok(()));
        assert_eq!(limit(json!(42.0), "42"), Ok(()));
        assert_eq!(limit(json!(42.0), "42.0"), Ok(()));
        assert_eq!(limit(json!(-7), "-7"), Ok(()));
        assert_eq!(limit(json!(1e20), "1e+20"), Ok(()));
        assert!(limit(json!(42), "43").is_err());
        assert!(limit(json!(42), "42.5").is_err());
        assert!(limit(json!(42), "4.2e1").is_err());
        assert!(limit(json!(42), "+42").is_err());
        assert!(limit(json!(42), " 42").is_err());
        let region = |body: Value, header: &str| {
            check(
                &m,
                &json!({"region": body}),
                &headers(&[("mcp-param-region", header)]),
            )
        };
        // A string property compares the text: "007" is not "7".
        assert!(region(json!("007"), "7").is_err());
        assert_eq!(region(json!(0.5), "0.5"), Ok(()));
    }

    #[test]
    fn mismatches_are_refused() {
        let m = marks(&schema());
        let args = json!({"region": "eu", "dry": false});
        let err = |h: &[(&str, &str)], args: &Value| check(&m, args, &headers(h)).unwrap_err();
        assert!(
            err(
                &[("mcp-param-region", "us"), ("mcp-param-dry-run", "false")],
                &args
            )
            .contains("`Mcp-Param-Region` header does not match")
        );
        // Booleans are `true`/`false` only.
        assert!(
            err(
                &[("mcp-param-region", "eu"), ("mcp-param-dry-run", "False")],
                &args
            )
            .contains("Mcp-Param-Dry-Run")
        );
        assert!(err(&[("mcp-param-region", "eu")], &args).contains("missing"));
        assert!(
            err(
                &[
                    ("mcp-param-region", "eu"),
                    ("mcp-param-dry-run", "false"),
                    ("mcp-param-limit", "1")
                ],
                &args
            )
            .contains("no `limit` argument")
        );
        assert!(
            err(
                &[
                    ("mcp-param-region", "eu"),
                    ("mcp-param-region", "eu"),
                    ("mcp-param-dry-run", "false")
                ],
                &args
            )
            .contains("more than once")
        );
        assert!(
            err(
                &[
                    ("mcp-param-region", "=?base64?!?="),
                    ("mcp-param-dry-run", "false")
                ],
                &args
            )
            .contains("well-formed")
        );
        // An argument with no header form cannot be claimed by a header.
        assert!(
            err(&[("mcp-param-region", "[]")], &json!({"region": []})).contains("does not match")
        );
    }
}
