//! Values during evaluation (borrowed, never allocated) and three-valued truth.

use serde_json::{Number, Value};
use std::cmp::Ordering;

/// A truth value. `U` is "cannot be decided" (a type mismatch); `A` is "depends on what is
/// not known yet" and appears only when deciding whether to list a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Tri {
    F = 0,
    T = 1,
    U = 2,
    A = 3,
}

impl Tri {
    #[inline]
    pub fn of(b: bool) -> Tri {
        if b { Tri::T } else { Tri::F }
    }

    #[inline]
    pub fn not(self) -> Tri {
        match self {
            Tri::F => Tri::T,
            Tri::T => Tri::F,
            t => t,
        }
    }

    #[inline]
    pub fn from_bits(b: u8) -> Tri {
        match b & 3 {
            0 => Tri::F,
            1 => Tri::T,
            2 => Tri::U,
            _ => Tri::A,
        }
    }
}

/// Folds for n-ary `&&` (false dominates) and `||` (true dominates); then "any" beats
/// "undecided", which beats the neutral value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fold {
    any: bool,
    undecided: bool,
}

impl Fold {
    pub fn new() -> Fold {
        Fold {
            any: false,
            undecided: false,
        }
    }

    #[inline]
    pub fn add(&mut self, t: Tri) {
        match t {
            Tri::A => self.any = true,
            Tri::U => self.undecided = true,
            _ => {}
        }
    }

    /// The result when no operand short-circuited.
    #[inline]
    pub fn finish(self, neutral: Tri) -> Tri {
        if self.any {
            Tri::A
        } else if self.undecided {
            Tri::U
        } else {
            neutral
        }
    }
}

/// A number as JSON holds it: integers exactly, floats as `f64`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    pub fn of(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    /// Compares by value; `None` only for a NaN, which JSON cannot hold.
    pub fn cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// A value met during evaluation. Scalars from JSON are normalized so that a string from a
/// constant, the principal or the arguments look the same; `Json` holds only arrays and
/// objects.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    /// A path that is not present.
    Missing,
    /// A value that cannot be decided (`len(42)`).
    Unknown,
    /// Not known while listing (arguments, agent, client, annotations).
    Any,
    Null,
    Bool(bool),
    Num(Num),
    Str(&'a str),
    Json(&'a Value),
    /// `principal.groups`.
    Groups(&'a [String]),
    /// A list expression: node indices of its items.
    List(&'a [u32]),
}

impl<'a> Val<'a> {
    #[inline]
    pub fn of(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(Num::of(n)),
            Value::String(s) => Val::Str(s),
            _ => Val::Json(v),
        }
    }

    /// The truth of a value used as a condition: only booleans decide; a missing path is
    /// false.
    #[inline]
    pub fn truth(self) -> Tri {
        match self {
            Val::Bool(b) => Tri::of(b),
            Val::Missing => Tri::F,
            Val::Any => Tri::A,
            _ => Tri::U,
        }
    }

    #[inline]
    pub fn from_tri(t: Tri) -> Val<'a> {
        match t {
            Tri::F => Val::Bool(false),
            Tri::T => Val::Bool(true),
            Tri::U => Val::Unknown,
            Tri::A => Val::Any,
        }
    }

    /// Number of items, if the value is a list.
    #[inline]
    pub fn list_len(self) -> Option<usize> {
        match self {
            Val::Json(Value::Array(a)) => Some(a.len()),
            Val::Groups(g) => Some(g.len()),
            Val::List(k) => Some(k.len()),
            _ => None,
        }
    }
}

/// Deep equality of two JSON values, numbers by value.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Num::of(x).cmp(Num::of(y)) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}
