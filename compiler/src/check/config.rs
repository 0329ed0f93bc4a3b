//! `mcpgate.yaml`: servers, secret references, and credentials written in clear.

use super::Code;
use crate::diag::{Diagnostic, Severity};
use crate::source::FileId;
use crate::yaml::node::{Kind, Node};
use crate::yaml::validate;
use mcpgate_grammar::Span;

/// A server with both `url` and `command`, or neither.
pub const E0601: Code = Code {
    code: "E0601",
    severity: Severity::Error,
    name: "server-transport",
    doc: r#"
### What it does
Reports a server in `mcpgate.yaml` that has both `url` (a remote server) and `command` (a
local stdio server), or neither; fields of the other kind of server (`headers` or
`transport` on a `command` server, `args`, `env` or `cwd` on a `url` server), which would
be ignored; and `protocol: 2026-07-28` on a `transport: sse` server, which is of the legacy
era.

### Example
```yaml
servers:
  demo:
    args: [demo-server]     # no `command`
```
"#,
};

/// A server name outside `[a-z0-9_-]+`.
pub const E0602: Code = Code {
    code: "E0602",
    severity: Severity::Error,
    name: "server-name",
    doc: r#"
### What it does
Reports a server name that is not made of lowercase letters, digits, `_` and `-`. Policies
name servers in targets (`server.tool`), where other characters cannot be written.

### Example
```yaml
servers:
  GitHub.com: { url: "https://api.githubcopilot.com/mcp/" }
```
"#,
};

/// A malformed `${secret:NAME}` or `${env:NAME}` reference.
pub const E0603: Code = Code {
    code: "E0603",
    severity: Severity::Error,
    name: "bad-reference",
    doc: r#"
### What it does
Reports a `${...}` in `mcpgate.yaml` that is not a well-formed `${secret:NAME}` or
`${env:NAME}` (names are letters, digits, `_`, `-` and `.`), or that is not closed.

### Example
```yaml
headers:
  Authorization: "Bearer ${secrets:github}"
```
Use instead: `${secret:github}`.
"#,
};

/// A credential written in clear in `mcpgate.yaml`.
pub const E0604: Code = Code {
    code: "E0604",
    severity: Severity::Error,
    name: "literal-credential",
    doc: r#"
### What it does
Reports a value that looks like a credential: a bearer token, a known token format
(`ghp_`, `github_pat_`, `glpat-`, `xoxb-`, `sk_live_`, `sk-`, `AKIA...`), a password in a
URL, or a long high-entropy string in `headers` or `env`. In `responders.yaml`, also a
webhook's `secret` or `routing_key` that is not a `${secret:NAME}` reference, and a Slack
or Discord webhook URL with its secret path written out.

### Why is this bad?
`mcpgate.yaml` (like every file of the policy repository) lives in git. A credential committed there is readable by everyone who can
read the repository, forever.

### Example
```yaml
headers:
  Authorization: "Bearer ghp_16C7e42F292c6912E7710c838347Ae178B4a"
```
Use instead: `Authorization: "Bearer ${secret:github}"`, and store the token with
`mcpgate secret set github`.
"#,
};

/// An `identity` section the gateway cannot use.
pub const E0605: Code = Code {
    code: "E0605",
    severity: Severity::Error,
    name: "identity-config",
    doc: r#"
### What it does
Reports an `identity` section in `mcpgate.yaml` that cannot work: `oidc` with both or
neither of `jwks_file` and `jwks_url`, a `jwks_url` that is not `https://` (plain `http://` is
accepted only for a loopback host), an `issuer` or `resource` that is not an absolute URL,
an empty `audience` or `algorithms` list, or `tokens: false` without `oidc` and without
`anonymous: true` (no caller could get in).

### Example
```yaml
identity:
  oidc:
    issuer: https://idp.example.com
    audience: mcpgate
    jwks_url: http://idp.example.com/jwks.json
```
Use instead: `jwks_url: https://idp.example.com/jwks.json`.
"#,
};

