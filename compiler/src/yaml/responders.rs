//! `responders.yaml`: what the gateway does on its own when callers misbehave, reviewed in
//! the policy repository like any rule. Triggers count events of the decision stream;
//! actions pause a principal, session or delegation, revoke a delegation, or notify a
//! named webhook.
//!
//! ```yaml
//! responders:
//!   - name: too-many-denials
//!     when: { denials: 5, by: principal, within: 1m }
//!     do:
//!       - pause: principal
//!         for: 15m
//!       - notify: security
//! notify:
//!   security: { url: "https://hooks.example.com/x", secret: "${secret:hook}", format: slack }
//! ```

use super::node::{self, Kind, Node};
use super::validate::{self, Schema};
use crate::check::responders::{Cx, E0904};
use crate::diag::Diagnostic;
use crate::responders::{Responder, ResponderSet};
use crate::source::FileId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// `responders.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "mcpgate responders")]
pub struct RespondersDoc {
    /// Each responder: a name, a trigger (`when`) and its actions (`do`).
    #[serde(default)]
    pub responders: Vec<ResponderDoc>,
    /// Named webhooks the `notify` actions send to.
    #[serde(default)]
    pub notify: BTreeMap<String, NotifyDoc>,
}

/// One responder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponderDoc {
    /// Named in refusals, notifications and the audit: `too-many-denials`.
    pub name: String,
    /// The trigger: exactly one of `denials`, `calls`, `approval_denials`, `held`.
    pub when: WhenDoc,
    /// The actions, run in order when the trigger fires.
    #[serde(rename = "do")]
    pub actions: Vec<ActionDoc>,
}

/// A duration: `90s`, `15m`, `1h 30m`, or a bare number of seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DurationDoc {
    Secs(u64),
    Text(String),
}

/// The trigger. Unknown keys are reported by the checker (E0901), not the schema, so the
/// message can list the triggers there are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WhenDoc {
    /// Refused tool calls (by a rule, the default deny or the lock, or answered as unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denials: Option<u64>,
    /// Calls of one tool (`tool`, or each tool apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
    /// Held calls a person refused, for the same principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_denials: Option<u64>,
    /// A call to a tool the lock holds since its definition changed: `any` or `server.tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// For `calls`: the tool counted (`server.tool`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Whose events count together: `principal` (also `same principal`), `session`, or
    /// `anyone` (for `calls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The sliding window (`1m`); for `held`, how long it stays quiet for the same tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<DurationDoc>,
}

/// One action: exactly one of `pause` (with `for`), `revoke` and `notify`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActionDoc {
    /// What to pause: `principal`, `session` or `delegation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<String>,
    /// How long a pause lasts (`15m`).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<DurationDoc>,
    /// The webhook to notify, by its name in `notify:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// What to end for good: `delegation` (the delegation of the call that fired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<String>,
}

/// A named webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyDoc {
    /// `https://...` (`http://` for loopback receivers); may hold `${secret:NAME}`.
    pub url: String,
    /// The signing key as a reference (`${secret:NAME}`); the body's HMAC-SHA256 under it
    /// is sent as `X-Mcpgate-Signature: sha256=HEX`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The body: `json` (mcpgate's event, the default), `slack` (`{"text": ...}`) or
    /// `pagerduty` (an Events API v2 trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<NotifyFormatDoc>,
    /// PagerDuty's integration key, as a reference (`${secret:NAME}`); required by
    /// `format: pagerduty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormatDoc {
    Json,
    Slack,
    Pagerduty,
}

/// The JSON Schema of `responders.yaml`, generated from its serde model.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(RespondersDoc).to_value()
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::new(&json_schema()))
}

