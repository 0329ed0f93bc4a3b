//! What an assertion says about one call.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `iss` of every assertion.
pub const ISSUER: &str = "mcpgate";

/// The claims of one assertion (docs/assertions.md lists them).
#[derive(Clone, Debug, Serialize)]
pub struct Claims<'a> {
    pub iss: &'a str,
    /// The caller's principal id (the agent, for a delegated call).
    pub sub: &'a str,
    /// The person an agent acts for under a delegation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<&'a str>,
    /// The delegation's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegation: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<&'a str>,
    /// The client's `clientInfo.name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<&'a str>,
    pub server: &'a str,
    pub tool: &'a str,
    /// SHA-256 (hex) of the arguments' canonical JSON ([`args_sha256`]).
    pub args_sha256: String,
    /// The rule that allowed the call.
    pub rule: &'a str,
    /// The policy commit, when the policy comes from a repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_commit: Option<&'a str>,
    /// The compiled program's hash.
    pub policy_hash: &'a str,
    /// The audit record's request id.
    pub jti: &'a str,
    pub aud: &'a str,
    pub iat: u64,
    pub exp: u64,
}

/// SHA-256, hex, of the canonical JSON of a call's `arguments` (absent arguments count as
/// `{}`): object keys sorted by their UTF-8 bytes at every level, no whitespace, strings
/// escaped as JSON requires (`"`, `\`, control characters as `\u00XX` or their short
/// forms) and nothing else escaped, numbers as the JSON parser read them (integers as
/// digits). This is what `json.dumps(args, sort_keys=True, separators=(",", ":"),
/// ensure_ascii=False)` writes in Python for the same arguments.
pub fn args_sha256(args: &Value) -> String {
    let empty = Value::Object(serde_json::Map::new());
    let args = if args.is_null() { &empty } else { args };
    let text = crate::audit::record::canonical(args);
    crate::audit::record::hex(&Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_argument_hash_ignores_key_order_and_spacing() {
        let a = args_sha256(&json!({"b": [1, {"y": "é", "x": null}], "a": "q\"\n"}));
        let b: Value =
            serde_json::from_str(r#"{ "a" : "q\"\n", "b" : [ 1 , { "x" : null , "y" : "é" } ] }"#)
                .unwrap();
        assert_eq!(a, args_sha256(&b));
        // sha256 of `{}`.
        assert_eq!(
            args_sha256(&Value::Null),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_ne!(a, args_sha256(&json!({"a": "q\"\n", "b": [2]})));
    }
}
