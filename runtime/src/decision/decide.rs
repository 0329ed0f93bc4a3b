//! One decision: the program asked once about one request, and everything that follows
//! from its answer, kept together so no part of the gateway asks again or differently.

use super::caller::Caller;
use super::delegation;
use super::lock::Refusal;
use super::outcome::{Hold, Outcome};
use super::quota::{self, Claim, QuotaStore};
use super::{LoadedProgram, redaction};
use mcpgate_compiler::vm::{self, RuleIdx};
use mcpgate_compiler::{Request, Target, ToolAnnotations, Verdict, evaluate, visible};
use serde_json::Value;
use std::time::{Duration, Instant};

/// One decided message: the request exactly as the program saw it, the VM's answer, the
/// lock's refusal if any, and the outcome. The audit record, quota claims and the
/// redaction plan are all read from it.
#[derive(Debug)]
pub struct Decision<'a> {
    pub caller: &'a Caller<'a>,
    pub target: Target<'a>,
    pub args: &'a Value,
    /// The tool's annotations as decided (pinned ones under `lock: enforce`).
    pub annotations: ToolAnnotations,
    /// The VM's answer.
    pub vm: vm::Decision,
    /// Whether the caller may see the target in a list.
    pub listed: bool,
    /// The lock's or the delegation's refusal, when it turned an allow or approve into a
    /// denial.
    pub lock: Option<Refusal>,
    pub outcome: Outcome,
    /// How long deciding took (the lock check included when the caller measured it).
    pub latency: Duration,
}

impl Decision<'_> {
    /// The request the program was asked about.
    pub fn request(&self) -> Request<'_> {
        self.caller
            .request(self.target, self.args, self.annotations)
    }

    /// The verdict as recorded: the lock's rule when it refused, else the program's.
    pub fn verdict<'p>(&'p self, program: &'p mcpgate_compiler::Program) -> (Verdict, &'p str) {
        match &self.lock {
            Some(r) => (Verdict::Deny, r.rule),
            None => (self.vm.verdict, program.rule_id(self.vm.rule)),
        }
    }

    /// The `redact` rules that mask this call's result.
    pub fn result_masks(&self, loaded: &LoadedProgram) -> Vec<RuleIdx> {
        redaction::result_masks(&loaded.program, &self.request())
    }

    /// The buckets a held call takes from when it runs.
    pub fn quota_claims(&self, loaded: &LoadedProgram) -> Vec<Claim> {
        quota::claims(&loaded.program, &self.vm, &self.request())
    }
}

/// Decides one request: evaluates the program once, applies the lock's `refusal` (a
/// tool held since review, or arguments failing the pinned schema: it turns an allow or
/// approve into a denial by rule `lock` or `schema`) and, for an allow, takes one call
/// from each matching limit. Logs the decision (argument keys only, never values).
pub fn decide<'a>(
    loaded: &LoadedProgram,
    quotas: &dyn QuotaStore,
    caller: &'a Caller<'a>,
    target: Target<'a>,
    args: &'a Value,
    annotations: ToolAnnotations,
    refusal: Option<Refusal>,
) -> Decision<'a> {
    let program = &loaded.program;
    let start = Instant::now();
    let request = caller.request(target, args, annotations);
    let vm = evaluate(program, &request);
    // What a caller may not see in a list answers as unknown (LANGUAGE.md), except what
    // an unconditional `deny` keeps off the list: that call gets the denial and its reason.
    let listed = visible(program, &caller.principal, target);
    // The lock decides only what the policy would let through.
    let passes = listed && matches!(vm.verdict, Verdict::Allow | Verdict::Approve);
    // Then a delegated call must be in its delegation's scope and allowed to its person.
    let lock = refusal.filter(|_| passes).or_else(|| {
        passes
            .then(|| delegation::refusal(program, &request, vm.verdict))
            .flatten()
    });
    let mut d = Decision {
        caller,
        target,
        args,
        annotations,
        vm,
        listed,
        lock,
        outcome: Outcome::Unknown,
        latency: Duration::ZERO,
    };
    d.outcome = outcome(loaded, quotas, &d);
    d.latency = start.elapsed();
    log(loaded, &d);
    d
}

