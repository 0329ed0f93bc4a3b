//! Responders as the gateway runs them: what `responders.yaml` says once checked. A
//! responder watches the decision stream for a trigger (denials, a spike of calls, refused
//! approvals, a held pinned tool) and then acts (pause a principal or session, notify a
//! webhook). Read from YAML by [`crate::yaml::responders`]; swapped in with each program.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Largest count a trigger may ask for: the window keeps that many timestamps per key.
pub const MAX_COUNT: u32 = 10_000;
/// Longest window or pause: a year.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);
/// How long a `held` trigger stays quiet for the same tool after it fired, unless `within`
/// says otherwise.
pub const DEFAULT_HELD_QUIET: Duration = Duration::from_secs(3600);

/// Every responder of a policy repository and the webhooks they notify.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponderSet {
    pub responders: Vec<Responder>,
    /// Webhook name to where and how it is sent.
    #[serde(default)]
    pub notify: BTreeMap<String, NotifyTarget>,
}

impl ResponderSet {
    pub fn is_empty(&self) -> bool {
        self.responders.is_empty()
    }

    /// A short digest of the set, so a policy swap that changes only responders is not
    /// mistaken for "nothing changed".
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let d = Sha256::digest(&bytes);
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// One responder: when its trigger fires, its actions run in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Responder {
    pub name: String,
    /// `responders.yaml:LINE:COL` of the responder.
    pub source: String,
    pub trigger: Trigger,
    pub actions: Vec<Action>,
}

/// Whose events a trigger counts together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// All callers together.
    Anyone,
    /// Each principal apart.
    Principal,
    /// Each session apart.
    Session,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Anyone => "anyone",
            By::Principal => "principal",
            By::Session => "session",
        }
    }
}

/// What a responder watches for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// `count` refused tool calls (denied by a rule, the default deny or the lock, or
    /// answered as unknown) within `within_ms`.
    Denials { count: u32, within_ms: u64, by: By },
    /// `count` calls of one tool (`tool`, or each tool apart) within `within_ms`.
    Calls {
        count: u32,
        within_ms: u64,
        tool: Option<String>,
        by: By,
    },
    /// `count` held calls a person refused, for the same principal, within `within_ms`.
    ApprovalDenials { count: u32, within_ms: u64 },
    /// A call to a tool the lock holds because its definition changed since review
    /// (`tool`, or any); fires once per tool per `quiet_ms`.
    Held { tool: Option<String>, quiet_ms: u64 },
}

impl Trigger {
    /// How it reads in a refusal or a notification: `5 denials within 1m by principal`.
    pub fn describe(&self) -> String {
        let d = |ms: u64| crate::duration::format(Duration::from_millis(ms));
        match self {
            Trigger::Denials {
                count,
                within_ms,
                by,
            } => format!(
                "{count} denials within {} by {}",
                d(*within_ms),
                by.as_str()
            ),
            Trigger::Calls {
                count,
                within_ms,
                tool,
                by,
            } => format!(
                "{count} calls to {} within {} by {}",
                tool.as_deref().unwrap_or("one tool"),
                d(*within_ms),
                by.as_str()
            ),
            Trigger::ApprovalDenials { count, within_ms } => {
                format!("{count} refused approvals within {}", d(*within_ms))
            }
            Trigger::Held { tool, .. } => format!(
                "a call to {} held by the lock",
                tool.as_deref().unwrap_or("a tool")
            ),
        }
    }
}

/// What a pause stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseScope {
    /// Every call of the principal, in any session.
    Principal,
    /// Every call of the session.
    Session,
    /// Every call made under the delegation of the call that fired (its agent, for its
    /// person); nothing when that call was made for no one.
    Delegation,
}

impl PauseScope {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseScope::Principal => "principal",
            PauseScope::Session => "session",
            PauseScope::Delegation => "delegation",
        }
    }

    /// The scope a stored name stands for.
    pub fn parse(name: &str) -> Option<PauseScope> {
        match name {
            "principal" => Some(PauseScope::Principal),
            "session" => Some(PauseScope::Session),
            "delegation" => Some(PauseScope::Delegation),
            _ => None,
        }
    }
}

/// What a responder does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Refuse every call of the principal, session or delegation for `for_ms`.
    Pause { scope: PauseScope, for_ms: u64 },
    /// End the delegation of the call that fired, for good (`revoke: delegation`): its
    /// agent's next request gets 401.
    RevokeDelegation,
    /// Send the event to the webhook named `target` in the `notify:` section.
    Notify { target: String },
}

/// How a notification body is shaped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// mcpgate's own event JSON.
    #[default]
    Json,
    /// `{"text": ...}`, as Slack (and compatible chat tools) take it.
    Slack,
    /// A PagerDuty Events API v2 `trigger` event.
    Pagerduty,
}

/// A named webhook: a signed JSON `POST`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTarget {
    /// The receiver's URL; may hold `${secret:NAME}` / `${env:NAME}` references.
    pub url: String,
    /// The HMAC-SHA256 signing key as a reference (`${secret:NAME}`).
    pub secret: Option<String>,
    pub format: NotifyFormat,
    /// PagerDuty's integration key, as a reference.
    pub routing_key: Option<String>,
}
