//! `responders.yaml`: triggers, actions and the webhooks they notify.

use super::Code;
use crate::diag::Severity;

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
Reports an action that is not exactly one of `pause` and `notify`, a `pause` of something
other than `principal` or `session`, a `pause` without `for`, a responder without actions,
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
