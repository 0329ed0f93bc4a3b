//! The targets a report covers: every tool, prompt and resource a rule names exactly or
//! `mcpgate.lock` pins, and for each pattern one stand-in name that only the pattern
//! matches (its `*` replaced by [`STAND_IN`]), so "any other tool the pattern matches" is
//! answered too.

use crate::ir::{self, NamePattern, Target};
use crate::lock::Lockfile;
use crate::testing::Call;
use std::collections::BTreeMap;

/// What replaces `*` in a stand-in name: no rule names it, so only patterns match it.
pub const STAND_IN: &str = "⋯";

/// A target to report on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub call: Call,
    /// `server.tool`, `prompt:server.name`, `resource:server:URI`, or the pattern.
    pub label: String,
    /// The label is a pattern and `call` its stand-in.
    pub pattern: bool,
}

fn stand_in(p: &NamePattern) -> String {
    match p {
        NamePattern::Exact(s) => s.clone(),
        NamePattern::Glob(g) => g.replace('*', STAND_IN),
    }
}

fn is_glob(p: &NamePattern) -> bool {
    matches!(p, NamePattern::Glob(g) if g.contains('*'))
}

/// The targets of `policies` and the tools `lock` pins, sorted by label.
pub fn targets(policies: &[&ir::Policy], lock: Option<&Lockfile>) -> Vec<Named> {
    let mut out: BTreeMap<String, Named> = BTreeMap::new();
    let mut add = |call: Call, pattern: Option<String>| {
        let label = pattern.clone().unwrap_or_else(|| call.target().to_string());
        let pattern = pattern.is_some();
        out.entry(label.clone()).or_insert(Named {
            call,
            label,
            pattern,
        });
    };
    for rule in policies.iter().flat_map(|p| &p.rules) {
        for t in &rule.targets {
            match t {
                Target::Tool { server, tool } => add(
                    Call::Tool {
                        server: stand_in(server),
                        tool: stand_in(tool),
                    },
                    (is_glob(server) || is_glob(tool))
                        .then(|| format!("{}.{}", server.as_str(), tool.as_str())),
                ),
                Target::Prompt { server, name } => add(
                    Call::Prompt {
                        server: stand_in(server),
                        name: stand_in(name),
                    },
                    (is_glob(server) || is_glob(name))
                        .then(|| format!("prompt:{}.{}", server.as_str(), name.as_str())),
                ),
                Target::Resource { server, uri } => add(
                    Call::Resource {
                        server: stand_in(server),
                        uri: uri.0.replace("**", STAND_IN).replace('*', STAND_IN),
                    },
                    (is_glob(server) || uri.0.contains('*'))
                        .then(|| format!("resource:{}:{}", server.as_str(), uri.0)),
                ),
            }
        }
    }
    if let Some(lock) = lock {
        for (server, pinned) in &lock.servers {
            for tool in pinned.tools.keys() {
                add(
                    Call::Tool {
                        server: server.clone(),
                        tool: tool.clone(),
                    },
                    None,
                );
            }
        }
    }
    out.into_values().collect()
}