/// A malformed group or member in `principals.yaml`.
pub const E0606: Code = Code {
    code: "E0606",
    severity: Severity::Error,
    name: "principals-membership",
    doc: r#"
### What it does
Reports a group name in `principals.yaml` that is empty or holds blanks, and a member that is
empty, has blanks around it, or is `anonymous`.

### Why is this bad?
Members are matched exactly against the principal id a credential carries (a token's
`--subject`, an OIDC `sub` or `email` claim); a stray blank would silently never match.

### Example
```yaml
groups:
  finance: [" carol@example.com"]
```
"#,
};

/// A member listed twice in one group.
pub const W0607: Code = Code {
    code: "W0607",
    severity: Severity::Warning,
    name: "duplicate-member",
    doc: r#"
### What it does
Reports a principal listed twice in the same group of `principals.yaml`.

### Example
```yaml
groups:
  maintainers: [alice@example.com, bob@example.com, alice@example.com]
```
"#,
};

/// A duration given twice: `timeout` and `timeout_secs` in one section.
pub const E0608: Code = Code {
    code: "E0608",
    severity: Severity::Error,
    name: "duration-twice",
    doc: r#"
### What it does
Reports a section of `mcpgate.yaml` that gives a duration both ways: as a number of seconds
(`timeout_secs: 90`) and as a duration (`timeout: 90s`). Either is read; both cannot be.

### Example
```yaml
servers:
  github:
    url: https://api.githubcopilot.com/mcp/
    timeout_secs: 30
    timeout: 1m
```
"#,
};

/// A `state` section the gateway cannot use.
pub const E0609: Code = Code {
    code: "E0609",
    severity: Severity::Error,
    name: "state-config",
    doc: r#"
### What it does
Reports a `state` section whose `redis` is neither a reference (`${env:NAME}`,
`${secret:NAME}`) nor a `redis://` or `rediss://` URL, whose `postgres` is neither a
reference nor a `postgres://` URL, whose `advertise` is not an `http://` or `https://`
URL, whose `replica_id` is empty or holds blanks, whose `ca_file` is empty, or whose
`outage_grace` is not a duration. A password written in a URL is E0604.

### Why is this bad?
The replicas of a fleet share quota counts and tokens through these stores; a gateway that
cannot reach them refuses the calls that need them.

### Example
```yaml
state:
  redis: "localhost:6379"
```
Use instead: `redis: "${env:MCPGATE_REDIS_URL}"` with `MCPGATE_REDIS_URL=redis://localhost:6379`.
"#,
};

pub const CODES: &[Code] = &[
    E0601, E0602, E0603, E0604, E0605, E0606, W0607, E0608, E0609,
];

/// Reports a duration given as both `X` and `X_secs` in the mapping `section`.
fn check_durations(section: &Node, file: FileId, out: &mut Vec<Diagnostic>) {
    for (key, secs_key) in crate::config::DURATION_KEYS {
        if let (Some(k), Some(_)) = (section.key_node(key), section.get(secs_key)) {
            out.push(
                E0608
                    .at(
                        format!("`{key}` and `{secs_key}` are both given"),
                        file,
                        k.span,
                    )
                    .with_help(format!("keep one: `{key}: 90s` or `{secs_key}: 90`")),
            );
        }
    }
}

/// Whether `url` is an absolute `https://` URL, or `http://` when `http_ok`.
fn absolute_url(url: &str, http_ok: bool) -> bool {
    let rest = match url.split_once("://") {
        Some(("https", rest)) => rest,
        Some(("http", rest)) if http_ok => rest,
        _ => return false,
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty() && !host.contains('@')
}

fn loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = if authority.starts_with('[') {
        authority
            .split(']')
            .next()
            .map(|h| h.trim_start_matches('['))
    } else {
        authority.split(':').next()
    };
    matches!(host, Some("127.0.0.1" | "localhost" | "::1"))
}