fn outcome(loaded: &LoadedProgram, quotas: &dyn QuotaStore, d: &Decision<'_>) -> Outcome {
    let program = &loaded.program;
    let target = d.target;
    match d.vm.verdict {
        // Kept off the list by an unconditional deny: the agent reads the reason its
        // policy author wrote. Hidden, or allowed to no one: unknown.
        Verdict::Deny
            if !d.listed && vm::withheld_by(program, &d.caller.principal, target).is_some() =>
        {
            denied(program, d)
        }
        _ if !d.listed => Outcome::Unknown,
        _ if d.lock.is_some() => Outcome::Deny(
            d.lock
                .as_ref()
                .map(|r| r.message.clone())
                .unwrap_or_default(),
        ),
        // Limits count allowed calls only.
        Verdict::Allow => quota::enforce(quotas, program, &d.vm, &d.request()),
        Verdict::Hide => Outcome::Unknown,
        Verdict::Deny if d.vm.rule == RuleIdx::DEFAULT => Outcome::Deny(format!(
            "denied: no rule allows {target} for `{}` (default deny)",
            d.caller.declared.id
        )),
        Verdict::Deny => denied(program, d),
        Verdict::Approve => {
            let rule = program.rule(d.vm.rule);
            Outcome::Approve(Box::new(Hold {
                target: target.to_string(),
                rule: program.rule_id(d.vm.rule).to_owned(),
                source: rule.map(|r| r.source.to_string()).unwrap_or_default(),
                reason: rule.and_then(|r| r.reason.clone()),
                groups: rule.map(|r| r.approvers.clone()).unwrap_or_default(),
            }))
        }
    }
}

/// The denial by the rule that decided: its id, where it is written, and its reason.
fn denied(program: &mcpgate_compiler::Program, d: &Decision<'_>) -> Outcome {
    let mut text = match program.rule(d.vm.rule) {
        Some(r) => format!("denied by rule {} ({})", r.id, r.source),
        None => format!("denied by rule {}", program.rule_id(d.vm.rule)),
    };
    if let Some(reason) = program.rule(d.vm.rule).and_then(|r| r.reason.as_ref()) {
        text.push_str(": ");
        text.push_str(reason);
    }
    Outcome::Deny(text)
}

/// A call's argument names as the log shows them (`["a", "b"]`), formatted only when the
/// record is written: nothing is collected for a decision nobody logs.
struct ArgKeys<'a>(&'a serde_json::Value);

impl std::fmt::Debug for ArgKeys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        if let Some(m) = self.0.as_object() {
            list.entries(m.keys());
        }
        list.finish()
    }
}

fn log(loaded: &LoadedProgram, d: &Decision<'_>) {
    let program = &loaded.program;
    let (verdict, rule) = d.verdict(program);
    crate::metrics::count_decision(verdict.as_str());
    crate::metrics::observe_decision(d.latency);
    tracing::info!(
        target: "mcpgate::decision",
        principal = %d.caller.declared.id,
        session = %d.caller.session,
        server = d.target.server(),
        name = d.target.name(),
        verdict = verdict.as_str(),
        rule,
        undecided = d.vm.undecided,
        listed = d.listed,
        program = %loaded.hash,
        commit = program.commit().unwrap_or_default(),
        arg_keys = ?ArgKeys(d.args),
        latency_ns = d.latency.as_nanos() as u64,
        "decision"
    );
}

#[cfg(test)]
mod log_tests {
    use super::ArgKeys;
    use serde_json::json;

    #[test]
    fn argument_names_show_as_a_list() {
        let args = json!({"amount": 5, "to": "bob"});
        assert_eq!(format!("{:?}", ArgKeys(&args)), r#"["amount", "to"]"#);
        assert_eq!(format!("{:?}", ArgKeys(&json!(null))), "[]");
    }
}
