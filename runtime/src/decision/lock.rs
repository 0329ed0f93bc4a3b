//! What the lock (`mcpgate.lock`) can say about a call before the policy's verdict takes
//! effect: the tool is held since review, or its arguments fail the pinned input schema.

/// Rule id of a call refused because its tool is held by the lock.
pub const RULE_LOCK: &str = "lock";
/// Rule id of a call refused because its arguments fail the pinned input schema.
pub const RULE_SCHEMA: &str = "schema";

/// A call the lock refuses: the rule id (`lock` or `schema`) and the text the caller gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub message: String,
}
