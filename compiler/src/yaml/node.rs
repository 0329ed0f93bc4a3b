//! A YAML document as a tree of nodes that each know their byte span, read with
//! serde-saphyr's `Spanned`. The typed models are read from its JSON form; spans are looked
//! up here by path.

use mcpgate_grammar::Span;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// One YAML node with its span in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub span: Span,
}

/// The value of a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; the key keeps its own span.
    Map(Vec<(Node, Node)>),
}

/// A segment of a path into a document, as in JSON Schema instance paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathItem {
    Key(String),
    Index(usize),
}

impl Node {
    /// The value at `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.kind, Kind::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The key node of `key` in a mapping.
    pub fn key_node(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.kind, Kind::Str(s) if s == key))
                .map(|(k, _)| k),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Seq(items) => items,
            _ => &[],
        }
    }

    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.kind {
            Kind::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The deepest node along `path`, and whether the whole path was found.
    pub fn at_path(&self, path: &[PathItem]) -> (&Node, bool) {
        let mut cur = self;
        for item in path {
            let next = match item {
                PathItem::Key(k) => cur.get(k),
                PathItem::Index(i) => cur.items().get(*i),
            };
            match next {
                Some(n) => cur = n,
                None => return (cur, false),
            }
        }
        (cur, true)
    }

    /// The node along `path`, mutably.
    pub fn at_path_mut(&mut self, path: &[PathItem]) -> Option<&mut Node> {
        let mut cur = self;
        for item in path {
            cur = match (item, &mut cur.kind) {
                (PathItem::Key(k), Kind::Map(entries)) => entries
                    .iter_mut()
                    .find(|(key, _)| matches!(&key.kind, Kind::Str(s) if s == k))
                    .map(|(_, v)| v)?,
                (PathItem::Index(i), Kind::Seq(items)) => items.get_mut(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The JSON value of this node. Mapping keys that are not strings are written as
    /// their YAML text so that the schema can report them.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    map.insert(k.key_text(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    fn key_text(&self) -> String {
        match &self.kind {
            Kind::Str(s) => s.clone(),
            Kind::Null => "null".into(),
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Seq(_) | Kind::Map(_) => "<complex key>".into(),
        }
    }
}

/// Parses a YAML document. An empty document is `null`.
pub fn parse(text: &str) -> Result<Node, serde_saphyr::Error> {
    if text.trim().is_empty() {
        return Ok(Node {
            kind: Kind::Null,
            span: Span::new(0, 0),
        });
    }
    let spanned: serde_saphyr::Spanned<RawKind> = serde_saphyr::from_str(text)?;
    Ok(from_spanned(spanned))
}

fn from_spanned(s: serde_saphyr::Spanned<RawKind>) -> Node {
    let span = location_span(&s.referenced);
    let kind = match s.value {
        RawKind::Null => Kind::Null,
        RawKind::Bool(b) => Kind::Bool(b),
        RawKind::Int(i) => Kind::Int(i),
        RawKind::Float(f) => Kind::Float(f),
        RawKind::Str(s) => Kind::Str(s),
        RawKind::Seq(items) => Kind::Seq(items.into_iter().map(from_spanned).collect()),
        RawKind::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (from_spanned(k), from_spanned(v)))
                .collect(),
        ),
    };
    Node { kind, span }
}

/// Byte span of a location (character offsets are not used: the source map is by bytes).
pub fn location_span(loc: &serde_saphyr::Location) -> Span {
    let span = loc.span();
    match (span.byte_offset(), span.byte_len()) {
        (Some(start), Some(len)) => {
            let start = usize::try_from(start).unwrap_or(usize::MAX);
            Span::new(
                start,
                start.saturating_add(usize::try_from(len).unwrap_or(0)),
            )
        }
        _ => Span::new(0, 0),
    }
}

/// What serde-saphyr gives us inside a `Spanned`.
enum RawKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<serde_saphyr::Spanned<RawKind>>),
    Map(
        Vec<(
            serde_saphyr::Spanned<RawKind>,
            serde_saphyr::Spanned<RawKind>,
        )>,
    ),
}

impl<'de> Deserialize<'de> for RawKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawKind, E> {
        Ok(RawKind::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<RawKind, E> {
        Ok(RawKind::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawKind, D::Error> {
        d.deserialize_any(RawVisitor)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawKind, E> {
        Ok(RawKind::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawKind, E> {
        Ok(RawKind::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawKind, E> {
        Ok(i64::try_from(v).map_or(RawKind::Float(v as f64), RawKind::Int))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawKind, E> {
        Ok(i64::try_from(v).map_or(RawKind::Float(v as f64), RawKind::Int))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawKind, E> {
        Ok(i64::try_from(v).map_or(RawKind::Float(v as f64), RawKind::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawKind, E> {
        Ok(RawKind::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawKind, E> {
        Ok(RawKind::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<RawKind, E> {
        Ok(RawKind::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<RawKind, E> {
        Ok(RawKind::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawKind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawKind::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawKind, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry()? {
            entries.push((k, v));
        }
        Ok(RawKind::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_values() {
        let text =
            "rules:\n  - id: a\n    when: \"args.x > 1\"\n    tools: [demo.echo, 'demo.add']\n";
        let node = parse(text).unwrap();
        let rules = node.get("rules").unwrap();
        let r0 = &rules.items()[0];
        let id = r0.get("id").unwrap();
        assert_eq!(&text[id.span.range()], "a");
        let when = r0.get("when").unwrap();
        assert_eq!(when.as_str(), Some("args.x > 1"));
        eprintln!("when span: {:?}", &text[when.span.range()]);
        let tools = r0.get("tools").unwrap();
        eprintln!("tools[1] span: {:?}", &text[tools.items()[1].span.range()]);
        eprintln!(
            "key span: {:?}",
            &text[r0.key_node("when").unwrap().span.range()]
        );
        eprintln!("map span: {:?}", &text[r0.span.range()]);
        assert_eq!(node.to_json()["rules"][0]["tools"][1], "demo.add");
    }

    #[test]
    fn block_scalar_span() {
        let text = "a:\n  b: |\n    args.x > 1\n      && true\n  c: >-\n    x\n";
        let node = parse(text).unwrap();
        let b = node.get("a").unwrap().get("b").unwrap();
        eprintln!(
            "block span: {:?} value {:?}",
            &text[b.span.range()],
            b.as_str()
        );
        let c = node.get("a").unwrap().get("c").unwrap();
        eprintln!(
            "folded span: {:?} value {:?}",
            &text[c.span.range()],
            c.as_str()
        );
    }

    #[test]
    fn errors_have_locations() {
        let err = parse("a: [1, 2\nb: c\n").unwrap_err();
        eprintln!("err: {err} / {:?}", err.location());
        assert!(err.location().is_some());
    }
}