/// Checks the `identity` section.
fn check_identity(identity: &Node, file: FileId, out: &mut Vec<Diagnostic>) {
    let flag = |name: &str| match identity.get(name).map(|n| &n.kind) {
        Some(Kind::Bool(b)) => Some(*b),
        _ => None,
    };
    let oidc = identity.get("oidc");
    if flag("tokens") == Some(false) && oidc.is_none() && flag("anonymous") != Some(true) {
        let span = identity
            .key_node("tokens")
            .map_or(identity.span, |k| k.span);
        out.push(
            E0605
                .at(
                    "no caller can authenticate: `tokens` is off and there is no `oidc`",
                    file,
                    span,
                )
                .with_help(
                    "keep `tokens: true`, add an `oidc` provider, or allow `anonymous: true`",
                ),
        );
    }
    if let Some(r) = identity
        .get("resource")
        .filter(|r| r.as_str().is_some_and(|s| !absolute_url(s, true)))
    {
        out.push(
            E0605
                .at(format!("`identity.resource` must be an absolute URL, found `{}`", r.as_str().unwrap_or_default()), file, r.span)
                .with_help("write the URL clients use to reach the gateway, e.g. `https://mcp.example.com`"),
        );
    }
    let Some(oidc) = oidc.filter(|o| matches!(o.kind, Kind::Map(_))) else {
        return;
    };
    if let Some(i) = oidc
        .get("issuer")
        .filter(|i| i.as_str().is_some_and(|s| !absolute_url(s, true)))
    {
        out.push(
            E0605
                .at(
                    format!(
                        "`identity.oidc.issuer` must be an absolute URL, found `{}`",
                        i.as_str().unwrap_or_default()
                    ),
                    file,
                    i.span,
                )
                .with_help("write the provider's issuer exactly as its tokens carry it in `iss`"),
        );
    }
    match (oidc.get("jwks_file"), oidc.get("jwks_url")) {
        (Some(_), Some(u)) => out.push(
            E0605
                .at("`identity.oidc` has both `jwks_file` and `jwks_url`", file, oidc.key_node("jwks_url").map_or(u.span, |k| k.span))
                .with_help("keep one: a file read at start, or an https URL fetched and refreshed"),
        ),
        (None, None) => out.push(
            E0605
                .at("`identity.oidc` needs `jwks_file` or `jwks_url`", file, validate::anchor(oidc))
                .with_help("add `jwks_url: https://IDP/.well-known/jwks.json` (see the provider's `jwks_uri`)"),
        ),
        (None, Some(u)) => {
            if let Some(url) = u.as_str()
                && !absolute_url(url, false)
                && !loopback_url(url)
            {
                out.push(
                    E0605
                        .at(format!("`jwks_url` must be an https URL, found `{url}`"), file, u.span)
                        .with_help("keys fetched over plain http could be replaced in transit; use https"),
                );
            }
        }
        (Some(_), None) => {}
    }
    for list in ["audience", "algorithms"] {
        if let Some(n) = oidc.get(list)
            && (matches!(&n.kind, Kind::Seq(items) if items.is_empty())
                || n.as_str().is_some_and(str::is_empty))
        {
            out.push(
                E0605
                    .at(
                        format!("`identity.oidc.{list}` is empty"),
                        file,
                        oidc.key_node(list).map_or(n.span, |k| k.span),
                    )
                    .with_help(if list == "audience" {
                        "name the audience the provider puts in `aud` for this gateway"
                    } else {
                        "name the algorithms the provider signs with, e.g. `[RS256]`"
                    }),
            );
        }
    }
}

