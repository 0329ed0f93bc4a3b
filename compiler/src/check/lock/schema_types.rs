//! What a pinned input schema says of an `args` path: whether the path exists, and which JSON
//! types its value may take (local `$ref`s followed, a bounded number of times).

use mcpgate_grammar::ast::{Segment, Spanned};
use serde_json::Value;

/// JSON types a schema allows (`None`: anything or unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Types(pub(super) u8);

pub(super) const T_STRING: u8 = 1;
pub(super) const T_NUMBER: u8 = 2;
pub(super) const T_INTEGER: u8 = 4;
pub(super) const T_BOOL: u8 = 8;
pub(super) const T_NULL: u8 = 16;
pub(super) const T_ARRAY: u8 = 32;
pub(super) const T_OBJECT: u8 = 64;

impl Types {
    pub(super) fn has(self, t: u8) -> bool {
        self.0 & t != 0
    }

    pub(super) fn describe(self) -> String {
        let names = [
            (T_STRING, "a string"),
            (T_INTEGER, "an integer"),
            (T_NUMBER, "a number"),
            (T_BOOL, "a boolean"),
            (T_ARRAY, "an array"),
            (T_OBJECT, "an object"),
            (T_NULL, "null"),
        ];
        let v: Vec<&str> = names
            .iter()
            .filter(|(t, _)| self.has(*t))
            .map(|(_, n)| *n)
            .collect();
        match v.as_slice() {
            [] => "nothing".into(),
            [one] => (*one).to_owned(),
            [init @ .., last] => format!("{} or {last}", init.join(", ")),
        }
    }
}

pub(super) fn type_bit(name: &str) -> u8 {
    match name {
        "string" => T_STRING,
        "number" => T_NUMBER,
        "integer" => T_INTEGER,
        "boolean" => T_BOOL,
        "null" => T_NULL,
        "array" => T_ARRAY,
        "object" => T_OBJECT,
        _ => 0,
    }
}

pub(super) fn value_bit(v: &Value) -> u8 {
    match v {
        Value::String(_) => T_STRING,
        Value::Number(n) if n.is_i64() || n.is_u64() => T_INTEGER | T_NUMBER,
        Value::Number(_) => T_NUMBER,
        Value::Bool(_) => T_BOOL,
        Value::Null => T_NULL,
        Value::Array(_) => T_ARRAY,
        Value::Object(_) => T_OBJECT,
    }
}

/// Follows local `$ref`s (`#/...`), a bounded number of times.
pub(super) fn deref<'a>(root: &'a Value, mut s: &'a Value) -> Option<&'a Value> {
    for _ in 0..16 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => s = root.pointer(r.strip_prefix('#')?)?,
            None => return Some(s),
        }
    }
    None
}

/// The types a schema allows, when it says.
pub(super) fn types_of(root: &Value, s: &Value) -> Option<Types> {
    let s = deref(root, s)?;
    if let Some(v) = s.get("const") {
        return Some(Types(value_bit(v)));
    }
    if let Some(Value::Array(vals)) = s.get("enum") {
        return Some(Types(vals.iter().fold(0, |a, v| a | value_bit(v))));
    }
    match s.get("type") {
        Some(Value::String(t)) => {
            let b = type_bit(t);
            // An integer value is also a number.
            return (b != 0).then_some(Types(if b == T_INTEGER { T_INTEGER } else { b }));
        }
        Some(Value::Array(ts)) => {
            let mut b = 0;
            for t in ts {
                let bit = type_bit(t.as_str()?);
                if bit == 0 {
                    return None;
                }
                b |= bit;
            }
            return Some(Types(b));
        }
        _ => {}
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = s.get(key) {
            let mut b = 0;
            for br in branches {
                b |= types_of(root, br)?.0;
            }
            return Some(Types(b));
        }
    }
    None
}

/// What a path leads to in one schema.
pub(super) enum Lookup<'a> {
    /// The schema of the value there.
    Schema(&'a Value),
    /// Nothing is known (open schema, combinators).
    Unknown,
    /// The path cannot exist: segment `at` is not allowed; the known property names.
    Missing { at: usize, known: Vec<&'a str> },
}

pub(super) fn lookup<'a>(root: &'a Value, segs: &[Spanned<Segment>]) -> Lookup<'a> {
    let mut s = root;
    for (i, seg) in segs.iter().enumerate() {
        let Some(cur) = deref(root, s) else {
            return Lookup::Unknown;
        };
        match &seg.node {
            Segment::Field(f) => {
                let props = cur.get("properties").and_then(Value::as_object);
                if let Some(p) = props.and_then(|p| p.get(f)) {
                    s = p;
                    continue;
                }
                match cur.get("additionalProperties") {
                    Some(ap @ Value::Object(_)) => {
                        s = ap;
                        continue;
                    }
                    Some(Value::Bool(true)) => return Lookup::Unknown,
                    _ => {}
                }
                if cur.get("patternProperties").is_some()
                    || ["anyOf", "oneOf", "allOf", "if", "$ref", "dependentSchemas"]
                        .iter()
                        .any(|k| cur.get(*k).is_some())
                {
                    return Lookup::Unknown;
                }
                match props {
                    Some(p) => {
                        return Lookup::Missing {
                            at: i,
                            known: p.keys().map(String::as_str).collect(),
                        };
                    }
                    None => {
                        // A scalar has no fields; an object without `properties` is open.
                        let t = types_of(root, cur);
                        return match t {
                            Some(t) if !t.has(T_OBJECT) && t.0 != 0 => Lookup::Missing {
                                at: i,
                                known: Vec::new(),
                            },
                            _ => Lookup::Unknown,
                        };
                    }
                }
            }
            Segment::Index(_) => match cur.get("items") {
                Some(items @ Value::Object(_)) if cur.get("prefixItems").is_none() => s = items,
                _ => return Lookup::Unknown,
            },
        }
    }
    Lookup::Schema(s)
}
