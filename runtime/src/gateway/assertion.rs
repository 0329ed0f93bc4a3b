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

/// What an assertion will say about one call, taken from its decision; signed when the
/// call is forwarded (at once, or when a held call is approved), so `iat` and `exp` count
/// from then.
#[derive(Clone, Debug)]
pub struct Prepared {
    signer: Option<std::sync::Arc<crate::assertions::Assertions>>,
    header: HeaderName,
    ttl_secs: u64,
    audience: String,
    sub: String,
    on_behalf_of: Option<String>,
    delegation: Option<String>,
    agent: Option<String>,
    client: Option<String>,
    server: String,
    tool: String,
    args_sha256: String,
    rule: String,
    policy_commit: Option<String>,
    policy_hash: String,
    jti: String,
}

/// The assertion a tool call of `d` will carry, when its server asks for one; `Ok(None)`
/// when it does not.
///
/// # Errors
/// When the caller's delegation cannot be read: the call must then not be forwarded.
pub fn prepare(
    gw: &Gateway,
    loaded: &LoadedProgram,
    d: &Decision<'_>,
    request_id: &str,
) -> Result<Option<Prepared>, String> {
    let Target::Tool { server, tool } = d.target else {
        return Ok(None);
    };
    let Some(setting) = gw.assertion_settings.get(server) else {
        return Ok(None);
    };
    let principal = d.caller.declared;
    let delegated = match Delegated::of(principal) {
        Some(Ok(x)) => Some(x),
        Some(Err(())) => return Err("the caller's delegation cannot be read".into()),
        None => None,
    };
    Ok(Some(Prepared {
        signer: gw.assertions.clone(),
        header: setting.header.clone(),
        ttl_secs: setting.ttl_secs,
        audience: setting.audience.clone(),
        sub: principal.id.clone(),
        on_behalf_of: delegated.as_ref().map(|x| x.person.id.clone()),
        delegation: delegated.map(|x| x.id),
        agent: d.caller.agent().map(str::to_owned),
        client: d.caller.client_name.map(str::to_owned),
        server: server.to_owned(),
        tool: tool.to_owned(),
        args_sha256: args_sha256(d.args),
        rule: loaded.program.rule_id(d.vm.rule).to_owned(),
        policy_commit: loaded.program.commit().map(str::to_owned),
        policy_hash: loaded.hash.clone(),
        jti: request_id.to_owned(),
    }))
}

impl Prepared {
    /// Signs the assertion as of now: the header to send with the call.
    ///
    /// # Errors
    /// When there is no signer or signing fails: the call must then not be forwarded.
    pub fn sign(&self) -> Result<ExtraHeader, String> {
        let Some(signer) = &self.signer else {
            return Err("assertions are configured but no signing key is loaded".into());
        };
        let now = crate::clock::now_secs();
        let claims = Claims {
            iss: ISSUER,
            sub: &self.sub,
            on_behalf_of: self.on_behalf_of.as_deref(),
            delegation: self.delegation.as_deref(),
            agent: self.agent.as_deref(),
            client: self.client.as_deref(),
            server: &self.server,
            tool: &self.tool,
            args_sha256: self.args_sha256.clone(),
            rule: &self.rule,
            policy_commit: self.policy_commit.as_deref(),
            policy_hash: &self.policy_hash,
            jti: &self.jti,
            aud: &self.audience,
            iat: now,
            exp: now.saturating_add(self.ttl_secs),
        };
        let token = signer.sign(&claims)?;
        let value = HeaderValue::try_from(token).map_err(|e| e.to_string())?;
        Ok((self.header.clone(), value))
    }
}
