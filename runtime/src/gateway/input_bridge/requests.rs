//! What a stateless server's `input_required` result asks, checked before the client is
//! asked anything, and whether the client declared the capability an answer takes.

use serde_json::Value;

/// Whether a result asks for input.
pub(super) fn is_input_required(result: &Value) -> bool {
    result.get("resultType").and_then(Value::as_str) == Some("input_required")
}

/// The input requests of an `input_required` result: (key, method, params), checked.
///
/// # Errors
/// What is wrong with them, for the client's refusal.
pub(super) fn input_requests(
    result: &Value,
) -> Result<Vec<(String, String, Option<Value>)>, String> {
    let requests = match result.get("inputRequests") {
        None | Some(Value::Null) => {
            // A bare `requestState` asks for a plain retry.
            return if result.get("requestState").is_some() {
                Ok(Vec::new())
            } else {
                Err("neither `inputRequests` nor `requestState` was given".into())
            };
        }
        Some(Value::Object(map)) => map,
        Some(_) => return Err("`inputRequests` is not an object".into()),
    };
    let mut out = Vec::with_capacity(requests.len());
    for (key, request) in requests {
        let method = request
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("input request `{key}` names no method"))?;
        if !matches!(
            method,
            "elicitation/create" | "sampling/createMessage" | "roots/list"
        ) {
            return Err(format!(
                "input request `{key}` has the unknown method `{method}`"
            ));
        }
        let params = match request.get("params") {
            None | Some(Value::Null) => None,
            Some(p @ Value::Object(_)) => Some(p.clone()),
            Some(_) => {
                return Err(format!(
                    "input request `{key}` has params that are not an object"
                ));
            }
        };
        out.push((key.clone(), method.to_owned(), params));
    }
    Ok(out)
}

/// Whether the client declared, in `initialize`, what answering `method` takes.
pub(super) fn declared(capabilities: &Value, method: &str, params: Option<&Value>) -> bool {
    match method {
        "elicitation/create" => {
            let Some(e) = capabilities.get("elicitation").filter(|e| e.is_object()) else {
                return false;
            };
            let mode = params.and_then(|p| p.get("mode")).and_then(Value::as_str);
            // An empty `elicitation` object means form mode only.
            match mode {
                Some("url") => e.get("url").is_some(),
                _ => e.get("form").is_some() || e.get("url").is_none(),
            }
        }
        "sampling/createMessage" => capabilities.get("sampling").is_some_and(Value::is_object),
        "roots/list" => capabilities.get("roots").is_some_and(Value::is_object),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_requests_are_checked_not_trusted() {
        let ok = json!({"resultType": "input_required", "requestState": "s", "inputRequests": {
            "a": {"method": "elicitation/create", "params": {"message": "?"}},
            "b": {"method": "roots/list"},
        }});
        let got = input_requests(&ok).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], ("b".into(), "roots/list".into(), None));
        assert_eq!(
            input_requests(&json!({"requestState": "s"})).unwrap(),
            vec![]
        );
        assert!(input_requests(&json!({})).unwrap_err().contains("neither"));
        assert!(
            input_requests(&json!({"inputRequests": [1]}))
                .unwrap_err()
                .contains("not an object")
        );
        let unknown = json!({"inputRequests": {"x": {"method": "tools/call"}}});
        assert!(
            input_requests(&unknown)
                .unwrap_err()
                .contains("`tools/call`")
        );
        let no_method = json!({"inputRequests": {"x": 5}});
        assert!(
            input_requests(&no_method)
                .unwrap_err()
                .contains("no method")
        );
        let bad_params = json!({"inputRequests": {"x": {"method": "roots/list", "params": 1}}});
        assert!(input_requests(&bad_params).is_err());
    }

    #[test]
    fn capabilities_decide_what_the_client_is_asked() {
        let form = json!({"elicitation": {}});
        assert!(declared(&form, "elicitation/create", None));
        assert!(!declared(
            &form,
            "elicitation/create",
            Some(&json!({"mode": "url"}))
        ));
        let url_only = json!({"elicitation": {"url": {}}});
        assert!(!declared(&url_only, "elicitation/create", None));
        assert!(declared(
            &url_only,
            "elicitation/create",
            Some(&json!({"mode": "url"}))
        ));
        assert!(!declared(&json!({}), "elicitation/create", None));
        assert!(declared(
            &json!({"sampling": {}}),
            "sampling/createMessage",
            None
        ));
        assert!(!declared(
            &json!({"sampling": true}),
            "sampling/createMessage",
            None
        ));
        assert!(!declared(&json!({"sampling": {}}), "roots/list", None));
        assert!(!declared(&json!({"roots": {}}), "ping", None));
    }

    #[test]
    fn only_final_results_end_the_rounds() {
        assert!(is_input_required(&json!({"resultType": "input_required"})));
        assert!(!is_input_required(&json!({"resultType": "complete"})));
        assert!(!is_input_required(&json!("input_required")));
    }
}