/// Runs every config check on the document tree.
pub fn check_config(root: &Node, file: FileId, out: &mut Vec<Diagnostic>) {
    if let Some(identity) = root
        .get("identity")
        .filter(|i| matches!(i.kind, Kind::Map(_)))
    {
        check_identity(identity, file, out);
        if let Some(oidc) = identity.get("oidc") {
            check_durations(oidc, file, out);
        }
    }
    for section in ["gateway", "audit"] {
        if let Some(node) = root.get(section) {
            check_durations(node, file, out);
        }
    }
    if let Some(state) = root.get("state") {
        check_state(state, file, out);
    }
    let Some(servers) = root.get("servers") else {
        return;
    };
    for (key, server) in servers.entries() {
        let Some(name) = key.as_str() else { continue };
        if !crate::testing::valid_server(name) {
            let suggestion: String = name
                .to_lowercase()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            out.push(
                E0602
                    .at(format!("invalid server name `{name}`"), file, key.span)
                    .with_help(format!("server names are lowercase letters, digits, `_` and `-`, e.g. `{suggestion}`")),
            );
        }
        if !matches!(server.kind, Kind::Map(_)) {
            continue;
        }
        check_durations(server, file, out);
        match (server.get("url"), server.get("command")) {
            (Some(_), Some(c)) => out.push(
                E0601
                    .at(format!("server `{name}` has both `url` and `command`"), file, server.key_node("command").map_or(c.span, |k| k.span))
                    .with_help("use `url` for a remote server, `command` for a local stdio server"),
            ),
            (None, None) => out.push(
                E0601
                    .at(format!("server `{name}` has neither `url` nor `command`"), file, key.span)
                    .with_help("add `url: https://...` for a remote server, or `command: ...` for a local stdio server"),
            ),
            (url, _) => {
                // Fields of the other kind of server would be silently ignored.
                let (kind, foreign): (&str, &[&str]) = if url.is_some() {
                    ("`url`", &["args", "env", "cwd"])
                } else {
                    ("`command`", &["headers", "transport", "assertion"])
                };
                for f in foreign {
                    if let Some(k) = server.key_node(f) {
                        out.push(
                            E0601
                                .at(format!("`{f}` has no effect on a {kind} server"), file, k.span)
                                .with_help(format!("server `{name}` is a {kind} server; remove `{f}`")),
                        );
                    }
                }
            }
        }
        if server.get("transport").and_then(Node::as_str) == Some("sse")
            && let Some(p) = server
                .get("protocol")
                .filter(|p| p.as_str() == Some("2026-07-28"))
        {
            out.push(
                E0601
                    .at(
                        format!("server `{name}` uses `transport: sse`, which cannot speak protocol `2026-07-28`"),
                        file,
                        p.span,
                    )
                    .with_help("the HTTP+SSE transport is of the legacy era; use `protocol: legacy` or the default Streamable HTTP transport"),
            );
        }
        for field in ["url", "command", "cwd"] {
            if let Some(v) = server.get(field) {
                check_value(v, field, file, out);
            }
        }
        for n in server.get("args").map(|a| a.items()).unwrap_or_default() {
            check_value(n, "args", file, out);
        }
        for field in ["headers", "env"] {
            for (k, v) in server.get(field).map(|h| h.entries()).unwrap_or_default() {
                let reported = check_value(v, field, file, out);
                let key = k.as_str().unwrap_or_default();
                if !reported
                    && let Some(text) = v.as_str()
                    && looks_like_secret_value(key, &strip_references(text))
                {
                    out.push(credential(
                        v,
                        file,
                        &format!("`{field}.{key}` holds what looks like a credential"),
                    ));
                }
            }
        }
    }
}

/// `state:`: a store URL is a reference or a password-less `redis://` URL.
fn check_state(state: &Node, file: FileId, out: &mut Vec<Diagnostic>) {
    if let Some(v) = state.get("redis") {
        let reported = check_value(v, "url", file, out);
        if let Some(text) = v.as_str()
            && !reported
            && !text.contains("${")
            && !(text.starts_with("redis://")
                || text.starts_with("rediss://")
                || text.starts_with("redis+unix://"))
        {
            out.push(
                E0609
                    .at(format!("`state.redis` is not a `redis://` URL: `{text}`"), file, v.span)
                    .with_help("write `${env:MCPGATE_REDIS_URL}` and set the variable to `redis://HOST:6379`"),
            );
        }
    }
    if let Some(v) = state.get("postgres") {
        let reported = check_value(v, "url", file, out);
        if let Some(text) = v.as_str()
            && !reported
            && !text.contains("${")
            && !(text.starts_with("postgres://") || text.starts_with("postgresql://"))
        {
            out.push(
                E0609
                    .at(format!("`state.postgres` is not a `postgres://` URL: `{text}`"), file, v.span)
                    .with_help("write `${env:MCPGATE_PG_URL}` and set the variable to `postgres://USER:PASSWORD@HOST:5432/DB`"),
            );
        }
    }
    if let Some(v) = state.get("ca_file")
        && v.as_str().is_none_or(|t| t.trim().is_empty())
    {
        out.push(
            E0609
                .at("`state.ca_file` is not a file path", file, v.span)
                .with_help("name a PEM file of CA certificates, e.g. `/etc/mcpgate/store-ca.pem`"),
        );
    }
    if let Some(v) = state.get("outage_grace")
        && v.as_str()
            .is_none_or(|t| crate::duration::parse(t).is_err())
    {
        out.push(
            E0609
                .at("`state.outage_grace` is not a duration", file, v.span)
                .with_help("write how long a check may be served from memory while PostgreSQL does not answer, e.g. `30s`"),
        );
    }
    if let Some(v) = state.get("advertise")
        && let Some(text) = v.as_str()
        && !text.starts_with("${")
        && !(text.starts_with("http://") || text.starts_with("https://"))
    {
        out.push(
            E0609
                .at(format!("`state.advertise` is not an `http://` URL: `{text}`"), file, v.span)
                .with_help("write the URL the other replicas reach this one at, e.g. `http://${env:POD_IP}:8080`"),
        );
    }
    if let Some(v) = state.get("replica_id")
        && let Some(text) = v.as_str()
        && (text.is_empty() || text.chars().any(char::is_whitespace))
    {
        out.push(
            E0609
                .at("`state.replica_id` is empty or holds blanks", file, v.span)
                .with_help("name the replica with letters, digits, `-` and `.`, e.g. `gw-1`"),
        );
    }
}

