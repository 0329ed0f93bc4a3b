//! `responders.yaml`: triggers, actions and the webhooks they notify. The YAML is read by
//! [`crate::yaml::responders`]; each part is checked and compiled here.

use super::Code;
use crate::diag::{Diagnostic, Severity};
use crate::responders::{
    Action, By, DEFAULT_HELD_QUIET, MAX_COUNT, MAX_DURATION, NotifyFormat, NotifyTarget,
    PauseScope, Trigger,
};
use crate::source::FileId;
use crate::yaml::node::Node;
use crate::yaml::responders::{ActionDoc, DurationDoc, NotifyDoc, NotifyFormatDoc, WhenDoc};
use mcpgate_grammar::Span;
use std::collections::BTreeMap;
use std::time::Duration;

/// A trigger that is unknown, missing, ambiguous or counts nothing.
pub const E0901: Code = Code {
    code: "E0901",
    severity: Severity::Error,
    name: "responder-trigger",
    doc: r#"
### What it does
Reports a responder whose `when` is not exactly one known trigger (`denials`, `calls`,
`approval_denials`, `held`), whose count is zero or above 10000, whose `by` is not one
the trigger takes, or whose counted trigger has no `within` window.

### Why is this bad?
A responder that can never fire, or fires on every call, protects nothing and surprises
everyone.

### Example
```yaml
responders:
  - name: too-many-denials
    when: { failures: 5, within: 1m }
    do: [{ notify: security }]
```
Use instead: `when: { denials: 5, by: principal, within: 1m }`.
"#,
};

/// A window or pause duration that cannot be read, or is zero.
pub const E0902: Code = Code {
    code: "E0902",
    severity: Severity::Error,
    name: "responder-duration",
    doc: r#"
### What it does
Reports a `within` or `for` that is not a duration in the config's syntax (`90s`, `15m`,
`1h 30m`, a bare number of seconds), that is zero, or that is longer than a year.

### Example
```yaml
do:
  - pause: principal
    for: 15 minutes
```
Use instead: `for: 15m`.
"#,
};

/// A `notify` naming no webhook, or a webhook that cannot be sent.
pub const E0903: Code = Code {
    code: "E0903",
    severity: Severity::Error,
    name: "responder-notify-target",
    doc: r#"
### What it does
Reports a `notify: NAME` action when `NAME` is not a webhook of the `notify:` section of
`responders.yaml`, and a webhook without a `url` of `https://` (or `http://` on a loopback
address), or a `format: pagerduty` webhook without a `routing_key`.

### Example
```yaml
responders:
  - name: spike
    when: { calls: 100, within: 1m }
    do: [{ notify: securty }]
notify:
  security: { url: "https://hooks.example.com/mcpgate", secret: "${secret:hook}" }
```
Use instead: `notify: security`.
"#,
};

/// An action that is unknown or incomplete, or a responder without a name or actions.
pub const E0904: Code = Code {
    code: "E0904",
    severity: Severity::Error,
    name: "responder-action",
    doc: r#"
### What it does
Reports an action that is not exactly one of `pause`, `revoke` and `notify`, a `pause` of
something other than `principal`, `session` or `delegation`, a `revoke` of something other
than `delegation`, a `pause` without `for`, a responder without actions,
and two responders with the same name (refusals and the audit name a responder by it).

### Example
```yaml
do:
  - pause: principal      # for how long?
```
Use instead: add `for: 15m`.
"#,
};

pub const CODES: &[Code] = &[E0901, E0902, E0903, E0904];

const TRIGGERS: [&str; 4] = ["denials", "calls", "approval_denials", "held"];
const WHEN_KEYS: [&str; 7] = [
    "denials",
    "calls",
    "approval_denials",
    "held",
    "tool",
    "by",
    "within",
];
const ACTION_KEYS: [&str; 4] = ["pause", "for", "notify", "revoke"];

/// Checks one `responders.yaml` and turns its parts into what the gateway runs.
pub(crate) struct Cx<'o> {
    pub file: FileId,
    pub out: &'o mut Vec<Diagnostic>,
}

