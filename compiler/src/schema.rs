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

/// `principals.yaml`.
pub fn principals_schema() -> Value {
    to_value(schemars::schema_for!(
        crate::yaml::principals::PrincipalsDoc
    ))
}

/// All of them, keyed by format name (`policy`, `tests`, `config`, `principals`).
pub fn all_schemas() -> Value {
    json!({
        "policy": policy_schema(),
        "tests": tests_schema(),
        "config": config_schema(),
        "principals": principals_schema(),
    })
}

/// One schema by name: `policy`, `tests`, `config` or `principals`.
pub fn schema_named(name: &str) -> Option<Value> {
    Some(match name {
        "policy" => policy_schema(),
        "tests" => tests_schema(),
        "config" => config_schema(),
        "principals" => principals_schema(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_describe_the_formats() {
        assert!(policy_schema()["properties"]["rules"].is_object());
        assert!(tests_schema()["properties"]["tests"].is_object());
        assert!(config_schema()["properties"]["servers"].is_object());
        let all = all_schemas();
        for name in ["policy", "tests", "config", "principals"] {
            assert_eq!(all[name], schema_named(name).unwrap());
        }
        assert!(schema_named("other").is_none());
        // Unknown fields are refused, so typos are reported.
        let rule = &policy_schema()["$defs"]["RuleDoc"];
        assert_eq!(rule["additionalProperties"], false);
    }
}
