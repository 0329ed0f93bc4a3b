//! Response redaction in the relay: the transform that applies a decision's redaction plan
//! ([`crate::decision::redaction`]) to the final response, chained with the audit outcome.

use crate::audit::decision::Pending;
use crate::decision::LoadedProgram;
pub use crate::decision::redaction::{MASK, mask_json, mask_result};
use crate::gateway::relay::Transform;
use mcpgate_compiler::vm::{Redaction, RuleIdx};
use serde_json::Value;
use std::sync::Arc;

/// The relay transform that masks the final response with the `redact` rules `plan`
/// names (from the call's decision), or `None` when the plan masks nothing.
pub fn transform(loaded: &Arc<LoadedProgram>, plan: Vec<RuleIdx>) -> Option<Transform> {
    if plan.is_empty() {
        return None;
    }
    let loaded = loaded.clone();
    Some(Transform::new(move |mut m: Value| {
        let masks: Vec<Redaction<'_>> = plan
            .iter()
            .filter_map(|&r| loaded.program.redaction(r))
            .collect();
        if let Some(result) = m.get_mut("result") {
            let n = mask_result(result, &masks);
            if n > 0 {
                let ids: Vec<&str> = masks.iter().map(|r| r.id).collect();
                tracing::debug!(target: "mcpgate::redact", masked = n, rules = ?ids, "result redacted");
            }
        }
        m
    }))
}

/// Chains the audit outcome recorder and the redaction of one call into one transform:
/// the outcome is recorded from the upstream's answer, then the answer is masked.
pub fn with_audit(pending: Option<Pending>, redact: Option<Transform>) -> Option<Transform> {
    match pending {
        Some(pending) => Some(Transform::recording(pending, redact)),
        None => redact,
    }
}
