//! Syntax: files that cannot be read as the DSL, as YAML, or as the YAML formats.

use super::Code;
use crate::diag::Severity;

/// A `.mcpg` file that does not follow the grammar.
pub const E0001: Code = Code {
    code: "E0001",
    severity: Severity::Error,
    name: "dsl-syntax",
    doc: r#"
### What it does
Reports a `.mcpg` file that does not follow the grammar: a missing `;`, an unknown
keyword, an unterminated string. The parser recovers, so every mistake in a file is shown.

### Example
```
allow github.get_*      # missing `;`
deny github.delete_repo;
```
Use instead: end every rule with `;`.
"#,
};

/// A YAML file that is not well-formed YAML.
pub const E0002: Code = Code {
    code: "E0002",
    severity: Severity::Error,
    name: "yaml-syntax",
    doc: r#"
### What it does
Reports a policy, test or config file that is not well-formed YAML (bad indentation, an
unclosed quote or bracket, a tab used for indentation).

### Example
```yaml
rules:
  - effect: allow
   tools: demo.echo     # indented one space less than `effect`
```
"#,
};

/// A YAML value of the wrong shape: unknown field, wrong type, missing field.
pub const E0003: Code = Code {
    code: "E0003",
    severity: Severity::Error,
    name: "yaml-schema",
    doc: r#"
### What it does
Validates each YAML file against the JSON Schema of its format (`mcpgate schema`) and
reports the path of the offending value (`rules[3].effect`) at its line and column.

### Why is this bad?
A misspelt field would otherwise be ignored, and a rule would mean something else than
what it says.

### Example
```yaml
rules:
  - effect: allow
    tool: demo.echo      # the field is `tools`
```
"#,
};

/// An expression, target or rate inside a YAML string that does not parse.
pub const E0004: Code = Code {
    code: "E0004",
    severity: Severity::Error,
    name: "yaml-embedded-syntax",
    doc: r#"
### What it does
Parses the strings of a YAML policy that hold DSL fragments (`when`, `tools`, `prompts`,
`rate`) and reports errors at their line and column inside the YAML file.

### Example
```yaml
rules:
  - effect: deny
    tools: demo.send_payment
    when: args.amount >> 100
    rate: 100 per fortnight
```
"#,
};

pub const CODES: &[Code] = &[E0001, E0002, E0003, E0004];
