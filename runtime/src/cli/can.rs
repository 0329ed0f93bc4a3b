//! `mcpgate can`: every tool, prompt and resource one principal can use, with the
//! argument conditions: a least-privilege report per person or agent (docs/analysis.md).

use super::who_can::{Format, load, print};
use mcpgate_compiler::analysis::{self, Model};
use mcpgate_compiler::{Principal, PrincipalKind};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The principal: its id (`alice@example.com`; a human unless `--kind` says otherwise),
    /// or JSON `{"id": "...", "kind": "agent", "groups": [...], "attrs": {...}}`. The
    /// groups `principals.yaml` declares for the id are added, as the gateway adds them.
    pub principal: String,
    /// The principal's kind, with an id.
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// Groups the credential carries, with an id (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// The policy repository.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Human,
    Agent,
    Service,
    Anonymous,
}

fn principal(a: &Args) -> Result<Principal, String> {
    let spec = a.principal.trim();
    if spec.starts_with('{') {
        if a.kind.is_some() || !a.groups.is_empty() {
            return Err("`--kind` and `--groups` go with an id, not with a JSON principal".into());
        }
        return serde_json::from_str(spec).map_err(|e| {
            format!(
                "the principal is not valid JSON: {e}\n  = help: write {{\"id\": \"...\", \"kind\": \"human\", \"groups\": [\"...\"]}}"
            )
        });
    }
    if spec.is_empty() {
        return Err("the principal is empty\n  = help: give an id or a JSON principal".into());
    }
    let kind = match a.kind.unwrap_or(Kind::Human) {
        Kind::Human => PrincipalKind::Human,
        Kind::Agent => PrincipalKind::Agent,
        Kind::Service => PrincipalKind::Service,
        Kind::Anonymous => PrincipalKind::Anonymous,
    };
    Ok(Principal {
        id: spec.to_owned(),
        kind,
        groups: a.groups.clone(),
        attrs: serde_json::Map::new(),
    })
}

pub fn run(args: Args) -> ExitCode {
    let p = match principal(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let checked = match load(&args.dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let model = Model::of(&checked);
    let targets = analysis::targets(&[model.policy], model.lock);
    let reports = analysis::can(&model, &p, &targets);
    print(
        &format!("What `{}` can use", p.id),
        &reports,
        false,
        args.format,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Principal, String> {
        let cli = Cli::try_parse_from(std::iter::once("can").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        principal(&cli.args)
    }

    #[test]
    fn principals_from_an_id_or_json() {
        let p = parse(&["bot-7", "--kind", "agent", "--groups", "a,b"]).unwrap_or_default();
        assert_eq!((p.id.as_str(), p.kind), ("bot-7", PrincipalKind::Agent));
        assert_eq!(p.groups, ["a", "b"]);
        let j = parse(&[r#"{"id": "x", "groups": ["g"]}"#]).unwrap_or_default();
        assert_eq!(j.groups, ["g"]);
        assert!(parse(&[r#"{"id": 1}"#]).is_err_and(|e| e.contains("not valid JSON")));
        assert!(parse(&[r#"{"id": "x"}"#, "--kind", "agent"]).is_err());
        assert!(parse(&["  "]).is_err());
    }
}
