//! `mcpgate.yaml`: schema validation, the typed config, and the config checks.

use super::node;
use super::validate::{self, Schema};
use crate::check::{config as checks, syntax};
use crate::config::Config;
use crate::diag::Diagnostic;
use crate::source::FileId;
use mcpgate_grammar::Span;
use std::sync::OnceLock;

/// The JSON Schema of `mcpgate.yaml`, generated from its serde model: what `mcpgate schema`
/// prints and what the file is validated against.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(crate::config::Config).to_value()
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::new(&json_schema()))
}

/// Loads and checks `mcpgate.yaml`; `None` when it has errors.
pub fn load(file: FileId, src: &str, out: &mut Vec<Diagnostic>) -> Option<Config> {
    let mut root = match node::parse(src) {
        Ok(n) => n,
        Err(e) => {
            out.push(validate::syntax_error(&e, file, src));
            return None;
        }
    };
    if matches!(root.kind, node::Kind::Null) {
        return Some(Config::default());
    }
    let before = out.len();
    validate::validate(schema(), &mut root, src, file, out);
    checks::check_config(&root, file, out);
    if out.len() > before {
        return None;
    }
    match serde_json::from_value::<Config>(root.to_json()) {
        Ok(c) => Some(c),
        Err(e) => {
            out.push(syntax::E0003.at(
                format!("invalid configuration: {e}"),
                file,
                Span::new(0, 0),
            ));
            None
        }
    }
}
