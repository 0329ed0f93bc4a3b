//! JSON Schemas of the three YAML formats, generated from their serde models. They are
//! what `mcpgate schema` prints and what every YAML file is validated against.

use serde_json::{Value, json};

fn to_value(schema: schemars::Schema) -> Value {
    schema.to_value()
}

/// `policies/**/*.yaml`.
pub fn policy_schema() -> Value {
    to_value(schemars::schema_for!(crate::yaml::policy::PolicyDoc))
}

/// `tests/**/*.yaml`.
pub fn tests_schema() -> Value {
    to_value(schemars::schema_for!(crate::yaml::tests::TestsDoc))
}

/// `mcpgate.yaml`.
pub fn config_schema() -> Value {
    to_value(schemars::schema_for!(crate::config::Config))
}

/// All three, keyed by format name (`policy`, `tests`, `config`).
pub fn all_schemas() -> Value {
    json!({
        "policy": policy_schema(),
        "tests": tests_schema(),
        "config": config_schema(),
    })
}

/// One schema by name: `policy`, `tests` or `config`.
pub fn schema_named(name: &str) -> Option<Value> {
    Some(match name {
        "policy" => policy_schema(),
        "tests" => tests_schema(),
        "config" => config_schema(),
        _ => return None,
    })
}
