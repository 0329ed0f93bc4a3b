//! The redaction plan of one decided message and the masking it applies: field names are
//! masked at any depth of structured content (and of JSON written as text); pattern matches
//! are masked in every text a result carries: text content, structured content, embedded
//! resource text, resource contents and prompt messages.

use mcpgate_compiler::vm::{Redaction, RuleIdx};
use mcpgate_compiler::{Program, Request};
use serde_json::Value;

/// What a masked value or match is replaced with.
pub const MASK: &str = "[redacted]";

/// The `redact` rules that mask this request's result (empty: nothing to mask). Asked of
/// the same request the verdict was decided on, so the plan sees the same principal,
/// groups and annotations.
pub fn result_masks(program: &Program, request: &Request<'_>) -> Vec<RuleIdx> {
    if !program.has_redactions() {
        return Vec::new();
    }
    program
        .redactions(request)
        .filter(Redaction::masks_results)
        .map(|r| r.rule)
        .collect()
}

/// Masks a `tools/call`, `resources/read` or `prompts/get` result in place; returns how
/// many values or matches were masked.
pub fn mask_result(result: &mut Value, masks: &[Redaction<'_>]) -> usize {
    let mut n = 0;
    let Value::Object(map) = result else {
        return 0;
    };
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            // Tool results: content blocks and structured content.
            "content" => n += each_block(value, masks),
            "structuredContent" => n += mask_json(value, masks),
            // Resource reads: contents with `text` (or `blob`, left alone).
            "contents" => n += each_block(value, masks),
            // Prompts: messages whose content is one block.
            "messages" => {
                if let Value::Array(msgs) = value {
                    for msg in msgs {
                        if let Some(c) = msg.get_mut("content") {
                            n += block(c, masks);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    n
}

fn each_block(value: &mut Value, masks: &[Redaction<'_>]) -> usize {
    match value {
        Value::Array(items) => items.iter_mut().map(|b| block(b, masks)).sum(),
        other => block(other, masks),
    }
}

/// One content block: its `text`, an embedded resource's `text`, a resource link's
/// description; blobs and images are left as they are.
fn block(b: &mut Value, masks: &[Redaction<'_>]) -> usize {
    let mut n = 0;
    if let Some(t) = b.get_mut("text") {
        n += mask_text_value(t, masks);
    }
    if let Some(r) = b.get_mut("resource")
        && let Some(t) = r.get_mut("text")
    {
        n += mask_text_value(t, masks);
    }
    if let Some(s) = b.get_mut("structuredContent") {
        n += mask_json(s, masks);
    }
    n
}

/// A text: matches of the patterns are masked; a text holding a JSON object or list has
/// its named fields masked too.
fn mask_text_value(v: &mut Value, masks: &[Redaction<'_>]) -> usize {
    let Value::String(s) = v else {
        return mask_json(v, masks);
    };
    let mut n = 0;
    let has_fields = masks.iter().any(|m| !m.fields().is_empty());
    let trimmed = s.trim_start();
    if has_fields
        && (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(mut parsed) = serde_json::from_str::<Value>(s)
    {
        let k = mask_json(&mut parsed, masks);
        if k > 0 {
            *s = parsed.to_string();
            return k;
        }
    }
    n += mask_patterns(s, masks);
    n
}

/// Masks named fields at any depth and pattern matches in every string of `v`.
pub fn mask_json(v: &mut Value, masks: &[Redaction<'_>]) -> usize {
    match v {
        Value::String(s) => mask_patterns(s, masks),
        Value::Array(items) => items.iter_mut().map(|i| mask_json(i, masks)).sum(),
        Value::Object(map) => {
            let mut n = 0;
            for (k, val) in map.iter_mut() {
                if masks.iter().any(|m| m.fields().iter().any(|f| f == k)) {
                    *val = Value::String(MASK.to_owned());
                    n += 1;
                } else {
                    n += mask_json(val, masks);
                }
            }
            n
        }
        _ => 0,
    }
}

/// Replaces every match of every pattern in `s` with [`MASK`].
fn mask_patterns(s: &mut String, masks: &[Redaction<'_>]) -> usize {
    let mut n = 0;
    for re in masks.iter().flat_map(|m| m.patterns()) {
        let found = re.find_iter(s).count();
        if found > 0 {
            n += found;
            *s = re.replace_all(s, MASK).into_owned();
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgate_compiler::repo::{self, SourceFile};
    use mcpgate_compiler::{Principal, Program};
    use mcpgate_compiler::{Target, ToolAnnotations};
    use serde_json::json;

    fn program(src: &str) -> Program {
        let checked = repo::check_files(vec![SourceFile {
            path: "policies/a.mcpg".into(),
            text: src.into(),
        }]);
        assert_eq!(checked.errors, 0, "{}", checked.rendered);
        Program::compile(&checked.policy, None)
    }

    fn masks<'a>(
        p: &'a Program,
        principal: &'a Principal,
        target: Target<'a>,
    ) -> Vec<Redaction<'a>> {
        let req = Request {
            principal,
            agent: None,
            client_name: None,
            client_version: None,
            target,
            args: &Value::Null,
            annotations: ToolAnnotations::default(),
        };
        p.redactions(&req).collect()
    }

    #[test]
    fn masks_fields_and_patterns_in_a_tool_result() {
        let p =
            program(r#"redact demo.* result.email, result matching "sk_live_[A-Za-z0-9]{8,}";"#);
        let who = Principal::anonymous();
        let m = masks(
            &p,
            &who,
            Target::Tool {
                server: "demo",
                tool: "echo",
            },
        );
        let mut result = json!({
            "content": [
                {"type": "text", "text": "key sk_live_ABCDEFGH123 and sk_live_ZZZZZZZZ"},
                {"type": "text", "text": "{\"user\": {\"email\": \"a@b.c\", \"name\": \"a\"}}"},
                {"type": "resource", "resource": {"uri": "x://1", "text": "sk_live_12345678"}},
                {"type": "image", "data": "sk_live_ABCDEFGH", "mimeType": "image/png"}
            ],
            "structuredContent": {"rows": [{"email": "x@y.z", "note": "sk_live_QQQQQQQQ"}]},
            "isError": false
        });
        let n = mask_result(&mut result, &m);
        assert_eq!(n, 6);
        let text = result.to_string();
        assert!(!text.contains("sk_live_ABCDEFGH123"));
        assert!(!text.contains("a@b.c") && !text.contains("x@y.z"));
        assert_eq!(
            result["content"][0]["text"],
            "key [redacted] and [redacted]"
        );
        assert_eq!(result["structuredContent"]["rows"][0]["email"], MASK);
        // Images and other fields are left alone.
        assert_eq!(result["content"][3]["data"], "sk_live_ABCDEFGH");
        assert_eq!(result["isError"], false);
    }

    #[test]
    fn masks_resource_contents_and_prompt_messages() {
        let p = program(
            r#"redact resource fs "file:///**" result matching /\d{3}-\d{2}-\d{4}/;
               redact prompt demo.* result matching "secret";"#,
        );
        let who = Principal::anonymous();
        let m = masks(
            &p,
            &who,
            Target::Resource {
                server: "fs",
                uri: "file:///a",
            },
        );
        let mut result = json!({"contents": [{"uri": "file:///a", "text": "ssn 123-45-6789"}]});
        assert_eq!(mask_result(&mut result, &m), 1);
        assert_eq!(result["contents"][0]["text"], "ssn [redacted]");
        let m = masks(
            &p,
            &who,
            Target::Prompt {
                server: "demo",
                name: "p",
            },
        );
        let mut result = json!({"messages": [{"role": "user", "content": {"type": "text", "text": "a secret"}}]});
        assert_eq!(mask_result(&mut result, &m), 1);
        assert_eq!(result["messages"][0]["content"]["text"], "a [redacted]");
    }

    #[test]
    fn nothing_to_mask_leaves_the_result_alone() {
        let p = program(r#"redact demo.* args.card;"#);
        let who = Principal::anonymous();
        let m = masks(
            &p,
            &who,
            Target::Tool {
                server: "demo",
                tool: "echo",
            },
        );
        assert!(!m.iter().any(Redaction::masks_results));
        let mut result = json!({"content": [{"type": "text", "text": "card 4242"}]});
        let before = result.clone();
        assert_eq!(mask_result(&mut result, &m), 0);
        assert_eq!(result, before);
    }
}
