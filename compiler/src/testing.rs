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

/// Runs every test against a compiled program. PLACEHOLDER body: replaced with the VM.
pub fn run_tests(program: &crate::Program, tests: &[PolicyTest]) -> TestReport {
    let _ = (program, tests);
    TestReport::default()
}