impl Cx<'_> {
    pub fn err(&mut self, code: crate::check::Code, msg: String, span: Span, help: &str) {
        self.out
            .push(code.at(msg, self.file, span).with_help(help.to_owned()));
    }

    pub fn trigger(&mut self, w: &WhenDoc, node: &Node) -> Option<Trigger> {
        let mut ok = true;
        for (k, _) in node.entries() {
            let key = k.as_str().unwrap_or_default();
            if !WHEN_KEYS.contains(&key) {
                self.err(
                    E0901,
                    format!("unknown trigger `{key}`"),
                    k.span,
                    "a trigger is one of `denials`, `calls`, `approval_denials`, `held`, with `by`, `within` and (for `calls`) `tool`",
                );
                ok = false;
            }
        }
        let given: Vec<&str> = TRIGGERS
            .iter()
            .copied()
            .filter(|t| node.get(t).is_some())
            .collect();
        if given.len() != 1 {
            let msg = if given.is_empty() {
                "this responder has no trigger".to_owned()
            } else {
                format!("one trigger per responder, not `{}`", given.join("` and `"))
            };
            self.err(
                E0901,
                msg,
                node.span,
                "write one of `denials: N`, `calls: N`, `approval_denials: N`, `held: any`",
            );
            return None;
        }
        let kind = given[0];
        let at = |k: &str| node.get(k).map_or(node.span, |n| n.span);
        let by = match w.by.as_deref().map(str::trim) {
            None => None,
            Some("principal" | "same principal") => Some(By::Principal),
            Some("session" | "same session") => Some(By::Session),
            Some("anyone") => Some(By::Anyone),
            Some(other) => {
                self.err(
                    E0901,
                    format!("unknown `by: {other}`"),
                    at("by"),
                    "`by` is `principal`, `session` or (for `calls`) `anyone`",
                );
                return None;
            }
        };
        let within = match &w.within {
            None => None,
            Some(d) => Some(self.duration(d, at("within"), "within")?),
        };
        if kind != "calls" && w.tool.is_some() {
            self.err(
                E0901,
                format!("`tool` is for the `calls` trigger, not `{kind}`"),
                at("tool"),
                "`held` names its tool itself: `held: server.tool`",
            );
            ok = false;
        }
        if let Some(t) = w
            .tool
            .as_deref()
            .or(w.held.as_deref().filter(|h| *h != "any"))
            && !valid_tool(t)
        {
            let key = if kind == "held" { "held" } else { "tool" };
            self.err(
                E0901,
                format!("`{t}` does not name a tool"),
                at(key),
                "name a tool as policies do, `server.tool` (or `held: any`)",
            );
            ok = false;
        }
        if kind == "held" {
            if by.is_some() {
                self.err(
                    E0901,
                    "`held` takes no `by`".into(),
                    at("by"),
                    "a held tool is counted per tool",
                );
                return None;
            }
            return ok.then(|| Trigger::Held {
                tool: w.held.clone().filter(|h| h != "any"),
                quiet_ms: millis(within.unwrap_or(DEFAULT_HELD_QUIET)),
            });
        }
        let count = w.denials.or(w.calls).or(w.approval_denials).unwrap_or(0);
        if count == 0 || count > u64::from(MAX_COUNT) {
            self.err(
                E0901,
                format!("`{kind}: {count}` is out of range"),
                at(kind),
                "count at least 1 and at most 10000 events",
            );
            ok = false;
        }
        let Some(within) = within else {
            self.err(
                E0901,
                format!("`{kind}` needs a window: `within: 1m`"),
                node.span,
                "events are counted in a sliding window, e.g. `within: 1m`",
            );
            return None;
        };
        if !ok {
            return None;
        }
        let count = u32::try_from(count).unwrap_or(MAX_COUNT);
        let within_ms = millis(within);
        match kind {
            "denials" => match by.unwrap_or(By::Principal) {
                By::Anyone => {
                    self.err(
                        E0901,
                        "`denials` are counted per principal or session, not `anyone`".into(),
                        at("by"),
                        "write `by: principal` or `by: session`",
                    );
                    None
                }
                by => Some(Trigger::Denials {
                    count,
                    within_ms,
                    by,
                }),
            },
            "calls" => Some(Trigger::Calls {
                count,
                within_ms,
                tool: w.tool.clone(),
                by: by.unwrap_or(By::Anyone),
            }),
            _ => match by {
                None | Some(By::Principal) => Some(Trigger::ApprovalDenials { count, within_ms }),
                Some(_) => {
                    self.err(
                        E0901,
                        "`approval_denials` are counted per principal".into(),
                        at("by"),
                        "leave `by` out, or write `by: principal`",
                    );
                    None
                }
            },
        }
    }

    pub fn actions(
        &mut self,
        docs: &[ActionDoc],
        node: &Node,
        notify: &BTreeMap<String, NotifyDoc>,
    ) -> Option<Vec<Action>> {
        if docs.is_empty() {
            self.err(
                E0904,
                "this responder does nothing".into(),
                node.span,
                "add an action: `- notify: NAME` or `- pause: principal` with `for: 15m`",
            );
            return None;
        }
        let mut actions = Vec::new();
        let mut ok = true;
        for (a, n) in docs.iter().zip(node.items()) {
            match self.action(a, n, notify) {
                Some(x) => actions.push(x),
                None => ok = false,
            }
        }
        ok.then_some(actions)
    }

    fn action(
        &mut self,
        a: &ActionDoc,
        node: &Node,
        notify: &BTreeMap<String, NotifyDoc>,
    ) -> Option<Action> {
        let at = |k: &str| node.get(k).map_or(node.span, |n| n.span);
        for (k, _) in node.entries() {
            let key = k.as_str().unwrap_or_default();
            if !ACTION_KEYS.contains(&key) {
                self.err(
                    E0904,
                    format!("unknown action `{key}`"),
                    k.span,
                    "an action is `pause: principal|session|delegation` with `for`, `revoke: delegation`, or `notify: NAME`",
                );
                return None;
            }
        }
        match (&a.pause, &a.notify, &a.revoke) {
            (None, None, Some(what)) => {
                if what.trim() != "delegation" {
                    self.err(
                        E0904,
                        format!("cannot revoke `{}`", what.trim()),
                        at("revoke"),
                        "`revoke` takes `delegation` (pause a principal or session instead)",
                    );
                    return None;
                }
                if a.for_.is_some() {
                    self.err(
                        E0904,
                        "a revocation is for good: `for` is for `pause`".into(),
                        at("for"),
                        "remove `for`, or write `pause: delegation` with `for`",
                    );
                    return None;
                }
                Some(Action::RevokeDelegation)
            }
            (Some(scope), None, None) => {
                let Some(scope) = PauseScope::parse(scope.trim()) else {
                    self.err(
                        E0904,
                        format!("cannot pause `{}`", scope.trim()),
                        at("pause"),
                        "`pause` takes `principal`, `session` or `delegation`",
                    );
                    return None;
                };
                let Some(d) = &a.for_ else {
                    self.err(
                        E0904,
                        "a pause needs `for`".into(),
                        node.span,
                        "say how long: `for: 15m`",
                    );
                    return None;
                };
                let d = self.duration(d, at("for"), "for")?;
                Some(Action::Pause {
                    scope,
                    for_ms: millis(d),
                })
            }
            (None, Some(target), None) => {
                if a.for_.is_some() {
                    self.err(
                        E0904,
                        "`for` is for `pause`, not `notify`".into(),
                        at("for"),
                        "remove `for`",
                    );
                    return None;
                }
                if !notify.contains_key(target) {
                    let known: Vec<&str> = notify.keys().map(String::as_str).collect();
                    let help = if known.is_empty() {
                        "declare the webhook under `notify:` in responders.yaml".to_owned()
                    } else {
                        format!("the webhooks are: {}", known.join(", "))
                    };
                    self.err(
                        E0903,
                        format!("no webhook named `{target}`"),
                        at("notify"),
                        &help,
                    );
                    return None;
                }
                Some(Action::Notify {
                    target: target.clone(),
                })
            }
            _ => {
                self.err(
                    E0904,
                    "an action is exactly one of `pause`, `revoke` and `notify`".into(),
                    node.span,
                    "split it into two actions",
                );
                None
            }
        }
    }

    fn duration(&mut self, d: &DurationDoc, span: Span, key: &str) -> Option<Duration> {
        let parsed = match d {
            DurationDoc::Secs(s) => Ok(Duration::from_secs(*s)),
            DurationDoc::Text(t) => crate::duration::parse(t),
        };
        match parsed {
            Ok(d) if d.is_zero() => {
                self.err(
                    E0902,
                    format!("`{key}` is zero"),
                    span,
                    "give a duration longer than zero: `1m`",
                );
                None
            }
            Ok(d) if d > MAX_DURATION => {
                self.err(
                    E0902,
                    format!("`{key}` is longer than a year"),
                    span,
                    "give at most `366d`",
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    E0902,
                    format!("`{key}`: {e}"),
                    span,
                    "e.g. `90s`, `15m`, `1h 30m`",
                );
                None
            }
        }
    }

    /// Reports credentials written in clear in a webhook (its `secret` and `routing_key`
    /// must be references; its `url` may not hold a token or a chat webhook's path) and
    /// malformed references (E0603, E0604, as in `mcpgate.yaml`).
    pub fn credentials(&mut self, webhook: &Node) {
        if let Some(v) = webhook.get("url")
            && !super::config::check_value(v, "url", self.file, self.out)
            && let Some(url) = v.as_str()
            && chat_hook_in_clear(url)
        {
            self.out.push(super::config::credential(
                v,
                self.file,
                "`url` holds a chat webhook's secret path",
            ));
        }
        for field in ["secret", "routing_key"] {
            let Some(v) = webhook.get(field) else {
                continue;
            };
            let reported = super::config::check_value(v, field, self.file, self.out);
            let text = v.as_str().unwrap_or_default().trim();
            let referenced = text.starts_with("${") && text.ends_with('}');
            if !reported && !referenced {
                self.out.push(super::config::credential(
                    v,
                    self.file,
                    &format!("`{field}` is written in clear"),
                ));
            }
        }
    }

    /// `at` is the webhook's name, `url_at` its url.
    pub fn notify_target(
        &mut self,
        name: &str,
        t: &NotifyDoc,
        at: Span,
        url_at: Span,
    ) -> Option<NotifyTarget> {
        let url = t.url.trim();
        let scheme_ok = url.starts_with("https://")
            || url.starts_with("${")
            || ["http://127.", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| url.starts_with(p));
        if !scheme_ok {
            self.err(
                E0903,
                format!("webhook `{name}` has url `{url}`"),
                url_at,
                "use `https://...` (`http://` only for a receiver on 127.0.0.1 or localhost)",
            );
            return None;
        }
        let format = match t.format {
            None | Some(NotifyFormatDoc::Json) => NotifyFormat::Json,
            Some(NotifyFormatDoc::Slack) => NotifyFormat::Slack,
            Some(NotifyFormatDoc::Pagerduty) => NotifyFormat::Pagerduty,
        };
        if format == NotifyFormat::Pagerduty && t.routing_key.is_none() {
            self.err(
                E0903,
                format!("webhook `{name}` is `format: pagerduty` without a `routing_key`"),
                at,
                "add `routing_key: \"${secret:pagerduty}\"` (the integration key)",
            );
            return None;
        }
        Some(NotifyTarget {
            url: url.to_owned(),
            secret: t.secret.clone(),
            format,
            routing_key: t.routing_key.clone(),
        })
    }
}

/// A Slack or Discord incoming-webhook URL whose secret path is written out rather than
/// referenced.
fn chat_hook_in_clear(url: &str) -> bool {
    ["hooks.slack.com/services/", "discord.com/api/webhooks/"]
        .iter()
        .any(|p| {
            url.split_once(p)
                .is_some_and(|(_, path)| !path.is_empty() && !path.starts_with("${"))
        })
}

/// `server.tool`, both parts non-empty, no blanks.
fn valid_tool(t: &str) -> bool {
    matches!(t.split_once('.'), Some((s, n)) if !s.is_empty() && !n.is_empty())
        && !t.chars().any(char::is_whitespace)
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
