//! The signed assertion of an allowed call (the `assertion` setting of a server): built
//! from the decision, signed by the assertions service, sent as one more upstream header.
//! Also `/.well-known/jwks.json`, where upstreams find the public keys.

use crate::assertions::{Claims, args_sha256, claims::ISSUER};
use crate::decision::delegation::Delegated;
use crate::decision::{Decision, LoadedProgram};
use crate::gateway::Gateway;
use crate::upstream::ExtraHeader;
use http::{HeaderName, HeaderValue};
use mcpgate_compiler::Target;
use mcpgate_compiler::config::Config;
use std::collections::BTreeMap;

/// The path of the public keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// What a server's assertions look like.
#[derive(Clone, Debug)]
pub struct Setting {
    pub header: HeaderName,
    pub ttl_secs: u64,
    /// The `aud` claim: the configured audience, else the server's URL.
    pub audience: String,
}

/// The assertion settings of every server that has one.
///
/// # Errors
/// A server with `assertion` that is not a `url` server, or whose header name is not one.
pub fn settings(config: &Config) -> Result<BTreeMap<String, Setting>, String> {
    let mut out = BTreeMap::new();
    for (name, server) in &config.servers {
        let Some(a) = &server.assertion else { continue };
        let Some(url) = &server.url else {
            return Err(format!(
                "server `{name}`: `assertion` needs a `url` server (it rides in an HTTP header)"
            ));
        };
        let header = HeaderName::try_from(a.header.as_str()).map_err(|_| {
            format!(
                "server `{name}`: `assertion.header` `{}` is not an HTTP header name",
                a.header
            )
        })?;
        out.insert(
            name.clone(),
            Setting {
                header,
                ttl_secs: a.ttl_secs(),
                audience: a.audience.clone().unwrap_or_else(|| url.clone()),
            },
        );
    }
    Ok(out)
}

/// The assertion header for an allowed tool call of `d` to a server with assertions;
/// `Ok(None)` when its server has none.
///
/// # Errors
/// When it cannot be signed: the call must then not be forwarded.
pub fn for_call(
    gw: &Gateway,
    loaded: &LoadedProgram,
    d: &Decision<'_>,
    request_id: &str,
) -> Result<Option<ExtraHeader>, String> {
    let Target::Tool { server, tool } = d.target else {
        return Ok(None);
    };
    let Some(setting) = gw.assertion_settings.get(server) else {
        return Ok(None);
    };
    let Some(signer) = &gw.assertions else {
        return Err("assertions are configured but no signing key is loaded".into());
    };
    let principal = d.caller.declared;
    let delegated = match Delegated::of(principal) {
        Some(Ok(x)) => Some(x),
        Some(Err(())) => return Err("the caller's delegation cannot be read".into()),
        None => None,
    };
    let now = crate::clock::now_secs();
    let claims = Claims {
        iss: ISSUER,
        sub: &principal.id,
        on_behalf_of: delegated.as_ref().map(|x| x.person.id.as_str()),
        delegation: delegated.as_ref().map(|x| x.id.as_str()),
        agent: d.caller.agent(),
        client: d.caller.client_name,
        server,
        tool,
        args_sha256: args_sha256(d.args),
        rule: loaded.program.rule_id(d.vm.rule),
        policy_commit: loaded.program.commit(),
        policy_hash: &loaded.hash,
        jti: request_id,
        aud: &setting.audience,
        iat: now,
        exp: now.saturating_add(setting.ttl_secs),
    };
    let token = signer.sign(&claims)?;
    let value = HeaderValue::try_from(token).map_err(|e| e.to_string())?;
    Ok(Some((setting.header.clone(), value)))
}
