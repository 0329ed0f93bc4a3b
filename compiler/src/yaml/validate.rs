//! Validation of a YAML document against the JSON Schema of its format. The document is
//! converted to JSON for the validator, and each error's instance path is looked up in the
//! node tree to point at the YAML line.

use super::node::{Kind, Node, PathItem};
use crate::check::{rules, syntax};
use crate::diag::{Diagnostic, did_you_mean};
use crate::source::FileId;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use mcpgate_grammar::Span;
use serde_json::Value;

/// A compiled schema and the property names it knows (for "did you mean").
pub struct Schema {
    validator: Option<jsonschema::Validator>,
    properties: Vec<String>,
}

impl Schema {
    pub fn new(schema: &Value) -> Schema {
        let mut properties = Vec::new();
        collect_properties(schema, &mut properties);
        properties.sort();
        properties.dedup();
        Schema {
            validator: jsonschema::validator_for(schema).ok(),
            properties,
        }
    }
}

fn collect_properties(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get("properties") {
                out.extend(props.keys().cloned());
            }
            m.values().for_each(|x| collect_properties(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_properties(x, out)),
        _ => {}
    }
}

/// `rules[3].effect`
pub fn path_text(path: &[PathItem]) -> String {
    let mut s = String::new();
    for item in path {
        match item {
            PathItem::Key(k)
                if k.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-') =>
            {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathItem::Key(k) => s.push_str(&format!("[{k:?}]")),
            PathItem::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if s.is_empty() {
        "the document".into()
    } else {
        s
    }
}

/// A span to point at for a node: maps and sequences have empty spans, so use their
/// first key or item.
pub fn anchor(node: &Node) -> Span {
    if node.span.end > node.span.start {
        return node.span;
    }
    match &node.kind {
        Kind::Map(entries) => entries.first().map_or(node.span, |(k, _)| anchor(k)),
        Kind::Seq(items) => items.first().map_or(node.span, anchor),
        _ => node.span,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn json_type_name(t: jsonschema::JsonType) -> &'static str {
    match t.to_string().as_str() {
        "array" => "a list",
        "boolean" => "a boolean",
        "integer" => "an integer",
        "null" => "null",
        "number" => "a number",
        "object" => "a mapping",
        _ => "a string",
    }
}

fn instance_path(err: &jsonschema::ValidationError<'_>) -> Vec<PathItem> {
    err.instance_path()
        .iter()
        .map(|seg| match seg {
            LocationSegment::Property(p) => PathItem::Key(p.into_owned()),
            LocationSegment::Index(i) => PathItem::Index(i),
        })
        .collect()
}

/// An optional section (`audit:`, schema `anyOf: [SECTION, null]`) that is present but
/// wrong fails the `anyOf` as a whole ("must be something else"): report what is wrong
/// inside it instead, as the errors of its one non-null branch (an unknown
/// `durability`, a misspelt key).
fn narrow(err: jsonschema::ValidationError<'static>) -> Vec<jsonschema::ValidationError<'static>> {
    let ValidationErrorKind::AnyOf { context } = err.kind() else {
        return vec![err];
    };
    let is_null_branch = |branch: &Vec<jsonschema::ValidationError<'static>>| {
        branch.iter().all(|e| {
            e.instance_path() == err.instance_path()
                && matches!(e.kind(), ValidationErrorKind::Type {
                    kind: TypeKind::Single(t),
                } if t.to_string() == "null")
        })
    };
    let others: Vec<usize> = (0..context.len())
        .filter(|i| !is_null_branch(&context[*i]))
        .collect();
    let [only] = others[..] else {
        return vec![err];
    };
    if others.len() == context.len() || context[only].is_empty() {
        return vec![err];
    }
    match err.into_parts().kind {
        ValidationErrorKind::AnyOf { mut context } => context
            .swap_remove(only)
            .into_iter()
            .flat_map(narrow)
            .collect(),
        _ => Vec::new(),
    }
}

/// YAML reads plain `no`, `on` or `1.0` as a boolean or a number. Where the schema wants a
/// string (`because: no`, `version: 1.0`), take the text as written instead.
fn coerce_plain_scalars(validator: &jsonschema::Validator, root: &mut Node, src: &str) {
    let json = root.to_json();
    let paths: Vec<Vec<PathItem>> = validator
        .iter_errors(&json)
        .filter(|err| {
            let wants_string = match err.kind() {
                ValidationErrorKind::Type {
                    kind: TypeKind::Single(t),
                } => t.to_string() == "string",
                ValidationErrorKind::Type {
                    kind: TypeKind::Multiple(set),
                } => set.iter().any(|t| t.to_string() == "string"),
                _ => false,
            };
            wants_string && matches!(err.instance().as_ref(), Value::Bool(_) | Value::Number(_))
        })
        .map(|err| instance_path(&err))
        .collect();
    for p in paths {
        if let Some(n) = root.at_path_mut(&p)
            && let Some(text) = src.get(n.span.range())
            && !text.is_empty()
            && !text.starts_with(['"', '\''])
        {
            n.kind = Kind::Str(text.trim_end().to_owned());
        }
    }
}

/// Validates `root` and reports every error; returns the instance paths that failed.
pub fn validate(
    schema: &Schema,
    root: &mut Node,
    src: &str,
    file: FileId,
    out: &mut Vec<Diagnostic>,
) -> Vec<Vec<PathItem>> {
    let Some(validator) = &schema.validator else {
        return Vec::new();
    };
    coerce_plain_scalars(validator, root, src);
    let json = root.to_json();
    let mut failed = Vec::new();
    let errors: Vec<jsonschema::ValidationError<'static>> = validator
        .iter_errors(&json)
        .flat_map(|e| narrow(e.to_owned()))
        .collect();
    for err in errors {
        let path = instance_path(&err);
        let (node, _) = root.at_path(&path);
        let shown = path_text(&path);
        let instance = err.instance();
        let d = match err.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    let span = node.key_node(name).map_or(anchor(node), |k| k.span);
                    let help = did_you_mean(name, schema.properties.iter().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"));
                    out.push(
                        syntax::E0003
                            .at(format!("unknown field `{name}` in `{shown}`"), file, span)
                            .with_label_message("unknown field")
                            .with_help_opt(help),
                    );
                    let mut p = path.clone();
                    p.push(PathItem::Key(name.clone()));
                    failed.push(p);
                }
                continue;
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or("?");
                syntax::E0003
                    .at(
                        format!("missing field `{name}` in `{shown}`"),
                        file,
                        anchor(node),
                    )
                    .with_label_message(format!("`{name}` is required here"))
            }
            ValidationErrorKind::Enum { options } => {
                let list: Vec<&str> = options
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                unknown_value(&list, instance, &path, &shown, file, node)
            }
            // An enum whose values are documented one by one: `oneOf` of constants.
            ValidationErrorKind::AnyOf { context }
            | ValidationErrorKind::OneOfNotValid { context }
                if constants(context).is_some() =>
            {
                let list = constants(context).unwrap_or_default();
                unknown_value(&list, instance, &path, &shown, file, node)
            }
            ValidationErrorKind::Type { kind } => {
                let expected: Vec<&str> = match kind {
                    TypeKind::Single(t) => vec![json_type_name(*t)],
                    TypeKind::Multiple(set) => set.iter().map(json_type_name).collect(),
                };
                syntax::E0003.at(
                    format!(
                        "`{shown}` must be {}, found {}",
                        expected.join(" or "),
                        type_name(instance)
                    ),
                    file,
                    anchor(node),
                )
            }
            ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
                let expected = match path.last() {
                    Some(PathItem::Key(k)) if ["tools", "prompts", "by"].contains(&k.as_str()) => {
                        "a string or a list of strings"
                    }
                    Some(PathItem::Key(k)) if k == "resources" => {
                        "a `{server, uri}` mapping or a list of them"
                    }
                    _ => "something else",
                };
                syntax::E0003
                    .at(
                        format!(
                            "`{shown}` must be {expected}, found {}",
                            type_name(instance)
                        ),
                        file,
                        anchor(node),
                    )
                    .with_help("run `mcpgate schema` to see the expected format")
            }
            _ => {
                let msg = err.to_string();
                syntax::E0003.at(
                    format!("`{shown}`: {}", lowercase_first(&msg)),
                    file,
                    anchor(node),
                )
            }
        };
        out.push(d);
        failed.push(path);
    }
    failed
}

/// The values of a `oneOf`/`anyOf` whose every branch is one string constant, when the
/// value matched none of them.
fn constants<'a>(context: &'a [Vec<jsonschema::ValidationError<'static>>]) -> Option<Vec<&'a str>> {
    context
        .iter()
        .map(|branch| match &branch[..] {
            [e] => match e.kind() {
                ValidationErrorKind::Constant { expected_value } => expected_value.as_str(),
                _ => None,
            },
            _ => None,
        })
        .collect::<Option<Vec<&str>>>()
        .filter(|l| !l.is_empty())
}

/// `unknown value `x` for `a.b``, with the values allowed (or the one meant) as help.
fn unknown_value(
    list: &[&str],
    instance: &Value,
    path: &[PathItem],
    shown: &str,
    file: FileId,
    node: &Node,
) -> Diagnostic {
    let given = instance
        .as_str()
        .map_or_else(|| instance.to_string(), str::to_owned);
    let expected = list
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let help = did_you_mean(&given, list.iter().copied()).map_or_else(
        || format!("expected one of {expected}"),
        |s| format!("did you mean `{s}`?"),
    );
    let is_effect = matches!(path.last(), Some(PathItem::Key(k)) if k == "effect");
    let code = if is_effect {
        rules::E0303
    } else {
        syntax::E0003
    };
    let msg = if is_effect {
        format!("unknown effect `{given}`")
    } else {
        format!("unknown value `{given}` for `{shown}`")
    };
    code.at(msg, file, anchor(node)).with_help(help)
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Reports a YAML syntax error at its line and column.
pub fn syntax_error(err: &serde_saphyr::Error, file: FileId, src: &str) -> Diagnostic {
    let (span, msg) = match err.location() {
        Some(loc) => {
            let line = u32::try_from(loc.line()).unwrap_or(1);
            let col = u32::try_from(loc.column()).unwrap_or(1);
            let start = crate::source::offset_of(src, line, col);
            (Span::new(start, start), message_only(&err.to_string()))
        }
        None => (Span::new(0, 0), message_only(&err.to_string())),
    };
    syntax::E0002.at(format!("invalid YAML: {msg}"), file, span)
}

/// serde-saphyr's message without its `error: line L column C:` prefix and snippet.
fn message_only(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or(rendered).trim();
    let first = first.strip_prefix("error:").unwrap_or(first).trim();
    let rest = match first.strip_prefix("line ") {
        Some(r) => r.split_once(": ").map_or(r, |(_, m)| m),
        None => first,
    };
    rest.trim_end_matches('.').to_owned()
}