pub(crate) fn credential(v: &Node, file: FileId, msg: &str) -> Diagnostic {
    E0604
        .at(msg.to_owned(), file, v.span)
        .with_label_message("do not commit credentials")
        .with_help("store it with `mcpgate secret set NAME` and write `${secret:NAME}` here")
}

/// Checks references and token formats in one string value; true when it reported a
/// credential.
pub(crate) fn check_value(v: &Node, field: &str, file: FileId, out: &mut Vec<Diagnostic>) -> bool {
    let Some(text) = v.as_str() else { return false };
    let mut rest = text;
    let mut base = 0usize;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let close = after.find('}');
        let inner = close.map(|c| &after[..c]);
        let ok = inner.is_some_and(|s| {
            let (kind, name) = s.split_once(':').unwrap_or(("", ""));
            matches!(kind, "secret" | "env")
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
        if !ok {
            let shown = match inner {
                Some(s) => format!("${{{s}}}"),
                None => rest[i..].to_owned(),
            };
            let help = match inner.and_then(|s| s.split_once(':')) {
                Some((k, _)) if k != "secret" && k != "env" => {
                    format!("references are `${{secret:NAME}}` or `${{env:NAME}}`, not `{k}`")
                }
                _ if inner.is_none() => "close the reference with `}`".to_owned(),
                _ => "references are `${secret:NAME}` or `${env:NAME}`".to_owned(),
            };
            out.push(
                E0603
                    .at(
                        format!("malformed reference `{shown}`"),
                        file,
                        sub_span(v, text, base + i, shown.len()),
                    )
                    .with_help(help),
            );
        }
        let skip = i + 2 + close.map_or(after.len(), |c| c + 1);
        base += skip;
        rest = &rest[skip..];
    }
    let clear = strip_references(text);
    if let Some(what) = known_token(&clear, field) {
        out.push(credential(v, file, &format!("`{field}` holds {what}")));
        return true;
    }
    false
}

/// Points inside a scalar when it is written verbatim (plain or quoted without escapes).
fn sub_span(v: &Node, text: &str, start: usize, len: usize) -> Span {
    let offset = if v.span.end as usize - v.span.start as usize == text.len() {
        0
    } else {
        1
    };
    let s = v.span.start as usize + offset + start;
    if s + len <= v.span.end as usize {
        Span::new(s, s + len)
    } else {
        v.span
    }
}

/// The text with every `${...}` reference removed.
pub fn strip_references(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        match rest[i..].find('}') {
            Some(c) => {
                out.push(' ');
                rest = &rest[i + c + 1..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Recognises well-known token formats; returns a description.
pub fn known_token(s: &str, field: &str) -> Option<&'static str> {
    const PREFIXES: &[(&str, usize, &str)] = &[
        ("ghp_", 20, "a GitHub token"),
        ("gho_", 20, "a GitHub token"),
        ("ghs_", 20, "a GitHub token"),
        ("ghu_", 20, "a GitHub token"),
        ("github_pat_", 20, "a GitHub token"),
        ("glpat-", 16, "a GitLab token"),
        ("xoxb-", 10, "a Slack token"),
        ("xoxp-", 10, "a Slack token"),
        ("xoxa-", 10, "a Slack token"),
        ("sk_live_", 10, "a Stripe secret key"),
        ("rk_live_", 10, "a Stripe secret key"),
        ("sk_test_", 10, "a Stripe secret key"),
        ("sk-", 20, "an API secret key"),
        ("AKIA", 16, "an AWS access key"),
        ("ASIA", 16, "an AWS access key"),
    ];
    for word in s
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '=' | '&' | '?' | ',' | ';'))
    {
        for &(prefix, min, what) in PREFIXES {
            if let Some(rest) = word.strip_prefix(prefix)
                && rest.len() >= min
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Some(what);
            }
        }
    }
    let lower = s.to_ascii_lowercase();
    if let Some(i) = lower.find("bearer ") {
        let token = s[i + 7..].trim();
        if token.len() >= 8 && !token.contains(' ') {
            return Some("a bearer token");
        }
    }
    if field == "url"
        && let Some((_, after_scheme)) = s.split_once("://")
    {
        let authority = after_scheme.split('/').next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
            && !password.trim().is_empty()
        {
            return Some("a password");
        }
        let query = after_scheme
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default();
        for pair in query.split('&') {
            if let Some((k, v)) = pair.split_once('=') {
                let k = k.to_ascii_lowercase();
                if [
                    "token",
                    "access_token",
                    "api_key",
                    "apikey",
                    "key",
                    "secret",
                    "password",
                ]
                .contains(&k.as_str())
                    && v.trim().len() >= 8
                {
                    return Some("a credential in its query string");
                }
            }
        }
    }
    None
}

/// A long, random-looking value in `headers` or `env`.
fn looks_like_secret_value(key: &str, value: &str) -> bool {
    let v = value.trim();
    let v = v.rsplit(' ').next().unwrap_or(v);
    // URLs and filesystem paths carry random-looking parts (temp dirs, hashes) but are
    // not credentials; a token is never written as an absolute or relative path.
    let is_path = ["/", "./", "../", "~/"].iter().any(|p| v.starts_with(p));
    if v.len() < 24 || is_path || v.contains('/') && v.contains(':') {
        return false;
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '/' | '=' | '.'))
    {
        return false;
    }
    let has_digit = v.chars().any(|c| c.is_ascii_digit());
    let has_alpha = v.chars().any(|c| c.is_ascii_alphabetic());
    let sensitive_key = {
        let k = key.to_ascii_lowercase();
        ["auth", "token", "key", "secret", "password", "credential"]
            .iter()
            .any(|s| k.contains(s))
    };
    has_digit && has_alpha && (entropy(v) >= 4.0 || (sensitive_key && entropy(v) >= 3.0))
}

