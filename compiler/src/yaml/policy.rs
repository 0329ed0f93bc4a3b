//! YAML policies (`policies/**/*.yaml`): the model (for the schema) and the loader, which
//! builds the same syntax tree as the DSL, with spans pointing into the YAML file.

use super::node::{self, Node, PathItem};
use super::scalar::OffsetMap;
use super::validate::{self, Schema, anchor};
use crate::check::{rules, syntax};
use crate::diag::{Diagnostic, did_you_mean};
use crate::lower::SourceRule;
use crate::source::FileId;
use mcpgate_grammar::ast::{self, Effect, LimitKey, Pattern, Spanned, Target, Window};
use mcpgate_grammar::{Span, SyntaxError, TargetKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// A YAML policy file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "mcpgate policy")]
pub struct PolicyDoc {
    /// The rules, with the same meaning as in the DSL.
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// A stable id, unique across the repository (default: `policies/FILE.yaml#N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub id: Option<String>,
    /// What the rule does.
    pub effect: EffectName,
    /// Tool targets: `server.tool`, with `*` globs; a string or a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "OneOrMany<String>")]
    pub tools: Option<OneOrMany<String>>,
    /// Prompt targets: `server.name`; a string or a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "OneOrMany<String>")]
    pub prompts: Option<OneOrMany<String>>,
    /// Resource targets: `{server, uri}` with a URI glob (`**` crosses `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "OneOrMany<ResourceDoc>")]
    pub resources: Option<OneOrMany<ResourceDoc>>,
    /// A condition in the expression language, e.g. `args.amount > 100`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub when: Option<String>,
    /// The reason given to the client when the rule denies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub because: Option<String>,
    /// Approver groups (`approve` rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "OneOrMany<String>")]
    pub by: Option<OneOrMany<String>>,
    /// `N per second|minute|hour|day` (`limit` rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub rate: Option<String>,
    /// What a limit counts separately (`limit` rules; default `principal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "LimitKeyName")]
    pub per: Option<LimitKeyName>,
    /// What a `redact` rule masks: argument paths (`args.card_number`, kept out of the audit
    /// log in clear) and result fields (`result.email`, masked at any depth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "OneOrMany<String>")]
    pub fields: Option<OneOrMany<String>>,
    /// Regexes whose matches a `redact` rule masks in results (Rust `regex` syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "OneOrMany<String>")]
    pub patterns: Option<OneOrMany<String>>,
}

/// A rule's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EffectName {
    Allow,
    Deny,
    Hide,
    Approve,
    Limit,
    Redact,
}

/// What a limit counts separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LimitKeyName {
    Principal,
    Agent,
    Server,
    Tool,
}

/// A resource target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceDoc {
    /// Server name pattern.
    pub server: String,
    /// URI glob: `*` within a `/` segment, `**` across segments.
    pub uri: String,
}

/// A single value or a list of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// The JSON Schema of `policies/**/*.yaml`, generated from its serde model: what `mcpgate schema`
/// prints and what the file is validated against.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(PolicyDoc).to_value()
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::new(&json_schema()))
}

/// Loads the rules of one YAML policy file; problems go to `out`.
pub fn load(file: FileId, src: &str, out: &mut Vec<Diagnostic>) -> Vec<SourceRule> {
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
    let mut rules_out = Vec::new();
    let Some(rules_node) = root.get("rules") else {
        return rules_out;
    };
    for (i, rn) in rules_node.items().iter().enumerate() {
        let broken = failed.iter().any(|p| {
            matches!(p.first(), Some(PathItem::Key(k)) if k == "rules")
                && matches!(p.get(1), Some(PathItem::Index(j)) if *j == i)
        });
        if broken || !matches!(rn.kind, node::Kind::Map(_)) {
            continue;
        }
        if let Some(rule) = load_rule(rn, file, src, out) {
            rules_out.push(SourceRule {
                file,
                ordinal: i + 1,
                rule,
            });
        }
    }
    rules_out
}

fn spanned_str(n: &Node) -> Option<Spanned<String>> {
    n.as_str().map(|s| Spanned::new(s.to_owned(), n.span))
}

fn strings(n: &Node) -> Vec<&Node> {
    match &n.kind {
        node::Kind::Seq(items) => items.iter().collect(),
        _ => vec![n],
    }
}

