//! The JSON Schemas of the YAML formats by name, for `mcpgate schema`. Each format's module
//! under `yaml/` generates its own from its serde model and validates against it; this module
//! only gathers them (it depends on `yaml`, never the other way).

use crate::yaml;
use serde_json::{Value, json};

/// `policies/**/*.yaml`.
pub fn policy_schema() -> Value {
    yaml::policy::json_schema()
}

/// `tests/**/*.yaml`.
pub fn tests_schema() -> Value {
    yaml::tests::json_schema()
}

/// `mcpgate.yaml`.
pub fn config_schema() -> Value {
    yaml::config::json_schema()
}

/// `principals.yaml`.
pub fn principals_schema() -> Value {
    yaml::principals::json_schema()
}

/// `responders.yaml`.
pub fn responders_schema() -> Value {
    yaml::responders::json_schema()
}

/// All of them, keyed by format name (`policy`, `tests`, `config`, `principals`,
/// `responders`).
pub fn all_schemas() -> Value {
    json!({
        "policy": policy_schema(),
        "tests": tests_schema(),
        "config": config_schema(),
        "principals": principals_schema(),
        "responders": responders_schema(),
    })
}

/// One schema by name: `policy`, `tests`, `config`, `principals` or `responders`.
pub fn schema_named(name: &str) -> Option<Value> {
    Some(match name {
        "policy" => policy_schema(),
        "tests" => tests_schema(),
        "config" => config_schema(),
        "principals" => principals_schema(),
        "responders" => responders_schema(),
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
        assert!(responders_schema()["properties"]["responders"].is_object());
        for name in ["policy", "tests", "config", "principals", "responders"] {
            assert_eq!(all[name], schema_named(name).unwrap());
        }
        assert!(schema_named("other").is_none());
        // Unknown fields are refused, so typos are reported.
        let rule = &policy_schema()["$defs"]["RuleDoc"];
        assert_eq!(rule["additionalProperties"], false);
    }
}
