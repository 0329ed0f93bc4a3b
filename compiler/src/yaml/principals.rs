//! `principals.yaml`: group membership kept in the policy repository, so that adding a
//! person to a group is a reviewed change like any rule. The groups are merged with those a
//! credential carries (a gateway token's `--groups`, an OIDC `groups` claim).

use super::node::{self, Kind};
use super::validate::{self, Schema};
use crate::check::config::{E0606, W0607};
use crate::diag::Diagnostic;
use crate::source::FileId;
use crate::vm::Memberships;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// `principals.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "mcpgate principals")]
pub struct PrincipalsDoc {
    /// Group name to its members' principal ids: `maintainers: [alice@example.com]`.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

/// The JSON Schema of `principals.yaml`, generated from its serde model: what `mcpgate schema`
/// prints and what the file is validated against.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(PrincipalsDoc).to_value()
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::new(&json_schema()))
}

/// Whether a group name can be written in a policy without surprise: no blanks, not empty.
fn valid_group(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_whitespace)
}

/// Loads `principals.yaml` into `into` (principal id to groups); reports errors at their
/// line and column.
pub fn load(file: FileId, src: &str, into: &mut Memberships, out: &mut Vec<Diagnostic>) {
    let mut root = match node::parse(src) {
        Ok(n) => n,
        Err(e) => {
            out.push(validate::syntax_error(&e, file, src));
            return;
        }
    };
    if matches!(root.kind, Kind::Null) {
        return;
    }
    let before = out.len();
    validate::validate(schema(), &mut root, src, file, out);
    if out.len() > before {
        return;
    }
    let Some(groups) = root.get("groups") else {
        return;
    };
    for (key, members) in groups.entries() {
        let Some(group) = key.as_str() else { continue };
        if !valid_group(group) {
            out.push(
                E0606
                    .at(format!("invalid group name `{group}`"), file, key.span)
                    .with_help("a group name is a non-empty word without blanks, as policies write it in `\"NAME\" in principal.groups`"),
            );
            continue;
        }
        let mut seen: Vec<&str> = Vec::new();
        for m in members.items() {
            let Some(id) = m.as_str() else { continue };
            let id_trimmed = id.trim();
            if id_trimmed.is_empty() || id_trimmed != id || id == "anonymous" {
                out.push(
                    E0606
                        .at(format!("invalid member `{id}` of group `{group}`"), file, m.span)
                        .with_help("members are principal ids as credentials carry them (`sub`/`email`, or a token's `--subject`), without blanks around; `anonymous` cannot be a member"),
                );
                continue;
            }
            if seen.contains(&id) {
                out.push(
                    W0607
                        .at(
                            format!("`{id}` is listed twice in group `{group}`"),
                            file,
                            m.span,
                        )
                        .with_help("remove the duplicate"),
                );
                continue;
            }
            seen.push(id);
            into.entry(id.to_owned())
                .or_default()
                .push(group.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceMap;

    fn run(src: &str) -> (Memberships, Vec<Diagnostic>) {
        let mut sources = SourceMap::new();
        let file = sources.add("principals.yaml", src);
        let mut m = Memberships::new();
        let mut out = Vec::new();
        load(file, src, &mut m, &mut out);
        (m, out)
    }

    #[test]
    fn groups_become_memberships_by_principal() {
        let (m, out) = run(
            "groups:\n  finance: [carol@example.com, bob@example.com]\n  maintainers:\n    - bob@example.com\n",
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(m["bob@example.com"], vec!["finance", "maintainers"]);
        assert_eq!(m["carol@example.com"], vec!["finance"]);
    }

    #[test]
    fn bad_shapes_and_names_are_reported_at_their_line() {
        let (_, out) = run("groups:\n  finance: carol@example.com\n");
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].message.contains("groups.finance"),
            "{}",
            out[0].message
        );
        let (_, out) = run("group:\n  finance: []\n");
        assert!(
            out[0].message.contains("unknown field `group`"),
            "{}",
            out[0].message
        );
        let (m, out) = run("groups:\n  \"two words\": [a]\n  ok: [a, a, \" b\"]\n");
        let codes: Vec<&str> = out.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["E0606", "W0607", "E0606"]);
        assert_eq!(m["a"], vec!["ok"]);
    }
}