/// Shannon entropy in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_formats() {
        assert!(
            known_token("Bearer ghp_16C7e42F292c6912E7710c838347Ae178B4a", "headers").is_some()
        );
        assert!(known_token("sk_live_51H8abcdefghijk", "env").is_some());
        assert!(known_token("xoxb-1234567890-abcdef", "env").is_some());
        assert!(known_token("AKIAIOSFODNN7EXAMPLE", "env").is_some());
        assert!(known_token("glpat-xxxxxxxxxxxxxxxxxxxx", "env").is_some());
        assert!(known_token("https://u:hunter2@example.com/mcp", "url").is_some());
        assert!(known_token(&strip_references("Bearer ${secret:github}"), "headers").is_none());
        assert!(known_token("https://api.example.com/mcp", "url").is_none());
        assert!(known_token("demo-server", "args").is_none());
    }

    #[test]
    fn high_entropy() {
        assert!(looks_like_secret_value(
            "X-Api-Key",
            "q8Zr2LmP0vXkT4bN7cWy1HsQ"
        ));
        assert!(!looks_like_secret_value("X-Trace", "hello"));
        assert!(!looks_like_secret_value("Accept", "application/json"));
        // A temp dir's random name is not a credential.
        assert!(!looks_like_secret_value(
            "MEMORY_FILE_PATH",
            "/tmp/.tmpMkQ2d8/memory.jsonl9Xz"
        ));
        assert!(!looks_like_secret_value(
            "DATA",
            "./data/q8Zr2LmP0vXkT4bN7cWy1HsQ"
        ));
    }
}
