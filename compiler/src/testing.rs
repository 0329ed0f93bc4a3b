//! Policy tests (`tests/**/*.yaml`): the model. Loading lives with the YAML front end,
//! running with the VM.

use crate::ir::SourceLoc;
use crate::request::{Principal, Verdict};
use serde_json::Value;

/// One policy test case.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyTest {
    pub name: String,
    pub principal: Principal,
    pub agent: Option<String>,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    /// What is called.
    pub call: Call,
    /// `args` (an object; `Value::Null` when absent).
    pub args: Value,
    pub expect: Verdict,
    /// The rule id that must decide, if given (`default` for the built-in rule).
    pub rule: Option<String>,
    pub source: SourceLoc,
    /// The tool's annotations as `mcpgate.lock` pins them (unknown without a lock).
    pub annotations: crate::ToolAnnotations,
}

/// `call:` in a test: `server.tool`, `prompt:server.name` or `resource:server:URI`
/// (the same forms as `mcpgate explain --call`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Tool { server: String, tool: String },
    Prompt { server: String, name: String },
    Resource { server: String, uri: String },
}

impl Call {
    /// Parses the `--call`/`call:` syntax.
    pub fn parse(s: &str) -> Option<Call> {
        if let Some(rest) = s.strip_prefix("prompt:") {
            let (server, name) = rest.split_once('.')?;
            return valid_server(server).then(|| Call::Prompt {
                server: server.into(),
                name: name.into(),
            });
        }
        if let Some(rest) = s.strip_prefix("resource:") {
            let (server, uri) = rest.split_once(':')?;
            return valid_server(server).then(|| Call::Resource {
                server: server.into(),
                uri: uri.into(),
            });
        }
        let (server, tool) = s.split_once('.')?;
        (valid_server(server) && !tool.is_empty()).then(|| Call::Tool {
            server: server.into(),
            tool: tool.into(),
        })
    }

    pub fn target(&self) -> crate::request::Target<'_> {
        use crate::request::Target;
        match self {
            Call::Tool { server, tool } => Target::Tool { server, tool },
            Call::Prompt { server, name } => Target::Prompt { server, name },
            Call::Resource { server, uri } => Target::Resource { server, uri },
        }
    }
}

/// Server names are `[a-z0-9_-]+`.
pub fn valid_server(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The result of one policy test.
#[derive(Clone, Debug, PartialEq)]
pub struct TestOutcome {
    pub name: String,
    pub passed: bool,
    pub expected: Verdict,
    pub actual: Verdict,
    /// The rule that decided (`default` when none did).
    pub rule: String,
    /// The rule the test required, if any.
    pub expected_rule: Option<String>,
    /// Where the deciding rule is written (`None` for the built-in rule).
    pub rule_source: Option<SourceLoc>,
    /// The deciding rule's condition could not be decided (it applied by failing closed).
    pub undecided: bool,
    /// Where the test is written.
    pub source: SourceLoc,
}

/// The result of running a repository's policy tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TestReport {
    pub outcomes: Vec<TestOutcome>,
    /// Rules that decided no test (limit rules: that no test reached), in rule order.
    pub uncovered: Vec<(String, SourceLoc)>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }
}

/// The request a test makes. Tool annotations are the pinned ones (`mcpgate.lock`); without
/// a pin, conditions on them see a missing path.
pub fn request(test: &PolicyTest) -> crate::Request<'_> {
    crate::Request {
        principal: &test.principal,
        agent: test.agent.as_deref(),
        client_name: test.client_name.as_deref(),
        client_version: test.client_version.as_deref(),
        target: test.call.target(),
        args: &test.args,
        annotations: test.annotations,
    }
}

/// Runs every test against a compiled program. A test passes when the verdict is the one
/// expected and, if the test names a rule, that rule decided. A rule is covered when it
/// decided some test; a `limit` rule when it matched some allowed call; a `redact` rule
/// when it matched some call.
pub fn run_tests(program: &crate::Program, tests: &[PolicyTest]) -> TestReport {
    let mut covered = vec![false; program.rules().len()];
    let mut cover = |idx: crate::vm::RuleIdx| {
        if let Some(c) = covered.get_mut(idx.0 as usize) {
            *c = true;
        }
    };
    let mut outcomes = Vec::with_capacity(tests.len());
    for test in tests {
        // A test that names a principal by id sees the groups `principals.yaml` declares.
        let principal = program.principal(&test.principal);
        let mut r = request(test);
        r.principal = &principal;
        let d = crate::evaluate(program, &r);
        cover(d.rule);
        if d.verdict == Verdict::Allow {
            program.limits(&d, &r).for_each(&mut cover);
        }
        program.redactions(&r).for_each(|x| cover(x.rule));
        let rule = program.rule_id(d.rule).to_owned();
        let passed =
            d.verdict == test.expect && test.rule.as_ref().is_none_or(|want| *want == rule);
        outcomes.push(TestOutcome {
            name: test.name.clone(),
            passed,
            expected: test.expect,
            actual: d.verdict,
            rule,
            expected_rule: test.rule.clone(),
            rule_source: program.rule(d.rule).map(|r| r.source.clone()),
            undecided: d.undecided,
            source: test.source.clone(),
        });
    }
    let uncovered = program
        .rules()
        .iter()
        .zip(&covered)
        .filter(|(_, c)| !**c)
        .map(|(r, _)| (r.id.clone(), r.source.clone()))
        .collect();
    TestReport {
        outcomes,
        uncovered,
    }
}
