//! Policy tests (`tests/**/*.yaml`): the model (for the schema) and the loader.

use super::node::{self, Node, PathItem};
use super::validate::{self, Schema, anchor};
use crate::check::policy_tests;
use crate::diag::{Diagnostic, did_you_mean};
use crate::request::{Principal, PrincipalKind, Verdict};
use crate::source::FileId;
use crate::testing::{Call, PolicyTest};
use mcpgate_grammar::Span;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// A YAML file of policy tests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "mcpgate policy tests")]
pub struct TestsDoc {
    #[serde(default)]
    pub tests: Vec<TestDoc>,
}

/// One test: a request and the verdict the policy must give.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestDoc {
    /// Shown when the test fails.
    pub name: String,
    /// Who calls (default: anonymous).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "PrincipalDoc")]
    pub principal: Option<PrincipalDoc>,
    /// The agent name of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub agent: Option<String>,
    /// The MCP client of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "ClientDoc")]
    pub client: Option<ClientDoc>,
    /// `server.tool`, `prompt:server.name` or `resource:server:URI`.
    pub call: String,
    /// The call's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Map<String, Value>")]
    pub args: Option<Map<String, Value>>,
    /// The verdict the policy must give.
    pub expect: VerdictName,
    /// The id of the rule that must decide (`default` for the built-in rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub rule: Option<String>,
}

/// A test's principal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrincipalDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub id: Option<String>,
    /// `human`, `agent`, `service` or `anonymous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attrs: Map<String, Value>,
}

/// A test's MCP client.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub version: Option<String>,
}

/// An expected verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VerdictName {
    Allow,
    Deny,
    Hide,
    Approve,
}

/// A loaded test and where its `rule:` was written.
#[derive(Clone, Debug)]
pub struct TestCase {
    pub test: PolicyTest,
    pub file: FileId,
    pub rule_span: Option<Span>,
}

/// The JSON Schema of `tests/**/*.yaml`, generated from its serde model: what `mcpgate schema`
/// prints and what the file is validated against.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(TestsDoc).to_value()
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::new(&json_schema()))
}

const KINDS: [&str; 4] = ["human", "agent", "service", "anonymous"];

/// Loads the tests of one file; problems go to `out`.
pub fn load(file: FileId, src: &str, out: &mut Vec<Diagnostic>) -> Vec<TestCase> {
    let mut root = match node::parse(src) {
        Ok(n) => n,
        Err(e) => {
            out.push(validate::syntax_error(&e, file, src));
            return Vec::new();
        }
    };
    if matches!(root.kind, node::Kind::Null) {
        return Vec::new();
    }
    let failed = validate::validate(schema(), &mut root, src, file, out);
    let mut cases = Vec::new();
    let Some(list) = root.get("tests") else {
        return cases;
    };
    for (i, tn) in list.items().iter().enumerate() {
        let broken = failed.iter().any(|p| {
            matches!(p.first(), Some(PathItem::Key(k)) if k == "tests")
                && matches!(p.get(1), Some(PathItem::Index(j)) if *j == i)
        });
        if !broken && let Some(case) = load_test(tn, file, src, out) {
            cases.push(case);
        }
    }
    cases
}

fn load_test(tn: &Node, file: FileId, src: &str, out: &mut Vec<Diagnostic>) -> Option<TestCase> {
    let name = tn.get("name")?.as_str()?.to_owned();
    let call_node = tn.get("call")?;
    let call_text = call_node.as_str()?;
    let call = Call::parse(call_text);
    if call.is_none() {
        out.push(
            policy_tests::E0501
                .at(format!("invalid call `{call_text}`"), file, call_node.span)
                .with_help("write `server.tool`, `prompt:server.name` or `resource:server:URI`"),
        );
    }
    let mut principal = Principal::anonymous();
    let mut kind_ok = true;
    if let Some(p) = tn.get("principal") {
        let json = p.to_json();
        principal.id = json["id"].as_str().unwrap_or("anonymous").to_owned();
        if let Some(k) = p.get("kind") {
            let text = k.as_str().unwrap_or_default();
            principal.kind = match text {
                "human" => PrincipalKind::Human,
                "agent" => PrincipalKind::Agent,
                "service" => PrincipalKind::Service,
                "anonymous" => PrincipalKind::Anonymous,
                _ => {
                    let help = did_you_mean(text, KINDS).map_or_else(
                        || "a principal is `human`, `agent`, `service` or `anonymous`".to_owned(),
                        |s| format!("did you mean `{s}`?"),
                    );
                    out.push(
                        policy_tests::E0503
                            .at(format!("unknown principal kind `{text}`"), file, k.span)
                            .with_help(help),
                    );
                    kind_ok = false;
                    PrincipalKind::Anonymous
                }
            };
        }
        principal.groups = json["groups"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(Value::Object(attrs)) = json.get("attrs") {
            principal.attrs = attrs.clone();
        }
    }
    let expect = Verdict::parse(tn.get("expect")?.as_str()?)?;
    let client = tn.get("client");
    let text_of = |n: Option<&Node>| n.and_then(|n| n.as_str()).map(str::to_owned);
    let rule_node = tn.get("rule");
    let (line, col) = crate::source::line_col(src, anchor(tn).start as usize);
    let test = PolicyTest {
        name,
        principal,
        agent: text_of(tn.get("agent")),
        client_name: text_of(client.and_then(|c| c.get("name"))),
        client_version: text_of(client.and_then(|c| c.get("version"))),
        call: call?,
        args: tn.get("args").map_or(Value::Null, Node::to_json),
        expect,
        rule: text_of(rule_node),
        source: crate::ir::SourceLoc {
            file: String::new(),
            line,
            col,
        },
        annotations: crate::ToolAnnotations::default(),
    };
    kind_ok.then_some(TestCase {
        test,
        file,
        rule_span: rule_node.map(|n| n.span),
    })
}