/// Reports syntax errors of a fragment, mapped into the YAML file.
fn fragment_errors(
    errs: Vec<SyntaxError>,
    what: &str,
    map: &OffsetMap,
    file: FileId,
    out: &mut Vec<Diagnostic>,
) {
    for e in errs {
        out.push(
            syntax::E0004
                .at(format!("{}: {}", what, e.message), file, map.span(e.span))
                .with_help_opt(e.help),
        );
    }
}

fn load_rule(rn: &Node, file: FileId, src: &str, out: &mut Vec<Diagnostic>) -> Option<ast::Rule> {
    let effect_node = rn.get("effect")?;
    let effect_text = effect_node.as_str()?;
    let Some(effect) = Effect::from_keyword(effect_text) else {
        let help = did_you_mean(
            effect_text,
            ["allow", "deny", "hide", "approve", "limit", "redact"],
        )
        .map(|s| format!("did you mean `{s}`?"));
        out.push(
            rules::E0303
                .at(
                    format!("unknown effect `{effect_text}`"),
                    file,
                    effect_node.span,
                )
                .with_help_opt(help),
        );
        return None;
    };
    let mut ok = true;
    let mut targets = Vec::new();
    for (key, kind) in [("tools", TargetKind::Tool), ("prompts", TargetKind::Prompt)] {
        for n in rn.get(key).map(strings).unwrap_or_default() {
            let Some(text) = n.as_str() else { continue };
            let map = OffsetMap::new(src, n.span, text);
            match mcpgate_grammar::parse_target(text, kind) {
                Ok(mut t) => {
                    map.target(&mut t);
                    if kind == TargetKind::Prompt
                        && let Target::Tool { server, tool } = t.node
                    {
                        t.node = Target::Prompt { server, name: tool };
                    }
                    targets.push(t);
                }
                Err(errs) => {
                    ok = false;
                    fragment_errors(errs, &format!("invalid target `{text}`"), &map, file, out);
                }
            }
        }
    }
    for n in rn.get("resources").map(strings).unwrap_or_default() {
        let (Some(server), Some(uri)) = (n.get("server"), n.get("uri")) else {
            continue;
        };
        let (Some(s), Some(u)) = (server.as_str(), uri.as_str()) else {
            continue;
        };
        let span = Span::new(
            anchor(n).start as usize,
            uri.span.end.max(server.span.end) as usize,
        );
        targets.push(Spanned::new(
            Target::Resource {
                server: Spanned::new(
                    Pattern {
                        text: s.to_owned(),
                        quoted: false,
                    },
                    server.span,
                ),
                uri: Spanned::new(
                    Pattern {
                        text: u.to_owned(),
                        quoted: true,
                    },
                    uri.span,
                ),
            },
            span,
        ));
    }
    let when = match rn.get("when") {
        Some(n) => match n.as_str() {
            Some(text) => {
                let map = OffsetMap::new(src, n.span, text);
                match mcpgate_grammar::parse_expr(text) {
                    Ok(mut e) => {
                        map.expr(&mut e);
                        Some(e)
                    }
                    Err(errs) => {
                        ok = false;
                        fragment_errors(errs, "invalid condition", &map, file, out);
                        None
                    }
                }
            }
            None => None,
        },
        None => None,
    };
    let limit = load_limit(rn, effect, file, out, &mut ok);
    let redact = load_redact(rn, effect, file, src, out, &mut ok);
    let by = rn
        .get("by")
        .map(strings)
        .unwrap_or_default()
        .into_iter()
        .filter_map(spanned_str)
        .collect();
    let first = anchor(rn);
    let end = rn
        .entries()
        .iter()
        .map(|(k, v)| anchor(v).end.max(k.span.end))
        .max()
        .unwrap_or(first.end);
    if !ok {
        return None;
    }
    Some(ast::Rule {
        id: rn.get("id").and_then(spanned_str),
        effect: Spanned::new(effect, effect_node.span),
        targets,
        limit,
        redact,
        when,
        because: rn.get("because").and_then(spanned_str),
        by,
        span: Span::new(first.start as usize, end as usize),
    })
}

