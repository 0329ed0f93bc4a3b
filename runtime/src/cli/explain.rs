//! `mcpgate explain`: the decision for one request and every rule considered for it.

use mcpgate_compiler::repo::{check_files, read_dir};
use mcpgate_compiler::testing::Call;
use mcpgate_compiler::vm::{Explanation, Outcome, explain};
use mcpgate_compiler::{Principal, Request, ToolAnnotations};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy repository.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// What is called: `server.tool`, `prompt:server.name` or `resource:server:URI`.
    #[arg(long)]
    pub call: String,
    /// The call's arguments, a JSON object.
    #[arg(long)]
    pub args: Option<String>,
    /// Who calls, as JSON: `{"id": "...", "kind": "human", "groups": [...], "attrs": {...}}`
    /// (default: the anonymous principal).
    #[arg(long)]
    pub principal: Option<String>,
    /// The agent's name (`agent.name`).
    #[arg(long)]
    pub agent: Option<String>,
    /// The client's name (`client.name`).
    #[arg(long)]
    pub client: Option<String>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

/// What the command line asks for, validated.
struct Query {
    call: Call,
    args: Value,
    principal: Principal,
}

fn parse(a: &Args) -> Result<Query, String> {
    let call = Call::parse(&a.call).ok_or_else(|| {
        format!(
            "invalid `--call` value `{}`\n  = help: write `server.tool`, `prompt:server.name` or `resource:server:URI`",
            a.call
        )
    })?;
    let args = match &a.args {
        None => Value::Null,
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ (Value::Object(_) | Value::Null)) => v,
            Ok(_) => return Err("`--args` must be a JSON object".into()),
            Err(e) => return Err(format!("`--args` is not valid JSON: {e}")),
        },
    };
    let principal = match &a.principal {
        None => Principal::anonymous(),
        Some(s) => serde_json::from_str(s).map_err(|e| {
            format!(
                "`--principal` is not a valid principal: {e}\n  = help: write {{\"id\": \"...\", \"kind\": \"human\", \"groups\": [\"...\"]}}"
            )
        })?,
    };
    Ok(Query {
        call,
        args,
        principal,
    })
}

pub fn run(args: Args) -> ExitCode {
    let q = match parse(&args) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let files = match read_dir(&args.dir) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", args.dir.display());
            return ExitCode::from(2);
        }
    };
    let checked = check_files(files);
    if checked.has_errors() {
        eprint!("{}", checked.rendered);
        eprintln!("error: the policy has errors; nothing to explain");
        eprintln!("  = help: run `mcpgate check` for details");
        return ExitCode::from(1);
    }
    let program = checked.program(None);
    // The groups `principals.yaml` declares for the principal's id, as the gateway merges them.
    let principal = program.principal(&q.principal);
    let e = explain(
        &program,
        &Request {
            principal: &principal,
            agent: args.agent.as_deref(),
            client_name: args.client.as_deref(),
            client_version: None,
            target: q.call.target(),
            args: &q.args,
            annotations: ToolAnnotations::default(),
        },
    );
    match args.format {
        Format::Human => print!("{}", human(&e)),
        Format::Json => match serde_json::to_string_pretty(&e) {
            Ok(s) => println!("{s}"),
            Err(err) => {
                eprintln!("error: cannot write the explanation: {err}");
                return ExitCode::from(2);
            }
        },
    }
    ExitCode::SUCCESS
}

/// The explanation for a terminal.
pub fn human(e: &Explanation) -> String {
    let mut out = format!("{} {}\n", e.verdict, e.target);
    match &e.source {
        Some(src) => out.push_str(&format!("  rule:    {} ({src})\n", e.rule)),
        None => out.push_str("  rule:    default (no rule matched; denied and hidden)\n"),
    }
    if let Some(reason) = &e.reason {
        out.push_str(&format!("  reason:  {reason}\n"));
    }
    if e.undecided {
        out.push_str("  note:    the rule's condition could not be decided, so it applied\n");
    }
    if !e.limits.is_empty() {
        out.push_str(&format!("  limits:  {}\n", e.limits.join(", ")));
    }
    out.push_str(&format!("  program: {}\n", e.program));
    if e.considered.is_empty() {
        out.push_str("no rule is written for this target\n");
        return out;
    }
    out.push_str("considered:\n");
    for c in &e.considered {
        let outcome = match c.outcome {
            Outcome::Matched => "matched",
            Outcome::NotMatched => "not matched",
            Outcome::Undecided => "undecided",
        };
        let mark = if c.decided { "  <- decided" } else { "" };
        out.push_str(&format!(
            "  {:<7} {} ({}): {outcome}: {}{mark}\n",
            c.effect, c.rule, c.source, c.why
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use mcpgate_compiler::ir::{Effect, Policy, Rule, SourceLoc, Target as IrTarget};

    fn args(extra: &[&str]) -> Args {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: Args,
        }
        let mut argv = vec!["explain"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).a
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        let bad_call = parse(&args(&["--call", "nodot"])).err().unwrap_or_default();
        assert!(
            bad_call.contains("invalid `--call` value `nodot`"),
            "{bad_call}"
        );
        let bad_args = parse(&args(&["--call", "a.b", "--args", "[1]"]))
            .err()
            .unwrap_or_default();
        assert!(bad_args.contains("must be a JSON object"), "{bad_args}");
        let bad_p = parse(&args(&["--call", "a.b", "--principal", r#"{"name": 1}"#]))
            .err()
            .unwrap_or_default();
        assert!(bad_p.contains("not a valid principal"), "{bad_p}");
        let ok = parse(&args(&[
            "--call",
            "resource:fs:file:///a",
            "--principal",
            r#"{"id": "a", "groups": ["g"]}"#,
        ]));
        assert!(ok.is_ok_and(|q| q.principal.groups == ["g"]
            && matches!(q.call, Call::Resource { ref uri, .. } if uri == "file:///a")));
    }

    #[test]
    fn human_output_names_the_rule_and_what_was_considered() {
        let policy = Policy {
            rules: vec![Rule {
                id: "gh-read".into(),
                effect: Effect::Allow,
                targets: vec![IrTarget::Tool {
                    server: mcpgate_compiler::ir::NamePattern::Exact("gh".into()),
                    tool: mcpgate_compiler::ir::NamePattern::Glob("get_*".into()),
                }],
                condition: None,
                reason: None,
                approvers: Vec::new(),
                limit: None,
                redact: None,
                source: SourceLoc {
                    file: "policies/gh.mcpg".into(),
                    line: 1,
                    col: 1,
                },
            }],
        };
        let program = mcpgate_compiler::Program::compile(&policy, None);
        let p = Principal::anonymous();
        let e = explain(
            &program,
            &Request {
                principal: &p,
                agent: None,
                client_name: None,
                client_version: None,
                target: mcpgate_compiler::Target::Tool {
                    server: "gh",
                    tool: "get_file",
                },
                args: &Value::Null,
                annotations: ToolAnnotations::default(),
            },
        );
        let text = human(&e);
        assert!(
            text.starts_with("allow gh.get_file\n  rule:    gh-read (policies/gh.mcpg:1:1)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  allow   gh-read (policies/gh.mcpg:1:1): matched: no condition  <- decided\n"
            ),
            "{text}"
        );
    }
}