/// Loads `responders.yaml` (at `path`); reports errors at their line and column. What is
/// returned holds only the responders without errors.
pub fn load(file: FileId, path: &str, src: &str, out: &mut Vec<Diagnostic>) -> ResponderSet {
    let mut set = ResponderSet::default();
    let mut root = match node::parse(src) {
        Ok(n) => n,
        Err(e) => {
            out.push(validate::syntax_error(&e, file, src));
            return set;
        }
    };
    if matches!(root.kind, Kind::Null) {
        return set;
    }
    let before = out.len();
    validate::validate(schema(), &mut root, src, file, out);
    if out.len() > before {
        return set;
    }
    let doc: RespondersDoc = match serde_json::from_value(root.to_json()) {
        Ok(d) => d,
        Err(e) => {
            out.push(crate::check::syntax::E0003.at(
                format!("invalid responders: {e}"),
                file,
                root.span,
            ));
            return set;
        }
    };
    let mut cx = Cx { file, out };
    let empty = Node {
        kind: Kind::Null,
        span: root.span,
    };
    let notify_node = root.get("notify").unwrap_or(&empty);
    for (name, target) in &doc.notify {
        let at = notify_node.key_node(name).map_or(root.span, |n| n.span);
        let url_at = notify_node
            .get(name)
            .and_then(|n| n.get("url"))
            .map_or(at, |n| n.span);
        if let Some(n) = notify_node.get(name) {
            cx.credentials(n);
        }
        if let Some(t) = cx.notify_target(name, target, at, url_at) {
            set.notify.insert(name.clone(), t);
        }
    }
    let items = root.get("responders").map(Node::items).unwrap_or_default();
    let mut names: Vec<&str> = Vec::new();
    for (i, r) in doc.responders.iter().enumerate() {
        let Some(n) = items.get(i) else { continue };
        let name_span = n.get("name").map_or(n.span, |x| x.span);
        if r.name.trim().is_empty() || r.name.chars().any(char::is_whitespace) {
            cx.err(
                E0904,
                format!("invalid responder name `{}`", r.name),
                name_span,
                "a name is a non-empty word without blanks: `too-many-denials`",
            );
            continue;
        }
        if names.contains(&r.name.as_str()) {
            cx.err(
                E0904,
                format!("two responders are named `{}`", r.name),
                name_span,
                "refusals and the audit name a responder by its name: give each its own",
            );
            continue;
        }
        names.push(&r.name);
        let when = n.get("when").unwrap_or(n);
        let trigger = cx.trigger(&r.when, when);
        let do_node = n.get("do").unwrap_or(n);
        let actions = cx.actions(&r.actions, do_node, &doc.notify);
        if let (Some(trigger), Some(actions)) = (trigger, actions) {
            let (line, col) = crate::source::line_col(src, n.span.start as usize);
            set.responders.push(Responder {
                name: r.name.clone(),
                source: format!("{path}:{line}:{col}"),
                trigger,
                actions,
            });
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responders::{Action, By, NotifyFormat, PauseScope, Trigger};
    use crate::source::SourceMap;

    fn run(src: &str) -> (ResponderSet, Vec<Diagnostic>, SourceMap) {
        let mut sources = SourceMap::new();
        let file = sources.add("responders.yaml", src);
        let mut out = Vec::new();
        let set = load(file, "responders.yaml", src, &mut out);
        (set, out, sources)
    }

    /// `CODE line:col` of each diagnostic.
    fn located(src: &str) -> Vec<String> {
        let (_, out, sources) = run(src);
        out.iter()
            .map(|d| {
                let (l, c) = sources.line_col(d.primary.file, d.primary.span.start as usize);
                format!("{} {l}:{c}", d.code)
            })
            .collect()
    }

    const GOOD: &str = "\
responders:
  - name: too-many-denials
    when: { denials: 5, by: same principal, within: 1m }
    do:
      - pause: principal
        for: 15m
      - notify: security
  - name: search-spike
    when: { calls: 100, tool: github.search, within: 30s }
    do: [{ notify: pager }]
  - name: refused-approvals
    when: { approval_denials: 3, within: 1h }
    do: [{ pause: session, for: 90 }]
  - name: agent-spike
    when: { calls: 50, by: principal, within: 1m }
    do: [{ pause: delegation, for: 1h }, { revoke: delegation }]
  - name: held
    when: { held: any }
    do: [{ notify: security }]
notify:
  security: { url: \"http://127.0.0.1:9/hook\", secret: \"${secret:hook}\", format: slack }
  pager: { url: \"https://events.pagerduty.com/v2/enqueue\", format: pagerduty, routing_key: \"${secret:pd}\" }
";

    #[test]
    fn every_trigger_and_action_compiles() {
        let (set, out, _) = run(GOOD);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(set.responders.len(), 5);
        let r = &set.responders[0];
        assert_eq!(r.source, "responders.yaml:2:5");
        assert_eq!(
            r.trigger,
            Trigger::Denials {
                count: 5,
                within_ms: 60_000,
                by: By::Principal
            }
        );
        assert_eq!(
            r.actions,
            [
                Action::Pause {
                    scope: PauseScope::Principal,
                    for_ms: 900_000
                },
                Action::Notify {
                    target: "security".into()
                }
            ]
        );
        assert_eq!(
            set.responders[1].trigger,
            Trigger::Calls {
                count: 100,
                within_ms: 30_000,
                tool: Some("github.search".into()),
                by: By::Anyone
            }
        );
        assert_eq!(
            set.responders[2].actions,
            [Action::Pause {
                scope: PauseScope::Session,
                for_ms: 90_000
            }]
        );
        assert_eq!(
            set.responders[3].actions,
            [
                Action::Pause {
                    scope: PauseScope::Delegation,
                    for_ms: 3_600_000
                },
                Action::RevokeDelegation
            ]
        );
        assert_eq!(
            set.responders[4].trigger,
            Trigger::Held {
                tool: None,
                quiet_ms: 3_600_000
            }
        );
        assert_eq!(set.notify["security"].format, NotifyFormat::Slack);
        assert_eq!(set.notify["pager"].format, NotifyFormat::Pagerduty);
        assert!(
            set.responders[0]
                .trigger
                .describe()
                .contains("5 denials within 1m")
        );
    }

    #[test]
    fn malformed_responders_are_errors_at_their_line() {
        // Unknown trigger.
        assert_eq!(
            located(
                "responders:\n  - name: a\n    when: { failures: 5, within: 1m }\n    do: [{ pause: principal, for: 1m }]\n"
            ),
            ["E0901 3:13", "E0901 3:11"]
        );
        // Zero count, bad duration.
        assert_eq!(
            located(
                "responders:\n  - name: a\n    when: { denials: 0, within: 1m }\n    do: [{ pause: principal, for: 1m }]\n"
            ),
            ["E0901 3:22"]
        );
        assert_eq!(
            located(
                "responders:\n  - name: a\n    when:\n      denials: 5\n      within: soon\n    do: [{ pause: principal, for: 1m }]\n"
            ),
            ["E0902 5:15"]
        );
        assert_eq!(
            located(
                "responders:\n  - name: a\n    when: { denials: 5, within: 1m }\n    do:\n      - pause: principal\n        for: 15 minutes\n"
            ),
            ["E0902 6:14"]
        );
        // Unknown notify target, pause without `for`, a revocation of what cannot be
        // revoked, a revocation with `for`, unknown action.
        assert_eq!(
            located(
                "responders:\n  - name: a\n    when: { denials: 5, within: 1m }\n    do:\n      - notify: securty\n      - pause: principal\n      - revoke: session\n      - { revoke: delegation, for: 1m }\n      - block: principal\n"
            ),
            [
                "E0903 5:17",
                "E0904 6:9",
                "E0904 7:17",
                "E0904 8:36",
                "E0904 9:9"
            ]
        );
        // Counted trigger without a window; two triggers; duplicate names.
        assert_eq!(
            located(
                "responders:\n  - name: a\n    when: { denials: 5 }\n    do: [{ pause: session, for: 1m }]\n  - name: a\n    when: { denials: 5, held: any }\n    do: [{ pause: session, for: 1m }]\n"
            ),
            ["E0901 3:11", "E0904 5:11"]
        );
        // The schema still reports shapes: `do` must be a list.
        let (_, out, _) = run("responders:\n  - name: a\n    when: { held: any }\n    do: 5\n");
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].code, "E0003");
    }

    #[test]
    fn credentials_in_clear_are_refused() {
        let codes = |src: &str| -> Vec<&'static str> {
            let (_, out, _) = run(src);
            out.iter().map(|d| d.code).collect()
        };
        assert_eq!(
            codes(
                "notify:\n  a: { url: \"https://hooks.slack.com/services/T0/B0/abcdef\", secret: plain-text-key }\n"
            ),
            ["E0604", "E0604"]
        );
        assert_eq!(
            codes("notify:\n  a: { url: \"https://x.example/h\", secret: \"${secrets:x}\" }\n"),
            ["E0603"]
        );
        assert!(
            codes(
                "notify:\n  a: { url: \"https://hooks.slack.com/services/${secret:slack}\", secret: \"${secret:k}\" }\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn webhooks_are_checked() {
        assert_eq!(
            located(
                "notify:\n  a: { url: \"http://example.com/x\" }\n  b: { url: \"https://x.example\", format: pagerduty }\n"
            ),
            ["E0903 2:13", "E0903 3:3"]
        );
    }
}
