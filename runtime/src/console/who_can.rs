//! `Who can`: `mcpgate who-can` for one target, answered from the policy folder the gateway
//! serves (see docs/analysis.md). The folder is read again and checked; when its program is
//! not the live one (it changed since), the page says so. A gateway following a repository
//! has no folder to read: the page points to the command line.

use super::layout::{self, Viewer};
use crate::gitops::Source;
use maud::{Markup, html};
use mcpgate_compiler::analysis::{self, Model, Named, Reach};
use mcpgate_compiler::repo::{check_files, read_dir};
use mcpgate_compiler::testing::Call;
use std::path::Path;

/// The answer for one target, and whether it is about the live program.
#[derive(Debug)]
pub struct Answer {
    pub reach: Reach,
    pub live: bool,
}

/// Analyses `target` in the policy folder `dir`; `live_hash` is the live program's hash.
///
/// # Errors
/// A message for the page: a bad target, an unreadable folder, a policy with errors.
pub fn answer(dir: &Path, target: &str, live_hash: &str) -> Result<Answer, String> {
    let call = Call::parse(target).ok_or_else(|| {
        format!("`{target}` is not a target: write `server.tool`, `prompt:server.name` or `resource:server:URI`")
    })?;
    let files = read_dir(dir).map_err(|e| format!("cannot read the policy folder: {e}"))?;
    let checked = check_files(files);
    if checked.has_errors() {
        return Err("the policy folder has errors now; run `mcpgate check`".into());
    }
    let live = checked.program(None).hash_hex() == live_hash;
    let model = Model::of(&checked);
    let named = Named {
        label: call.target().to_string(),
        call,
        pattern: false,
    };
    Ok(Answer {
        reach: analysis::who_can(&model, &named, None),
        live,
    })
}

/// The policy folder of a gateway run with `--policy DIR`.
pub fn folder(source: &Source) -> Option<&Path> {
    match source {
        Source::Dir(d) => Some(d),
        Source::Git(_) => None,
    }
}

fn conds(list: &[analysis::Condition], none: &str) -> String {
    if list.is_empty() {
        return none.to_owned();
    }
    list.iter()
        .map(|c| format!("{}: {}", c.on, c.is))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The page: the form, and the answer or why there is none.
pub fn page(viewer: &Viewer<'_>, target: &str, result: Option<&Result<Answer, String>>) -> Markup {
    let body = html! {
        h1 { "Who can reach a tool" }
        form.search method="get" action="/console/who-can" {
            label { "Target " input type="text" name="target" placeholder="server.tool" value=(target); }
            button type="submit" { "Ask" }
        }
        @match result {
            None => p.hint { "Every class of caller that can reach the target, under which conditions, and the rule that decides (as " code { "mcpgate who-can" } " answers)." },
            Some(Err(e)) => p.error role="alert" { (e) },
            Some(Ok(a)) => {
                @if !a.live {
                    p.error role="alert" { "The policy folder changed since the live program was built: this answer is about the folder as it is now." }
                }
                @if a.reach.access.is_empty() {
                    p.no-one { "No one can reach " code { (a.reach.target) } "." }
                } @else {
                    table.who-can {
                        thead { tr { th { "Verdict" } th { "Who" } th { "When" } th { "Rule" } th { "Limits" } } }
                        tbody {
                            @for x in &a.reach.access {
                                tr {
                                    td { (x.verdict.to_string()) @if !x.approvers.is_empty() { " by " (x.approvers.join(", ")) } }
                                    td { (conds(&x.who, "anyone")) }
                                    td { (conds(&x.when, "any call")) }
                                    td { code { (x.rule) } " " span.hint { (x.source) } }
                                    td { (x.limits.iter().map(|l| l.quota.clone()).collect::<Vec<_>>().join("; ")) }
                                }
                            }
                        }
                    }
                }
                @if !a.reach.refused_by.is_empty() {
                    p { "Refused otherwise by: "
                        (a.reach.refused_by.iter().map(|r| format!("{} ({})", r.rule, r.verdict)).collect::<Vec<_>>().join(", ")) }
                }
            }
        }
    };
    layout::page("Who can", "/console/who-can", Some(viewer), &body)
}