fn load_limit(
    rn: &Node,
    effect: Effect,
    file: FileId,
    out: &mut Vec<Diagnostic>,
    ok: &mut bool,
) -> Option<ast::Limit> {
    let rate = rn.get("rate");
    let per = rn.get("per");
    if effect != Effect::Limit {
        for (name, n) in [("rate", rate), ("per", per)] {
            if let Some(n) = n {
                let key = rn.key_node(name).map_or(n.span, |k| k.span);
                out.push(
                    rules::E0308
                        .at(
                            format!("`{name}` is only for `limit` rules, this one is `{effect}`"),
                            file,
                            key,
                        )
                        .with_help(format!("make the rule `limit`, or remove `{name}`")),
                );
                *ok = false;
            }
        }
        return None;
    }
    let Some(rate) = rate else {
        out.push(
            rules::E0308
                .at(
                    "`limit` rule without `rate`",
                    file,
                    rn.get("effect").map_or(anchor(rn), |n| n.span),
                )
                .with_help("add e.g. `rate: 100 per hour`"),
        );
        *ok = false;
        return None;
    };
    let text = rate.as_str().unwrap_or_default();
    let parsed = parse_rate(text);
    let Some((count, window)) = parsed else {
        out.push(
            rules::E0306
                .at(format!("invalid rate `{text}`"), file, rate.span)
                .with_help("write `N per second`, `N per minute`, `N per hour` or `N per day`"),
        );
        *ok = false;
        return None;
    };
    let key = per.and_then(|n| {
        let k = LimitKey::from_keyword(n.as_str()?)?;
        Some(Spanned::new(k, n.span))
    });
    Some(ast::Limit {
        count: Spanned::new(count, rate.span),
        window: Spanned::new(window, rate.span),
        key,
    })
}

/// `fields` and `patterns` of a `redact` rule; errors for them on other rules.
fn load_redact(
    rn: &Node,
    effect: Effect,
    file: FileId,
    src: &str,
    out: &mut Vec<Diagnostic>,
    ok: &mut bool,
) -> Option<ast::Redact> {
    let fields = rn.get("fields");
    let patterns = rn.get("patterns");
    if effect != Effect::Redact {
        for (name, n) in [("fields", fields), ("patterns", patterns)] {
            if let Some(n) = n {
                let key = rn.key_node(name).map_or(n.span, |k| k.span);
                out.push(
                    rules::E0309
                        .at(
                            format!("`{name}` is only for `redact` rules, this one is `{effect}`"),
                            file,
                            key,
                        )
                        .with_help(format!("make the rule `redact`, or remove `{name}`")),
                );
                *ok = false;
            }
        }
        return None;
    }
    let mut redact = ast::Redact {
        fields: Vec::new(),
        patterns: Vec::new(),
    };
    for n in fields.map(strings).unwrap_or_default() {
        let Some(text) = n.as_str() else { continue };
        let map = OffsetMap::new(src, n.span, text);
        match mcpgate_grammar::parse_expr(text) {
            Ok(mut e) => {
                map.expr(&mut e);
                match e.node {
                    ast::ExprKind::Path(p) => redact.fields.push(Spanned::new(p, e.span)),
                    _ => {
                        out.push(
                            rules::E0309
                                .at(format!("`{text}` is not a path"), file, n.span)
                                .with_help("write `args.NAME` or `result.NAME`"),
                        );
                        *ok = false;
                    }
                }
            }
            Err(errs) => {
                *ok = false;
                fragment_errors(errs, &format!("invalid field `{text}`"), &map, file, out);
            }
        }
    }
    for n in patterns.map(strings).unwrap_or_default() {
        if let Some(s) = spanned_str(n) {
            redact.patterns.push(s);
        }
    }
    if fields.is_none() && patterns.is_none() {
        out.push(
            rules::E0309
                .at(
                    "`redact` rule without `fields` or `patterns`",
                    file,
                    rn.get("effect").map_or(anchor(rn), |n| n.span),
                )
                .with_help("add e.g. `fields: [args.card_number, result.email]`"),
        );
        *ok = false;
        return None;
    }
    if redact.fields.is_empty() && redact.patterns.is_empty() {
        *ok = false;
        return None;
    }
    Some(redact)
}

/// `100 per hour`, `1_000 per day`.
pub fn parse_rate(s: &str) -> Option<(u64, Window)> {
    let mut words = s.split_whitespace();
    let n = words.next()?;
    if words.next()? != "per" {
        return None;
    }
    let window = Window::from_keyword(words.next()?)?;
    if words.next().is_some() || n.starts_with('_') {
        return None;
    }
    let digits: String = n.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, window))
}
